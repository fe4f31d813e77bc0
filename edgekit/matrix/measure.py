"""One cell: build (or reuse) its variant, time its scenario, judge its outputs → a CellRecord.

A cell that cannot run (runtime missing, precision the device lacks, unsupported op, any
failure) gives a record with status and a one-line reason instead of an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError, RuntimeUnavailableError, first_line
from edgekit.matrix.cells import Cell, CellRecord, MatrixSpec, Timing, json_safe
from edgekit.matrix.quality import TIMING_ONLY, EvalData, Quality, eval_data, judge_file, outputs_on
from edgekit.matrix.variants import Unsupported, make_variant
from edgekit.meta import ModelMeta, read_meta

# Messages of errors that mean "this device/runtime cannot do that", not "something broke".
UNSUPPORTED_HINTS = ("cannot run", "not implemented", "NOT_IMPLEMENTED", "unsupported", "not supported", "lacks")


@dataclass
class Source:
    path: Path
    sha256: str
    meta: ModelMeta


@dataclass
class MatrixContext:
    """What cells of one run share: exported models, their data and FP32 reference outputs."""

    spec: MatrixSpec
    sources: dict[tuple[str, int], Source] = field(default_factory=dict)
    data: dict[str, EvalData] = field(default_factory=dict)
    references: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    qualities: dict[tuple, tuple[Quality, str]] = field(default_factory=dict)

    def source(self, model: str, batch: int) -> Source:
        torch_model = self.spec.torch_model(model)
        fixed = Path(model).suffix and torch_model is None or torch_model is not None and torch_model.inputs
        key = (model, 0 if fixed else batch)   # a file, or a torch source with its own shapes, is one file
        if key not in self.sources:
            from edgekit.quantize.base import file_sha256
            from edgekit.sources import resolve_model

            if torch_model is not None:
                from edgekit.inputs.specs import parse_input_specs

                path = resolve_model(torch_model.source, batch=batch, weights=torch_model.weights,
                                     inputs=parse_input_specs(torch_model.inputs),
                                     meta_changes=torch_model.meta_changes())
            else:
                size = self.spec.input_size if resizable(model) else None
                path = resolve_model(model, batch=batch, input_size=size)
            self.sources[key] = Source(path, file_sha256(path), read_meta(path))
        return self.sources[key]

    def data_for(self, source: Source) -> EvalData:
        if source.sha256 not in self.data:
            self.data[source.sha256] = eval_data(source.meta, self.spec.evaluation)
        return self.data[source.sha256]

    def reference(self, source: Source, runtime: str) -> dict[str, np.ndarray]:
        """FP32 outputs on the agreement images: ONNX Runtime CPU when it is here, else ``runtime``."""
        if source.sha256 not in self.references:
            from edgekit.runtimes import get_runtime

            name = "ort-cpu" if get_runtime("ort-cpu").probe().available else runtime
            with get_runtime(name)(source.path) as session:
                self.references[source.sha256] = outputs_on(session, source.meta,
                                                            self.data_for(source).agreement_images)
        return self.references[source.sha256]


def resizable(model: str) -> bool:
    """A suite's ``input_size`` applies to the zoo's ImageNet architectures (LeNet-5 has one size)."""
    if Path(model).suffix:
        return False
    from edgekit.zoo.catalog import get_entry

    return get_entry(model).num_classes == 1000


def measure_cell(cell: Cell, key: str, context: MatrixContext) -> CellRecord:
    """The record of ``cell``; never raises for a cell-level problem."""
    start = time.perf_counter()
    source: Source | None = None
    try:
        from edgekit.runtimes import get_runtime

        get_runtime(cell.runtime).ensure_available()
        source = context.source(cell.model, cell.batch)
        return _measure(cell, key, context, source, start)
    except RuntimeUnavailableError as exc:   # not on this machine: one collapsed line in tables
        return _failed(cell, key, "unsupported", first_line(exc), source, start, {"unavailable": True})
    except Unsupported as exc:
        return _failed(cell, key, "unsupported", first_line(exc), source, start)
    except EdgekitError as exc:
        reason = first_line(exc)
        status = "unsupported" if any(hint in reason for hint in UNSUPPORTED_HINTS) else "failed"
        return _failed(cell, key, status, reason, source, start)
    except Exception as exc:  # noqa: BLE001 - any backend failure is this cell's result, the run goes on
        return _failed(cell, key, "failed", f"{type(exc).__name__}: {first_line(exc)}", source, start)


def _measure(cell: Cell, key: str, context: MatrixContext, source: Source, start: float) -> CellRecord:
    from edgekit.runtimes import get_runtime

    spec = context.spec
    data = context.data_for(source)
    variant = make_variant(source.path, source.sha256, source.meta, get_runtime(cell.runtime).name, cell.precision,
                           data.calib, spec.evaluation.calib_samples, spec.evaluation.seed)
    options = runtime_options(cell, variant.runtime_options)
    timed = time_file(variant.path, cell.runtime, options, source.meta, cell.batch, cell.scenario, spec.timing,
                      spec.evaluation.seed)
    quality, quality_note = _quality(cell, context, source, data, variant.path, options)
    return CellRecord(
        cell=cell, key=key, status="ok", model_name=source.meta.model_name or source.path.stem,
        model_sha256=source.sha256, size_mb=timed.size_mb, latency_count=timed.count, p50_ms=timed.p50_ms,
        p90_ms=timed.p90_ms, p99_ms=timed.p99_ms, mean_ms=timed.mean_ms, percentiles_ms=timed.percentiles_ms,
        round_ms=timed.round_ms, throughput_items_s=timed.throughput_items_s, cold_start_ms=timed.cold_start_ms,
        metric=quality.metric, accuracy=quality.accuracy, metrics=quality.metrics or {},
        agreement_top1_pct=quality.agreement_top1_pct, cosine=quality.cosine,
        config={"runtime": timed.description, "variant": variant.recipe, "data": data.name,
                "requests": timed.requests, "items_per_query": timed.items_per_query,
                "load_ms": timed.load_ms, "source": str(source.path), "throughput_basis": timed.throughput_basis,
                **({"no_accuracy": data.no_accuracy} if data.no_accuracy else {}),
                **({"nothing_to_compare": quality.nothing_to_compare} if quality.nothing_to_compare else {}),
                **({"agreement": quality.agreement} if quality.agreement else {}),
                **({"miou_vs_fp32": quality.miou} if quality.miou is not None else {}),
                **({"quality_error": quality_note} if quality_note else {})},
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class Timed:
    """What one timing gave (ms). ``per_item_ms``: single-stream, a query's p50 over its batch;
    offline (no per-query latency), the inverse of the throughput."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    count: int
    percentiles_ms: tuple[float, ...]
    round_ms: tuple[float, ...]
    throughput_items_s: float
    cold_start_ms: float
    load_ms: float
    size_mb: float
    description: dict[str, Any]
    batch: int = 1
    requests: int = 1
    items_per_query: int = 1
    throughput_basis: str = ""

    @property
    def per_item_ms(self) -> float:
        if self.p50_ms is None:
            return 1000.0 / self.throughput_items_s if self.throughput_items_s else float("inf")
        return self.p50_ms / self.batch


def time_file(path: Path, runtime_name: str, options: dict[str, Any], meta: ModelMeta, batch: int, scenario: str,
              timing: Timing, seed: int = 0) -> Timed:
    """The one measurer: open ``path`` on the runtime with ``options``, time ``scenario`` on random
    inputs at ``batch`` (load, first call and the scenario's rounds), and describe the runtime as used."""
    from edgekit.bench.inputs import random_feeds
    from edgekit.bench.latency import LoopPlan
    from edgekit.bench.scenarios import run_scenario
    from edgekit.fileio import model_size_mb
    from edgekit.runtimes import get_runtime

    plan = LoopPlan(timing.warmup, timing.min_runs, timing.min_duration_s, timing.max_runs)
    runtime = get_runtime(runtime_name)(path, **options)
    opened = time.perf_counter_ns()
    with runtime:
        loaded = time.perf_counter_ns()
        feeds = random_feeds(runtime.inputs, batch, meta, seed)
        fed = time.perf_counter_ns()   # making the random inputs is not the model's cold start
        runtime.prepare(feeds)()
        first = time.perf_counter_ns()
        result = run_scenario(runtime, feeds, scenario, plan, timing.rounds)
        description = runtime.describe()
    latency = result.latency
    stats = (latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.mean_ms, latency.count) if latency \
        else (None, None, None, None, 0)
    return Timed(*stats, result.percentiles_ms, result.round_ms, result.throughput_items_s,
                 (loaded - opened + first - fed) / 1e6,
                 (loaded - opened) / 1e6, model_size_mb(path), json_safe(description), batch, result.requests,
                 result.items_per_query, result.throughput_basis)


def runtime_options(cell: Cell, variant_options: dict[str, Any]) -> dict[str, Any]:
    """Threads, the variant's precision hint, the cell's own options, and on OpenVINO the
    performance hint that matches the scenario (latency for single-stream) unless one was given."""
    from edgekit.runtimes import get_runtime

    options: dict[str, Any] = {"threads": cell.threads, **variant_options, **dict(cell.options)}
    if get_runtime(cell.runtime).name == "openvino" and "hint" not in options:
        options["hint"] = "latency" if cell.scenario == "single-stream" else "throughput"
    return options


def _quality(cell: Cell, context: MatrixContext, source: Source, data: EvalData, path: Path,
             options: dict[str, Any]) -> tuple[Quality, str]:
    """Judged once per model file, runtime and precision options (threads and scenarios do not change
    outputs). A model that cannot be judged (no metadata to prepare images with) keeps its timing:
    the quality is left empty and the reason is returned."""

    quality_options = {k: v for k, v in options.items() if k not in TIMING_ONLY}
    key = (source.sha256, cell.runtime, str(path), tuple(sorted(quality_options.items(), key=str)))
    if key not in context.qualities:
        try:
            reference = context.reference(source, cell.runtime)
            context.qualities[key] = (judge_file(path, cell.runtime, options, source.meta, data, reference), "")
        except Exception as exc:  # noqa: BLE001 - the timing stands; say why there is no quality figure
            context.qualities[key] = (Quality(), f"{type(exc).__name__}: {first_line(exc)}"[:300])
    return context.qualities[key]


def _failed(cell: Cell, key: str, status: str, reason: str, source: Source | None, start: float,
            config: dict[str, Any] | None = None) -> CellRecord:
    return CellRecord(cell=cell, key=key, status=status, reason=reason[:500],
                      model_name=(source.meta.model_name or source.path.stem) if source else Path(cell.model).stem,
                      model_sha256=source.sha256 if source else "", seconds=time.perf_counter() - start,
                      config=config or {})
