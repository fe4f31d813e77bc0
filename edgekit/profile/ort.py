"""ONNX Runtime's per-node profile: ``SessionOptions.enable_profiling``, ``end_profiling`` and its trace.

The trace (Chrome trace JSON) has one ``Node`` event per executed kernel (``NAME_kernel_time``, with
``op_name``, ``provider`` and the input types) and one ``model_run`` event per run; a node event
belongs to the run whose interval holds it. Names are those of ORT's optimized graph: fused nodes
keep the first node's name with a suffix (``conv1_relu_nchwc``), layout reorders ORT inserts have no
ONNX node, and a subgraph handed to TensorRT or another provider is one event.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, first_line
from edgekit.profile.records import LayerSample, RunSamples, precision_name
from edgekit.profile.timing import Collected, ProfilePlan, paired

KERNEL_SUFFIX = "_kernel_time"
TOTAL_SOURCE = "ORT's model_run events (the session's own time per run)"


def collect(runtime_cls, path: Path, options: Mapping[str, Any], make_feeds: Callable, plan: ProfilePlan) -> Collected:
    """Profiled runs of ``path`` on an ONNX Runtime runtime, each right after an unprofiled one."""
    import onnxruntime as ort

    with runtime_cls(path, **options) as plain, tempfile.TemporaryDirectory(prefix="edgekit-profile-") as folder:
        feeds = make_feeds(plain)
        call = plain.prepare(feeds)
        session = profiled_session(ort, plain, Path(folder))
        profiled = lambda: session.run(None, feeds)  # noqa: E731 - the same call the plain runtime times
        for _ in range(plan.warmup):
            call()
            profiled()
        pairs = [paired(call, profiled, index) for index in range(plan.runs)]
        trace = json.loads(Path(session.end_profiling()).read_text())
        described = plain.describe()
    runs = parse_trace(trace)[plan.warmup:]
    if len(runs) != plan.runs:
        raise BadInputError(f"ONNX Runtime's profile holds {len(runs) + plan.warmup} runs, expected "
                            f"{plan.runs + plan.warmup}: cannot tell the timed runs apart")
    runs = [RunSamples(run.layers, run.total_ms, wall, plain_ms, preempted)
            for run, (plain_ms, wall, preempted) in zip(runs, pairs)]
    return Collected(runs, TOTAL_SOURCE, ort.__version__, ", ".join(described.get("providers", [])),
                     notes=notes_for(runs), settings=described)


def profiled_session(ort, runtime, folder: Path):
    """An InferenceSession with the runtime's settings and providers, profiling into ``folder``."""
    options = session_options(ort, runtime.options)
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "ort-profile")
    try:
        return ort.InferenceSession(str(runtime.model_path), options, providers=runtime.execution_providers())
    except Exception as exc:  # ORT's own error types
        raise BadInputError(f"onnxruntime cannot load {runtime.model_path}: {first_line(exc)}") from None


def session_options(ort, options) -> Any:
    """SessionOptions as edgekit.runtimes.onnxruntime sets them (optimization level, threads, spinning)."""
    made = ort.SessionOptions()
    made.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.graph_optimization]
    made.log_severity_level = 3
    if options.threads:
        made.intra_op_num_threads = options.threads
        made.inter_op_num_threads = 1
    if options.spinning is not None:
        made.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
    return made


def parse_trace(events: Sequence[Mapping[str, Any]]) -> list[RunSamples]:
    """Runs in order, each with its node events (durations in ms) and its model_run duration."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    nodes = sorted((e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith(KERNEL_SUFFIX)),
                   key=lambda e: e["ts"])
    parsed, index = [], 0
    for run in runs:
        start, end = run["ts"], run["ts"] + run["dur"]
        layers = []
        while index < len(nodes) and nodes[index]["ts"] < start:
            index += 1  # a node outside every run (none expected)
        while index < len(nodes) and nodes[index]["ts"] <= end:
            layers.append(sample_of(nodes[index]))
            index += 1
        parsed.append(RunSamples(tuple(layers), run["dur"] / 1000.0))
    return parsed


def sample_of(event: Mapping[str, Any]) -> LayerSample:
    """One node event: its name without the suffix, op, provider and the type of its first input."""
    args = event.get("args", {}) or {}
    name = str(event["name"])[: -len(KERNEL_SUFFIX)]
    provider = str(args.get("provider", "")).replace("ExecutionProvider", "")
    types = args.get("input_type_shape") or [{}]
    first = next(iter(types[0]), "") if isinstance(types[0], dict) else ""
    return LayerSample(name, str(args.get("op_name", "")), float(event.get("dur", 0)) / 1000.0, provider,
                       precision_name(str(first)))


def notes_for(runs: Sequence[RunSamples]) -> tuple[str, ...]:
    """Layers that are whole subgraphs handed to another provider cannot be split into nodes."""
    kernels = {s.layer for run in runs for s in run.layers if "TRTKernel" in s.layer or "_partition" in s.layer}
    if kernels:
        return (f"{len(kernels)} layer(s) are subgraphs run by another execution provider as one kernel "
                "(e.g. TensorRT): their nodes cannot be timed one by one",)
    return ()
