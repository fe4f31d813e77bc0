"""OpenVINO's per-layer counters: ``ov.properties.enable_profiling(True)`` on a compiled model, then
``InferRequest.get_profiling_info()`` after each run (the counters of the last inference).

Each entry names the layer, its type, the kernel it ran on (``exec_type``: ``brgconv_avx512_f32``,
``jit_avx2_I8``, ``ref_any_f32``: the suffix is the precision it really ran in, ``ref`` a reference
kernel) and whether it ran (fused layers are ``NOT_RUN``). The runtime model's ``originalLayersNames``
says which layers of the read model each executed layer holds, so fused layers map back to ONNX nodes.

The CPU plugin's counters are running means since the compiled model's first inference, in whole
microseconds, not per-run times: each run's time per layer is recovered from the means before and after
it (``RunningMeans``: exact to within (warm-up + runs) µs). Runs are synchronous ``infer()`` calls,
which run in the calling thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, first_line
from edgekit.profile.records import LayerSample, RunSamples, precision_name
from edgekit.profile.timing import Collected, ProfilePlan, paired

TOTAL_SOURCE = "a synchronous infer() timed from Python (OpenVINO reports no whole-run time)"
HINT_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def collect(runtime_cls, path: Path, options: Mapping[str, Any], make_feeds: Callable, plan: ProfilePlan) -> Collected:
    """Profiled runs on a compiled model with profiling on, each right after a run of the same model compiled
    with the same settings without it. Both are synchronous ``infer()`` calls, which run in the calling
    thread: no hand-over to the plugin's stream threads inside the time (bench's async call has one)."""
    import openvino as ov

    from edgekit.runtimes.openvino import shared_core

    with runtime_cls(path, **options) as plain:
        feeds = make_feeds(plain)
        plain.check_feeds(feeds)
        core = shared_core()
        config = plain.compile_config(core)
        tensors = {name: ov.Tensor(np.ascontiguousarray(array), shared_memory=True) for name, array in feeds.items()}
        config = {key: value for key, value in config.items() if key != "CACHE_DIR"}  # both compiled alike
        plain_request = _request(_compile(core, path, plain.device, config), tensors)
        profiled = _compile(core, path, plain.device, {**config, ov.properties.enable_profiling(): True})
        request = _request(profiled, tensors)
        for _ in range(plan.warmup):
            plain_request.infer()
            request.infer()
        counters = RunningMeans(plan.warmup, parse_counters(request.get_profiling_info()) if plan.warmup else ())
        runs = []
        for index in range(plan.runs):
            plain_ms, wall, preempted = paired(plain_request.infer, request.infer, index)
            runs.append(RunSamples(counters.next_run(parse_counters(request.get_profiling_info())), wall, wall,
                                   plain_ms, preempted))
        described = plain.describe()
        originals = original_names(profiled.get_runtime_model())
    return Collected(runs, TOTAL_SOURCE, ov.__version__.split("-")[0], str(described.get("device_name", plain.device)),
                     originals, settings=described, slow_kernels=("ref",),
                     asked=HINT_PRECISIONS.get(str(described.get("inference_precision_hint", "f32")).lower(), ""))


def _compile(core, path: Path, device: str, config: Mapping[str, Any]):
    from edgekit.runtimes.openvino import OPENVINO_NOISE

    try:
        return core.compile_model(str(path), device, dict(config))
    except Exception as exc:
        raise BadInputError(f"openvino cannot load {path}: {first_line(exc, OPENVINO_NOISE)}") from None


def _request(compiled, tensors: Mapping[str, Any]):
    request = compiled.create_infer_request()
    for name, tensor in tensors.items():
        request.set_tensor(name, tensor)
    return request


class RunningMeans:
    """Per-run layer times from counters that are running means over every inference so far (whole µs):
    run n's time is n·mean_n − (n−1)·mean_(n−1), exact to within n µs."""

    def __init__(self, count: int, means: Sequence[LayerSample]) -> None:
        self.count = count
        self.totals = {sample.layer: sample.ms * count for sample in means}

    def next_run(self, means: Sequence[LayerSample]) -> tuple[LayerSample, ...]:
        self.count += 1
        totals = {sample.layer: sample.ms * self.count for sample in means}
        run = tuple(dataclasses.replace(s, ms=max(0.0, totals[s.layer] - self.totals.get(s.layer, 0.0)))
                    for s in means)
        self.totals = totals
        return run


def parse_counters(infos: Sequence[Any]) -> tuple[LayerSample, ...]:
    """The executed layers of one run (``ProfilingInfo`` objects or look-alikes)."""
    samples = []
    for info in infos:
        if not str(info.status).endswith("EXECUTED"):
            continue  # NOT_RUN / OPTIMIZED_OUT: fused into another layer or folded
        seconds = info.real_time.total_seconds() if hasattr(info.real_time, "total_seconds") else info.real_time
        samples.append(LayerSample(info.node_name, info.node_type, float(seconds) * 1000.0, info.exec_type,
                                   kernel_precision(info.exec_type)))
    return tuple(samples)


def kernel_precision(exec_type: str) -> str:
    """'brgconv_avx512_I8' → 'int8', 'jit_avx2_f32' → 'fp32', 'ref_any_bf16' → 'bf16'; '' if unknown."""
    return precision_name(exec_type.rsplit("_", 1)[-1]) if "_" in exec_type else ""


def original_names(runtime_model) -> dict[str, tuple[str, ...]]:
    """Executed layer → the read model's layers it holds (``originalLayersNames``); '' ones left out."""
    names = {}
    for op in runtime_model.get_ordered_ops():
        info = op.get_rt_info()
        if "originalLayersNames" not in info.keys():
            continue
        value = info["originalLayersNames"]
        text = value.astype(str) if hasattr(value, "astype") else str(value)
        names[op.get_friendly_name()] = tuple(part for part in text.split(",") if part)
    return names
