"""Models whose graph starts with the preprocessing (``edgekit fuse``): they take uint8 NHWC frames.

The metadata says so in ``meta.extra["fused_preprocess"]``::

    {"frame": [480, 640] | null, "color": "RGB", "steps": [...], "source_sha256": "..."}

``frame`` is the fixed camera resolution (null: any height and width, one size per batch) and
``color`` the channel order the graph expects. The host only stacks the frames and keeps the
``ImageTransform`` of each (same geometry as the graph) to map boxes back. Robot tier: numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import FUSED_KEY, ImageTransform, check_color, plan_geometry


@dataclass(frozen=True)
class FusedPreprocess:
    """What the graph's first nodes expect: frame size (None: dynamic) and colour order."""

    frame: tuple[int, int] | None
    color: str
    steps: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @classmethod
    def of(cls, meta: ModelMeta) -> FusedPreprocess | None:
        """The fused preprocessing ``meta`` records, or None for a plain model."""
        record = meta.extra.get(FUSED_KEY)
        if not isinstance(record, dict):
            return None
        frame = record.get("frame")
        return cls(tuple(int(v) for v in frame) if frame else None, str(record.get("color", "RGB")),
                   tuple(str(step) for step in record.get("steps", ())))


def stack_frames(images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB"
                 ) -> tuple[np.ndarray, list[ImageTransform]]:
    """uint8 HxW(xC) frames → one N×H×W×C uint8 batch for a fused model (no copy for one frame)."""
    fused = FusedPreprocess.of(meta)
    if fused is None:
        raise BadInputError("this model has no fused preprocessing (meta.extra['fused_preprocess'])")
    if not len(images):
        raise BadInputError("no images to preprocess")
    check_color(color)
    frames = [_frame(image, fused, color) for image in images]
    sizes = {frame.shape[:2] for frame in frames}
    if fused.frame is not None and sizes != {fused.frame}:
        bad = next(frame.shape[:2] for frame in frames if frame.shape[:2] != fused.frame)
        raise BadInputError(f"this fused model takes {fused.frame[0]}x{fused.frame[1]} frames, got {bad[0]}x{bad[1]}"
                            " — fuse it again with --frame HxW or --frame dynamic")
    if len(sizes) > 1:
        raise BadInputError(f"frames of one batch must share one size for a dynamic-size fused model, got "
                            f"{sorted(sizes)} — pass them one at a time")
    batch = frames[0][None] if len(frames) == 1 else np.stack(frames)
    geometry = plan_geometry(frames[0].shape[:2], meta.input_size, meta.resize)
    return np.ascontiguousarray(batch), [geometry.transform] * len(frames)


def _frame(image: np.ndarray, fused: FusedPreprocess, color: str) -> np.ndarray:
    """An HxWxC uint8 view in the graph's colour order (a copy only to add gray's channels)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise BadInputError(f"a fused model takes uint8 frames, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise BadInputError(f"expected an HxW, HxWx1 or HxWx3 frame, got shape {image.shape}")
    image = image[:, :, :3]
    given = "GRAY" if image.shape[2] == 1 else color
    if given == "GRAY" and color != "GRAY" and image.shape[2] != 1:
        raise BadInputError(f"color='GRAY' frames must be HxW or HxWx1, got shape {image.shape}")
    if fused.color == "GRAY":
        if given != "GRAY":
            raise BadInputError("this fused model takes gray HxW frames (it was fused with --frame-color GRAY)")
        return image
    if given == "GRAY":
        return np.repeat(image, 3, axis=2)
    return image[:, :, ::-1] if given != fused.color else image
