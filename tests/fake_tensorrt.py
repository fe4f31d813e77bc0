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

An engine built from an ONNX file computes with ONNX Runtime on the CPU (``engine="onnx"``), so
results can be compared with the real model. Output dims named like an input dim follow it; other
unknown output dims are data-dependent.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import time
import types

import numpy as np
import pytest

MAGIC = b"FAKE-TRT-ENGINE\n"
_ENUM = types.SimpleNamespace
GARBAGE = 0xCD
H2D, D2H = 1, 2


class RuleBroken(AssertionError):
    """edgekit broke a rule of CUDA or TensorRT that the real thing would punish (a crash or wrong data)."""


def _value(pointer) -> int:
    if isinstance(pointer, ctypes.c_void_p):
        return pointer.value or 0
    return int(pointer or 0)


# ---- libcudart ------------------------------------------------------------------------------------
class FakeStream:
    def __init__(self, device: int) -> None:
        self.device = device
        self.pending: list[tuple[object, frozenset[int]]] = []  # (work, device allocations it touches)


class FakeCuda:
    """The libcudart calls edgekit makes (same names and argument conventions), over host memory."""

    def __init__(self, devices: int = 2) -> None:
        self.devices = devices
        self.lock = threading.RLock()
        self.memory: dict[int, tuple[np.ndarray, str]] = {}  # base -> (bytes, "device" | "pinned")
        self.streams: dict[int, FakeStream] = {}
        self.copies: list[tuple[str, str, int]] = []  # ("h2d" | "d2h", "pinned" | "pageable", nbytes)
        self.broken: list[str] = []
        self.synchronized = 0
        self._current = threading.local()
        self._next_stream = 0x5000

    # ---- rules
    def refuse(self, message: str) -> None:
        self.broken.append(message)
        raise RuleBroken(message)

    def current_device(self) -> int:
        return getattr(self._current, "device", 0)

    def allocation(self, address: int, nbytes: int, kind: str = "device") -> tuple[int, np.ndarray] | None:
        with self.lock:
            for base, (data, what) in self.memory.items():
                if what == kind and base <= address and address + nbytes <= base + data.nbytes:
                    return base, data
        return None

    def _device_range(self, address: int, nbytes: int) -> int:
        found = self.allocation(address, nbytes)
        if found is None:
            self.refuse(f"device address {address:#x}+{nbytes} is not inside a live cudaMalloc allocation")
        return found[0]

    def _host_kind(self, address: int, nbytes: int) -> str:
        return "pinned" if self.allocation(address, nbytes, "pinned") is not None else "pageable"

    def enqueue(self, handle: int, work, touches: set[int]) -> None:
        """Queue ``work`` on a stream; device memory with work pending on another stream is a race."""
        with self.lock:
            stream = self._stream(handle)
            for other in self.streams.values():
                if other is not stream and any(touches & t for _, t in other.pending):
                    self.refuse("device memory used by two streams with work pending on both (a race)")
            stream.pending.append((work, frozenset(touches)))

    def flush(self, handle: int) -> None:
        with self.lock:
            stream = self._stream(handle)
            work, stream.pending = stream.pending, []
        for job, _ in work:
            job()

    def flush_all(self) -> None:
        for handle in list(self.streams):
            self.flush(handle)

    def _stream(self, handle: int) -> FakeStream:
        stream = self.streams.get(_value(handle))
        if stream is None:
            self.refuse(f"stream {_value(handle):#x} does not exist (destroyed, or never created)")
        return stream

    def live(self) -> dict[str, int]:
        """What is still allocated: device and pinned allocations, streams."""
        with self.lock:
            kinds = [what for _, what in self.memory.values()]
            return {"device": kinds.count("device"), "pinned": kinds.count("pinned"), "streams": len(self.streams)}

    def idle(self) -> bool:
        return not any(stream.pending for stream in self.streams.values())

    # ---- the library's functions
    def cudaSetDevice(self, device):
        if not 0 <= device < self.devices:
            return 101  # cudaErrorInvalidDevice
        self._current.device = device
        return 0

    def cudaMalloc(self, reference, size):
        return self._allocate(reference, size, "device")

    def cudaHostAlloc(self, reference, size, flags):
        return self._allocate(reference, size, "pinned")

    def _allocate(self, reference, size, kind):
        data = np.full(int(size), GARBAGE if kind == "device" else 0, np.uint8)
        with self.lock:
            self.memory[data.ctypes.data] = (data, kind)
        reference._obj.value = data.ctypes.data
        return 0

    def cudaFree(self, pointer):
        self.flush_all()  # cudaFree waits for the device
        return self._free(pointer, "device")

    def cudaFreeHost(self, pointer):
        self.flush_all()
        return self._free(pointer, "pinned")

    def _free(self, pointer, kind):
        with self.lock:
            entry = self.memory.get(_value(pointer))
            if entry is None or entry[1] != kind:
                self.refuse(f"free of {_value(pointer):#x}, which is not a live {kind} allocation")
            del self.memory[_value(pointer)]
        return 0

    def cudaMemcpy(self, destination, source, nbytes, kind):
        self.flush_all()  # the legacy default stream waits for every blocking stream
        self._copy(_value(destination), _value(source), nbytes, kind)()
        return 0

    def cudaMemcpyAsync(self, destination, source, nbytes, kind, stream):
        destination, source = _value(destination), _value(source)
        device = destination if kind == H2D else source
        base = self._device_range(device, nbytes)
        self.enqueue(stream, self._copy(destination, source, nbytes, kind), {base})
        return 0

    def _copy(self, destination: int, source: int, nbytes: int, kind: int):
        host = source if kind == H2D else destination
        self._device_range(destination if kind == H2D else source, nbytes)
        self.copies.append(("h2d" if kind == H2D else "d2h", self._host_kind(host, nbytes), nbytes))
        return lambda: ctypes.memmove(destination, source, nbytes)

    def cudaStreamCreate(self, reference):
        with self.lock:
            self._next_stream += 0x10
            self.streams[self._next_stream] = FakeStream(self.current_device())
            reference._obj.value = self._next_stream
        return 0

    def cudaStreamDestroy(self, pointer):
        self.flush(pointer)  # queued work still completes
        with self.lock:
            del self.streams[_value(pointer)]
        return 0

    def cudaStreamSynchronize(self, pointer):
        self.flush(pointer)
        self.synchronized += 1
        return 0

    def cudaRuntimeGetVersion(self, reference):
        reference._obj.value = 12060
        return 0

    def cudaGetLastError(self):
        return 0

    def cudaGetErrorString(self, status):
        return {101: b"invalid device ordinal"}.get(status, b"unknown error")


# ---- tensorrt: runtime side ----------------------------------------------------------------------
_ONNX_TYPES = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 16: "BF16"}
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
          "BOOL": np.bool_}


def nptype(dtype):
    if dtype not in _NUMPY:
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {dtype}")
    return _NUMPY[dtype]


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


class FakeEngine:
    """An engine that computes its ONNX model with ONNX Runtime's CPU provider."""

    def __init__(self, trt, header: dict, model_bytes: bytes) -> None:
        import onnx
        import onnxruntime as ort

        self.trt, self.header = trt, header
        model = onnx.load_from_string(model_bytes)
        self.session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        self.tensors: dict[str, dict] = {}
        for mode, items in (("INPUT", model.graph.input), ("OUTPUT", model.graph.output)):
            for item in items:
                self.tensors[item.name] = {"mode": mode, "dims": _dims(item),
                                           "dtype": _ONNX_TYPES[item.type.tensor_type.elem_type]}
        self.names = list(self.tensors)
        self.num_io_tensors = len(self.names)
        self.contexts = []

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return self.tensors[name]["mode"]

    def get_tensor_dtype(self, name):
        return self.tensors[name]["dtype"]

    def get_tensor_shape(self, name):
        return tuple(d if isinstance(d, int) else -1 for d in self.tensors[name]["dims"])

    def get_tensor_profile_shape(self, name, profile):
        shapes = self.header["profiles"].get(name)
        if shapes is None:
            raise RuntimeError(f"no profile for {name}")
        return tuple(tuple(s) for s in shapes)

    def create_execution_context(self):
        context = FakeContext(self)
        self.contexts.append(context)
        return context


class FakeContext:
    """An IExecutionContext: one thread at a time, on the device it was made on."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.cuda = engine, engine.trt.cuda
        self.device = self.cuda.current_device()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.allocators: dict[str, object] = {}
        self.told: dict[str, tuple[int, ...]] = {}
        self.inside: int | None = None  # thread in execute_async_v3
        self.threads: set[int] = set()
        self.runs = 0

    def _check_thread(self, what: str) -> None:
        me = threading.get_ident()
        if self.inside is not None and self.inside != me:
            self.cuda.refuse(f"two threads use one execution context at once ({what} while another thread "
                             "is inside execute_async_v3)")
        if self.cuda.current_device() != self.device:
            self.cuda.refuse(f"execution context of cuda:{self.device} used while this thread's current device "
                             f"is cuda:{self.cuda.current_device()} (cudaSetDevice in every thread)")

    def set_input_shape(self, name, shape):
        self._check_thread("set_input_shape")
        dims = self.engine.tensors[name]["dims"]
        profile = self.engine.header["profiles"].get(name)
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
            self.engine.trt.log_error(f"shape {shape} does not match {name}'s dims {dims}")
            return False
        if profile and not profile[0][0] <= shape[0] <= profile[2][0]:
            self.engine.trt.log_error(f"batch {shape[0]} outside the profile of {name}")
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name):
        self._check_thread("get_tensor_shape")
        tensor = self.engine.tensors[name]
        if tensor["mode"] == "INPUT":
            return self.shapes.get(name, self.engine.get_tensor_shape(name))
        if name in self.told:
            return self.told[name]
        return tuple(self._resolve(d) for d in tensor["dims"])

    def _resolve(self, dim) -> int:
        if isinstance(dim, int):
            return dim
        for name, tensor in self.engine.tensors.items():
            if tensor["mode"] == "INPUT" and dim is not None and dim in tensor["dims"] and name in self.shapes:
                return self.shapes[name][tensor["dims"].index(dim)]
        return -1  # data-dependent: -1 until the output allocator is told

    def set_tensor_address(self, name, address):
        self._check_thread("set_tensor_address")
        self.addresses[name] = int(address)
        return True

    def set_output_allocator(self, name, allocator):
        self._check_thread("set_output_allocator")
        if not getattr(allocator, "_base_initialised", False):
            raise TypeError("IOutputAllocator.__init__() must be called (trt.IOutputAllocator.__init__(self))")
        self.allocators[name] = allocator
        return True

    def execute_async_v3(self, stream_handle):
        self._check_thread("execute_async_v3")
        stream = self.cuda._stream(stream_handle)
        if stream.device != self.device:
            self.cuda.refuse(f"stream of cuda:{stream.device} given to a context of cuda:{self.device}")
        self.inside = threading.get_ident()
        try:
            ok = self._enqueue(int(stream_handle))
            time.sleep(0.002)  # the GIL is released here, as in the real call: a second thread may enter
        finally:
            self.inside = None
        self.threads.add(threading.get_ident())
        self.runs += 1
        return ok

    def _enqueue(self, handle: int) -> bool:
        trt, feeds, touches = self.engine.trt, {}, set()
        self.told = {}
        for name, tensor in self.engine.tensors.items():
            if tensor["mode"] != "INPUT":
                continue
            shape = self.shapes.get(name)
            if shape is None:
                return trt.log_error(f"input shape of {name} not set")
            dtype = np.dtype(nptype(tensor["dtype"]))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            base = self._address(name, nbytes)
            touches.add(base)
            feeds[name] = (self.addresses[name], dtype, shape, nbytes)
        outputs = [name for name, t in self.engine.tensors.items() if t["mode"] == "OUTPUT"]
        dynamic = [name for name in outputs if -1 in self.get_tensor_shape(name)]
        for name in dynamic:
            if name not in self.allocators:
                return trt.log_error(f"output {name} has a data-dependent shape: set an IOutputAllocator")
        static = [name for name in outputs if name not in dynamic]
        for name in static:
            dtype = np.dtype(nptype(self.engine.tensors[name]["dtype"]))
            touches.add(self._address(name, int(np.prod(self.get_tensor_shape(name))) * dtype.itemsize))

        def compute() -> dict[str, np.ndarray]:
            arrays = {name: np.frombuffer(ctypes.string_at(address, nbytes), dtype).reshape(shape)
                      for name, (address, dtype, shape, nbytes) in feeds.items()}
            return dict(zip(outputs, self.engine.session.run(outputs, arrays)))

        def write(results: dict[str, np.ndarray], targets: dict[str, int]) -> None:
            for name, target in targets.items():
                data = np.ascontiguousarray(results[name])
                ctypes.memmove(target, data.ctypes.data, data.nbytes)

        if not dynamic:  # lazy: the inputs are read when the stream runs
            targets = {name: self.addresses[name] for name in static}
            self.cuda.enqueue(handle, lambda: write(compute(), targets), touches)
            return True
        self.cuda.flush(handle)  # TensorRT waits for the data to learn data-dependent sizes
        results, targets = compute(), {name: self.addresses[name] for name in static}
        for name in dynamic:
            allocator, data = self.allocators[name], results[name]
            realloc = getattr(allocator, "reallocate_output_async", None)
            address = (realloc(name, 0, data.nbytes, 256, handle) if realloc is not None
                       else allocator.reallocate_output(name, 0, data.nbytes, 256))
            if not address:
                return trt.log_error(f"the output allocator gave no memory for {name}")
            touches.add(self.cuda._device_range(int(address), data.nbytes))
            targets[name] = int(address)
            self.told[name] = tuple(data.shape)
            allocator.notify_shape(name, tuple(data.shape))
        self.cuda.enqueue(handle, lambda: write(results, targets), touches)
        return True

    def _address(self, name: str, nbytes: int) -> int:
        if name not in self.addresses:
            self.cuda.refuse(f"no address set for tensor {name}")
        return self.cuda._device_range(self.addresses[name], nbytes)


class FakeRuntime:
    def __init__(self, trt, logger) -> None:
        self.trt, self.logger = trt, logger

    def deserialize_cuda_engine(self, data):
        data = bytes(data)
        if not data.startswith(MAGIC):
            self.logger.log("ERROR", "The engine plan file is not compatible with this version of TensorRT")
            return None
        header, model = data[len(MAGIC):].split(b"\n", 1)
        return FakeEngine(self.trt, json.loads(header), model)


def engine_bytes(onnx_path, profiles: dict | None = None, **header) -> bytes:
    """A fake serialized engine for ``onnx_path`` (what the fake builder writes)."""
    with open(onnx_path, "rb") as handle:
        model = handle.read()
    return MAGIC + json.dumps({"profiles": profiles or {}, **header}).encode() + b"\n" + model


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
