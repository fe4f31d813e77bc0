"""The user's own images, one sub-folder per class (ImageNet style): ``root/<class>/<image>``.

Files are listed and split by seed first (split ``all``: every file); only the requested split is
decoded (Pillow), as RGB HxWx3 uint8 at the image's own size (the model's preprocessing resizes it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.datasets.base import ALL, SPLITS, Split, split_indices
from edgekit.errors import BadInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def load_image_folder(
    root: str | Path, split: str = "test", seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> Split:
    """One split of an image-folder dataset (``split="all"``: every image, unsplit); class names are
    the sorted sub-folder names."""
    root = Path(root)
    if split not in (*SPLITS, ALL):
        raise BadInputError(f"split must be one of {', '.join((*SPLITS, ALL))}, got '{split}'")
    labels, files, targets = list_image_folder(root)
    if split == ALL:
        index = np.arange(len(files))
    else:
        index = split_indices(len(files), tuple(fractions), seed)[split]
    if not len(index):
        raise BadInputError(
            f"the '{split}' split of {root} is empty ({len(files)} images with fractions {tuple(fractions)}): "
            "add images or change the fractions"
        )
    index = np.sort(index)  # decode in file order; the split is already fixed by the seed
    images = [read_image(files[i]) for i in index]
    info = {"dataset": str(root), "seed": seed, "files": [str(files[i].relative_to(root)) for i in index]}
    return Split(split, "classification", images, np.asarray(targets, dtype=np.int64)[index], labels, info)


def list_image_folder(root: Path) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Class names, image files and their class indices, in sorted order."""
    if not root.exists():
        raise BadInputError(f"image folder not found: {root}")
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder (expected one sub-folder of images per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        stray = any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir())
        hint = " (images must sit in one sub-folder per class, not directly in it)" if stray else ""
        raise BadInputError(f"{root} has no class folders{hint}")
    files: list[Path] = []
    targets: list[int] = []
    empty = []
    for position, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            empty.append(name)
        files.extend(found)
        targets.extend([position] * len(found))
    if empty:
        raise BadInputError(
            f"class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} in {root} "
            f"{'have' if len(empty) > 1 else 'has'} no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    if len(classes) < 2:
        raise BadInputError(f"{root} has only one class folder ({classes[0]}); a classifier needs at least 2")
    return tuple(classes), files, targets


def read_image(path: Path) -> np.ndarray:
    """Decode one image as RGB HxWx3 uint8 (the bounded reader of ``edgekit.frames``); unreadable or
    oversized files raise a BadInputError naming them."""
    from edgekit.frames import read_image as read_frame

    image = read_frame(path)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]