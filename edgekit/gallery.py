"""Identities by nearest embedding: named unit vectors, matched by distance against a threshold.

Robot tier: numpy only. The distance is the Euclidean distance between L2-normalised vectors:
0 for the same direction, √2 at right angles, 2 opposite (√(2 − 2·cos)). ``match`` returns the
nearest entry's identity and accepts it when its distance is at most the threshold, by default the
one an embedding model's metadata records (``extra.embedding.threshold``, chosen on validation pairs)::

    gallery = Gallery(threshold=0.9)
    gallery.add("alice", vector)                     # several vectors per identity are fine
    best = gallery.match(predict(frame).vector)      # Match(name, distance, accepted, threshold)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError

MAX_DISTANCE = 2.0  # between unit vectors
META_KEY = "embedding"  # meta.extra entry of an embedding model: threshold, distance, how it was chosen


@dataclass(frozen=True)
class Match:
    """The nearest gallery identity, its distance and whether it is within the threshold."""

    name: str
    distance: float
    accepted: bool
    threshold: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.name, "distance": round(self.distance, 5), "accepted": self.accepted,
                "threshold": self.threshold}


def check_threshold(value: Any, what: str = "threshold") -> float | None:
    """A distance threshold from 0 to 2 (None: none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= MAX_DISTANCE:
        raise BadInputError(f"{what} must be a distance from 0 to {MAX_DISTANCE:g} (between unit vectors), "
                            f"got {value!r}")
    return float(value)


def meta_threshold(meta) -> float | None:
    """The threshold an embedding model's metadata records (checked), or None."""
    record = meta.extra.get(META_KEY)
    if not isinstance(record, dict):
        return None
    return check_threshold(record.get("threshold"), "metadata embedding.threshold")


def unit(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows scaled to unit length, their lengths); a zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("...i,...i->...", vectors, vectors))
    return vectors / np.where(norms > 0, norms, 1)[..., None], norms


class Gallery:
    """Named unit vectors (several per identity allowed), matched by nearest distance."""

    def __init__(self, threshold: float | None = None, dims: int | None = None) -> None:
        self.threshold = check_threshold(threshold)
        self.dims = dims
        self._vectors = np.empty((0, dims or 0), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def identities(self) -> tuple[str, ...]:
        """Identity names, in the order first added."""
        return tuple(self._names)

    def add(self, name: str, vector: Any) -> None:
        """Add one vector (normalised here) for identity ``name``."""
        if not isinstance(name, str) or not name:
            raise BadInputError(f"an identity name must be a non-empty string, got {name!r}")
        row, norm = unit(self._checked(vector))
        if not norm > 0 or not np.isfinite(row).all():
            raise BadInputError(f"the vector for '{name}' is zero or not finite: it has no direction to match")
        if self._count == len(self._vectors):  # grow by doubling: add stays O(1), match never restacks
            grown = np.empty((max(16, 2 * self._count), self.dims), dtype=np.float32)
            grown[: self._count] = self._vectors[: self._count]
            self._vectors, self._ids = grown, np.resize(self._ids, len(grown))
        identity = self._index.setdefault(name, len(self._names))
        if identity == len(self._names):
            self._names.append(name)
        self._vectors[self._count], self._ids[self._count] = row, identity
        self._count += 1

    def match(self, vector: Any) -> Match:
        """The nearest entry's identity and distance, accepted when within the threshold."""
        similarity = self._similarity(vector)
        best = int(np.argmax(similarity))
        distance = float(np.sqrt(max(2.0 - 2.0 * float(similarity[best]), 0.0)))
        accepted = self.threshold is None or distance <= self.threshold
        return Match(self._names[int(self._ids[best])], distance, accepted, self.threshold)

    def distances(self, vector: Any) -> dict[str, float]:
        """Distance to the nearest entry of each identity."""
        similarity = self._similarity(vector)
        best = np.full(len(self._names), -np.inf, dtype=np.float32)
        np.maximum.at(best, self._ids[: self._count], similarity)
        return {name: float(np.sqrt(max(2.0 - 2.0 * float(s), 0.0))) for name, s in zip(self._names, best)}

    def _similarity(self, vector: Any) -> np.ndarray:
        if not self._count:
            raise BadInputError("the gallery is empty: add identities before matching")
        query, _ = unit(self._checked(vector))
        return self._vectors[: self._count] @ query

    def _checked(self, vector: Any) -> np.ndarray:
        """One finite 1-D vector of the gallery's length (the first sets it)."""
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1 or not array.size:
            raise BadInputError(f"an embedding must be a 1-D vector, got shape {array.shape}")
        if self.dims is None:
            self.dims = array.size
            self._vectors = np.empty((0, self.dims), dtype=np.float32)
        if array.size != self.dims:
            raise BadInputError(f"embeddings of different lengths: this one has {array.size} values, "
                                f"the gallery's have {self.dims}")
        return array


def identity_folders(folder: str | Path) -> dict[str, list[Path]]:
    """Identity name → its image files, from a folder holding one folder of images per identity."""
    from edgekit.frames import IMAGE_SUFFIXES

    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise BadInputError(f"--gallery takes a folder with one folder of images per identity; {root} is a file")
    if not root.is_dir():
        raise BadInputError(f"gallery folder not found: {root}")
    found = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            found[sub.name] = images
    if len(found) < 2:
        what = "no folder of images" if not found else f"one identity ({next(iter(found))})"
        raise BadInputError(f"gallery folder {root} has {what}: give one folder of images per identity, "
                            "at least two identities")
    return found


def load_gallery(predictor, folder: str | Path, threshold: float | None = None) -> Gallery:
    """A gallery of every image under ``folder`` (one folder per identity), embedded by ``predictor``
    (an open embedding Predictor); the threshold is ``threshold``, else the model's recorded one."""
    if predictor.meta.task != "embedding":
        raise BadInputError(f"a gallery needs an embedding model; {predictor.model_path.name} is a "
                            f"{predictor.meta.task} model")
    folders = identity_folders(folder)
    gallery = Gallery(threshold if threshold is not None else meta_threshold(predictor.meta))
    for name, images in folders.items():
        for embedding in predictor(images):
            gallery.add(name, embedding.vector)
    return gallery


def attach_gallery(predictor, folder: str | Path, threshold: float | None = None) -> Gallery:
    """Load the gallery under ``folder`` and make ``predictor``'s predictions carry their match."""
    gallery = load_gallery(predictor, folder, threshold)
    predictor.task.gallery = gallery
    return gallery
