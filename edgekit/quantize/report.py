"""The precision table: FP32 and each quantized variant on each runtime that loads it —
file size, p50/p90 latency, speedup over FP32 on the same runtime, accuracy and its drop,
and agreement of the outputs with FP32 (cosine, top-1).

Every row is measured in the same process, one after the other, so ratios compare like with like,
by the engine's pieces: the matrix's measurer (``matrix.measure.time_file``, single-stream at batch 1)
and its judge (``matrix.quality``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets.base import Split
from edgekit.errors import BadInputError
from edgekit.matrix.cells import Timing
from edgekit.matrix.variants import Variant
from edgekit.meta import ModelMeta
from edgekit.runtimes import RUNTIMES, get_runtime

#: runtime option names that carry an inference-precision hint, in the order we look for them
PRECISION_HINT_OPTIONS = ("inference_precision", "precision_hint", "precision")
#: what the report's numbers are in (also written into its JSON)
UNITS = {"accuracy": "percentage points (top-1 %; mAP x 100)", "accuracy_drop": "percentage points",
         "metrics": "percentage points, count excepted", "top1_agreement_pct": "percent of samples",
         "cosine": "cosine similarity (-1..1)", "size_mb": "MB (10^6 bytes)", "p50_ms": "ms", "p90_ms": "ms"}


@dataclass(frozen=True)
class PrecisionRow:
    """One variant on one runtime. ``accuracy``, ``accuracy_drop`` and ``metrics`` are in percentage
    points whatever the evaluator reports (mAP fractions x 100); ``top1_agreement_pct`` is percent."""

    variant: str
    runtime: str
    precision: str
    size_mb: float
    p50_ms: float
    p90_ms: float
    speedup: float | None
    metric: str
    accuracy: float | None
    accuracy_drop: float | None
    cosine: float | None
    top1_agreement_pct: float | None
    path: str
    metrics: dict[str, float] = field(default_factory=dict)  # every metric of the evaluator (mAP@0.5 too)


@dataclass(frozen=True)
class PrecisionReport:
    model: str
    dataset: str
    threads: int | None
    rows: tuple[PrecisionRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "units": dict(UNITS)}

    def row(self, variant: str, runtime: str) -> PrecisionRow | None:
        return next((r for r in self.rows if r.variant == variant and r.runtime == runtime), None)


@dataclass(frozen=True)
class MeasureConfig:
    runtimes: tuple[str, ...] = ("ort-cpu",)
    threads: int | None = None
    timing: Timing = Timing(warmup=5, min_runs=20, min_duration_s=1.0, rounds=1)
    batch_size: int = 16


def measure(
    variants: Sequence[Variant], meta: ModelMeta, config: MeasureConfig,
    split: Split | None = None, parity_feeds: list[dict[str, np.ndarray]] | None = None,
) -> PrecisionReport:
    """Measure every variant on every runtime that loads it; the first variant is the FP32 baseline."""
    if not variants:
        raise BadInputError("nothing to measure")
    reference = _outputs(variants[0].path, "ort-cpu", parity_feeds, {}) if parity_feeds else None
    rows: list[PrecisionRow] = []
    for runtime in config.runtimes:
        runtime_class = get_runtime(runtime)
        if not runtime_class.probe().available:
            continue
        base: PrecisionRow | None = None
        for variant in variants:
            if variant.path.suffix.lower() not in runtime_class.suffixes:
                continue
            if variant.runtimes and runtime_class.name not in variant.runtimes:
                continue
            row = _measure_one(variant, runtime_class.name, meta, config, split, parity_feeds, reference, base)
            base = base or row
            rows.append(row)
    return PrecisionReport(meta.model_name or variants[0].path.stem, split.info.get("dataset", "") if split else "",
                           config.threads, tuple(rows))


def _measure_one(
    variant: Variant, runtime: str, meta: ModelMeta, config: MeasureConfig, split: Split | None,
    parity_feeds: list[dict[str, np.ndarray]] | None, reference: dict[str, np.ndarray] | None,
    base: PrecisionRow | None,
) -> PrecisionRow:
    options = {"threads": config.threads, **variant.runtime_options}
    from edgekit.matrix.measure import time_file

    timed = time_file(variant.path, runtime, options, meta, 1, "single-stream", config.timing)
    metric, metrics = (None, {}) if split is None else _accuracy(variant, runtime, options, meta, split, config)
    accuracy = metrics[metric] if metric else None
    cosine = top1 = None
    if reference is not None:
        from edgekit.matrix.quality import agreement

        top1, cosine, _ = agreement(reference, _outputs(variant.path, runtime, parity_feeds, options), meta)
    p50 = timed.p50_ms
    return PrecisionRow(
        variant=variant.name, runtime=runtime, precision=variant.precision, size_mb=variant.size_mb,
        p50_ms=p50, p90_ms=timed.p90_ms,
        speedup=base.p50_ms / p50 if base and p50 > 0 else (1.0 if base is None else None),
        metric=metric or "", accuracy=accuracy,
        accuracy_drop=(base.accuracy - accuracy) if base and base.accuracy is not None and accuracy is not None
        else (0.0 if base is None and accuracy is not None else None),
        cosine=cosine, top1_agreement_pct=top1, path=str(variant.path), metrics=metrics,
    )


def _accuracy(variant: Variant, runtime: str, options: dict[str, Any], meta: ModelMeta, split: Split,
              config: MeasureConfig) -> tuple[str, dict[str, float]]:
    """The matrix's accuracy (``matrix.quality.accuracy_of``) of ``variant`` on ``runtime``, read with the
    *source* model's metadata."""
    from edgekit.matrix.quality import accuracy_of

    with get_runtime(runtime)(variant.path, **options) as session:
        return accuracy_of(session, meta, split, config.batch_size)


def _outputs(path: Path, runtime: str, feeds: list[dict[str, np.ndarray]] | None, options: dict[str, Any]):
    """All outputs for the parity feeds, concatenated along the batch."""
    collected: dict[str, list[np.ndarray]] = {}
    with get_runtime(runtime)(path, **options) as session:
        for feed in feeds or []:
            for name, value in session.run(feed).items():
                collected.setdefault(name, []).append(np.asarray(value, dtype=np.float32))
    return {name: np.concatenate(parts) for name, parts in collected.items()}


def bf16_variant(fp32: Variant) -> Variant | None:
    """The FP32 file run with OpenVINO's bf16 inference hint, when OpenVINO and the CPU support it."""
    from edgekit.quantize.openvino import bf16_available

    if "openvino" not in RUNTIMES or not bf16_available():
        return None
    fields = {f.name for f in dataclasses.fields(get_runtime("openvino").Options)}
    option = next((name for name in PRECISION_HINT_OPTIONS if name in fields), None)
    if option is None:
        return None
    return Variant(fp32.path, {option: "bf16"}, name="fp32+bf16-hint", precision="bf16", runtimes=("openvino",))
