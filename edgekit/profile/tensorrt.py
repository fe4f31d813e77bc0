"""TensorRT's per-layer times: an ``IProfiler`` on an execution context of its own.

``context.profiler`` receives ``report_layer_time(layer_name, ms)`` for every layer of a run when
``context.report_to_profiler()`` is called after the stream is synchronized (``enqueue_emits_profile``
off, as NVIDIA documents for asynchronous execution). TensorRT names fused layers by their parts
(``conv1 + relu1``), inserts reformatting layers (``Reformatting CopyNode for ...``) and may run a whole
region as one Myelin layer (``{ForeignNode[a...b]}``), whose nodes cannot be timed one by one. The
engine inspector (``get_engine_information``, JSON) tells the precision each layer ran in, where the
engine was built with detailed profiling verbosity; otherwise precision is left blank.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.profile.records import LayerSample, RunSamples
from edgekit.profile.timing import Collected, ProfilePlan, paired

TOTAL_SOURCE = "execute_async_v3 + stream synchronize, timed from Python"
FOREIGN = "ForeignNode["
DATATYPES = (("int8", "int8"), ("fp16", "fp16"), ("half", "fp16"), ("bf16", "bf16"), ("fp32", "fp32"),
             ("float", "fp32"), ("int32", "int32"))
_PROFILERS: dict[int, type] = {}


def layer_profiler(trt: Any):
    """A new profiler collecting (layer, ms) per run: ``end_run()`` closes the current run."""
    kind = _PROFILERS.get(id(trt))
    if kind is None:
        kind = _PROFILERS[id(trt)] = _profiler_class(trt)
    return kind()


def _profiler_class(trt: Any) -> type:
    class LayerProfiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.runs: list[list[tuple[str, float]]] = []
            self.current: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name, ms):
            self.current.append((str(layer_name), float(ms)))

        def end_run(self) -> None:
            self.runs.append(self.current)
            self.current = []

    return LayerProfiler


def collect(runtime_cls, path: Path, options: Mapping[str, Any], make_feeds: Callable, plan: ProfilePlan) -> Collected:
    """Profiled runs on a slot (context, stream, buffers) of its own, each right after a plain run."""
    with runtime_cls(path, **options) as plain:
        feeds = {name: np.ascontiguousarray(a) for name, a in make_feeds(plain).items()}
        call = plain.prepare(feeds)
        trt, engine = plain._trt, plain._engine  # the runner's engine: the profile times what bench times
        slot = plain._new_slot()
        try:
            profiler = layer_profiler(trt)
            slot.context.profiler = profiler
            slot.context.enqueue_emits_profile = False
            slot.bind(feeds)

            def profiled() -> None:
                slot.execute()
                slot.stream.synchronize()

            timed = run_pairs(call, profiled, slot.context, profiler, plan)
        finally:
            slot.close()
        layers = engine_layers(trt, engine)
        described = plain.describe()
    runs = [RunSamples(samples_of(run, layers), wall, wall, plain_ms, preempted)
            for run, (wall, plain_ms, preempted) in zip(profiler.runs[plan.warmup:], timed)]
    return Collected(runs, TOTAL_SOURCE, trt.__version__, str(described.get("device_name", "")),
                     {name: split_layer(name) for name in {s.layer for r in runs for s in r.layers}},
                     notes=notes_for(runs, layers), settings=described,
                     asked="fp16" if getattr(plain.options, "fp16", False) else "")


def run_pairs(call, profiled, context, profiler, plan: ProfilePlan) -> list[tuple[float, float, bool]]:
    """Warm-up, then timed pairs (profiled ms, plain ms, preempted); each profiled run is reported to the
    profiler after it is timed."""
    timed = []
    for index in range(plan.warmup + plan.runs):
        plain_ms, wall, preempted = paired(call, profiled, index)
        context.report_to_profiler()
        profiler.end_run()
        if index >= plan.warmup:
            timed.append((wall, plain_ms, preempted))
    return timed


def engine_layers(trt: Any, engine: Any) -> dict[str, dict[str, Any]]:
    """Layer name → the inspector's JSON for it ({} when the engine was built without layer detail)."""
    try:
        inspector = engine.create_engine_inspector()
        text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    except Exception:  # an older TensorRT, or a build without inspection
        return {}
    return parse_engine_information(text)


def parse_engine_information(text: str) -> dict[str, dict[str, Any]]:
    """The inspector's JSON: {'Layers': [names] or [{'Name': ..., 'LayerType': ..., 'Outputs': ...}]}."""
    try:
        layers = json.loads(text).get("Layers", [])
    except (ValueError, AttributeError):
        return {}
    return {layer["Name"]: layer for layer in layers if isinstance(layer, dict) and "Name" in layer}


def samples_of(run: Sequence[tuple[str, float]], layers: Mapping[str, Mapping[str, Any]]) -> tuple[LayerSample, ...]:
    """One run's (layer, ms) with each layer's type, tactic and output precision where the engine says."""
    samples = []
    for name, ms in run:
        info = layers.get(name, {})
        samples.append(LayerSample(name, str(info.get("LayerType", "") or layer_kind(name)), ms,
                                   str(info.get("TacticName", "")), layer_precision(info)))
    return tuple(samples)


def layer_precision(info: Mapping[str, Any]) -> str:
    """'int8', 'fp16', 'fp32'... from the first output's 'Format/Datatype' ('Row major linear FP32')."""
    outputs = info.get("Outputs") or []
    text = str(outputs[0].get("Format/Datatype", "")).lower() if outputs and isinstance(outputs[0], dict) else ""
    return next((name for key, name in DATATYPES if key in text), "")


def layer_kind(name: str) -> str:
    """A type for a layer the inspector did not describe, from its name."""
    if name.startswith("Reformatting CopyNode"):
        return "Reformat"
    if FOREIGN in name:
        return "Myelin"
    return ""


def split_layer(name: str) -> tuple[str, ...]:
    """The ONNX-side names a TensorRT layer is made of: 'a + b' → (a, b); none for reformatting and Myelin
    regions (their nodes are not named one by one)."""
    if name.startswith("Reformatting CopyNode") or FOREIGN in name:
        return ()
    parts = []
    for part in name.split(" + "):
        part = part.strip()
        if part.startswith("PWN("):  # a pointwise fusion: PWN(a, PWN(b, c))
            parts += [p.strip() for p in part.replace("PWN(", "").replace(")", "").split(",") if p.strip()]
        else:
            parts.append(part)
    return tuple(parts)


def notes_for(runs: Sequence[RunSamples], layers: Mapping[str, Any]) -> tuple[str, ...]:
    notes = []
    regions = {s.layer for run in runs for s in run.layers if FOREIGN in s.layer}
    if regions:
        notes.append(f"{len(regions)} layer(s) are Myelin regions (ForeignNode): TensorRT runs their nodes as "
                     "one kernel, so they cannot be timed one by one")
    if not layers:
        notes.append("the engine has no layer detail (built without ProfilingVerbosity.DETAILED): precision "
                     "per layer is not known")
    return tuple(notes)
