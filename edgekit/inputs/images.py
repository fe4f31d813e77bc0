"""Real images as model inputs (``compare --images DIR`` / ``--data NAME``): read, then prepared by
the model's own preprocessing from its metadata (``quantize.calibration.preprocess``, as
calibration and the matrix's agreement do) and batched as the model takes them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta

Feeds = dict[str, np.ndarray]
DEFAULT_SAMPLES = 256
DYNAMIC_BATCH = 32  # images per run when the model's batch is dynamic


def load_images(images: str | Path | None, data: str | None, meta: ModelMeta, samples: int,
                seed: int = 0) -> tuple[list[np.ndarray], str]:
    """Up to ``samples`` images and where they came from: the files of folder ``images`` (sorted; a
    seeded pick when there are more), or the test split of data set ``data`` (rebuilt as in training
    when the metadata names it as the model's data set)."""
    if samples < 1:
        raise BadInputError(f"--samples must be at least 1, got {samples}")
    if images is not None:
        return _folder(Path(images), samples, seed)
    if data is None:
        raise BadInputError("give --images DIR or --data NAME")
    from edgekit.datasets import load_split
    from edgekit.quantize.calibration import recorded_split

    options, split_seed = recorded_split(meta, data, seed)
    split = load_split(data, split="test", seed=split_seed, **options)
    if not len(split):
        raise BadInputError(f"data set {data} has no test images")
    chosen = list(split.images[:samples])
    return chosen, f"{len(chosen)} test images of {data}"


def _folder(folder: Path, samples: int, seed: int) -> tuple[list[np.ndarray], str]:
    from edgekit.datasets.image_folder import IMAGE_SUFFIXES, read_image

    if not folder.is_dir():
        raise BadInputError(f"--images: {folder} is not a folder" if folder.exists() else
                            f"--images: folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BadInputError(f"--images: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if len(files) > samples:
        picked = np.sort(np.random.default_rng(seed).permutation(len(files))[:samples])
        files = [files[i] for i in picked]
    return [read_image(file) for file in files], f"{len(files)} images from {folder}"


def image_feeds(images: list[np.ndarray], meta: ModelMeta, specs: Mapping[str, Any]) -> list[Feeds]:
    """``images`` through the model's preprocessing, in batches its first input takes: its fixed
    batch (a short tail is filled with repeats of the last image, fewer images than one batch too),
    else up to ``DYNAMIC_BATCH``."""
    from edgekit.quantize.calibration import preprocess

    if meta.input_name not in specs:
        raise BadInputError(f"the model has no input '{meta.input_name}' (it has {', '.join(specs)}): fix its "
                            "metadata with `edgekit meta set MODEL input_name=NAME`")
    if len(specs) > 1:
        raise BadInputError(f"the model takes {len(specs)} inputs ({', '.join(specs)}); images feed only one: "
                            "give every input with --inputs FILE.npz or --data-loader")
    arrays = preprocess(images, meta)
    first = specs[meta.input_name].shape
    fixed = first[0] if first and isinstance(first[0], int) and first[0] > 0 else None
    step = fixed or DYNAMIC_BATCH
    dtype = specs[meta.input_name].dtype
    batches = []
    for start in range(0, len(images), step):
        chunk = {name: array[start:start + step] for name, array in arrays.items()}
        if fixed:
            chunk = {name: _fill(array, fixed) for name, array in chunk.items()}
        batches.append({name: np.ascontiguousarray(array.astype(dtype, copy=False)) for name, array in chunk.items()})
    return batches


def _fill(array: np.ndarray, size: int) -> np.ndarray:
    if len(array) >= size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), axis=0)])
