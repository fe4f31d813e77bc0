"""Numerical agreement between two sets of outputs (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutputParity:
    """How one output of a candidate differs from the reference.

    ``max_rel`` is max(|a − b| / max(|b|, atol)), so values near zero do not blow it up.
    ``top1_agreement`` is set for 2-D score outputs (classifiers), else None.
    """

    name: str
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float | None
    passed: bool


@dataclass(frozen=True)
class ParityReport:
    """Per-output parity: every element within ``atol + rtol·|reference|`` (numpy.allclose
    semantics) and, since random-weight models can have vanishing outputs that any atol
    accepts, cosine similarity at least ``min_cosine``."""

    atol: float
    rtol: float
    min_cosine: float
    outputs: tuple[OutputParity, ...]

    @property
    def passed(self) -> bool:
        return all(output.passed for output in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    @property
    def min_cosine_seen(self) -> float:
        return min((o.cosine for o in self.outputs), default=1.0)

    def summary(self) -> str:
        """One line: worst differences, tolerance, and the failing outputs if any."""
        verdict = "ok" if self.passed else "FAILED"
        failing = [o.name for o in self.outputs if not o.passed]
        text = (
            f"max abs diff {self.max_abs:.3g}, max rel diff {self.max_rel:.3g} "
            f"(atol {self.atol:g}, rtol {self.rtol:g}), min cosine {self.min_cosine_seen:.6f}: {verdict}"
        )
        return text + (f" on {', '.join(failing)}" if failing else "")


def check_tolerance(atol: float, rtol: float, min_cosine: float = 0.999) -> None:
    """Reject tolerances no comparison can meet or that make no sense."""
    from edgekit.errors import BadInputError

    if atol < 0 or rtol < 0:
        raise BadInputError(f"tolerances must not be negative, got atol {atol:g}, rtol {rtol:g}")
    if not -1.0 <= min_cosine <= 1.0:
        raise BadInputError(f"min cosine must be between -1 and 1, got {min_cosine:g}")


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    atol: float = 1e-4,
    rtol: float = 1e-3,
    min_cosine: float = 0.999,
) -> ParityReport:
    """Compare the reference's outputs with the candidate's of the same name; a missing one fails."""
    check_tolerance(atol, rtol, min_cosine)
    results = []
    for name, expected in reference.items():
        if name not in candidate:
            results.append(OutputParity(name, float("inf"), float("inf"), 0.0, None, False))
            continue
        actual = np.asarray(candidate[name])
        results.append(_compare_one(name, np.asarray(expected), actual, atol, rtol, min_cosine))
    return ParityReport(atol, rtol, min_cosine, tuple(results))


def _compare_one(
    name: str, expected: np.ndarray, actual: np.ndarray, atol: float, rtol: float, min_cosine: float
) -> OutputParity:
    if expected.shape != actual.shape:
        return OutputParity(name, float("inf"), float("inf"), 0.0, None, False)
    b = expected.astype(np.float64)
    a = actual.astype(np.float64)
    diff = np.abs(a - b)
    finite = bool(np.isfinite(a).all())
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(b), atol)).max()) if diff.size else 0.0
    cosine = cosine_similarity(a, b)
    top1 = None
    if b.ndim == 2 and b.shape[1] > 1 and b.shape[0] > 0:
        top1 = float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))
    passed = finite and cosine >= min_cosine and bool(np.all(diff <= atol + rtol * np.abs(b)))
    return OutputParity(name, max_abs, max_rel, cosine, top1, passed)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays taken as flat vectors (1.0 for two zero arrays)."""
    a = a.ravel().astype(np.float64)
    b = b.ravel().astype(np.float64)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norm)


@dataclass(frozen=True)
class BoxAgreement:
    """Detections of a candidate matched to the reference's by IoU (one-to-one, best first).

    Boxes whose score is within ``score_tol`` of the score threshold may appear on one side only
    (a runtime's rounding legitimately flips them), so they are not required to match.
    """

    reference_boxes: int
    candidate_boxes: int
    matched: int
    missing: int  # reference boxes clearly above the threshold that match nothing
    extra: int  # candidate boxes clearly above the threshold that match nothing
    mean_iou: float
    max_score_diff: float
    label_agreement: float
    iou_threshold: float
    score_tol: float

    @property
    def passed(self) -> bool:
        return (self.missing == 0 and self.extra == 0 and self.label_agreement == 1.0
                and self.max_score_diff <= self.score_tol)

    def summary(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (f"{self.matched}/{self.reference_boxes} boxes matched at IoU ≥ {self.iou_threshold:g} "
                f"(mean IoU {self.mean_iou:.4f}), {self.missing} missing, {self.extra} extra, labels agree "
                f"{self.label_agreement:.1%}, max score diff {self.max_score_diff:.3g} (tol {self.score_tol:g}): "
                f"{verdict}")


def match_boxes(reference, candidate, score_threshold: float, iou_threshold: float = 0.5,
                score_tol: float = 0.02) -> BoxAgreement:
    """Agreement of two lists of per-image detections (objects with boxes/scores/labels)."""
    from edgekit.tasks.boxes import box_iou

    totals = {"ref": 0, "cand": 0, "matched": 0, "missing": 0, "extra": 0, "labels": 0}
    ious: list[float] = []
    score_diff = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        totals["ref"] += len(ref.scores)
        totals["cand"] += len(cand.scores)
        iou = box_iou(ref.boxes, cand.boxes) if len(ref.scores) and len(cand.scores) else \
            np.zeros((len(ref.scores), len(cand.scores)))
        taken: set[int] = set()
        clear = score_threshold + score_tol
        for i in np.argsort(-np.asarray(ref.scores), kind="stable"):
            # the best-overlapping free box, one of the same label first (overlapping boxes of other
            # classes are not this detection)
            order = sorted((j for j in range(len(cand.scores)) if j not in taken and iou[i, j] >= iou_threshold),
                           key=lambda j: (cand.labels[j] != ref.labels[i], -iou[i, j]))
            if not order:
                totals["missing"] += int(ref.scores[i] >= clear)
                continue
            j = order[0]
            taken.add(j)
            totals["matched"] += 1
            ious.append(float(iou[i, j]))
            score_diff = max(score_diff, abs(float(ref.scores[i]) - float(cand.scores[j])))
            totals["labels"] += int(ref.labels[i] == cand.labels[j])
        totals["extra"] += sum(1 for j in range(len(cand.scores)) if j not in taken and cand.scores[j] >= clear)
    return BoxAgreement(totals["ref"], totals["cand"], totals["matched"], totals["missing"], totals["extra"],
                        float(np.mean(ious)) if ious else 1.0, score_diff,
                        totals["labels"] / totals["matched"] if totals["matched"] else 1.0,
                        iou_threshold, score_tol)
