"""Per-layer profile records: raw samples from one runtime's profiler, aggregated over the timed runs.

A profiler hands over, per timed run, the layers it timed (``LayerSample``) and the run's whole time
as the runtime measured it. ``aggregate`` takes the median of each layer over the runs, its share of
the median whole-model time, the layers grouped by op type, and flags layers that ran in another
precision than asked or on a reference (slow) kernel. Sums are of medians, totals medians of the
same profiled runs, so "layers vs whole" compares like with like.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: op types that do the arithmetic a precision choice is about (ONNX, ORT, OpenVINO, TensorRT names)
COMPUTE_OPS = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul", "QLinearConv",
    "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "Convolution", "GroupConvolution",
    "ConvolutionBackpropData", "Deconvolution", "FullyConnected", "Convolution_Grouped",
    "CaskConvolution", "CaskGemmConvolution", "Gemm_MatrixMultiply", "MatrixMultiply", "kgen",
})
#: how each profiler names precisions → edgekit's names
PRECISIONS = {"f32": "fp32", "fp32": "fp32", "float": "fp32", "float32": "fp32", "bf16": "bf16",
              "f16": "fp16", "fp16": "fp16", "float16": "fp16", "half": "fp16", "i8": "int8", "u8": "int8",
              "int8": "int8", "uint8": "int8", "i32": "int32", "int32": "int32", "i64": "int64", "int64": "int64"}


def precision_name(raw: str) -> str:
    """'I8', 'u8', 'uint8', 'f32', 'Float' → 'int8'/'fp32'...; '' when unknown."""
    return PRECISIONS.get(raw.strip().lower(), "")


@dataclass(frozen=True)
class LayerSample:
    """One layer's time in one run, as the runtime reported it."""

    layer: str
    op_type: str
    ms: float
    kernel: str = ""  # exec type / provider / tactic
    precision: str = ""  # the precision it ran in (edgekit names), '' when the runtime does not say


@dataclass(frozen=True)
class RunSamples:
    """One profiled run: its layers and the whole-model time the runtime measured for it."""

    layers: tuple[LayerSample, ...]
    total_ms: float
    wall_ms: float = 0.0  # the call as Python timed it (profiled)
    plain_ms: float = 0.0  # the same call on an unprofiled runtime, timed right before it
    preempted: bool = False  # the calling thread was switched out during the profiled or the plain call


@dataclass(frozen=True)
class LayerTime:
    """One layer aggregated over the runs."""

    layer: str
    op_type: str
    onnx_nodes: tuple[str, ...]  # () where the runtime inserted it (a layout reorder) or it cannot be mapped
    median_ms: float
    share: float  # of the median whole-model time
    runs: int  # runs it was timed in
    kernel: str = ""
    precision: str = ""
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpTypeTime:
    op_type: str
    layers: int
    ms: float
    share: float


@dataclass(frozen=True)
class Profile:
    """Per-layer times of one model on one runtime (``edgekit profile``'s record)."""

    model: str
    model_path: str
    runtime: str
    version: str
    device: str
    asked: str  # precision asked: the model's (int8/fp16) or the runtime's hint
    runs: int  # profiled runs the medians are of
    layers: tuple[LayerTime, ...]
    total_ms: float  # median whole-model time of the profiled runs, as the runtime measured it
    wall_ms: float  # median of the profiled calls as timed from Python
    plain_ms: float | None  # median of the same calls without the profiler (interleaved)
    overhead: float | None  # median of paired per-run ratios profiled wall / plain
    total_source: str = ""  # what total_ms is (ORT's model_run event, the call's wall time...)
    mapping: str = ""  # how layer names were mapped back to ONNX nodes
    unprofiled: tuple[str, ...] = ()  # ONNX nodes with no time of their own (fused, folded, not run)
    preempted: int = 0  # runs whose calling thread was switched out (left out while 3 others remain)
    timed_runs: int = 0  # every profiled run, the left-out ones included
    coverage: float = 0.0  # median over runs of (that run's layer times summed / its whole time)
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def layer_sum_ms(self) -> float:
        return sum(layer.median_ms for layer in self.layers)

    @property
    def outside_ms(self) -> float:
        """Whole-model time not inside any timed layer (the runtime's own scheduling, copies, Python)."""
        return self.total_ms - self.layer_sum_ms


    @property
    def flagged(self) -> tuple[LayerTime, ...]:
        return tuple(layer for layer in self.layers if layer.flags)

    def by_op(self) -> list[OpTypeTime]:
        """Layers grouped by op type, slowest first."""
        groups: dict[str, list[LayerTime]] = {}
        for layer in self.layers:
            groups.setdefault(layer.op_type, []).append(layer)
        rows = [OpTypeTime(op, len(items), sum(i.median_ms for i in items),
                           sum(i.median_ms for i in items) / self.total_ms if self.total_ms > 0 else 0.0)
                for op, items in groups.items()]
        return sorted(rows, key=lambda row: -row.ms)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(layer_sum_ms=self.layer_sum_ms, outside_ms=self.outside_ms,
                    by_op=[dataclasses.asdict(row) for row in self.by_op()])
        return data


def aggregate(runs: Sequence[RunSamples], mapped: dict[str, tuple[str, ...]], asked: str,
              slow_kernels: Sequence[str] = ("ref",)) -> tuple[tuple[LayerTime, ...], dict[str, float]]:
    """(layers in first-seen order, whole-model figures) from the runs. ``mapped``: layer → ONNX nodes;

    A layer timed several times in one run (a runtime that splits it) is summed within the run; a
    layer missing from a run is left out of that run's median, and ``runs`` says how many it was in.
    """
    if not runs:
        raise ValueError("no profiled runs")
    disturbed = sum(run.preempted for run in runs)
    runs = undisturbed(runs)
    per_layer: dict[str, list[float]] = {}
    first: dict[str, LayerSample] = {}
    for run in runs:
        in_run: dict[str, float] = {}
        for sample in run.layers:
            in_run[sample.layer] = in_run.get(sample.layer, 0.0) + sample.ms
            first.setdefault(sample.layer, sample)
        for name, ms in in_run.items():
            per_layer.setdefault(name, []).append(ms)
    totals = {**whole_figures(runs), "disturbed": disturbed}
    layers = []
    for name, times in per_layer.items():
        sample = first[name]
        median = statistics.median(times)
        layers.append(LayerTime(name, sample.op_type, mapped.get(name, ()), median,
                                median / totals["total_ms"] if totals["total_ms"] > 0 else 0.0, len(times),
                                sample.kernel, sample.precision, flags_of(sample, asked, slow_kernels)))
    return tuple(layers), totals


#: fewest undisturbed runs the medians are taken of (with fewer, every run counts)
MIN_UNDISTURBED = 3


def undisturbed(runs: Sequence[RunSamples]) -> list[RunSamples]:
    """The runs no other work preempted while there are at least ``MIN_UNDISTURBED``; else every run."""
    kept = [run for run in runs if not run.preempted]
    return kept if len(kept) >= min(MIN_UNDISTURBED, len(runs)) else list(runs)


def whole_figures(runs: Sequence[RunSamples]) -> dict[str, float]:
    """Medians of the whole-model time, the profiled and the plain wall time, of the paired per-run ratios
    profiled / plain, and of the per-run share of the whole the layers explain. That share is taken run by
    run: a stall (other work on the machine) lands in one layer of one run, so per-layer medians leave it
    out while the median whole keeps a typical one, and their sums need not agree on a busy machine."""
    figures = {"total_ms": statistics.median(run.total_ms for run in runs),
               "wall_ms": statistics.median(run.wall_ms for run in runs), "runs": len(runs),
               "coverage": statistics.median(sum(s.ms for s in run.layers) / run.total_ms if run.total_ms > 0 else 0.0
                                             for run in runs)}
    paired = [run.wall_ms / run.plain_ms for run in runs if run.plain_ms > 0 and run.wall_ms > 0]
    if paired:
        figures["plain_ms"] = statistics.median(run.plain_ms for run in runs)
        figures["overhead"] = statistics.median(paired)
    return figures


def flags_of(sample: LayerSample, asked: str, slow_kernels: Sequence[str]) -> tuple[str, ...]:
    """Why a layer deserves a look: a compute layer in another precision than asked, a reference kernel."""
    flags = []
    if (asked and sample.precision and sample.op_type in COMPUTE_OPS and sample.precision != asked
            and not (asked == "fp32" and sample.precision == "fp32")):
        flags.append(f"ran {sample.precision}, {asked} asked")
    kernel = sample.kernel.lower()
    if any(kernel == slow or kernel.startswith(f"{slow}_") for slow in slow_kernels):
        flags.append(f"slow reference kernel ({sample.kernel})")
    return tuple(flags)
