"""Datasets as plain arrays: images (uint8, HWC) with their targets, split by seed.

Classification targets are class indices; detection targets are dicts with
``boxes`` (k×4 float32, x1 y1 x2 y2 in pixels of the image) and ``labels`` (k int64).
Robot tier: numpy only. Loaders that need more (scikit-learn, Pillow) import it lazily.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.registry import Registry

if TYPE_CHECKING:
    from edgekit.meta import ModelMeta

SPLITS = ("train", "val", "test")


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


# name → "module:function(split, seed, **options) -> Split"
DATASETS: Registry = Registry("dataset")
DATASETS.add("digits", "edgekit.datasets.digits:load_digits")
DATASETS.add("shapes", "edgekit.datasets.shapes:load_shapes")


def load_split(spec: str, split: str = "test", seed: int = 0, **options: Any) -> Split:
    """Load ``split`` of a dataset given by name (digits, shapes) or by path.

    A directory of class folders is an image-folder dataset; a ``.json`` file is COCO
    annotations (images resolved beside it or via ``images_dir``); a ``.npz`` holds arrays.
    """
    from pathlib import Path

    if split not in SPLITS:
        raise BadInputError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    path = Path(spec)
    if spec in DATASETS:
        return DATASETS.get(spec)(split=split, seed=seed, **options)
    if path.suffix.lower() == ".json":
        from edgekit.datasets.coco import load_coco

        return load_coco(path, split=split, seed=seed, **options)
    if path.is_dir():
        from edgekit.datasets.image_folder import load_image_folder

        return load_image_folder(path, split=split, seed=seed, **options)
    if path.suffix or "/" in spec:
        raise BadInputError(f"dataset not found: {spec}")
    DATASETS.canonical(spec)  # raises "unknown dataset ... did you mean"
    raise AssertionError("unreachable")


def check_labels(meta: ModelMeta, labels: Sequence[str], spec: str, use: str = "evaluate") -> None:
    """A classifier with labels must be given data of the same classes (a model without labels takes any)."""
    if meta.task == "classification" and meta.labels and tuple(meta.labels) != tuple(labels):
        shown = lambda names: ", ".join(names[:6]) + (" …" if len(names) > 6 else "")  # noqa: E731
        raise BadInputError(f"the model's labels ({shown(meta.labels)}) differ from the classes of {spec} "
                            f"({shown(tuple(labels))}): {use} on the data it was trained for")
