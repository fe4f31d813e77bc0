"""Evaluators of the per-pixel and embedding tasks: mIoU and pixel accuracy; verification ROC AUC,
TAR at a fixed FAR, top-1 retrieval (all fractions in [0, 1]).

Segmentation targets are H×W class masks (255: ignored), predictions ``Segmentation`` at the same size.
Embedding targets are identity indices, predictions ``Embedding``: every pair of images is a
verification trial (same identity or not, scored by the distance of their unit vectors), counted
in blocks of rows into 2¹⁶ distance bins (width 3·10⁻⁵), so memory stays O(images) and the AUC is the
exact one up to pairs that share a bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.evaluate.metrics import Evaluator
from edgekit.meta import ModelMeta

IGNORE = 255  # target pixels left out of segmentation metrics
FAR = 0.01  # the false accept rate TAR is reported at
BINS = 1 << 16
BLOCK = 512


class SegmentationEvaluator(Evaluator):
    """mIoU (primary: the mean over classes present in targets or predictions) and pixel accuracy, from
    one confusion matrix over every pixel of the split; ``details()``: IoU per class."""

    primary_metric: ClassVar[str] = "miou"
    points_per_unit: ClassVar[float] = 100.0

    def __init__(self, labels: Sequence[str] = ()) -> None:
        self.labels = tuple(labels)
        self.confusion = np.zeros((max(len(self.labels), 1), max(len(self.labels), 1) + 1), dtype=np.int64)
        self.count = 0

    @classmethod
    def for_model(cls, meta: ModelMeta) -> SegmentationEvaluator:
        return cls(meta.labels)

    def update(self, predictions: Sequence[Any], targets: Sequence[Any]) -> None:
        if len(predictions) != len(targets):
            raise BadInputError(f"{len(predictions)} predictions for {len(targets)} targets")
        for prediction, target in zip(predictions, targets):
            mask, target = np.asarray(prediction.mask), np.asarray(target)
            if mask.shape != target.shape:
                raise BadInputError(f"predicted mask {mask.shape} and target mask {target.shape} differ in size")
            kept = target != IGNORE
            truth, guess = target[kept].astype(np.int64), mask[kept].astype(np.int64)
            predicted = int(guess[guess != IGNORE].max(initial=0)) + 1   # the mask, not only its areas
            classes = max(self.confusion.shape[0], len(prediction.areas), int(truth.max(initial=0)) + 1, predicted)
            self._grow(classes)
            guess = np.where(guess == IGNORE, classes, guess)  # outside the model's view: a column of its own
            self.confusion += np.bincount(truth * (classes + 1) + guess,
                                          minlength=classes * (classes + 1)).reshape(classes, classes + 1)
            self.count += 1

    def _grow(self, classes: int) -> None:
        if classes > self.confusion.shape[0]:
            grown = np.zeros((classes, classes + 1), dtype=np.int64)
            old = self.confusion.shape[0]
            grown[:old, :old] = self.confusion[:, :old]
            grown[:old, classes] = self.confusion[:, old]
            self.confusion = grown

    def iou(self) -> np.ndarray:
        """IoU per class (NaN for a class neither in targets nor predictions)."""
        classes = self.confusion.shape[0]
        hits = np.diag(self.confusion[:, :classes]).astype(np.float64)
        union = self.confusion.sum(axis=1) + self.confusion[:, :classes].sum(axis=0) - hits
        return np.where(union > 0, hits / np.maximum(union, 1), np.nan)

    def compute(self) -> dict[str, float]:
        if not self.count:
            raise BadInputError("no samples were evaluated")
        total = self.confusion.sum()
        hits = np.trace(self.confusion[:, : self.confusion.shape[0]])
        return {"miou": float(np.nanmean(self.iou())), "pixel_accuracy": float(hits / max(total, 1)),
                "count": float(self.count)}

    def details(self, labels: Sequence[str] = ()) -> dict[str, Any]:
        names = self.labels or tuple(labels)
        return {"iou_per_class": [{"index": c, "label": names[c] if c < len(names) else str(c),
                                   "iou": None if np.isnan(v) else float(v),
                                   "pixels": int(self.confusion[c].sum())} for c, v in enumerate(self.iou())]}


class VerificationEvaluator(Evaluator):
    """ROC AUC of same-identity vs different-identity pairs (primary), TAR at FAR 1 %, top-1 retrieval
    (leave-one-out nearest neighbour); with the model's recorded threshold, TAR and FAR at it."""

    primary_metric: ClassVar[str] = "auc"
    points_per_unit: ClassVar[float] = 100.0

    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = threshold
        self.vectors: list[np.ndarray] = []
        self.identities: list[int] = []

    @classmethod
    def for_model(cls, meta: ModelMeta) -> VerificationEvaluator:
        from edgekit.gallery import meta_threshold

        return cls(meta_threshold(meta))

    def update(self, predictions: Sequence[Any], targets: Sequence[Any]) -> None:
        if len(predictions) != len(targets):
            raise BadInputError(f"{len(predictions)} predictions for {len(targets)} targets")
        for prediction, target in zip(predictions, targets):
            if self.vectors and prediction.vector.shape != self.vectors[0].shape:
                raise BadInputError(f"embeddings of different lengths: {prediction.vector.size} and "
                                    f"{self.vectors[0].size}")
            self.vectors.append(np.asarray(prediction.vector, np.float32))
            self.identities.append(int(target))

    def compute(self) -> dict[str, float]:
        if not self.vectors:
            raise BadInputError("no samples were evaluated")
        trials = pair_statistics(np.stack(self.vectors), np.asarray(self.identities), self.threshold)
        metrics = {"auc": trials["auc"], "tar_at_far_1pct": trials["tar_at_far"], "top1_retrieval": trials["top1"]}
        if self.threshold is not None:
            metrics.update(tar_at_threshold=trials["tar_at_threshold"], far_at_threshold=trials["far_at_threshold"])
        return {**metrics, "count": float(len(self.vectors))}


def pair_statistics(vectors: np.ndarray, identities: np.ndarray, threshold: float | None = None,
                    far: float = FAR) -> dict[str, float]:
    """Verification figures over every pair of ``vectors`` (unit rows): auc, tar_at_far, the distance
    threshold giving ``far`` (``threshold_at_far``), top1; tar/far_at_threshold with ``threshold``."""
    count = len(vectors)
    # |a|² + |b|² − 2a·b in float64, not 2 − 2a·b: float32 "unit" rows are off by ~6e-8, which put two
    # identical vectors 3e-4 apart (11 bins), ordering exact ties by rounding noise
    vectors = np.asarray(vectors, np.float64)
    squares = np.einsum("ij,ij->i", vectors, vectors)
    positive, negative = np.zeros(BINS, np.int64), np.zeros(BINS, np.int64)
    top1 = accepted_pos = accepted_neg = 0
    for start in range(0, count, BLOCK):
        rows = slice(start, min(start + BLOCK, count))
        distance = np.sqrt(np.maximum(squares[rows, None] + squares[None, :] - 2.0 * (vectors[rows] @ vectors.T), 0.0))
        same = identities[rows, None] == identities[None, :]
        later = np.arange(count)[None, :] > np.arange(rows.start, rows.stop)[:, None]  # each pair once
        bins = np.minimum((distance * (BINS / 2.0)).astype(np.int64), BINS - 1)
        positive += np.bincount(bins[later & same], minlength=BINS)
        negative += np.bincount(bins[later & ~same], minlength=BINS)
        if threshold is not None:
            accepted_pos += int(np.count_nonzero(later & same & (distance <= threshold)))
            accepted_neg += int(np.count_nonzero(later & ~same & (distance <= threshold)))
        distance[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = np.inf
        top1 += int(np.count_nonzero(same[np.arange(len(distance)), distance.argmin(axis=1)]))
    pairs_pos, pairs_neg = int(positive.sum()), int(negative.sum())
    if not pairs_pos or not pairs_neg:
        raise BadInputError("verification needs pairs of the same identity and of different ones: give at least "
                            "two images of an identity and two identities")
    results = {"auc": roc_auc(positive, negative), "top1": top1 / count}
    results.update(zip(("tar_at_far", "threshold_at_far"), tar_at_far(positive, negative, far)))
    if threshold is not None:
        results.update(tar_at_threshold=accepted_pos / pairs_pos, far_at_threshold=accepted_neg / pairs_neg)
    return results


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a same-identity pair is closer than a different-identity pair), ties in a bin counting half."""
    farther_negatives = negative.sum() - np.cumsum(negative)  # negatives in later (larger-distance) bins
    wins = positive * (farther_negatives + 0.5 * negative)
    return float(wins.sum() / (positive.sum() * negative.sum()))


def tar_at_far(positive: np.ndarray, negative: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, distance threshold) accepting every pair up to the last bin where FAR ≤ ``far``."""
    false_accepts = np.cumsum(negative) / negative.sum()
    within = np.flatnonzero(false_accepts <= far)
    if not len(within):
        return 0.0, 0.0
    last = int(within[-1])
    return float(np.cumsum(positive)[last] / positive.sum()), (last + 1) * 2.0 / BINS
