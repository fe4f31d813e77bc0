"""ONNX Runtime backends; the execution provider is the only thing that differs."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import io
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, RuntimeUnavailableError, first_line
from edgekit.runtimes.base import STRING, Availability, Runtime, RuntimeOptions, TensorSpec, import_failure
from edgekit.system import cpu_name

# ONNX Runtime's element type names that differ from numpy's ("tensor(float)" → float32).
_ORT_ELEMENTS = {"float": "float32", "double": "float64", "string": STRING}
# ONNX Runtime's type-string prefixes of non-tensor values → TensorSpec.kind
_ORT_KINDS = {"seq(": "sequence", "optional(": "optional", "map(": "map"}


def ort_type(type_string: str) -> tuple[str, str]:
    """(dtype, kind) of an ONNX Runtime type string: 'tensor(uint16)' → ('uint16', 'tensor').

    Element types numpy lacks keep ORT's name (bfloat16, float8e4m3fn) and go unchecked;
    sequences, optionals and maps keep the whole type string.
    """
    if type_string.startswith("tensor(") and type_string.endswith(")"):
        element = type_string[len("tensor("):-1]
        return _ORT_ELEMENTS.get(element, element), "tensor"
    for prefix, kind in _ORT_KINDS.items():
        if type_string.startswith(prefix):
            return type_string, kind
    return type_string, "tensor"


@dataclass(frozen=True)
class OrtOptions(RuntimeOptions):
    """``graph_optimization``: disable | basic | extended | all; ``spinning``: whether intra-op
    threads spin-wait for work between runs (ONNX Runtime's default: yes). Spinning shortens
    back-to-back runs but takes the cores that pre/post-processing needs between them."""

    graph_optimization: str = "all"
    spinning: bool | None = None


class OrtRuntime(Runtime):
    """Shared ONNX Runtime logic; subclasses name their execution providers."""

    extra: ClassVar[str] = "ort"
    Options: ClassVar[type[RuntimeOptions]] = OrtOptions
    provider: ClassVar[str] = "CPUExecutionProvider"
    # InferenceSession.run is thread-safe
    concurrent_runs: ClassVar[bool] = True

    @classmethod
    def probe(cls) -> Availability:
        try:
            import onnxruntime as ort
        except Exception as exc:  # ImportError, or a broken binary wheel
            return import_failure(cls.name, "onnxruntime", cls.extra, exc)
        if cls.provider not in ort.get_available_providers():
            return Availability(
                cls.name,
                False,
                version=ort.__version__,
                reason=f"this onnxruntime build has no {cls.provider}",
                install=f"pip install 'edgekit[{cls.extra}]'",
            )
        return Availability(cls.name, True, version=ort.__version__, devices=cls.devices())

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        return (cpu_name(),)

    def provider_options(self) -> dict[str, Any]:
        """Options passed to this runtime's execution provider."""
        return {}

    def execution_providers(self) -> list[tuple[str, dict[str, Any]]]:
        """(provider, options) in priority order; the CPU provider comes last as ORT's fallback."""
        providers = [(self.provider, self.provider_options())]
        if self.provider != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        return providers

    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        level = self.options.graph_optimization
        if level not in levels:
            raise BadInputError(f"graph_optimization must be one of {', '.join(levels)}, got '{level}'")
        options.graph_optimization_level = levels[level]
        options.log_severity_level = 3
        if self.options.threads:
            options.intra_op_num_threads = self.options.threads
            options.inter_op_num_threads = 1
        if self.options.spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.options.spinning else "0")
        try:
            self._session = ort.InferenceSession(str(self.model_path), options, providers=self.execution_providers())
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
            raise BadInputError(f"onnxruntime cannot load {self.model_path}: {first_line(exc)}") from None
        if self._session.get_providers()[0] != self.provider:
            # ORT falls back to the CPU silently when a provider fails to initialize.
            raise RuntimeUnavailableError(
                f"onnxruntime could not start {self.provider} for '{self.name}' "
                f"(got {', '.join(self._session.get_providers())}); check the CUDA/cuDNN/TensorRT libraries"
            )
        outputs = _specs(self._session.get_outputs())
        self._output_names = list(outputs)
        return _specs(self._session.get_inputs()), outputs

    def _run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        # InferenceSession.run is thread-safe and returns new arrays on every call.
        names = self._output_names
        if type(feeds) is not dict:
            feeds = dict(feeds)
        return dict(zip(names, self._session.run(names, feeds)))

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # The bare session call: nothing but ORT's own work is inside the timed loop.
        run = self._session.run
        return lambda: run(None, feeds)

    def _close(self) -> None:
        del self._session

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if hasattr(self, "_session"):
            info["providers"] = self._session.get_providers()
        return info


class OrtCpuRuntime(OrtRuntime):
    """ONNX Runtime on the CPU execution provider."""

    name: ClassVar[str] = "ort-cpu"

    @classmethod
    def make_options(cls, **options: Any) -> RuntimeOptions:
        made = super().make_options(**options)
        if made.device is not None and made.device.lower() != "cpu":
            raise BadInputError(f"runtime 'ort-cpu' runs on the CPU only, not '{made.device}' (for a GPU: -r ort-cuda)")
        return made


def _specs(nodes: list[Any]) -> dict[str, TensorSpec]:
    specs = {}
    for node in nodes:
        dtype, kind = ort_type(node.type)
        specs[node.name] = TensorSpec(node.name, dtype, tuple(node.shape or ()), kind)
    return specs


# ---- GPU execution providers ----------------------------------------------------------------

_GPU_PACKAGE_HINT = (
    "the CPU-only 'onnxruntime' package is installed; 'onnxruntime-gpu' replaces it "
    "(both provide the onnxruntime module, so uninstall one first)"
)


@dataclass(frozen=True)
class OrtCudaOptions(OrtOptions):
    """``device_id`` (or ``device`` = cuda:N): which GPU. ``tf32``: let cuDNN and cuBLAS compute FP32
    convolutions and matrix products in TF32 on tensor cores (ONNX Runtime's own default; faster on
    Ampere and newer, about 1e-3 relative error). Off here, so that an FP32 model runs in FP32 and
    agrees with torch and the CPU within `compare`'s default tolerance."""

    device_id: int = 0
    tf32: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        from edgekit.runtimes.cuda import parse_device_id

        if self.device_id < 0:
            raise BadInputError(f"option device_id must be 0 or more, got {self.device_id}")
        given = parse_device_id(self.device, self.device_id)
        if self.device is not None and self.device_id not in (0, given):
            raise BadInputError(f"device '{self.device}' and device_id {self.device_id} disagree")


@dataclass(frozen=True)
class OrtTrtOptions(OrtCudaOptions):
    """``fp16``: let TensorRT pick FP16 kernels; ``engine_cache``: keep built engines under
    ``engine_cache_dir`` [default: edgekit's cache dir, ort-trt/], in one folder per model content
    (ONNX Runtime names engines by graph and tensor names, not weights); the timing cache is shared."""

    fp16: bool = False
    engine_cache: bool = True
    engine_cache_dir: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.engine_cache_dir is not None and not self.engine_cache_dir.strip():
            raise BadInputError("option engine_cache_dir must be a folder, got an empty string")


_PRELOAD_LOCK = threading.Lock()
_PRELOADED: list[str] = []


def preload_cuda_libraries() -> str:
    """Load the CUDA and cuDNN libraries of pip's nvidia-* wheels once, before a GPU session starts.

    onnxruntime-gpu >= 1.21 no longer finds them by itself (``pip install onnxruntime-gpu[cuda,cudnn]``
    without torch imported first), and then falls back to the CPU. ``onnxruntime.preload_dlls`` does the
    loading; what it prints about libraries it could not find is returned, not printed (the session's
    own check names the failure). ONNX Runtime's process-wide log is also kept to errors, as edgekit's
    sessions are: 1.31 warns about plugin devices at every GPU session otherwise.
    """
    with _PRELOAD_LOCK:
        if not _PRELOADED:
            import onnxruntime as ort

            printed = io.StringIO()
            if hasattr(ort, "preload_dlls"):
                try:
                    with contextlib.redirect_stdout(printed):
                        ort.preload_dlls()
                except Exception as exc:  # a missing folder or a library that fails to load
                    printed.write(first_line(exc))
            ort.set_default_logger_severity(3)
            _PRELOADED.append(printed.getvalue().strip())
        return _PRELOADED[0]


@lru_cache(maxsize=1)
def nvinfer_library() -> str | None:
    """Where TensorRT's libnvinfer is: a name the loader finds, or the file in pip's tensorrt_libs
    wheel; None without TensorRT (onnxruntime-gpu ships the TensorRT provider, not TensorRT)."""
    found = ctypes.util.find_library("nvinfer")
    if found:
        return found
    for root in sys.path:
        files = sorted(glob.glob(os.path.join(root or ".", "tensorrt_libs", "libnvinfer.so.*")))
        if files:
            return files[-1]
    return None


class _OrtGpuRuntime(OrtRuntime):
    """ONNX Runtime on an NVIDIA GPU; the benchmark keeps inputs and outputs on the device."""

    extra: ClassVar[str] = "ort-gpu"

    @classmethod
    def probe(cls) -> Availability:
        availability = super().probe()
        if not availability.available:
            if availability.version:  # onnxruntime imported, but lacks the provider
                return Availability(
                    cls.name, False, version=availability.version,
                    reason=f"this onnxruntime build has no {cls.provider} — {_GPU_PACKAGE_HINT}",
                    install=f"pip uninstall onnxruntime && pip install 'edgekit[{cls.extra}]'",
                )
            return availability
        from edgekit.runtimes.cuda import gpu_names

        if not gpu_names():
            return Availability(cls.name, False, version=availability.version,
                                reason="no NVIDIA GPU found (no CUDA driver or no device)",
                                install=f"pip install 'edgekit[{cls.extra}]' on a machine with an NVIDIA GPU")
        return Availability(cls.name, True, version=availability.version, devices=cls.devices())

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        from edgekit.runtimes.cuda import gpu_names

        return tuple(f"cuda:{i}: {name}" for i, name in enumerate(gpu_names()))

    @property
    def device_id(self) -> int:
        from edgekit.runtimes.cuda import parse_device_id

        return parse_device_id(self.options.device, self.options.device_id)  # agreement checked in the options

    def provider_options(self) -> dict[str, Any]:
        return self.cuda_provider_options()

    def cuda_provider_options(self) -> dict[str, Any]:
        """The CUDA execution provider's options (also ort-trt's fallback for what TensorRT cannot run)."""
        return {"device_id": self.device_id, "use_tf32": int(bool(self.options.tf32))}

    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        printed = preload_cuda_libraries()
        try:
            return super()._open()
        except RuntimeUnavailableError as exc:
            failed = next((line for line in printed.splitlines() if line.startswith("Failed to load")), None)
            if failed is None:
                raise
            raise RuntimeUnavailableError(f"{exc}: {failed}") from None

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # Inputs copied to the GPU once and outputs left there: the loop times device work only.
        # run_with_iobinding synchronizes the provider's stream before returning (ORT's default).
        import onnxruntime as ort

        binding = self._session.io_binding()
        self._device_inputs = {
            name: ort.OrtValue.ortvalue_from_numpy(array, "cuda", self.device_id) for name, array in feeds.items()
        }
        for name, value in self._device_inputs.items():
            binding.bind_ortvalue_input(name, value)
        for name in self.outputs:
            binding.bind_output(name, "cuda", self.device_id)
        run = self._session.run_with_iobinding
        self._binding = binding
        return lambda: run(binding)

    def timing_breakdown(self, feeds: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Mean host→device copy of the inputs and device→host copy of the outputs, in ms."""
        import onnxruntime as ort

        from edgekit.runtimes.cuda import time_copies

        device_id = self.device_id
        binding = self._session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", device_id))
        for name in self.outputs:
            binding.bind_output(name, "cuda", device_id)
        self._session.run_with_iobinding(binding)
        outputs = binding.get_outputs()

        def h2d() -> None:
            for array in feeds.values():
                ort.OrtValue.ortvalue_from_numpy(array, "cuda", device_id)

        def d2h() -> None:
            for value in outputs:
                value.numpy()

        return {"h2d_ms": time_copies(h2d), "d2h_ms": time_copies(d2h)}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        names = self.devices()
        if 0 <= self.device_id < len(names):
            info["device_name"] = names[self.device_id].split(": ", 1)[1]
        return info

    def _close(self) -> None:
        for attribute in ("_binding", "_device_inputs"):
            if hasattr(self, attribute):
                delattr(self, attribute)
        super()._close()


class OrtCudaRuntime(_OrtGpuRuntime):
    """ONNX Runtime on the CUDA execution provider."""

    name: ClassVar[str] = "ort-cuda"
    Options: ClassVar[type[RuntimeOptions]] = OrtCudaOptions
    provider: ClassVar[str] = "CUDAExecutionProvider"


class OrtTrtRuntime(_OrtGpuRuntime):
    """ONNX Runtime on the TensorRT execution provider (CUDA, then CPU, for what TensorRT cannot run)."""

    name: ClassVar[str] = "ort-trt"
    Options: ClassVar[type[RuntimeOptions]] = OrtTrtOptions
    provider: ClassVar[str] = "TensorrtExecutionProvider"

    @classmethod
    def probe(cls) -> Availability:
        availability = super().probe()
        if availability.available and nvinfer_library() is None:
            return Availability(cls.name, False, version=availability.version,
                                reason="onnxruntime-gpu has the TensorRT provider, "
                                "but TensorRT's libnvinfer is not found",
                                install="pip install 'edgekit[tensorrt]', "
                                "or add TensorRT's lib folder to LD_LIBRARY_PATH")
        return availability

    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        library = nvinfer_library()
        if library is not None:  # loaded globally, so the provider finds a pip wheel's copy too
            try:
                ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                raise RuntimeUnavailableError(f"cannot load TensorRT's {library}: {first_line(exc)}") from None
        return super()._open()

    def provider_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"device_id": self.device_id, "trt_fp16_enable": bool(self.options.fp16)}
        if self.options.engine_cache:
            folder = self.engine_folder()
            folder.mkdir(parents=True, exist_ok=True)
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(folder),
                           trt_timing_cache_enable=True, trt_timing_cache_path=str(folder.parent))
        return options

    def engine_root(self) -> Path:
        from edgekit.paths import cache_dir

        return Path(self.options.engine_cache_dir) if self.options.engine_cache_dir else cache_dir("ort-trt")

    def engine_folder(self) -> Path:
        """Where this model's engines go: a folder named by the model's content (with its external
        data), so a retrained model under the same file and tensor names never reuses a stale engine."""
        from edgekit.hashing import model_sha256

        if getattr(self, "_engine_folder", None) is None:  # hashed once per runtime: a big model takes a while
            self._engine_folder = self.engine_root() / f"{self.model_path.stem}-{model_sha256(self.model_path)[:16]}"
        return self._engine_folder

    def engines(self) -> list[Path]:
        """Engines TensorRT wrote for this model: proof that TensorRT, not the CUDA or CPU fallback,
        ran it (ONNX Runtime builds them when a session starts, or at the first run of a dynamic shape)."""
        if not self.options.engine_cache:
            return []
        folder = self.engine_folder()
        return sorted(folder.glob("*.engine")) if folder.is_dir() else []

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.options.engine_cache and hasattr(self, "_session"):
            info.update(engine_cache=str(self.engine_folder()), trt_engines=len(self.engines()))
        return info

    def execution_providers(self) -> list[tuple[str, dict[str, Any]]]:
        return [(self.provider, self.provider_options()),
                ("CUDAExecutionProvider", self.cuda_provider_options()),
                ("CPUExecutionProvider", {})]
