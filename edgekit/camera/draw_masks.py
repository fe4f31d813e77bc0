"""Segmentation masks and embedding identities drawn on frames; other predictions go to ``draw.annotate``.

A mask is blended over the frame in one colour per class (class 0, the background, and pixels the model
did not see are left as they are) with a legend of the classes present and their share of the frame;
an embedding gets its gallery identity and distance. Imports OpenCV when used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.camera.sources import require_cv2

ALPHA = 0.45  # weight of the class colour over the frame
BACKGROUND_SWATCH = (96, 96, 96)
# BGR, distinct at a glance; repeats after 12 classes
COLOURS = ((56, 56, 255), (255, 157, 51), (31, 200, 31), (0, 215, 255), (255, 0, 255), (255, 255, 0),
           (128, 0, 255), (0, 128, 255), (180, 105, 255), (0, 255, 128), (255, 64, 128), (64, 160, 160))


def annotate(image: np.ndarray, prediction: Any, color: str = "BGR") -> np.ndarray:
    """A BGR copy of ``image`` with ``prediction`` drawn (masks and identities here, the rest by ``draw``)."""
    if hasattr(prediction, "mask"):
        return annotate_mask(image, prediction, color)
    if hasattr(prediction, "vector"):
        return annotate_identity(image, prediction, color)
    from edgekit.camera.draw import annotate as annotate_boxes

    return annotate_boxes(image, prediction, color)


def class_colours(count: int) -> np.ndarray:
    """(256, 3) uint8 BGR lookup table: class c ≥ 1 → its colour; 0 and unused values black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    for c in range(1, min(count, 255)):
        table[c] = COLOURS[(c - 1) % len(COLOURS)]
    return table


def annotate_mask(image: np.ndarray, prediction: Any, color: str = "BGR") -> np.ndarray:
    """The frame with its class mask blended in and a legend (classes present, share of the frame)."""
    cv2 = require_cv2("drawing masks")
    canvas = to_bgr(image, color, cv2)
    mask = np.asarray(prediction.mask)
    if mask.shape != canvas.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not fit the frame {canvas.shape[:2]}")
    table = class_colours(len(prediction.names))
    coloured = (mask > 0) & (mask < len(prediction.names))
    blended = canvas[coloured].astype(np.float32) * (1 - ALPHA) + table[mask[coloured]].astype(np.float32) * ALPHA
    canvas[coloured] = blended.round().astype(np.uint8)
    rows = [(int(c["class"]), f"{c['name']} {100 * c['fraction']:.1f} %") for c in prediction.present()]
    _legend(canvas, [(tuple(int(v) for v in table[c]) if c else BACKGROUND_SWATCH, text) for c, text in rows], cv2)
    return canvas


def annotate_identity(image: np.ndarray, prediction: Any, color: str = "BGR") -> np.ndarray:
    """The frame with its gallery identity and distance (or the vector length without a gallery)."""
    cv2 = require_cv2("drawing identities")
    canvas = to_bgr(image, color, cv2)
    match = getattr(prediction, "match", None)
    swatch = COLOURS[2] if match is not None and match.accepted else COLOURS[0]
    _legend(canvas, [(swatch, prediction.summary())], cv2)
    return canvas


def to_bgr(image: np.ndarray, color: str, cv2) -> np.ndarray:
    """A BGR copy (never the caller's frame) of a gray, RGB or BGR image."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    pixels = image[:, :, :3]
    return np.array(pixels[:, :, ::-1] if color == "RGB" else pixels, order="C", copy=True)


def _legend(canvas: np.ndarray, rows: list[tuple[tuple[int, int, int], str]], cv2) -> None:
    """Rows of (swatch colour, text) in the top-left corner, on a dark box."""
    scale = max(max(canvas.shape[:2]) / 640, 0.35)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale
    line = max(round(16 * scale), 8)
    widths = [cv2.getTextSize(text, font, size, 1)[0][0] for _, text in rows]
    right, bottom = 4 + line + 4 + max(widths, default=0) + 4, 4 + line * len(rows) + 4
    box = canvas[:bottom, :right]
    box[:] = (box.astype(np.float32) * 0.4).astype(np.uint8)
    for index, (swatch, text) in enumerate(rows):
        top = 4 + index * line
        cv2.rectangle(canvas, (4, top + 2), (4 + line - 4, top + line - 2), swatch, -1)
        cv2.putText(canvas, text, (4 + line + 2, top + line - 4), font, size, (255, 255, 255), 1, cv2.LINE_AA)
