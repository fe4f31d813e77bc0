"""Datasets by name or path: ``load_split`` and the ``DATASETS`` registry, the split eval uses by
default (``default_split``), and the check that a classifier's labels match the data it is given."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.datasets.base import ALL, SPLITS, Split
from edgekit.errors import BadInputError
from edgekit.registry import Registry

if TYPE_CHECKING:
    from edgekit.meta import ModelMeta

# name → "module:function(split, seed, **options) -> Split"
DATASETS: Registry = Registry("dataset")
DATASETS.add("digits", "edgekit.datasets.digits:load_digits")
DATASETS.add("shapes", "edgekit.datasets.shapes:load_shapes")
DATASETS.add("shapes-masks", "edgekit.datasets.shapes_masks:load_shapes_masks")  # segmentation
DATASETS.add("digits-identities", "edgekit.datasets.identities:load_identities")  # embeddings
DATASETS.add("glyph-identities", "edgekit.datasets.glyph_identities:load_glyph_identities")  # embeddings


def load_split(spec: str, split: str = "test", seed: int = 0, for_task: str | None = None, **options: Any) -> Split:
    """Load ``split`` of a dataset given by name (digits, shapes) or by path.

    A directory of class folders is an image-folder dataset (``for_task="embedding"``: a folder per
    identity, for verification); a ``.json`` file is COCO annotations (images resolved beside it or
    via ``images_dir``); a ``.npz`` holds arrays. ``split="all"`` (every image, unsplit) is for the
    user's own folder or COCO file.
    """
    if split not in (*SPLITS, ALL):
        raise BadInputError(f"split must be one of {', '.join((*SPLITS, ALL))}, got '{split}'")
    path = Path(spec)
    if spec in DATASETS:
        if split == ALL:
            raise BadInputError(f"split 'all' is for your own folder or COCO file; {spec} has train, val and test "
                                "splits (a model trained on it learnt from train: evaluate on test)")
        return DATASETS.get(spec)(split=split, seed=seed, **options)
    if path.suffix.lower() == ".json":
        return _coco(path, split, seed, options)
    if path.is_dir():
        from edgekit.datasets.image_folder import load_image_folder

        folder = load_image_folder(path, split=split, seed=seed, **options)
        return dataclasses.replace(folder, task="embedding") if for_task == "embedding" else folder
    if path.exists():
        raise BadInputError(f"{spec} is not a dataset: expected digits, shapes, a folder of class folders "
                            "or a COCO .json")
    if path.suffix or "/" in spec:
        raise BadInputError(f"dataset not found: {spec}")
    DATASETS.canonical(spec)  # raises "unknown dataset ... did you mean"
    raise AssertionError("unreachable")


def _coco(path: Path, split: str, seed: int, options: dict[str, Any]) -> Split:
    """A COCO split; ``all`` is the whole file (its split ``fractions``, if any, left unused)."""
    from edgekit.datasets.coco import load_coco

    if split != ALL:
        return load_coco(path, split=split, seed=seed, **options)
    whole = load_coco(path, split="test", seed=seed, **{k: v for k, v in options.items() if k != "fractions"})
    return dataclasses.replace(whole, name=ALL)


def default_split(spec: str | None, recorded: str | None = None) -> str:
    """The split to evaluate on when none is asked for: ``test`` for a named dataset (digits, shapes)
    or the data the model was trained on (``recorded``; training used the rest), else ``all``: every
    image of the user's own folder or COCO file."""
    if spec is None or spec in DATASETS or same_dataset(spec, recorded):
        return "test"
    return ALL


def same_dataset(spec: str, recorded: str | None) -> bool:
    """Whether ``spec`` names the dataset ``recorded`` names (the same string, or the same path)."""
    if not recorded:
        return False
    if spec == recorded:
        return True
    if spec in DATASETS or recorded in DATASETS:
        return False
    try:
        return Path(spec).resolve() == Path(recorded).resolve()
    except (OSError, RuntimeError):  # a loop of links, an unreadable path: not provably the same
        return False


def check_labels(meta: ModelMeta, labels: Sequence[str], spec: str, use: str = "evaluate") -> None:
    """A classifier with labels must be given data of the same classes (a model without labels takes any)."""
    if meta.task == "classification" and meta.labels and tuple(meta.labels) != tuple(labels):
        shown = lambda names: ", ".join(names[:6]) + (" …" if len(names) > 6 else "")  # noqa: E731
        raise BadInputError(f"the model's labels ({shown(meta.labels)}) differ from the classes of {spec} "
                            f"({shown(tuple(labels))}): {use} on the data it was trained for")
