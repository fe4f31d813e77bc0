"""Embeddings: one L2-normalised vector per image, optionally matched against a gallery.

Robot tier: numpy only. The vector is the output ``meta.extra["output"]`` names, else the model's
first output: N×D (N×D×1×1 is flattened). The metadata of edgekit's embedder records how to compare
vectors (``extra.embedding``: Euclidean distance between unit vectors and the threshold chosen on
validation pairs); ``edgekit.gallery.Gallery`` matches vectors to named identities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    # none by default: any identities fit an embedder, so digits would "fit" a face model too; edgekit's
    # embedder records its training data (glyph- or digits-identities) and is judged on that
    dataset: ClassVar[str | None] = None
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


SAME_VECTOR = 1e-6  # unit vectors closer than this, element by element, are the same vector


@dataclass(frozen=True)
class EmbeddingAgreement:
    """Two runs of one embedder compared sample by sample: the cosine of each pair of L2-normalised
    vectors (the lowest and the mean) and the largest distance √(2 − 2·cos), in a gallery threshold's
    units. Nothing to compare when the reference's vectors are all zero or the same for every input;
    ``problem``: the vectors could not be compared (a failure). Passes when the lowest cosine is at
    least ``min_cosine``. ``edgekit.parity.dense_agreement`` builds it from model outputs."""

    vectors: int
    cosine_min: float
    cosine_mean: float
    max_distance: float
    min_cosine: float
    nothing_to_compare: str = ""
    problem: str = ""
    kind: ClassVar[str] = "embeddings"

    @property
    def passed(self) -> bool:
        return not self.nothing_to_compare and not self.problem and self.cosine_min >= self.min_cosine

    def summary(self) -> str:
        """'embeddings: per-sample cosine min 0.99991, mean 0.99998 vs reference (16 vectors, max distance
        0.0134; min ≥ 0.999): ok'."""
        if self.nothing_to_compare:
            return f"embeddings: nothing to compare: {self.nothing_to_compare}"
        if self.problem:
            return f"embeddings: {self.problem}: FAILED"
        return (f"embeddings: per-sample cosine min {self.cosine_min:.5f}, mean {self.cosine_mean:.5f} vs reference "
                f"({self.vectors} vectors, max distance {self.max_distance:.3g}; min ≥ {self.min_cosine:g}): "
                f"{'ok' if self.passed else 'FAILED'}")


def embedding_agreement(reference: np.ndarray, candidate: np.ndarray, min_cosine: float = 0.999) -> EmbeddingAgreement:
    """Per-sample cosine of two N×D outputs of an embedder, each row L2-normalised first."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    failed = [f"the {side}'s vectors hold NaN or infinite values" for side, array in
              (("reference", reference), ("candidate", candidate)) if not np.isfinite(array).all()]
    if reference.shape != candidate.shape:
        failed.insert(0, f"outputs differ in shape: {reference.shape} vs {candidate.shape}")
    if failed:
        return EmbeddingAgreement(len(reference), -1.0, -1.0, 2.0, min_cosine, problem=failed[0])
    if reference.size == 0:
        return EmbeddingAgreement(0, 1.0, 1.0, 0.0, min_cosine, nothing_to_compare="no vectors")
    truth, norms = _unit64(reference)
    guess, _ = _unit64(candidate)
    zero = (norms == 0) & ~guess.any(axis=1)  # both zero: the same
    cosine = np.where(zero, 1.0, np.clip(np.einsum("ij,ij->i", truth, guess), -1.0, 1.0))
    agreement = EmbeddingAgreement(len(truth), float(cosine.min()), float(cosine.mean()),
                                   float(np.sqrt(2.0 - 2.0 * cosine.min())), min_cosine)
    if not norms.any():
        reason = "every reference vector is zero: random weights? use trained weights"
    elif len(truth) >= 2 and float(np.abs(truth - truth[:1]).max()) <= SAME_VECTOR:
        reason = (f"all {len(truth)} reference vectors are the same: they do not depend on the input "
                  "(constant inputs?)")
    else:
        return agreement
    return replace(agreement, nothing_to_compare=reason)


def _unit64(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of N×D (or N×D×1×1) scaled to unit length in float64, their lengths); a zero row stays zero."""
    rows = vectors.reshape(len(vectors), -1).astype(np.float64)
    norms = np.linalg.norm(rows, axis=1)
    return rows / np.where(norms > 0, norms, 1.0)[:, None], norms
