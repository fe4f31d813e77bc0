"""ONNX Runtime on NVIDIA GPUs: the CUDA and TensorRT execution providers (onnxruntime-gpu)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, RuntimeUnavailableError, first_line
from edgekit.runtimes.base import Availability, RuntimeOptions, TensorSpec
from edgekit.runtimes.onnxruntime import OrtOptions, OrtRuntime

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
        if self.tf32:
            raise BadInputError("option tf32 is for ort-cuda and trt: ONNX Runtime's TensorRT provider picks TF32 "
                                "kernels itself (on by default)")
        if self.engine_cache_dir is not None and not self.engine_cache_dir.strip():
            raise BadInputError("option engine_cache_dir must be a folder, got an empty string")


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
        from edgekit.runtimes.gpu_libraries import preload_cuda_libraries

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
        if availability.available:
            from edgekit.runtimes.gpu_libraries import tensorrt_libraries

            missing = [name for name, path in tensorrt_libraries().items() if path is None]
            if missing:
                return Availability(cls.name, False, version=availability.version,
                                    reason=f"onnxruntime-gpu has the TensorRT provider, but TensorRT's "
                                           f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not found",
                                    install="pip install 'edgekit[tensorrt]' (TensorRT of the major version "
                                            "named), or add TensorRT's lib folder to LD_LIBRARY_PATH")
        return availability

    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        from edgekit.runtimes.gpu_libraries import tensorrt_libraries

        for name, path in tensorrt_libraries().items():   # loaded globally: the provider then finds a wheel's copy
            try:
                ctypes.CDLL(path or name, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                raise RuntimeUnavailableError(f"cannot load TensorRT's {name}: {first_line(exc)}") from None
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
