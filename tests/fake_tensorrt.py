"""FAKES of the ``tensorrt`` module and of libcudart, for tests on machines without a GPU.

Neither TensorRT nor a GPU can exist here, so edgekit's TensorRT code runs against these stand-ins.
They RECORD what edgekit does and ENFORCE the documented rules it must follow; a broken rule
raises ``RuleBroken`` (and is kept in ``FakeCuda.broken``, also for calls made from finalizers):

- CUDA: stream work runs only at ``cudaStreamSynchronize`` (device memory starts as 0xCD garbage, so
  an output read before the sync is wrong); device memory used by two streams with work pending
  on both is a race; device pointers must lie inside live allocations; every allocation and
  stream is counted until freed; each thread has its own current device (0 when it starts).
- TensorRT: one thread at a time in an execution context (``execute_async_v3`` stays inside long
  enough for a second thread to collide); the context's device must be the thread's current
  device; data-dependent output dims stay -1 until the output allocator is told the shape, and
  such outputs need an ``IOutputAllocator``; a strongly typed network takes no FP16/INT8 flag;
  TF32 is on in a new builder config (TensorRT's default) until cleared; the builder records the
  flags an engine was built with.

An engine built from an ONNX file computes with ONNX Runtime on the CPU, so results can be compared
with the real model. Output dims named like an input dim follow it; other unknown output dims are
data-dependent. Here: the module (builder side) and the ``fake_gpu`` fixture; libcudart is in
fake_cuda.py, the engine and execution context in fake_tensorrt_engine.py.
"""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest
from fake_cuda import GARBAGE, FakeCuda, RuleBroken
from fake_tensorrt_engine import _ONNX_TYPES, FakeRuntime, _dims, engine_bytes, nptype

__all__ = ["GARBAGE", "FakeCuda", "RuleBroken", "double_model", "engine_bytes", "fake_gpu", "fake_trt"]
_ENUM = types.SimpleNamespace


# ---- tensorrt: builder side ----------------------------------------------------------------------
def fake_trt(version: str, *, layers=None, half=False, input_shape=(-1, 3, 8, 8), parse_ok=True, build_ok=True,
             timing_ok=(True,), cuda: FakeCuda | None = None):
    """A stand-in for the tensorrt module of ``version``. Builder: TensorRT 11 has no BuilderFlag.FP16/INT8
    (asking raises AttributeError, as the real module does); ``calls`` records flags set, the flags an engine
    was built with (``built_flags``), network flags, profiles and timing caches. With ``layers`` the parser
    invents a network of those layers and builds b"ENGINE"; without, it reads the ONNX file and builds an
    engine that runs it."""
    major = int(version.split(".")[0])
    calls: dict[str, list] = {"flags": [], "cleared": [], "built_flags": [], "network_flags": [], "profiles": [],
                              "timing": []}
    flags = {"TF32": "TF32"} if major >= 11 else {"FP16": "FP16", "INT8": "INT8", "TF32": "TF32"}
    severity = _ENUM(ERROR="ERROR", INTERNAL_ERROR="INTERNAL_ERROR", WARNING="WARNING", INFO="INFO")
    trt = types.ModuleType("tensorrt")
    state = {"logger": None}

    class ILogger:
        Severity = severity

        def __init__(self):
            state["logger"] = self

        def log(self, level, msg):
            pass

    class IOutputAllocator:
        def __init__(self):
            self._base_initialised = True

    def log_error(message: str) -> bool:
        if state["logger"] is not None:
            state["logger"].log("ERROR", message)
        return False

    class Tensor:
        def __init__(self, name, dtype, shape=()):
            self.name, self.dtype, self.shape = name, dtype, shape

    class Layer:
        def __init__(self, kind, dtype):
            self.type, self.num_outputs, self._out = kind, 1, Tensor(kind.lower(), dtype)

        def get_output(self, index):
            return self._out

    class Network:
        def __init__(self, strongly_typed):
            self.strongly_typed = strongly_typed
            self.num_layers, self._layers, self._inputs, self.model = 0, [], [], None

        @property
        def num_inputs(self):
            return len(self._inputs)

        def get_input(self, index):
            return self._inputs[index]

        def get_layer(self, index):
            return self._layers[index]

    class Parser:
        def __init__(self, network, logger):
            self.network, self.logger, self.num_errors = network, logger, 0

        def parse_from_file(self, path):
            if not parse_ok:
                self.num_errors = 2
                return False
            network = self.network
            if layers is not None:
                network._layers = [Layer(kind, "HALF" if half else "FLOAT") for kind in layers]
                network._inputs = [Tensor("input", "HALF" if half else "FLOAT", input_shape)]
            else:
                try:
                    self._read(str(path))
                except Exception as exc:  # noqa: BLE001 - TensorRT's parser answers False, never raises
                    self.num_errors, self.problem = 1, f"cannot read the ONNX file: {exc}"
                    return False
            network.num_layers = len(network._layers)
            return True

        def _read(self, path):
            import onnx

            model = onnx.load(path)
            types_in_graph = {i.data_type for i in model.graph.initializer}
            dtype = "HALF" if 10 in types_in_graph else "FLOAT"
            kinds = {"QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE"}
            self.network._layers = [Layer(kinds.get(n.op_type, n.op_type.upper()), dtype) for n in model.graph.node]
            names = {i.name for i in model.graph.initializer}
            self.network._inputs = [Tensor(i.name, _ONNX_TYPES[i.type.tensor_type.elem_type],
                                           tuple(d if isinstance(d, int) else -1 for d in _dims(i)))
                                    for i in model.graph.input if i.name not in names]
            self.network.model = path

        def get_error(self, index):
            if getattr(self, "problem", None):
                return _ENUM(desc=lambda: self.problem)
            return _ENUM(node_name=lambda: "conv_0", node_operator=lambda: "Conv",
                         desc=lambda: "Assertion failed: bias must be float\nstack...")

    class Cache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"timing:" + self.data

    class Config:
        def __init__(self):
            self._cache, self._answers, self.profiles = None, list(timing_ok), {}
            self.state = {"TF32"}  # TensorRT's default: FP32 layers may use TF32

        def set_flag(self, flag):
            calls["flags"].append(flag)
            self.state.add(flag)

        def clear_flag(self, flag):
            calls["cleared"].append(flag)
            self.state.discard(flag)

        def get_flag(self, flag):
            return flag in self.state

        def set_memory_pool_limit(self, pool, size):
            calls["workspace"] = size

        def add_optimization_profile(self, profile):
            calls["profiles"].append(profile.shapes)
            self.profiles.update(profile.shapes)

        def create_timing_cache(self, data):
            return Cache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            ok = self._answers.pop(0) if self._answers else True
            calls["timing"].append((cache.data, ok))
            self._cache = cache if ok else None
            return ok

        def get_timing_cache(self):
            return self._cache

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, low, opt, high):
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, network_flags):
            calls["network_flags"].append(network_flags)
            return Network(major >= 11 or bool(network_flags & 2))

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls["built_flags"].append(sorted(config.state))
            if network.strongly_typed and config.state & {"FP16", "INT8"}:
                self.logger.log(severity.ERROR, "precision flags (FP16/INT8) are not allowed on a strongly typed "
                                "network")
                return None
            if not build_ok:
                self.logger.log(severity.ERROR, "no kernel for conv_0\ndetails")
                self.logger.log(severity.ERROR, "build failed")
                return None
            if network.model is None:
                return b"ENGINE"
            return engine_bytes(network.model, config.profiles, flags=sorted(config.state))

    trt.__version__ = version
    trt.calls, trt.cuda, trt.log_error = calls, cuda, log_error
    trt.ILogger, trt.IOutputAllocator, trt.Builder, trt.OnnxParser = ILogger, IOutputAllocator, Builder, Parser
    trt.Runtime = lambda logger: FakeRuntime(trt, logger)
    trt.BuilderFlag = _ENUM(**flags)
    trt.NetworkDefinitionCreationFlag = _ENUM(STRONGLY_TYPED=1)
    trt.LayerType = _ENUM(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE", CONVOLUTION="CONVOLUTION")
    trt.DataType = _ENUM(FLOAT="FLOAT", HALF="HALF", INT8="INT8")
    trt.MemoryPoolType = _ENUM(WORKSPACE="WORKSPACE")
    trt.TensorIOMode = _ENUM(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = nptype
    return trt


def double_model(folder, dynamic: bool = False):
    """A tiny ONNX model (not a fake): x[N,4] → y = 2x; with ``dynamic`` also positive = x's entries above 0,
    an output whose length depends on the data (as a detector's boxes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Mul", ["x", "two"], ["y"])]
    inits = [numpy_helper.from_array(np.array(2, np.float32), "two"),
             numpy_helper.from_array(np.array([-1], np.int64), "flat"),
             numpy_helper.from_array(np.array(0, np.float32), "zero")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]
    if dynamic:
        nodes += [helper.make_node("Reshape", ["x", "flat"], ["f"]), helper.make_node("Greater", ["f", "zero"], ["m"]),
                  helper.make_node("NonZero", ["m"], ["i"]), helper.make_node("Squeeze", ["i"], ["s"], axes=[0]),
                  helper.make_node("Gather", ["f", "s"], ["positive"])]
        outputs.append(helper.make_tensor_value_info("positive", TensorProto.FLOAT, [None]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              outputs, inits)
    path = folder / ("dynamic.onnx" if dynamic else "double.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))
    return path


# ---- the fixture ----------------------------------------------------------------------------------
@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """``fake_gpu(version="10.3.0.26", devices=2)`` installs a fake libcudart with ``devices`` GPUs and a fake
    ``tensorrt`` module in sys.modules (edgekit's cache in tmp_path); returns (cuda, trt). At the end no
    rule may have been broken, not even in a finalizer."""
    from edgekit.runtimes import cuda as cuda_module

    made: list[FakeCuda] = []

    def install(version: str = "10.3.0.26", devices: int = 2):
        fake = FakeCuda(devices)
        made.append(fake)
        monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setattr(cuda_module, "runtime_library", lambda: fake)
        monkeypatch.setattr(cuda_module, "gpu_names", lambda: tuple(f"Fake GPU {i}" for i in range(devices)))
        monkeypatch.setattr(cuda_module, "_CURRENT", threading.local())
        trt = fake_trt(version, cuda=fake)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return fake, trt

    yield install
    import gc

    gc.collect()
    for fake in made:
        assert fake.broken == [], fake.broken
