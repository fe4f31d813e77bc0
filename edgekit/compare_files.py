"""Verdicts by purpose, and two model files compared (``edgekit compare a.onnx b.onnx``).

The same function in the same precision (a runtime against another, an FP32 file before and after an
optimization) must agree element by element: atol/rtol and cosine (``compare_fp32``). A side in
reduced precision (int8 or fp16: the metadata's ``precision``/``recipe``, or quantization nodes in
the graph) is not the same function; it is judged by what it keeps against a ``Budget``: top-1
agreement and cosine for classifiers, box match for detectors, masks (pixels, mIoU) for segmenters,
per-sample cosine for embedders, cosine for anything else. That judgement means something only on
real inputs, so random ones are refused for it. Segmenters and embedders are judged by their masks
or vectors (``parity.dense_agreement``) at the same precision too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compare_runs import CompareInputs, CompareRecord, Judging, RuntimeParity
from edgekit.errors import BadInputError
from edgekit.parity import (
    MASK_MIOU_FP32,
    MASK_PIXELS_FP32,
    BoxAgreement,
    ParityReport,
    box_agreement,
    compare_fp32,
    compare_outputs,
    dense_agreement,
)

QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                           "QLinearMatMul", "QLinearAdd", "QLinearMul", "ConvInteger", "MatMulInteger"})


@dataclass(frozen=True)
class Budget:
    """What a reduced-precision model must keep of its reference, as fractions: top-1 agreement and
    cosine (classifiers; cosine alone for other outputs) and box match (detectors: of the boxes
    scoring more than ``score_tol`` above the decoder's threshold on either side, the share matched
    at the IoU with the same label; boxes nearer the threshold may flip either way).

    Defaults, measured: 98 % top-1 agreement leaves room for the few inputs near a decision boundary
    (LeNet-5 INT8 on digits: 99.2 %, two of 256 flip; on random noise: 69 %); cosine 0.99 (INT8
    logits on real images: 0.99996; one weight scale ×4: 0.95); 90 % of boxes with a score margin of
    0.05 (the shapes detector's INT8 on its test images: 97 %; INT8 moved scores by up to 0.035).
    Segmenters: 99 % of mask pixels and mIoU 0.95 between the masks (the shapes segmenter's INT8 on 64
    test images: 99.96 %, 0.997; its stem's weight scale ×1.5: 99.57 %, 0.972; ×4: 88 %, 0.54).
    Embedders: ``min_cosine`` for every sample.
    """

    min_top1: float = 0.98
    min_cosine: float = 0.99
    min_box_match: float = 0.9
    score_tol: float = 0.05
    min_pixels: float = 0.99
    min_miou: float = 0.95

    def __post_init__(self) -> None:
        for flag, value in (("--min-top1", self.min_top1), ("--min-box-match", self.min_box_match),
                            ("--min-pixels", self.min_pixels)):
            if not (_number(value) and 0.0 <= value <= 1.0):
                shown = f"{value * 100:g}" if _number(value) else repr(value)
                raise BadInputError(f"{flag} must be a percentage from 0 to 100, got {shown}")
        if not (_number(self.min_cosine) and -1.0 <= self.min_cosine <= 1.0):
            raise BadInputError(f"--min-cosine must be between -1 and 1, got {self.min_cosine!r}")
        if not (_number(self.min_miou) and 0.0 <= self.min_miou <= 1.0):
            raise BadInputError(f"--min-miou must be between 0 and 1, got {self.min_miou!r}")
        if not (_number(self.score_tol) and 0.0 <= self.score_tol < 1.0):
            raise BadInputError(f"--score-tol must be in [0, 1), got {self.score_tol!r}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class BudgetVerdict:
    """A reduced-precision candidate against the budget (None: that figure does not apply)."""

    budget: Budget
    top1: float | None = None
    cosine: float | None = None
    box_match: float | None = None
    nothing_to_compare: str = ""
    dense: Any = None  # segmenters, embedders: the MaskAgreement/EmbeddingAgreement at the budget, the verdict

    @property
    def passed(self) -> bool:
        budget = self.budget
        if self.dense is not None:
            return self.dense.passed
        return (not self.nothing_to_compare
                and (self.top1 is None or self.top1 >= budget.min_top1)
                and (self.cosine is None or self.cosine >= budget.min_cosine)
                and (self.box_match is None or self.box_match >= budget.min_box_match))

    def summary(self) -> str:
        if self.dense is not None:
            return self.dense.summary()
        if self.nothing_to_compare:
            return f"nothing to compare: {self.nothing_to_compare}"
        figures = []
        if self.top1 is not None:
            figures.append(f"top-1 agreement {self.top1:.1%} (budget ≥ {self.budget.min_top1:.0%})")
        if self.cosine is not None:
            figures.append(f"cosine {self.cosine:.5f} (budget ≥ {self.budget.min_cosine:g})")
        if self.box_match is not None:
            figures.append(f"box match {self.box_match:.1%} (budget ≥ {self.budget.min_box_match:.0%})")
        return ", ".join(figures) + (": ok" if self.passed else ": FAILED")


def judge(name: str, described: tuple[str, str], reference: Sequence[Mapping[str, np.ndarray]],
          candidate: Sequence[Mapping[str, np.ndarray]], meta, judging: Judging) -> RuntimeParity:
    """One candidate's verdict: by tolerance (the same precision), else against the budget; segmenters
    by masks and embedders by per-sample cosine either way. At the same precision, a box match or
    masks with nothing to compare leave the verdict to the raw tensors, and say so."""
    budget = judging.budget
    score_tol = judging.score_tol if budget is None else budget.score_tol
    boxes = box_agreement(meta, reference, candidate, judging.iou_threshold, score_tol)
    rule = (MASK_PIXELS_FP32, MASK_MIOU_FP32, judging.min_cosine) if budget is None else \
        (budget.min_pixels, budget.min_miou, budget.min_cosine)
    dense = dense_agreement(meta, reference, candidate, *rule)
    vectors = dense is not None and dense.kind == "embeddings"  # an N×D output that is not class scores
    if budget is None:
        parity = compare_fp32(merge(reference), merge(candidate), judging.atol, judging.rtol, judging.min_cosine)
        notes = [f"{boxes.nothing_to_compare}: raw outputs compared" if boxes is not None and boxes.nothing_to_compare
                 else "", fallback_note(dense)]
        if any(notes):
            parity = dataclasses.replace(parity, note="; ".join(filter(None, (parity.note, *notes))))
        return RuntimeParity(name, *described, without_top1(parity) if vectors else parity, boxes, dense=dense)
    parity = compare_outputs(merge(reference), merge(candidate), judging.atol, judging.rtol, budget.min_cosine)
    parity = without_top1(parity) if vectors else parity
    return RuntimeParity(name, *described, parity, boxes, judge_budget(parity, boxes, budget, dense), dense)


def without_top1(parity: ParityReport) -> ParityReport:
    """The report without top-1 agreement: an embedder's N×D vectors are not class scores."""
    return dataclasses.replace(parity, outputs=tuple(dataclasses.replace(o, top1_agreement=None)
                                                     for o in parity.outputs))


def fallback_note(dense) -> str:
    """Why the raw tensors judge a segmenter or embedder ('' when its masks or vectors do)."""
    return f"{dense.kind}: {dense.nothing_to_compare}: raw outputs compared" if dense is not None and \
        dense.nothing_to_compare else ""


def judge_budget(parity: ParityReport, boxes: BoxAgreement | None, budget: Budget, dense=None) -> BudgetVerdict:
    """Segmenters and embedders by ``dense`` (nothing to compare there is nothing compared), detectors
    by box match (when some box scored above the threshold), else the compared outputs: the worst
    top-1 agreement and cosine. Outputs with nothing to compare are left out; when none is left,
    nothing was compared."""
    if dense is not None:
        cosine = None if dense.nothing_to_compare else getattr(dense, "cosine_min", None)
        return BudgetVerdict(budget, cosine=cosine, nothing_to_compare=dense.nothing_to_compare, dense=dense)
    if boxes is not None and not boxes.nothing_to_compare:
        judged = boxes.matched + boxes.missing + boxes.extra
        return BudgetVerdict(budget, box_match=boxes.matched * boxes.label_agreement / judged if judged else 1.0)
    compared = [o for o in parity.outputs if not o.nothing_to_compare]
    if not compared:
        reasons = (parity.nothing_to_compare, boxes.nothing_to_compare if boxes is not None else "")
        return BudgetVerdict(budget, nothing_to_compare="; ".join(filter(None, reasons)))
    top1 = [o.top1_agreement for o in compared if o.top1_agreement is not None]
    cosine = min(o.cosine for o in compared)
    return BudgetVerdict(budget, min(top1) if top1 else None, cosine if math.isfinite(cosine) else -1.0)


def precision_of(path: str | Path) -> str:
    """'int8', 'fp16' or 'fp32': the metadata's precision (or quantization recipe), else, for an ONNX
    file, what its graph holds (quantization nodes: int8; float16 weights: fp16)."""
    from edgekit.meta import read_meta

    meta = read_meta(path)
    if meta.precision and meta.precision != "fp32":
        return meta.precision
    mode = str((meta.recipe or {}).get("mode", ""))
    if mode:
        return "fp16" if mode == "fp16" else "int8"
    if Path(path).suffix.lower() != ".onnx":
        return "fp32"
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if any(node.op_type in QUANTIZED_OPS for node in graph.node):
        return "int8"
    if any(tensor.data_type == onnx.TensorProto.FLOAT16 for tensor in graph.initializer):
        return "fp16"
    return "fp32"


def require_real_inputs(io: CompareInputs, what: str) -> None:
    """Refuse a reduced-precision judgement on random noise, naming the fix."""
    if not io.real:
        raise BadInputError(f"comparing {what} on random N(0,1) inputs measures noise, not accuracy: give real "
                            "inputs with --images DIR or --data NAME (or --inputs FILE.npz)")


def compare_files(reference: str | Path, candidate: str | Path, runtimes: Sequence[str], io: CompareInputs,
                  judging: Judging, seed: int, runtime_options: Mapping[str, Mapping[str, Any]]) -> CompareRecord:
    """Both model files on each runtime with the same inputs; the second judged against the first."""
    from edgekit.compare_runs import input_note, plan_inputs, run_all, runtime_classes, save
    from edgekit.meta import read_meta

    paths = [_model_file(reference), _model_file(candidate)]
    if io.load_outputs is not None:
        raise BadInputError("--load-outputs takes one model (its saved outputs are the reference); with two "
                            "models the first is the reference")
    if io.specs:
        raise BadInputError("--input shapes random inputs of one model; two models are compared on --inputs, "
                            "--images or --data")
    classes = runtime_classes(runtimes, runtime_options)
    precisions = [precision_of(path) for path in paths]
    reduced = precisions[0] != precisions[1] or precisions[0] != "fp32"
    if reduced:
        require_real_inputs(io, f"{precisions[0]} with {precisions[1]}")
    judging = dataclasses.replace(judging, budget=judging.budget if reduced else None)
    meta = read_meta(paths[0])
    options = {cls.name: dict(runtime_options.get(name, runtime_options.get(cls.name, {})))
               for name, cls in zip(runtimes, classes)}
    batches, make, where = plan_inputs(io, paths[0], meta, 1, seed)
    batches, first, described = run_all(classes, options, paths[0], batches, make, where)
    _, second, _ = run_all(classes, options, paths[1], batches, None, where)
    if meta.task in FIXED_OUTPUTS:
        same_output_shapes(paths, first[classes[0].name][0], second[classes[0].name][0])
    results = tuple(judge(cls.name, described[cls.name], first[cls.name], second[cls.name], meta, judging)
                    for cls in classes)
    save(io, batches, first[classes[0].name])
    return CompareRecord(
        model=f"{paths[1].name} ({precisions[1]})", model_path=str(paths[0]),
        reference=f"{paths[0].name} ({precisions[0]})", inputs={k: list(v.shape) for k, v in batches[0].items()},
        input_source=where, atol=judging.atol, rtol=judging.rtol, min_cosine=judging.min_cosine, results=results,
        batches=len(batches), candidate_path=str(paths[1]),
        precision=" vs ".join(precisions) if reduced else "fp32", budget=judging.budget,
        input_note=input_note(io, batches),
    )


#: tasks whose outputs have one shape per input shape (a detector's box lists vary with what it finds)
FIXED_OUTPUTS = ("classification", "segmentation", "embedding")


def same_output_shapes(paths: Sequence[Path], reference: Mapping[str, np.ndarray],
                       candidate: Mapping[str, np.ndarray]) -> None:
    """Two versions of one model give each output in the same shape; files that do not (embeddings of
    other lengths, another class count) are not compared: a one-line error, not a failed check."""
    shown = [path.name for path in paths] if paths[0].name != paths[1].name else [str(path) for path in paths]
    for name, value in reference.items():
        if name in candidate and np.shape(candidate[name]) != np.shape(value):
            raise BadInputError(f"{shown[0]} and {shown[1]} are not two versions of one model: output "
                                f"'{name}' is {tuple(np.shape(value))} vs {tuple(np.shape(candidate[name]))}")


def _model_file(model: str | Path) -> Path:
    from edgekit.sources import parse_source

    source = parse_source(str(model))
    if source.kind != "file":
        raise BadInputError(f"comparing two models takes two model files; '{model}' is a {source.kind} model "
                            "(export it first: `edgekit export`)")
    return Path(model)


def merge(batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One dict of outputs over every batch (concatenated along the batch axis where shapes allow)."""
    if len(batches) == 1:
        return dict(batches[0])
    merged = {}
    for name in batches[0]:
        arrays = [np.asarray(b[name]) for b in batches if name in b]
        if len(arrays) == len(batches) and all(a.ndim and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
            merged[name] = np.concatenate(arrays, axis=0)
        else:
            merged[name] = np.concatenate([a.ravel() for a in arrays])
    return merged
