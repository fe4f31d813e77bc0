"""Embeddings: one L2-normalised vector per image, optionally matched against a gallery.

Robot tier: numpy only. The vector is the output ``meta.extra["output"]`` names, else the model's
first output: N×D (N×D×1×1 is flattened). The metadata of edgekit's embedder records how to compare
vectors (``extra.embedding``: Euclidean distance between unit vectors and the threshold chosen on
validation pairs); ``edgekit.gallery.Gallery`` matches vectors to named identities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.gallery import Gallery, Match, unit
from edgekit.meta import ModelMeta
from edgekit.tasks.base import Task
from edgekit.tasks.preprocess import ImageTransform


@dataclass(frozen=True)
class Embedding:
    """One image's unit vector, its length before normalising, and its gallery match (when one is attached)."""

    vector: np.ndarray  # (D,) float32, unit length (zero when the model output zero)
    norm: float
    match: Match | None = None
    distances: dict[str, float] | None = None  # to the nearest entry of each gallery identity

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the vector, and the match with the distance to each identity."""
        record: dict[str, Any] = {"embedding": [round(float(v), 6) for v in self.vector], "norm": round(self.norm, 5)}
        if self.match is not None:
            record.update(self.match.to_dict())
            record["distances"] = {name: round(d, 5) for name, d in (self.distances or {}).items()}
        return record

    def summary(self) -> str:
        """'alice (distance 0.42, accepted)', or '64-d embedding' without a gallery."""
        if self.match is None:
            return f"{self.vector.size}-d embedding (norm {self.norm:.3g})"
        verdict = "accepted" if self.match.accepted else f"rejected, threshold {self.match.threshold:.3f}"
        return f"{self.match.name} (distance {self.match.distance:.3f}, {verdict})"


class EmbeddingTask(Task):
    name: ClassVar[str] = "embedding"
    options: ClassVar[tuple[str, ...]] = ("gallery",)

    def __init__(self, gallery: Gallery | None = None) -> None:
        self.gallery = gallery

    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[Embedding]:
        vectors, norms = unit(embedding_output(outputs, meta))
        gallery = self.gallery
        results = []
        for vector, norm in zip(vectors, norms.tolist()):
            if gallery is None:
                results.append(Embedding(vector, norm))
            else:
                results.append(Embedding(vector, norm, gallery.match(vector), gallery.distances(vector)))
        return results


def embedding_output(outputs: Mapping[str, np.ndarray], meta: ModelMeta) -> np.ndarray:
    """The N×D vectors; a one-line error when the output is not one vector per image."""
    wanted = meta.extra.get("output")
    if wanted is not None and wanted not in outputs:
        raise BadInputError(f"metadata key 'output' names '{wanted}', not an output of the model "
                            f"(it has {', '.join(outputs)})")
    name = wanted if wanted is not None else next(iter(outputs))
    array = np.asarray(outputs[name])
    if array.ndim > 2 and all(d == 1 for d in array.shape[2:]):
        array = array.reshape(array.shape[:2])
    if array.ndim != 2 or array.shape[1] < 1 or not np.issubdtype(array.dtype, np.floating):
        raise BadInputError(f"an embedding model must output one vector per image (batch, dims); output '{name}' "
                            f"has shape {array.shape} ({array.dtype})")
    return array
