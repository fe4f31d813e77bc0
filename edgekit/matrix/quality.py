"""How good a variant's outputs are: accuracy with the same evaluators as ``edgekit eval`` when the
model's labels match the task's data, and agreement with the FP32 model always: top-1 % and cosine,
for segmenters the share of mask pixels that agree (and mIoU), for embedders per-sample cosine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.datasets.base import Split
from edgekit.deps import MissingDependencyError
from edgekit.errors import BadInputError
from edgekit.matrix.cells import Evaluation
from edgekit.meta import ModelMeta


@dataclass(frozen=True)
class EvalData:
    """The data one model is judged on: a labelled split (accuracy), or None; and the images the
    agreement with FP32 is measured on. ``calib`` is what int8 calibrates on. ``no_accuracy`` says
    why there is no accuracy figure ('' when there is one)."""

    name: str
    split: Split | None
    agreement_images: list[np.ndarray]
    calib: str
    no_accuracy: str = ""


@dataclass(frozen=True)
class Quality:
    metric: str = ""
    accuracy: float | None = None
    metrics: dict[str, float] | None = None
    agreement_top1_pct: float | None = None
    cosine: float | None = None
    nothing_to_compare: str = ""      # why the agreement compared nothing ('' when it compared something)
    miou: float | None = None         # segmenters: mIoU of the masks against FP32's (their pixels: top-1 %)
    agreement: str = ""               # segmenters, embedders: the line naming the measure (MaskAgreement...)


def judging_data(meta: ModelMeta, evaluation: Evaluation) -> str | None:
    """The data set a model is judged on: the evaluation's for its task, else the one it records having
    been trained on (an embedder's identities), else None."""
    from edgekit.meta_records import source_of

    return evaluation.data.get(meta.task) or source_of(meta).dataset


def eval_data(meta: ModelMeta, evaluation: Evaluation) -> EvalData:
    """The task's labelled data when the model fits it (``datasets.fit``), else generated images and
    the reason there is no accuracy figure."""
    from edgekit.datasets import load_split
    from edgekit.datasets.fit import misfit_reason
    from edgekit.quantize.calibration import recorded_split

    spec = judging_data(meta, evaluation)
    reason = f"no data set for task '{meta.task}' (name one in the suite: data: {{{meta.task}: DIR}})"
    if spec:
        options, seed = recorded_split(meta, spec, evaluation.seed)
        try:
            split = load_split(spec, split="test", seed=seed, for_task=meta.task, **options)
        except (BadInputError, MissingDependencyError) as exc:
            if spec == evaluation.data.get(meta.task):  # named by the suite: its error is the user's to fix
                raise
            split, reason = None, f"the data set it records, {spec}, cannot be read: {exc}"
        if split is not None:
            reason = misfit_reason(meta, split.task, split.labels, spec)
        if split is not None and not reason:
            split = split.take(evaluation.samples)
            return EvalData(spec, split, list(split.images[: evaluation.agreement_samples]), spec)
    from edgekit.matrix.variants import generated_images

    images = list(generated_images(meta, evaluation.agreement_samples, evaluation.seed + 1))
    return EvalData("generated", None, images, "generated", reason)


def outputs_on(session, meta: ModelMeta, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of an open runtime for ``images``, concatenated (a fixed batch is padded)."""
    from edgekit.quantize.calibration import preprocess

    if meta.input_name not in session.inputs:
        raise BadInputError(f"the model has no input '{meta.input_name}' (it has {', '.join(session.inputs)}): "
                            "fix its metadata with `edgekit meta set MODEL input_name=NAME`")
    feeds = preprocess(images, meta)
    first = next(iter(session.inputs.values()))
    step = first.shape[0] if isinstance(first.shape[0], int) else len(images)
    collected: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), step):
        chunk = {name: array[start:start + step] for name, array in feeds.items()}
        count = len(next(iter(chunk.values())))
        if count < step:
            chunk = {n: np.concatenate([a, np.repeat(a[-1:], step - count, axis=0)]) for n, a in chunk.items()}
        chunk = {n: np.ascontiguousarray(a.astype(session.inputs[n].dtype, copy=False)) for n, a in chunk.items()}
        for name, value in session.run(chunk).items():
            collected.setdefault(name, []).append(np.asarray(value, dtype=np.float32)[:count])
    return {name: np.concatenate(parts) for name, parts in collected.items()}


TIMING_ONLY = ("hint", "streams", "threads")   # runtime options that change speed, never outputs


def judge_file(path, runtime: str, options: dict[str, Any], meta: ModelMeta, data: EvalData,
               reference: dict[str, np.ndarray] | None) -> Quality:
    """The one judge: ``path`` opened on ``runtime`` with ``options`` less those that only change timing."""
    from edgekit.runtimes import get_runtime

    kept = {k: v for k, v in options.items() if k not in TIMING_ONLY}
    with get_runtime(runtime)(path, **kept) as session:
        return judge(session, meta, data, reference)


def judge(session, meta: ModelMeta, data: EvalData, reference: dict[str, np.ndarray] | None,
          batch_size: int = 16) -> Quality:
    """Accuracy (percentage points) and agreement with ``reference`` of an open runtime."""
    metric, accuracy, metrics = "", None, None
    if data.split is not None:
        metric, metrics = accuracy_of(session, meta, data.split, batch_size)
        accuracy = metrics[metric]
    if reference is None:
        return Quality(metric, accuracy, metrics)
    outputs = outputs_on(session, meta, data.agreement_images)
    dense = dense_figures(reference, outputs, meta)
    if dense is None:
        return Quality(metric, accuracy, metrics, *agreement(reference, outputs))
    top1, cosine, nothing, miou, line = dense
    return Quality(metric, accuracy, metrics, top1, cosine, nothing, miou, line)


def dense_figures(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray], meta: ModelMeta):
    """Segmenters: (pixels that agree %, None, why nothing, mIoU, line); embedders: (None, lowest
    per-sample cosine, why nothing, None, line); None for other tasks. No figure where nothing compared."""
    from edgekit.parity import dense_agreement

    dense = dense_agreement(meta, [reference], [outputs])
    if dense is None:
        return None
    if dense.nothing_to_compare:
        return None, None, dense.nothing_to_compare, None, dense.summary()
    if dense.kind == "masks":
        return 100.0 * dense.pixel_agreement, None, "", dense.miou, dense.summary()
    return None, dense.cosine_min, "", None, dense.summary()


def agreement(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
              meta: ModelMeta | None = None) -> tuple[float | None, float | None, str]:
    """(top-1 agreement %, cosine, '') of the worst comparable output against ``reference``; (None,
    None, why) when no output can be compared (no spread, independent of the input): no figure rather
    than agreement measured on noise. With ``meta``, segmenters and embedders as ``dense_figures``."""
    from edgekit.parity import compare_outputs

    dense = dense_figures(reference, outputs, meta) if meta is not None else None
    if dense is not None:
        return dense[:3]
    parity = compare_outputs(reference, outputs)
    comparable = [o for o in parity.outputs if not o.nothing_to_compare]
    if not comparable:
        return None, None, parity.outputs[0].nothing_to_compare if parity.outputs else "the model has no outputs"
    worst = min(comparable, key=lambda o: o.cosine)
    return None if worst.top1_agreement is None else 100.0 * worst.top1_agreement, worst.cosine, ""


def accuracy_of(session, meta: ModelMeta, split: Split, batch_size: int) -> tuple[str, dict[str, Any]]:
    """The evaluator's primary metric name and every metric in percentage points (``count`` as is),
    read with ``meta`` (the source model's metadata, so IR files and engines are read alike)."""
    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.evaluate.runner import predict_split
    from edgekit.tasks import get_task

    task = get_task(meta.task)
    evaluator = make_evaluator(meta)
    evaluator.update(predict_split(session, task, meta, split, batch_size), list(split.targets))
    scale = type(evaluator).points_per_unit
    metrics = {name: float(value) * (1.0 if name == "count" else scale) for name, value in evaluator.compute().items()}
    return type(evaluator).primary_metric, metrics
