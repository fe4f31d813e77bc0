"""Predictions drawn on frames (boxes, labels, scores) and written atomically: images or a video.

Imports OpenCV when used (``pip install 'edgekit[camera]'``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.camera.sources import require_cv2
from edgekit.errors import BadInputError
from edgekit.fileio import atomic_path

PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0))


def annotate(image: np.ndarray, prediction: Any, color: str = "BGR") -> np.ndarray:
    """A BGR copy of ``image`` with the prediction drawn: boxes with label and score (and keypoints,
    as dots) for a detection, the top class and its probability for a classification."""
    cv2 = require_cv2("drawing predictions")
    canvas = _to_bgr(image, color, cv2)
    scale = max(canvas.shape[:2]) / 640
    thickness = max(1, round(2 * scale))
    if hasattr(prediction, "boxes"):
        for box, score, label, name in zip(prediction.boxes, prediction.scores, prediction.labels,
                                           prediction.names or [str(int(c)) for c in prediction.labels]):
            shade = PALETTE[int(label) % len(PALETTE)]
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), shade, thickness)
            _label(canvas, f"{name} {float(score):.2f}", (x1, max(y1, 12)), shade, scale, cv2)
        _keypoints(canvas, getattr(prediction, "keypoints", None), max(2, thickness + 1), cv2)
    elif hasattr(prediction, "probabilities"):
        _label(canvas, f"{prediction.names[0]} {prediction.probabilities[0]:.2f}", (4, 4 + round(18 * scale)),
               PALETTE[0], scale, cv2)
    return canvas


#: keypoint dot colours by index (BGR): five face landmarks as InsightFace draws them, then the palette
POINT_COLORS = ((0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0), *PALETTE)


def _keypoints(canvas: np.ndarray, keypoints, radius: int, cv2) -> None:
    """A filled dot per keypoint (k, P, 2), coloured by its index."""
    if keypoints is None:
        return
    for points in np.asarray(keypoints):
        for index, (x, y) in enumerate(points):
            cv2.circle(canvas, (round(float(x)), round(float(y))), radius,
                       POINT_COLORS[index % len(POINT_COLORS)], -1, cv2.LINE_AA)


def _to_bgr(image: np.ndarray, color: str, cv2) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    pixels = image[:, :, :3]
    return np.array(pixels[:, :, ::-1] if color == "RGB" else pixels,
                    order="C", copy=True)  # never draw on the caller's frame


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], shade, scale: float, cv2) -> None:
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * max(scale, 0.5)
    (width, height), base = cv2.getTextSize(text, font, size, 1)
    x, y = origin
    cv2.rectangle(canvas, (x, y - height - base), (x + width, y), shade, -1)
    cv2.putText(canvas, text, (x, y - base), font, size, (255, 255, 255), 1, cv2.LINE_AA)


#: formats OpenCV writes a colour image in: an annotated copy keeps its input's name and format
COLOR_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def annotated_name(source: str | Path | None, index: int, used: set[str]) -> str:
    """A file name in the --save folder for the annotated copy of ``source``, unique among ``used``
    (compared without case; the name is added to it): the input's own name when OpenCV writes that
    format in colour (x.png, x.tiff, x.webp stay three files), else the name plus .png (x.pgm.png); a
    name already taken gets -INDEX (then -INDEX-2, ...) before its suffix."""
    name = Path(source or "").name or f"frame-{index}"
    if Path(name).suffix.lower() not in COLOR_SUFFIXES:
        name += ".png"
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, attempt = name, 1
    while candidate.lower() in used:
        candidate = f"{stem}-{index}{suffix}" if attempt == 1 else f"{stem}-{index}-{attempt}{suffix}"
        attempt += 1
    used.add(candidate.lower())
    return candidate


def save_image(image_bgr: np.ndarray, target: Path) -> None:
    """Write a BGR image atomically (the format follows the suffix)."""
    cv2 = require_cv2("saving annotated images")
    with atomic_path(target) as temporary:
        if not cv2.imwrite(str(temporary), image_bgr):
            raise BadInputError(f"cannot write image {target}")


@contextlib.contextmanager
def video_writer(target: Path, fps: float, size: tuple[int, int]) -> Iterator[Any]:
    """An OpenCV VideoWriter on a temporary file that becomes ``target`` when the block ends
    normally (or by Ctrl-C, the usual way to stop a camera); removed on any other error."""
    cv2 = require_cv2("saving a video")
    interrupted = False
    with atomic_path(target) as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise BadInputError(f"cannot write video {target} (OpenCV has no mp4v encoder here)")
        try:
            yield writer
        except KeyboardInterrupt:
            interrupted = True
        finally:
            writer.release()
    if interrupted:
        raise KeyboardInterrupt
