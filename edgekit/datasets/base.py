"""Datasets as plain arrays: images (uint8, HWC) with their targets, split by seed.

Classification targets are class indices; detection targets are dicts with
``boxes`` (k×4 float32, x1 y1 x2 y2 in pixels of the image) and ``labels`` (k int64).
Robot tier: numpy only, and a leaf: it imports nothing from edgekit but its errors. The loaders
(``edgekit.datasets.loader``) import what they need (scikit-learn, Pillow) lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import BadInputError

SPLITS = ("train", "val", "test")
ALL = "all"  # every image of the user's own data, unsplit (not one of SPLITS: training never asks for it)


@dataclass(frozen=True)
class Split:
    """One split of a dataset: ``images[i]`` is HxWxC uint8 (C=1 grayscale or 3 RGB)."""

    name: str
    task: str
    images: list[np.ndarray] | np.ndarray
    targets: list[Any] | np.ndarray
    labels: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets):
            raise BadInputError(f"split '{self.name}' has {len(self.images)} images but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, size: int) -> Iterator[tuple[list[np.ndarray], list[Any]]]:
        """Consecutive (images, targets) batches of at most ``size``."""
        for start in range(0, len(self), size):
            yield list(self.images[start : start + size]), list(self.targets[start : start + size])

    def take(self, count: int) -> Split:
        """The first ``count`` samples (for calibration or quick runs)."""
        return Split(self.name, self.task, self.images[:count], self.targets[:count], self.labels, dict(self.info))


def split_indices(count: int, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Fixed train/val/test index sets for ``count`` samples, shuffled by ``seed``."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise BadInputError(f"split fractions must sum to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(count)
    n_train = int(round(fractions[0] * count))
    n_val = int(round(fractions[1] * count))
    return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
