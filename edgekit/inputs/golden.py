"""Saved inputs and golden outputs (.npz): one batch as ``name``, several as ``index:name``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import BadInputError
from edgekit.inputs.loader import Feeds


def save_batches(path: str | Path, batches: Sequence[Feeds]) -> None:
    """Write ``batches`` to ``path`` atomically (numpy.savez, no pickles)."""
    from edgekit.fileio import atomic_path

    arrays = dict(batches[0]) if len(batches) == 1 else {
        f"{index}:{name}": array for index, feeds in enumerate(batches) for name, array in feeds.items()}
    with atomic_path(path) as temporary:
        with temporary.open("wb") as stream:
            np.savez(stream, **arrays)


def load_batches_npz(path: str | Path, kind: str) -> list[Feeds]:
    """Read what ``save_batches`` wrote (or any .npz of arrays by input name: one batch)."""
    from edgekit.fileio import read_npz

    arrays = read_npz(path, kind)
    if not arrays:
        raise BadInputError(f"{kind} file {path} holds no arrays")
    indexed = [key.partition(":") for key in arrays]
    if not all(sep and index.isdigit() for index, sep, _ in indexed):
        return [arrays]
    batches: dict[int, Feeds] = {}
    for key, (index, _, name) in zip(arrays, indexed):
        batches.setdefault(int(index), {})[name] = arrays[key]
    if sorted(batches) != list(range(len(batches))):
        raise BadInputError(f"{kind} file {path} has batches {sorted(batches)}; expected 0..{len(batches) - 1}")
    return [batches[i] for i in range(len(batches))]
