"""The runtime side of the FAKE tensorrt module (tests/fake_tensorrt.py): engine, execution context,
runtime. An engine runs its ONNX model on ONNX Runtime's CPU provider. A context enforces
TensorRT's rules: one thread at a time, the device it was made on, and output allocators for
data-dependent outputs, whose dims stay -1 until the allocator is told the shape. Stream work goes
through the fake libcudart (tests/fake_cuda.py)."""

from __future__ import annotations

import ctypes
import json
import threading
import time

import numpy as np

MAGIC = b"FAKE-TRT-ENGINE\n"


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
