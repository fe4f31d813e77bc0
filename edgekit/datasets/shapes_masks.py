"""Per-pixel labels for the shapes scenes: the segmentation data set ``shapes-masks``.

The images are those of ``shapes`` (same seed, same sizes, same cache); each target is an
H×W uint8 mask: 0 background, 1 circle, 2 square, 3 triangle. A shape's mask is rebuilt from its
box and label (every shape fills its size×size box edge to edge, ``shapes.shape_mask``), and shapes
drawn later cover earlier ones, as the generator paints them. Robot tier: numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.datasets.base import Split
from edgekit.datasets.shapes import IMAGE_SIZE, LABELS, load_shapes, shape_mask
from edgekit.errors import BadInputError

BACKGROUND = "background"
MASK_LABELS = (BACKGROUND, *LABELS)


def load_shapes_masks(split: str = "test", seed: int = 0, train_size: int | None = None,
                      val_size: int | None = None, test_size: int | None = None, cache: bool = True) -> Split:
    """The ``split`` of shapes with a class mask per image (options as ``load_shapes``)."""
    scenes = load_shapes(split, seed, train_size=train_size, val_size=val_size, test_size=test_size, cache=cache)
    masks = np.stack([scene_mask(target, scenes.images[0].shape[:2]) for target in scenes.targets])
    info = {**scenes.info, "dataset": "shapes-masks"}
    return Split(scenes.name, "segmentation", scenes.images, masks, MASK_LABELS, info)


def scene_mask(target: Mapping[str, Any], size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray:
    """The H×W uint8 class mask of one shapes scene from its ``boxes`` and ``labels`` (drawing order)."""
    mask = np.zeros(size, dtype=np.uint8)
    for box, label in zip(np.asarray(target["boxes"]).reshape(-1, 4), np.asarray(target["labels"]).reshape(-1)):
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        side = x1 - x0
        if side != y1 - y0 or side < 1:
            raise BadInputError(f"shapes box {box.tolist()} is not a square: not a shapes scene")
        region = mask[y0:y1, x0:x1]
        region[shape_mask(int(label), side)] = int(label) + 1
    return mask
