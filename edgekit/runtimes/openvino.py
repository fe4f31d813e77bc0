"""OpenVINO Runtime: reads .onnx directly or OpenVINO IR (.xml + .bin); CPU here, GPU/NPU where present.

Compiled models are kept in OpenVINO's own model cache under edgekit's cache dir, so a
second load of the same model with the same settings skips compilation. OpenVINO keys a cache entry
by the model file alone, so each version of the model's files (an ONNX model's external data, an IR's
.bin) gets a folder of its own: new weights in the same file names are never served from the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, first_line
from edgekit.hashing import files_stamp
from edgekit.paths import cache_dir
from edgekit.runtimes.base import STRING, Availability, Runtime, RuntimeOptions, TensorSpec, import_failure
from edgekit.system import cpu_count

HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
CALLS = ("auto", "sync", "async")
# edgekit precision name → (OpenVINO INFERENCE_PRECISION_HINT, OPTIMIZATION_CAPABILITIES entry)
PRECISIONS = {"f32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "f16": ("f16", "FP16")}
# Device names that are not hardware but OpenVINO's meta-plugins over it.
META_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")


@dataclass(frozen=True)
class OpenVINOOptions(RuntimeOptions):
    """``device``: CPU (default), GPU, NPU, AUTO, ...; ``hint``: latency | throughput;
    ``streams``: number of parallel streams (or "AUTO"); ``threads``: INFERENCE_NUM_THREADS;
    ``precision``: f32 (default, for FP32 parity) | bf16 | f16, checked against the device's
    capabilities; ``cache``: use OpenVINO's compiled-model cache; ``call``: how ``run`` waits
    for a request — sync (``infer()``, cheapest on tiny models), async (``start_async()`` +
    ``wait()``, runs on the plugin's pinned threads: much faster on real CNNs) or auto (time
    both on the first calls and keep the faster)."""

    hint: str = "latency"
    streams: int | str | None = None
    precision: str = "f32"
    cache: bool = True
    call: str = "auto"


# OpenVINO errors start with C++ source locations; the message a user needs comes after them.
OPENVINO_NOISE = ("Exception from", "Check '")


@lru_cache(maxsize=1)
def shared_core():
    """One OpenVINO Core per process: creating it loads the plugins."""
    import openvino as ov

    return ov.Core()


def device_names(core) -> tuple[str, ...]:
    """'CPU: Intel(R) Core ...' for every device OpenVINO finds."""
    found = []
    for device in core.available_devices:
        try:
            found.append(f"{device}: {core.get_property(device, 'FULL_DEVICE_NAME')}")
        except Exception:  # a plugin that cannot describe itself is still listed
            found.append(device)
    return tuple(found)


class OpenVINORuntime(Runtime):
    """OpenVINO Runtime with a pre-created infer request for the benchmark loop."""

    name: ClassVar[str] = "openvino"
    extra: ClassVar[str] = "openvino"
    Options: ClassVar[type[RuntimeOptions]] = OpenVINOOptions
    suffixes: ClassVar[tuple[str, ...]] = (".onnx", ".xml")
    # one infer request per calling thread (RequestPerThread)
    concurrent_runs: ClassVar[bool] = True

    @classmethod
    def probe(cls) -> Availability:
        try:
            import openvino as ov

            core = shared_core()
        except Exception as exc:  # ImportError, or a broken binary wheel / plugin
            return import_failure(cls.name, "openvino", cls.extra, exc)
        version = ov.__version__.split("-")[0]
        try:
            devices = device_names(core)
        except Exception as exc:  # pragma: no cover - plugin discovery failed
            return Availability(cls.name, False, version=version, reason=f"OpenVINO finds no device ({exc})",
                                install=f"pip install 'edgekit[{cls.extra}]'")
        if not devices:
            return Availability(cls.name, False, version=version, reason="OpenVINO finds no device",
                                install=f"pip install 'edgekit[{cls.extra}]'")
        return Availability(cls.name, True, version=version, devices=devices)

    # ---- configuration -----------------------------------------------------
    @property
    def device(self) -> str:
        return (self.options.device or "CPU").upper()

    def compile_config(self, core) -> dict[str, Any]:
        """OpenVINO properties from the options; bad values raise BadInputError before compiling."""
        options = self.options
        _check_device(core, self.device)
        hint = options.hint.lower()
        if hint not in HINTS:
            raise BadInputError(f"openvino hint must be one of {', '.join(HINTS)}, got '{options.hint}'")
        config: dict[str, Any] = {"PERFORMANCE_HINT": HINTS[hint]}
        if options.cache:
            config["CACHE_DIR"] = str(cache_dir("openvino") / files_stamp(self.model_path))
        if options.streams is not None:
            streams = options.streams
            if not (isinstance(streams, int) and streams >= 1) and str(streams).upper() != "AUTO":
                raise BadInputError(f"openvino streams must be a positive integer or AUTO, got '{streams}'")
            config["NUM_STREAMS"] = str(streams).upper()
        if options.threads is not None:  # type and range checked by RuntimeOptions
            config["INFERENCE_NUM_THREADS"] = options.threads
        precision = options.precision.lower()
        if precision not in PRECISIONS:
            raise BadInputError(f"openvino precision must be one of {', '.join(PRECISIONS)}, got '{options.precision}'")
        hint_value, capability = PRECISIONS[precision]
        if self.device.split(":")[0].split(".")[0] not in META_DEVICES:
            capabilities = _capabilities(core, self.device)
            if capabilities and capability not in capabilities:
                raise BadInputError(
                    f"{self.device} cannot run {precision} (it supports {', '.join(sorted(capabilities))})"
                )
        config["INFERENCE_PRECISION_HINT"] = hint_value
        return config

    # ---- lifecycle -----------------------------------------------------------
    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        core = shared_core()
        config = self.compile_config(core)
        if self.model_path.suffix.lower() == ".xml" and not self.model_path.with_suffix(".bin").is_file():
            raise BadInputError(f"OpenVINO IR {self.model_path} "
                                f"has no weights file {self.model_path.with_suffix('.bin').name}")
        _check_format(self.model_path)
        try:
            # Compiling from the path (not a read Model) lets a cache hit skip reading the model too.
            self._compiled = core.compile_model(str(self.model_path), self.device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line C++ context
            raise BadInputError(f"openvino cannot load {self.model_path}: {first_line(exc, OPENVINO_NOISE)}") from None
        input_names, self._output_names = self._io_names(core)
        inputs = {s.name: s for s in (_spec(p, n) for p, n in zip(self._compiled.inputs, input_names))}
        outputs = {s.name: s for s in (_spec(p, n) for p, n in zip(self._compiled.outputs, self._output_names))}
        call = self.options.call.lower()
        if call not in CALLS:
            raise BadInputError(f"openvino call must be one of {', '.join(CALLS)}, got '{self.options.call}'")
        self._requests = RequestPerThread(self._compiled, tuple(inputs.values()), tuple(outputs.values()), call)
        return inputs, outputs

    def _io_names(self, core) -> tuple[list[str], list[str]]:
        """The model's own input/output names. A compiled port can carry several names (an FP16
        model's ``input`` is also ``graph_input_cast_0``); then the read model says which is its own."""
        ports = (self._compiled.inputs, self._compiled.outputs)
        if any(len(port.get_names()) > 1 for group in ports for port in group):
            model = core.read_model(str(self.model_path))
            ports = (model.inputs, model.outputs)
        return ([_port_name(p, i, "input") for i, p in enumerate(ports[0])],
                [_port_name(p, i, "output") for i, p in enumerate(ports[1])])

    def _run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self._requests.run(feeds)

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # What benchmark_app times by default: one pre-created request with its inputs already
        # set (shared memory), started and waited for. start_async + wait runs the request on
        # the plugin's (pinned) stream threads; a synchronous infer() from Python is much slower
        # on small models (measured 2.6 ms vs 0.8 ms for mobilenet_v3_small on 2 cores).
        import openvino as ov

        request = self._compiled.create_infer_request()
        for name, array in feeds.items():
            request.set_tensor(name, ov.Tensor(np.ascontiguousarray(array), shared_memory=True))
        self._bench_request = request  # keep it (and its input buffers) alive while timing
        start, wait = request.start_async, request.wait

        def call() -> object:
            start()
            wait()
            return request

        return call

    def _close(self) -> None:
        for attribute in ("_bench_request", "_requests", "_compiled"):
            if hasattr(self, attribute):
                delattr(self, attribute)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        compiled = getattr(self, "_compiled", None)
        if compiled is None:
            return info
        info["device"] = self.device
        if hasattr(self, "_requests"):
            info["call"] = self._requests.call
        for key in ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT"):
            try:
                value = compiled.get_property(key)
                info[key.lower()] = value.to_string() if hasattr(value, "to_string") else str(value)
            except Exception:  # not every device reports every property
                pass
        used = str(info.get("inference_num_threads", "0"))
        info["threads_used"] = int(used) if used.isdigit() and int(used) > 0 else (self.options.threads or cpu_count())
        try:
            info["device_name"] = shared_core().get_property(self.device, "FULL_DEVICE_NAME")
        except Exception:
            pass
        return info

    def throughput_runner(self, feeds: Mapping[str, np.ndarray], requests: int):
        """An ``AsyncInferQueue`` of ``requests`` infer requests on the compiled model, each holding
        ``feeds`` (shared memory) — what the offline/multi-stream scenarios keep busy. Open the
        runtime with ``hint="throughput"`` for OpenVINO's streams."""
        import openvino as ov

        queue = ov.AsyncInferQueue(self._compiled, requests)
        arrays = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
        for request in queue:
            for name, array in arrays.items():
                request.set_tensor(name, ov.Tensor(array, shared_memory=True))
        self._queue_inputs = arrays  # keep the shared buffers alive as long as the queue
        return queue


class RequestPerThread:
    """``run`` for OpenVINO: one infer request per calling thread, so one compiled model serves
    several threads at once (a shared request raises "Infer Request is busy" or hands one
    thread another's output). Inputs are shared with OpenVINO (no copy; the call is
    synchronous), outputs are copied out so a later call cannot overwrite them."""

    TUNE_CALLS = 8  # per way of calling, when ``call`` is auto
    # infer() only pays off where the hand-over to the plugin's threads (~15 µs) matters; on
    # real CNNs it is several times slower, so a noisy timing must not pick it there.
    SYNC_ONLY_BELOW_NS = 300_000

    def __init__(self, compiled, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], call: str) -> None:
        import openvino as ov

        self._compiled = compiled
        self._tensor = ov.Tensor
        self._infer = _bare_infer()
        self._local = threading.local()
        self._input_names = tuple(spec.name for spec in inputs)
        self._output_names = tuple(spec.name for spec in outputs)
        # Strings and non-tensors go through OpenVINO's own converter; numbers take the fast path.
        self._fast = all(spec.kind == "tensor" and spec.dtype != STRING for spec in (*inputs, *outputs))
        self._sync: bool | None = {"sync": True, "async": False}.get(call)
        self._trials: dict[bool, list[int]] = {True: [], False: []}
        self._lock = threading.Lock()

    def request(self):
        """This thread's infer request (created on its first call)."""
        try:
            return self._local.request
        except AttributeError:
            self._local.request = self._compiled.create_infer_request()
            return self._local.request

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        request = self.request()
        if not self._fast:
            result = request.infer(dict(feeds), share_inputs=False, share_outputs=False)
            return dict(zip(self._output_names, result.to_tuple()))
        tensor = self._tensor
        for index, name in enumerate(self._input_names):
            array = feeds[name]
            flags = array.flags
            if not (flags.c_contiguous and flags.writeable):  # OpenVINO shares only these
                array = np.array(array, order="C")
            request.set_input_tensor(index, tensor(array, shared_memory=True))
        sync = self._sync
        if sync is None:
            self._timed_call(request)
        elif sync:
            self._infer(request)
        else:
            request.start_async()
            request.wait()
        return {name: request.get_output_tensor(index).data.copy() for index, name in enumerate(self._output_names)}

    def _timed_call(self, request) -> None:
        """Alternate the two ways of calling, then keep the one with the lower median time."""
        with self._lock:
            sync = len(self._trials[True]) <= len(self._trials[False])
        start = time.perf_counter_ns()
        if sync:
            self._infer(request)
        else:
            request.start_async()
            request.wait()
        elapsed = time.perf_counter_ns() - start
        with self._lock:
            self._trials[sync].append(elapsed)
            if self._sync is None and min(len(t) for t in self._trials.values()) >= self.TUNE_CALLS:
                sync_ns, async_ns = (float(np.median(self._trials[mode])) for mode in (True, False))
                self._sync = sync_ns <= async_ns and async_ns < self.SYNC_ONLY_BELOW_NS

    @property
    def call(self) -> str:
        """'sync' or 'async' once chosen, 'auto' while still timing both."""
        return {True: "sync", False: "async", None: "auto"}[self._sync]


def _bare_infer() -> Callable[[Any], object]:
    """A synchronous infer on tensors already set. OpenVINO's Python ``infer()`` first runs its
    input dispatcher and wraps the results (~10 µs a call); its compiled base method skips both."""
    try:
        from openvino._pyopenvino import InferRequest as CompiledRequest

        base = CompiledRequest.infer
    except (ImportError, AttributeError):  # another OpenVINO layout: the public call
        return lambda request: request.infer()
    return lambda request: base(request, {}, True, False)  # (inputs, share_outputs, decode_strings)


def _check_device(core, device: str) -> None:
    base = device.split(":")[0].split(".")[0]
    if base in META_DEVICES:
        return
    available = list(core.available_devices)
    if device not in available and base not in {d.split(".")[0] for d in available}:
        raise BadInputError(f"OpenVINO has no device '{device}' here (found: {', '.join(available) or 'none'})")


def _check_format(path) -> None:
    """Reject a file OpenVINO's frontend for its suffix cannot read, before OpenVINO tries every
    other frontend on it (which prints their parse errors to stderr)."""
    from openvino.frontend import FrontEndManager

    framework = "onnx" if path.suffix.lower() == ".onnx" else "ir"
    try:
        supported = FrontEndManager().load_by_framework(framework).supported(str(path))
    except Exception:  # frontend missing from this build: let compile_model report it
        return
    if not supported:
        raise BadInputError(f"openvino cannot load {path}: not a valid {framework.upper()} model")


def _capabilities(core, device: str) -> set[str]:
    try:
        return set(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # a device that does not report capabilities: let OpenVINO decide
        return set()


# OpenVINO element types numpy has no dtype for: named, and not checked by the wrapper.
_NO_NUMPY_TYPE = {"bf16": "bfloat16", "f8e4m3": "float8e4m3", "f8e5m2": "float8e5m2", "nf4": "nf4",
                  "u4": "uint4", "i4": "int4", "u1": "uint1", "f4e2m1": "float4e2m1", "dynamic": "dynamic"}


def _port_name(port, index: int, kind: str) -> str:
    try:
        return port.get_any_name()
    except Exception:  # unnamed port (possible in hand-built IR)
        return f"{kind}_{index}"


def _spec(port, name: str) -> TensorSpec:
    element = port.get_element_type()
    type_name = element.get_type_name()  # "f32", "u16", "bf16", "string", ...
    if type_name == "string":
        dtype = STRING
    elif type_name in _NO_NUMPY_TYPE:  # to_dtype() answers a look-alike (bf16 → float16)
        dtype = _NO_NUMPY_TYPE[type_name]
    else:
        try:
            dtype = np.dtype(element.to_dtype()).name
        except Exception:  # dynamic or exotic element type: passed on unchecked
            dtype = str(element)
    shape = tuple(dim.get_length() if dim.is_static else None for dim in port.get_partial_shape())
    return TensorSpec(name, dtype, shape)


