"""Inference backends by name. Listing names imports nothing; ``get_runtime`` imports one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.registry import Registry
from edgekit.runtimes.base import Availability, Runtime, RuntimeOptions, TensorSpec

RUNTIMES: Registry[type[Runtime]] = Registry("runtime", entry_point_group="edgekit.runtimes")
RUNTIMES.add("ort-cpu", "edgekit.runtimes.onnxruntime:OrtCpuRuntime", aliases=("ort", "onnxruntime", "cpu"))
RUNTIMES.add("openvino", "edgekit.runtimes.openvino:OpenVINORuntime", aliases=("ov",))
RUNTIMES.add("ort-cuda", "edgekit.runtimes.onnxruntime_gpu:OrtCudaRuntime")
RUNTIMES.add("ort-trt", "edgekit.runtimes.onnxruntime_gpu:OrtTrtRuntime")
RUNTIMES.add("trt", "edgekit.runtimes.tensorrt:TensorRTRuntime", aliases=("tensorrt",))


def get_runtime(name: str) -> type[Runtime]:
    """The runtime class registered as ``name`` (aliases and typos handled)."""
    return RUNTIMES.get(name)


def open_runtime(name: str, model: str | Path, **options: Any) -> Runtime:
    """Create and open runtime ``name`` on ``model``."""
    return get_runtime(name)(model, **options).open()


def probe_all() -> list[Availability]:
    """Availability of every registered runtime (imports each backend module)."""
    return [get_runtime(name).probe() for name in RUNTIMES.names()]


__all__ = ["RUNTIMES", "Availability", "Runtime", "RuntimeOptions", "TensorSpec",
           "get_runtime", "open_runtime", "probe_all"]
