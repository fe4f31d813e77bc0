"""Native TensorRT (10.x and 11 Python API): the runner half of the loader/runner split.

Engines come from ``tensorrt_build.build_engine`` (the one builder, shared with the quantizer),
cached under edgekit's cache dir keyed by (model with its external data, build spec, TensorRT
version, GPU); a timing cache per (TensorRT version, GPU) speeds up rebuilds. CUDA is driven
through edgekit.runtimes.cuda (ctypes), so neither torch nor pycuda is needed. Each inference in
flight has its own execution context, stream and buffers (runtimes/tensorrt_exec.py): ``run`` one,
serialized, and every prepared call (the benchmark's concurrent requests) one of its own.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.fileio import atomic_path
from edgekit.meta import ENGINE_SUFFIXES
from edgekit.paths import cache_dir
from edgekit.runtimes.base import Availability, Runtime, RuntimeOptions, TensorSpec, import_failure
from edgekit.runtimes.tensorrt_build import BuildSpec, check_batches

#: on a Jetson, TensorRT comes with JetPack (system packages), not from PyPI's x86_64/SBSA wheels
JETSON_INSTALL = ("on Jetson: sudo apt install python3-libnvinfer (JetPack 6.1+), a venv made with "
                  "--system-site-packages, then pip install edgekit without its tensorrt extra (docs/jetson.md)")


@dataclass(frozen=True)
class TensorRTOptions(RuntimeOptions):
    """``fp16``: an FP16 engine (TensorRT < 10.12: the FP16 flag; later: the ONNX must be FP16);
    ``tf32``: let FP32 layers use TF32 (TensorRT's own default; off here, so FP32 is FP32);
    dynamic batch gets one optimization profile with min 1, opt ``opt_batch``, max ``max_batch``;
    ``workspace_mb``: builder memory limit; ``cache``: keep built engines on disk; ``device``: cuda:N."""

    fp16: bool = False
    tf32: bool = False
    opt_batch: int = 1
    max_batch: int = 16
    workspace_mb: int | None = None
    cache: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_batches(self.opt_batch, self.max_batch)
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise BadInputError(f"option workspace_mb must be at least 1, got {self.workspace_mb}")
        if self.device is not None:
            from edgekit.runtimes.cuda import parse_device_id

            parse_device_id(self.device)

    @property
    def build_spec(self) -> BuildSpec:
        return BuildSpec("fp16" if self.fp16 else "fp32", self.opt_batch, self.max_batch, self.workspace_mb,
                         self.tf32)


class TensorRTRuntime(Runtime):
    """TensorRT engine on one NVIDIA GPU."""

    name: ClassVar[str] = "trt"
    extra: ClassVar[str] = "tensorrt"
    Options: ClassVar[type[RuntimeOptions]] = TensorRTOptions
    suffixes: ClassVar[tuple[str, ...]] = (".onnx", *ENGINE_SUFFIXES)

    @classmethod
    def probe(cls) -> Availability:
        try:
            import tensorrt as trt
        except Exception as exc:  # ImportError, or missing libnvinfer
            from edgekit.runtimes.gpu_libraries import l4t_release

            failure = import_failure(cls.name, "tensorrt", cls.extra, exc)
            return dataclasses.replace(failure, install=JETSON_INSTALL) if l4t_release() else failure
        from edgekit.runtimes import cuda

        install = f"pip install 'edgekit[{cls.extra}]' on a machine with an NVIDIA GPU"
        names = cuda.gpu_names()
        if not names:
            return Availability(cls.name, False, version=trt.__version__,
                                reason="no NVIDIA GPU found (no CUDA driver or no device)", install=install)
        try:
            cuda.runtime_library()
        except cuda.CudaError as exc:
            return Availability(cls.name, False, version=trt.__version__, reason=str(exc), install=install)
        devices = tuple(f"cuda:{i}: {name}" for i, name in enumerate(names))
        return Availability(cls.name, True, version=trt.__version__, devices=devices)

    # ---- opening: engine from cache, file or build ---------------------------------------
    @property
    def device_id(self) -> int:
        from edgekit.runtimes.cuda import parse_device_id

        return parse_device_id(self.options.device)

    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        import tensorrt as trt

        from edgekit.runtimes import cuda
        from edgekit.runtimes.tensorrt_build import get_logger

        names = cuda.gpu_names()
        if self.device_id >= len(names):
            raise BadInputError(f"no GPU cuda:{self.device_id} (found {len(names)})")
        cuda.ensure_device(self.device_id)
        self._logger = get_logger(trt)
        self._logger.clear()
        try:
            return self._load(trt, names[self.device_id])
        except BaseException:
            self._close()  # free what was created before the failure
            raise

    def _load(self, trt, gpu_name: str) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        from edgekit.runtimes.tensorrt_build import numpy_dtype

        data, self.engine_path, self.cache_hit = self._engine_bytes(trt, gpu_name)
        self._trt_runtime = trt.Runtime(self._logger)
        self._engine = self._trt_runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise BadInputError(f"TensorRT cannot load engine {self.engine_path or self.model_path}: "
                                f"{self._logger.summary()}")
        self._trt = trt
        self._max_batch: dict[str, int] = {}
        inputs, outputs = {}, {}
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            dtype = numpy_dtype(trt, self._engine.get_tensor_dtype(name), name).name
            shape = tuple(int(d) if d >= 0 else None for d in self._engine.get_tensor_shape(name))
            if self._engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                outputs[name] = TensorSpec(name, dtype, shape)
                continue
            inputs[name] = TensorSpec(name, dtype, shape)
            if shape and shape[0] is None:  # profile 0's (min, opt, max) shapes
                self._max_batch[name] = int(self._engine.get_tensor_profile_shape(name, 0)[2][0])
        self._output_dtypes = {name: np.dtype(spec.dtype) for name, spec in outputs.items()}
        self._slot = self._new_slot()
        # a runtime never closed still frees its context, device and pinned memory and stream
        self._finalizers = [weakref.finalize(self, self._slot.close)]
        return inputs, outputs

    def _new_slot(self):
        from edgekit.runtimes.tensorrt_exec import ExecutionSlot

        return ExecutionSlot(self._trt, self._engine, self._logger, self.device_id, self._output_dtypes,
                             self._max_batch, keep=(self._trt_runtime,))

    def _engine_bytes(self, trt, gpu_name: str) -> tuple[bytes, Path | None, bool]:
        """A serialized engine, where it lives, and whether it was reused: the given .engine/.plan,
        a cached build, or a fresh build (written to the cache when ``cache`` is on)."""
        from edgekit.runtimes.tensorrt_build import build_engine, slug

        if self.model_path.suffix.lower() in ENGINE_SUFFIXES:
            return self.model_path.read_bytes(), self.model_path, True
        folder = cache_dir("tensorrt")
        target = folder / f"{self.model_path.stem}-{self.cache_key(trt.__version__, gpu_name)}.engine"
        if self.options.cache and target.is_file():
            return target.read_bytes(), target, True
        timing = folder / f"timing-{trt.__version__}-{slug(gpu_name)}.cache"
        data = build_engine(trt, self.model_path, self.options.build_spec, timing)
        if not self.options.cache:
            return data, None, False
        with atomic_path(target) as temporary:
            temporary.write_bytes(data)
        return data, target, False

    def cache_key(self, trt_version: str, gpu_name: str) -> str:
        """Hash of everything that makes an engine: model (+ external data), build spec, TensorRT, GPU."""
        from edgekit.runtimes.tensorrt_build import engine_cache_key

        return engine_cache_key(self.model_path, self.options.build_spec, trt_version, gpu_name)

    # ---- running -----------------------------------------------------------------------
    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgekit.runtimes.cuda import ensure_device

        ensure_device(self.device_id)  # CUDA's current device is per thread: a Predictor may run from several
        return self._slot.run({name: np.ascontiguousarray(array) for name, array in feeds.items()})

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        """A call on a slot of its own (context, stream, buffers), inputs copied once: each call is the
        engine's device work, synchronized. The slot is freed with the call, or at close."""
        from edgekit.runtimes.cuda import ensure_device
        from edgekit.runtimes.tensorrt_exec import PreparedCall

        ensure_device(self.device_id)
        slot = self._new_slot()
        self._finalizers = [finalizer for finalizer in self._finalizers if finalizer.alive]
        try:
            with slot.lock:
                slot.bind({name: np.ascontiguousarray(array) for name, array in feeds.items()})
                slot.stream.synchronize()
        except BaseException:
            slot.close()
            raise
        call = PreparedCall(slot)
        self._finalizers.append(weakref.finalize(call, slot.close))
        return call

    def timing_breakdown(self, feeds: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Mean ms to copy all inputs to the device and all outputs back (pinned memory), measured apart."""
        from edgekit.runtimes.cuda import ensure_device, time_copies

        ensure_device(self.device_id)
        slot = self._slot
        with slot.lock:
            slot.bind({name: np.ascontiguousarray(array) for name, array in feeds.items()})
            slot.execute()  # data-dependent outputs have a shape (and memory) only after a run
            slot.stream.synchronize()

            def h2d() -> None:
                slot.copy_inputs()
                slot.stream.synchronize()

            def d2h() -> None:
                slot.copy_outputs()
                slot.stream.synchronize()

            return {"h2d_ms": time_copies(h2d), "d2h_ms": time_copies(d2h)}

    def _close(self) -> None:
        # Contexts (and their memory) before the engine, the engine before the TensorRT runtime.
        for finalizer in getattr(self, "_finalizers", ()):
            finalizer()
        for attribute in ("_finalizers", "_slot", "_engine", "_trt_runtime", "_trt"):
            if hasattr(self, attribute):
                delattr(self, attribute)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if hasattr(self, "engine_path"):
            from edgekit.runtimes.cuda import gpu_names

            names = gpu_names()
            info.update(engine=str(self.engine_path or ""), engine_cache_hit=self.cache_hit,
                        device_name=names[self.device_id] if self.device_id < len(names) else "")
        return info
