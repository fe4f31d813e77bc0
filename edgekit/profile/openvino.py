"""OpenVINO's per-layer counters: ``ov.properties.enable_profiling(True)`` on a compiled model, then
``InferRequest.get_profiling_info()`` after each run (the counters of the last inference).

Each entry names the layer, its type, the kernel it ran on (``exec_type``: ``brgconv_avx512_f32``,
``jit_avx2_I8``, ``ref_any_f32``: the suffix is the precision it really ran in, ``ref`` a reference
kernel) and whether it ran (fused layers are ``NOT_RUN``). The runtime model's ``originalLayersNames``
says which layers of the read model each executed layer holds, so fused layers map back to ONNX nodes.

The CPU plugin's counters are running means since the request's first inference, not per-run times:
an OpenVINO profile gives each layer's mean over the timed runs (and the whole call's mean beside it),
not a median.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, first_line
from edgekit.profile.records import LayerSample, RunSamples, precision_name
from edgekit.profile.timing import Collected, ProfilePlan, timed_ms

TOTAL_SOURCE = "the request's start_async + wait, timed from Python (OpenVINO reports no whole-run time)"
HINT_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def collect(runtime_cls, path: Path, options: Mapping[str, Any], make_feeds: Callable, plan: ProfilePlan) -> Collected:
    """Profiled runs on a second compiled model with profiling on, each right after a plain run."""
    import openvino as ov

    from edgekit.runtimes.openvino import OPENVINO_NOISE, _core

    with runtime_cls(path, **options) as plain:
        feeds = make_feeds(plain)
        call = plain.prepare(feeds)
        core = _core()
        config = {key: value for key, value in plain.compile_config(core).items() if key != "CACHE_DIR"}
        config[ov.properties.enable_profiling()] = True
        try:
            compiled = core.compile_model(str(path), plain.device, config)
        except Exception as exc:
            raise BadInputError(f"openvino cannot load {path}: {first_line(exc, OPENVINO_NOISE)}") from None
        request = compiled.create_infer_request()
        for name, array in feeds.items():
            request.set_tensor(name, ov.Tensor(np.ascontiguousarray(array), shared_memory=True))

        def profiled() -> None:
            request.start_async()
            request.wait()

        for _ in range(plan.warmup):
            call()
            profiled()
        before = parse_counters(request.get_profiling_info())
        pairs = [(timed_ms(call), timed_ms(profiled)) for _ in range(plan.runs)]
        layers = timed_means(before, parse_counters(request.get_profiling_info()), plan)
        runs = [RunSamples(layers, wall, wall, plain_ms) for plain_ms, wall in pairs]
        described = plain.describe()
        originals = original_names(compiled.get_runtime_model())
    return Collected(runs, TOTAL_SOURCE, ov.__version__.split("-")[0], str(described.get("device_name", plain.device)),
                     originals, settings=described, slow_kernels=("ref",),
                     asked=HINT_PRECISIONS.get(str(described.get("inference_precision_hint", "f32")).lower(), ""),
                     statistic="mean")


def timed_means(before: Sequence[LayerSample], after: Sequence[LayerSample],
                plan: ProfilePlan) -> tuple[LayerSample, ...]:
    """Each layer's mean over the timed runs alone: the CPU plugin's counters are running means since the
    first inference (whole microseconds), so the warm-up's share is taken out of the final means."""
    warm = {sample.layer: sample.ms for sample in before}
    total = plan.warmup + plan.runs
    return tuple(dataclasses.replace(s, ms=max(0.0, (s.ms * total - warm.get(s.layer, 0.0) * plan.warmup) / plan.runs))
                 for s in after)


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
