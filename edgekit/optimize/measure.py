"""Measuring one candidate with the matrix's pieces: its variant file (the matrix's variants cache,
or an INT8 recipe with layers kept in float), the matrix's scenario timing, and the matrix's judge
(accuracy with the task's evaluator, agreement with FP32). Everything here works on files and
arrays, so the same functions run on this machine or on a lab device (see ``cluster``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, first_line
from edgekit.matrix.cells import CellRecord, Evaluation, Timing
from edgekit.matrix.measure import Timed, time_file
from edgekit.matrix.quality import EvalData, Quality
from edgekit.matrix.variants import Unsupported, Variant
from edgekit.meta import ModelMeta
from edgekit.optimize.space import Candidate

QUICK = Timing(warmup=3, min_runs=8, min_duration_s=0.4, rounds=1)   # the latency pass
FULL = Timing(warmup=10, min_runs=20, min_duration_s=2.0, rounds=3)  # the finalists' confirmation


def search_data(meta: ModelMeta, data: str | None, calib: str | None, samples: int, seed: int) -> EvalData:
    """What candidates are judged on: the task's labelled test split when the model's labels match it
    (accuracy), else the given data's images or generated ones (agreement with FP32). ``calib`` is what
    INT8 calibrates on (default: the same data, its train split)."""
    from edgekit.matrix.quality import eval_data, judging_data

    spec = data or judging_data(meta, Evaluation())
    evaluation = Evaluation(data={meta.task: spec} if spec else {}, samples=samples,
                            agreement_samples=min(samples, 64), seed=seed)
    try:
        found = eval_data(meta, evaluation)
    except BadInputError:
        if not data:
            raise
        found = EvalData(data, None, [], data)
    if found.split is None and data:  # unlabelled for this model: agreement on the user's own images
        found = EvalData(data, None, user_images(data, samples, seed), data)
    return dataclasses.replace(found, calib=calib or found.calib)


def user_images(spec: str, count: int, seed: int) -> list[np.ndarray]:
    """Up to ``count`` images of a dataset's test split, or of an image folder's files."""
    from edgekit.datasets import load_split

    try:
        return list(load_split(spec, split="test", seed=seed).images[:count])
    except BadInputError:
        if not Path(spec).is_dir():
            raise
    from edgekit.datasets.image_folder import read_image

    files = sorted(p for p in Path(spec).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise BadInputError(f"no images in {spec}")
    return [read_image(p) for p in files[:count]]


def build_variant(candidate: Candidate, source: Path, source_sha: str, meta: ModelMeta, calib: str,
                  calib_samples: int, seed: int) -> Variant:
    """The file and options that run ``candidate``: the matrix's variants (cached under the matrix's
    cache) for plain precisions, else an INT8 recipe cached here by source hash + recipe."""
    from edgekit.matrix.variants import make_variant

    if candidate.precision != "int8" or (candidate.quantizer == "ort" and not candidate.exclude):
        return make_variant(source, source_sha, meta, candidate.runtime, candidate.precision, calib, calib_samples,
                            seed)
    if candidate.quantizer == "nncf" and candidate.runtime != "openvino":
        raise Unsupported("NNCF IR runs on openvino only")
    return _int8_recipe(candidate, source, source_sha, meta, calib, calib_samples, seed)


def _int8_recipe(candidate: Candidate, source: Path, source_sha: str, meta: ModelMeta, calib: str,
                 calib_samples: int, seed: int) -> Variant:
    from edgekit.matrix.variants import build_quantized

    recipe = {"mode": "int8-static", "backend": candidate.quantizer, "calib": calib, "calib_size": calib_samples,
              "seed": seed, "exclude": list(candidate.exclude)}
    return build_quantized(source, source_sha, meta, recipe)


def time_variant(candidate: Candidate, variant: Variant, meta: ModelMeta, timing: Timing, seed: int = 0) -> Timed:
    """The candidate's scenario timed with its settings (the matrix's measurer)."""
    options = {**candidate.runtime_options(), **variant.runtime_options}
    return time_file(variant.path, candidate.runtime, options, meta, candidate.batch, candidate.scenario, timing,
                     seed)


def judge_variant(candidate: Candidate, variant: Variant, meta: ModelMeta, data: EvalData,
                  reference: dict[str, np.ndarray] | None) -> Quality:
    """Accuracy and agreement with FP32 (the matrix's judge; threads do not change outputs)."""
    from edgekit.matrix.quality import judge_file

    return judge_file(variant.path, candidate.runtime, {**candidate.runtime_options(), **variant.runtime_options},
                      meta, data, reference)


def reference_outputs(source: Path, meta: ModelMeta, data: EvalData) -> dict[str, np.ndarray]:
    """FP32 outputs on the agreement images (ONNX Runtime CPU)."""
    from edgekit.matrix.quality import outputs_on
    from edgekit.runtimes import get_runtime

    with get_runtime("ort-cpu")(source) as session:
        return outputs_on(session, meta, data.agreement_images)


def to_record(candidate: Candidate, model: str, key: str, model_name: str, source_sha: str, timed: Timed | None,
              quality: Quality | None, config: dict[str, Any], seconds: float) -> CellRecord:
    """The matrix record of a measured candidate (quality fields empty when it was not judged)."""
    quality = quality or Quality()
    fields: dict[str, Any] = {}
    if timed is not None:
        fields = dict(size_mb=timed.size_mb, latency_count=timed.count, p50_ms=timed.p50_ms, p90_ms=timed.p90_ms,
                      p99_ms=timed.p99_ms, mean_ms=timed.mean_ms, percentiles_ms=timed.percentiles_ms,
                      round_ms=timed.round_ms, throughput_items_s=timed.throughput_items_s,
                      cold_start_ms=timed.cold_start_ms)
        config = {**config, "runtime": timed.description, "load_ms": timed.load_ms}
    return CellRecord(cell=candidate.cell(model), key=key, status="ok", model_name=model_name,
                      model_sha256=source_sha, metric=quality.metric, accuracy=quality.accuracy,
                      metrics=quality.metrics or {}, agreement_top1_pct=quality.agreement_top1_pct,
                      cosine=quality.cosine, config=config, seconds=seconds, **fields)


def failed_record(candidate: Candidate, model: str, key: str, model_name: str, source_sha: str, exc: BaseException,
                  config: dict[str, Any], seconds: float) -> CellRecord:
    """A candidate that could not be built or run here: unsupported (device/runtime lacks it) or failed."""
    from edgekit.matrix.measure import UNSUPPORTED_HINTS

    reason = first_line(exc)
    status = "unsupported" if isinstance(exc, Unsupported) or any(h in reason for h in UNSUPPORTED_HINTS) else "failed"
    return CellRecord(cell=candidate.cell(model), key=key, status=status, reason=reason[:500], model_name=model_name,
                      model_sha256=source_sha, config=config, seconds=seconds)


def weighted_layers(source: Path) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes, in graph order."""
    import onnx

    from edgekit.quantize.onnxruntime import WEIGHTED_OPS

    return [n.name for n in onnx.load(str(source), load_external_data=False).graph.node if n.op_type in WEIGHTED_OPS]


def subset_data(data: EvalData, count: int) -> EvalData:
    """The first ``count`` samples of the labelled split and of the agreement images."""
    split = data.split.take(count) if data.split is not None else None
    return dataclasses.replace(data, split=split, agreement_images=list(data.agreement_images[:count]))


def timed_from_row(row: dict[str, Any]) -> Timed:
    """A stored record's timing (a re-run reuses it)."""
    config = row.get("config") or {}
    return Timed(row["p50_ms"], row["p90_ms"], row["p99_ms"], row["mean_ms"], row["latency_count"],
                 tuple(row.get("percentiles_ms") or ()), tuple(row.get("round_ms") or ()),
                 row["throughput_items_s"] or 0.0, row["cold_start_ms"] or 0.0, config.get("load_ms") or 0.0,
                 row["size_mb"] or 0.0, config.get("runtime") or {}, row["batch"])


def quality_from_row(row: dict[str, Any]) -> Quality:
    return Quality(row.get("metric") or "", row.get("accuracy"), row.get("metrics") or None,
                   row.get("agreement_top1_pct"), row.get("cosine"))
