"""Datasets by name or path: ``load_split`` and the ``DATASETS`` registry, and the check that a
classifier's labels match the data it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgekit.datasets.base import SPLITS, Split
from edgekit.errors import BadInputError
from edgekit.registry import Registry

if TYPE_CHECKING:
    from edgekit.meta import ModelMeta

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
    if path.exists():
        raise BadInputError(f"{spec} is not a dataset: expected digits, shapes, a folder of class folders "
                            "or a COCO .json")
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
