"""Native TensorRT (10.x and 11 Python API): the runner half of the loader/runner split.

Engines come from ``tensorrt_build.build_engine`` (the one builder, shared with the quantizer),
cached under edgekit's cache dir keyed by (model with its external data, build spec, TensorRT
version, GPU); a timing cache per (TensorRT version, GPU) speeds up rebuilds. CUDA is driven
through edgekit.runtimes.cuda (ctypes), so neither torch nor pycuda is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, EdgekitError
from edgekit.fileio import atomic_path
from edgekit.meta import ENGINE_SUFFIXES
from edgekit.paths import cache_dir
from edgekit.runtimes.base import Availability, Runtime, RuntimeOptions, TensorSpec, import_failure
from edgekit.runtimes.tensorrt_build import BuildSpec, check_batches


@dataclass(frozen=True)
class TensorRTOptions(RuntimeOptions):
    """``fp16``: an FP16 engine (TensorRT < 10.12: the FP16 flag; later: the ONNX must be FP16);
    dynamic batch gets one optimization profile with min 1, opt ``opt_batch``, max ``max_batch``;
    ``workspace_mb``: builder memory limit; ``cache``: keep built engines on disk; ``device``: cuda:N."""

    fp16: bool = False
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
        return BuildSpec("fp16" if self.fp16 else "fp32", self.opt_batch, self.max_batch, self.workspace_mb)


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
            return import_failure(cls.name, "tensorrt", cls.extra, exc)
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
        from edgekit.runtimes import cuda
        from edgekit.runtimes.tensorrt_build import numpy_dtype

        data, self.engine_path, self.cache_hit = self._engine_bytes(trt, gpu_name)
        self._trt_runtime = trt.Runtime(self._logger)
        self._engine = self._trt_runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise BadInputError(f"TensorRT cannot load engine {self.engine_path or self.model_path}: "
                                f"{self._logger.summary()}")
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        self._buffers: dict[str, cuda.DeviceBuffer] = {}
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
        return inputs, outputs

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
    def _bind(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Set input shapes, bind device buffers (grown as needed), queue the input copies.

        Returns empty host arrays for the outputs, shaped for these inputs.
        """
        from edgekit.runtimes.cuda import DeviceBuffer, ensure_device

        ensure_device(self.device_id)  # CUDA's current device is per thread: a Predictor may run from several
        self._logger.clear()
        for name, array in feeds.items():
            limit = self._max_batch.get(name)
            if limit is not None and array.shape[0] > limit:
                raise BadInputError(f"batch {array.shape[0]} is above the engine's max batch {limit} "
                                    "(option max_batch)")
            if not self._context.set_input_shape(name, tuple(array.shape)):
                raise BadInputError(f"TensorRT rejects shape {tuple(array.shape)} for '{name}': "
                                    f"{self._logger.summary()}")
        hosts = {name: np.empty(tuple(self._context.get_tensor_shape(name)), np.dtype(spec.dtype))
                 for name, spec in self.outputs.items()}
        for name, array in [*feeds.items(), *hosts.items()]:
            buffer = self._buffers.get(name)
            if buffer is None or buffer.nbytes < array.nbytes:
                if buffer is not None:
                    buffer.free()
                buffer = self._buffers[name] = DeviceBuffer(array.nbytes)
            self._context.set_tensor_address(name, buffer.ptr)
        for name, array in feeds.items():
            self._buffers[name].copy_from(array, self._stream)
        return hosts

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._stream.handle):
            raise EdgekitError(f"TensorRT execution failed: {self._logger.summary()}")

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
        hosts = self._bind(feeds)
        self._execute()
        for name, array in hosts.items():
            self._buffers[name].copy_to(array, self._stream)
        self._stream.synchronize()  # copies out are valid, and feeds may be reused, only after this
        return hosts

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # Inputs copied once, outside the loop: each call is the engine's device work, synchronized.
        self._bench_feeds = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
        self._bind(self._bench_feeds)
        self._stream.synchronize()
        execute, synchronize = self._execute, self._stream.synchronize

        def call() -> None:
            execute()
            synchronize()

        return call

    def timing_breakdown(self, feeds: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Mean ms to copy all inputs to the device and all outputs back, measured apart."""
        from edgekit.runtimes.cuda import time_copies

        feeds = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
        hosts = self._bind(feeds)
        self._stream.synchronize()
        buffers, stream = self._buffers, self._stream

        def h2d() -> None:
            for name, array in feeds.items():
                buffers[name].copy_from(array, stream)
            stream.synchronize()

        def d2h() -> None:
            for name, array in hosts.items():
                buffers[name].copy_to(array, stream)
            stream.synchronize()

        return {"h2d_ms": time_copies(h2d), "d2h_ms": time_copies(d2h)}

    def _close(self) -> None:
        for buffer in getattr(self, "_buffers", {}).values():
            buffer.free()
        if hasattr(self, "_stream"):
            self._stream.close()
        # Release in dependency order: context before engine before runtime.
        for attribute in ("_bench_feeds", "_buffers", "_stream", "_context", "_engine", "_trt_runtime"):
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
