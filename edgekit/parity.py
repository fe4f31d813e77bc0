"""Numerical agreement between two sets of outputs (numpy only).

A check that compared nothing must not pass. An output has *nothing to compare* when the
reference's values have no spread (std below ``NO_SPREAD``: the ±1e-9 logits of a random-weight
network, a constant), when it is empty, or when it holds two or more samples along axis 0 and all
of them are the same (the output does not depend on the input). Such an output never passes; a
report passes only when some output was compared, and a box match only when some box scored above
the threshold. Reasons are one line, for the CLI to print.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

NO_SPREAD = 1e-6  # absolute std below which an output says nothing about agreement
SAME_SAMPLES = 1e-6  # samples closer than this times the output's largest value are the same sample
FLOAT32_RESOLUTION = 1e-5  # compare_fp32: a spread below this times the largest value is rounding


@dataclass(frozen=True)
class OutputParity:
    """How one output of a candidate differs from the reference.

    ``max_rel`` is max(|a − b| / max(|b|, atol)), so values near zero do not blow it up.
    ``top1_agreement`` is set for 2-D score outputs (classifiers), else None. ``spread`` is the
    reference's standard deviation; ``nothing_to_compare`` says why the output cannot be judged
    ('' when it can). ``within_tolerance``: the numbers agree whether or not they mean anything.
    """

    name: str
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float | None
    passed: bool
    spread: float = 0.0
    nothing_to_compare: str = ""
    within_tolerance: bool = False


@dataclass(frozen=True)
class ParityReport:
    """Per-output parity: every element within ``atol + rtol·|reference|`` (numpy.allclose
    semantics) and, since random-weight models can have vanishing outputs that any atol
    accepts, cosine similarity at least ``min_cosine``. Outputs with nothing to compare are
    listed but not counted, unless they contradict the reference; ``note`` says how outputs
    were compared when that is not plain (``compare_fp32``)."""

    atol: float
    rtol: float
    min_cosine: float
    outputs: tuple[OutputParity, ...]
    note: str = ""

    @property
    def nothing_to_compare(self) -> str:
        """Why no output could be compared ('' when at least one was)."""
        if not self.outputs:
            return "no outputs to compare"
        reasons = [o.nothing_to_compare for o in self.outputs]
        if not all(reasons):
            return ""
        if len(set(reasons)) == 1:
            return reasons[0]
        return "; ".join(f"{o.name}: {o.nothing_to_compare}" for o in self.outputs)

    @property
    def passed(self) -> bool:
        if self.nothing_to_compare:
            return False
        return all(o.passed or (o.nothing_to_compare and o.within_tolerance) for o in self.outputs)

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
        """One line: worst differences, tolerance, the verdict and the failing or uncompared outputs."""
        text = (f"max abs diff {self.max_abs:.3g}, max rel diff {self.max_rel:.3g} "
                f"(atol {self.atol:g}, rtol {self.rtol:g}), min cosine {self.min_cosine_seen:.6f}")
        if self.note:
            text += f" ({self.note})"
        if self.nothing_to_compare:
            return f"{text}: nothing to compare: {self.nothing_to_compare}"
        failing = [o.name for o in self.outputs if not (o.passed or (o.nothing_to_compare and o.within_tolerance))]
        skipped = [f"{o.name} ({o.nothing_to_compare})" for o in self.outputs
                   if o.nothing_to_compare and o.within_tolerance]
        text += ": ok" if self.passed else ": FAILED" + (f" on {', '.join(failing)}" if failing else "")
        return text + (f"; not compared: {', '.join(skipped)}" if skipped else "")


def spread_of(reference: np.ndarray) -> tuple[float, str]:
    """(spread, reason) of one reference output: its std (float64) and why it cannot be compared,
    '' when it can. The one rule every agreement figure in edgekit obeys."""
    values = np.asarray(reference)
    if values.size == 0:
        return 0.0, "the output is empty"
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        return float("nan"), ""  # a NaN reference is a failure, not an absence
    spread = float(values.std())
    if spread < NO_SPREAD:
        return spread, f"outputs have no spread (std {spread:.2g}): random weights? use trained weights"
    if values.ndim >= 1 and values.shape[0] >= 2:
        largest = float(np.abs(values).max())
        if float(np.abs(values - values[:1]).max()) <= SAME_SAMPLES * largest:
            return spread, (f"all {values.shape[0]} samples give the same output: it does not depend on the "
                            "input (constant inputs?)")
    return spread, ""


def constant_input_reason(feeds: Mapping[str, np.ndarray]) -> str:
    """'' unless an input of more than one element holds one value everywhere, then why that
    makes any comparison empty. Integer and boolean inputs (ids, masks: constant is normal) are
    skipped; uint8 images are not."""
    for name, array in feeds.items():
        values = np.asarray(array)
        if values.size > 1 and values.dtype.kind in "fcu":
            first = values.flat[0]
            if bool(np.all(values == first)):
                return (f"input '{name}' is constant (every element {first:g}): the outputs cannot depend on "
                        "the data; give real inputs")
    return ""


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
        expected = np.asarray(expected)
        if name not in candidate:
            spread, reason = spread_of(expected)
            results.append(OutputParity(name, float("inf"), float("inf"), 0.0, None, False, spread, reason))
            continue
        results.append(_compare_one(name, expected, np.asarray(candidate[name]), atol, rtol, min_cosine))
    return ParityReport(atol, rtol, min_cosine, tuple(results))


def compare_fp32(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    atol: float = 1e-4,
    rtol: float = 1e-3,
    min_cosine: float = 0.999,
) -> ParityReport:
    """``compare_outputs`` for the same function computed twice in float32 (an export against torch,
    a fused graph against the plain one, one runtime against another).

    There an output with no spread whose values still vary (a random-weight network's ±1e-9
    logits) is compared in units of its own std: float32 keeps relative precision, so cosine and
    differences still say whether both sides compute the same thing. The report's note says so.
    Constant, empty and input-independent outputs stay nothing to compare.
    """
    report = compare_outputs(reference, candidate, atol, rtol, min_cosine)
    outputs, notes = [], []
    for output in report.outputs:
        expected = np.asarray(reference[output.name])
        actual = np.asarray(candidate[output.name]) if output.name in candidate else None
        if actual is None or not _rescuable(output, expected, actual):
            outputs.append(output)
            continue
        scaled = _compare_one(output.name, expected / output.spread, actual / output.spread, atol, rtol, min_cosine)
        if scaled.nothing_to_compare:  # input-independent once scaled
            outputs.append(output)
            continue
        outputs.append(replace(scaled, spread=output.spread))
        notes.append(f"{output.name} has no spread (std {output.spread:.2g}: random weights?), compared in units "
                     "of its std")
    return replace(report, outputs=tuple(outputs), note="; ".join(notes))


def _rescuable(output: OutputParity, expected: np.ndarray, actual: np.ndarray) -> bool:
    """An output with no spread whose values vary above float32 rounding, same shape on both sides."""
    if not output.nothing_to_compare or not 0.0 < output.spread < NO_SPREAD or expected.shape != actual.shape:
        return False
    largest = float(np.abs(expected.astype(np.float64)).max())
    return output.spread >= FLOAT32_RESOLUTION * largest


def _compare_one(
    name: str, expected: np.ndarray, actual: np.ndarray, atol: float, rtol: float, min_cosine: float
) -> OutputParity:
    spread, reason = spread_of(expected)
    if expected.shape != actual.shape:
        return OutputParity(name, float("inf"), float("inf"), 0.0, None, False, spread, reason)
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
    within = finite and cosine >= min_cosine and bool(np.all(diff <= atol + rtol * np.abs(b)))
    return OutputParity(name, max_abs, max_rel, cosine, top1, within and not reason, spread, reason, within)


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
    (a runtime's rounding legitimately flips them), so they are not required to match. When no
    box on either side reaches the score threshold, ``nothing_to_compare`` says so and the match
    does not pass.
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
    nothing_to_compare: str = ""
    #: mean distance (pixels) between matched boxes' keypoints, where both sides have them; else None
    mean_keypoint_distance: float | None = None

    @property
    def passed(self) -> bool:
        return (not self.nothing_to_compare and self.missing == 0 and self.extra == 0
                and self.label_agreement == 1.0 and self.max_score_diff <= self.score_tol)

    def summary(self) -> str:
        verdict = (f"nothing to compare: {self.nothing_to_compare}" if self.nothing_to_compare
                   else "ok" if self.passed else "FAILED")
        points = ("" if self.mean_keypoint_distance is None
                  else f", keypoints {self.mean_keypoint_distance:.3g} px apart on average")
        return (f"{self.matched}/{self.reference_boxes} boxes matched at IoU ≥ {self.iou_threshold:g} "
                f"(mean IoU {self.mean_iou:.4f}), {self.missing} missing, {self.extra} extra, labels agree "
                f"{self.label_agreement:.1%}, max score diff {self.max_score_diff:.3g} (tol {self.score_tol:g})"
                f"{points}: {verdict}")


def match_boxes(reference, candidate, score_threshold: float, iou_threshold: float = 0.5,
                score_tol: float = 0.02) -> BoxAgreement:
    """Agreement of two lists of per-image detections (objects with boxes/scores/labels, and keypoints
    where a detector gives them: the mean distance between matched boxes' points is reported)."""
    from edgekit.tasks.boxes import box_iou

    totals = {"ref": 0, "cand": 0, "matched": 0, "missing": 0, "extra": 0, "labels": 0, "scored": 0}
    ious: list[float] = []
    distances: list[float] = []
    score_diff = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        totals["ref"] += len(ref.scores)
        totals["cand"] += len(cand.scores)
        totals["scored"] += int(np.sum(np.asarray(ref.scores) >= score_threshold))
        totals["scored"] += int(np.sum(np.asarray(cand.scores) >= score_threshold))
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
            distance = _keypoint_distance(ref, cand, i, j)
            if distance is not None:
                distances.append(distance)
        totals["extra"] += sum(1 for j in range(len(cand.scores)) if j not in taken and cand.scores[j] >= clear)
    nothing = "" if totals["scored"] else f"no box above the score threshold {score_threshold:g} on either side"
    return BoxAgreement(totals["ref"], totals["cand"], totals["matched"], totals["missing"], totals["extra"],
                        float(np.mean(ious)) if ious else 1.0, score_diff,
                        totals["labels"] / totals["matched"] if totals["matched"] else 1.0,
                        iou_threshold, score_tol, nothing, float(np.mean(distances)) if distances else None)


def _keypoint_distance(ref, cand, i: int, j: int) -> float | None:
    """Mean distance between the keypoints of box ``i`` of ``ref`` and box ``j`` of ``cand`` (None without)."""
    a, b = getattr(ref, "keypoints", None), getattr(cand, "keypoints", None)
    if a is None or b is None or np.shape(a[i]) != np.shape(b[j]):
        return None
    return float(np.linalg.norm(np.asarray(a[i], np.float64) - np.asarray(b[j], np.float64), axis=-1).mean())


def box_agreement(meta, reference, candidate, iou_threshold: float, score_tol: float) -> BoxAgreement | None:
    """Box-matched agreement of two runs of a detector (outputs per batch, decoded by the model's own
    decoder in model-input pixels); None when the model is not a detector. Beside the tensor
    comparator: the export check, compare and the profiler's attribution all judge boxes here."""
    if meta.task != "detection":
        return None
    from edgekit.tasks.detection import DetectionTask
    from edgekit.tasks.preprocess import ImageTransform

    task = DetectionTask()
    _, settings = task.decoder(meta)
    height, width = meta.input_size
    ref_dets, cand_dets = [], []
    for ref, cand in zip(reference, candidate, strict=True):
        images = _image_count(ref)
        identity = [ImageTransform(1.0, 1.0, 0.0, 0.0, (height, width))] * images
        ref_dets += task.postprocess(ref, meta, identity)
        cand_dets += task.postprocess(cand, meta, identity)
    return match_boxes(ref_dets, cand_dets, settings["score_threshold"], iou_threshold, score_tol)


def _image_count(outputs: Mapping[str, np.ndarray]) -> int:
    """Images in one batch of detector outputs (a batch-less output, e.g. torchvision's, is one)."""
    shapes = [np.asarray(a).shape for a in outputs.values()]
    return 1 if any(len(s) <= 2 for s in shapes) else int(shapes[0][0])


#: FP32 against FP32 (an export, another runtime): the share of pixels and the mIoU a segmenter's masks keep
MASK_PIXELS_FP32 = 0.99
MASK_MIOU_FP32 = 0.95


def dense_agreement(meta, reference, candidate, min_pixels: float = MASK_PIXELS_FP32,
                    min_miou: float = MASK_MIOU_FP32, min_cosine: float = 0.999, strict: bool = False):
    """Two runs (outputs per batch) of a segmenter compared by their masks (``MaskAgreement``) or of an
    embedder by per-sample cosine (``EmbeddingAgreement``); None for other tasks, or outputs the task
    cannot read (``strict``: its BadInputError raised). The reference's scores obey ``spread_of`` too."""
    if meta.task not in ("segmentation", "embedding") or not reference:
        return None
    from edgekit.errors import BadInputError

    ref, cand = _merged(reference), _merged(candidate)
    try:
        if meta.task == "segmentation":
            from edgekit.tasks.segmentation import mask_agreement, pixel_output

            name, expected = pixel_output(ref, meta)
            actual = cand.get(name, np.empty((0,)))
            result = mask_agreement(expected, actual, min_pixels, min_miou, len(meta.labels))
        else:
            from edgekit.tasks.embedding import embedding_agreement, embedding_output

            expected = embedding_output(ref, meta)
            result = embedding_agreement(expected, embedding_output(cand, meta), min_cosine)
    except BadInputError:  # not per-pixel scores / one vector per image: the raw tensors judge
        if strict:
            raise
        return None
    reason = spread_of(expected)[1]
    return replace(result, nothing_to_compare=reason) if reason and not (result.problem or result.nothing_to_compare) \
        else result


def _merged(batches) -> dict[str, np.ndarray]:
    """One dict of outputs over every batch, concatenated along the batch axis (outputs that cannot be, left out)."""
    merged = {}
    for name in batches[0]:
        arrays = [np.asarray(b[name]) for b in batches if name in b]
        if len(arrays) == len(batches) and all(a.ndim and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
            merged[name] = np.concatenate(arrays)
    return merged
