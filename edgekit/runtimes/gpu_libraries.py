"""The shared libraries ONNX Runtime's GPU providers need, found and loaded before a GPU session.

onnxruntime-gpu >= 1.21 no longer finds pip's nvidia-* CUDA/cuDNN wheels by itself (it falls back
to the CPU), and its TensorRT provider links TensorRT's libraries of one major version, which it
does not ship. Nothing here imports onnxruntime at import time.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import io
import os
import platform
import re
import sys
import threading
from functools import lru_cache
from pathlib import Path

from edgekit.errors import first_line

#: the CLI sets this: ONNX Runtime's process-wide log then shows errors only, as edgekit's sessions do
QUIET_PROCESS_LOG = {"enabled": False}
_PRELOAD_LOCK = threading.Lock()
_PRELOADED: list[str] = []
_TENSORRT_NAMES = re.compile(rb"lib(?:nvinfer|nvonnxparser|nvinfer_plugin)\.so\.\d+")


def preload_cuda_libraries() -> str:
    """Load the CUDA and cuDNN libraries of pip's nvidia-* wheels once (``onnxruntime.preload_dlls``).

    What it prints about libraries it could not load is returned, not printed (the session's own
    check names the failure, and a CLI's JSON on stdout stays clean).
    """
    with _PRELOAD_LOCK:
        if not _PRELOADED:
            import onnxruntime as ort

            printed = io.StringIO()
            if hasattr(ort, "preload_dlls"):
                try:
                    with contextlib.redirect_stdout(printed):
                        ort.preload_dlls()
                except Exception as exc:  # noqa: BLE001 - a missing folder or a library that fails to load
                    printed.write(first_line(exc))
            if QUIET_PROCESS_LOG["enabled"]:  # 1.31 warns about plugin devices at every GPU session
                ort.set_default_logger_severity(3)
            _PRELOADED.append(printed.getvalue().strip())
        return _PRELOADED[0]


def tensorrt_needs(provider: Path | None = None) -> tuple[str, ...]:
    """The TensorRT libraries (with their major version) that ONNX Runtime's TensorRT provider
    links, read from the provider's file; ('libnvinfer.so',) when the file is not there."""
    if provider is None:
        import onnxruntime as ort

        provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    try:
        data = provider.read_bytes()
    except OSError:
        return ("libnvinfer.so",)
    return tuple(sorted({name.decode() for name in _TENSORRT_NAMES.findall(data)})) or ("libnvinfer.so",)


def find_library_file(name: str, search_path: list[str] | None = None) -> str | None:
    """Where the loader would find library ``name`` (e.g. libnvinfer.so.10): LD_LIBRARY_PATH, pip's
    tensorrt_libs wheel on ``search_path`` (default: sys.path), this machine's system library folders,
    then the system's library cache."""
    for folder in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if folder and os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    for root in sys.path if search_path is None else search_path:
        candidate = os.path.join(root or ".", "tensorrt_libs", name)
        if os.path.isfile(candidate):
            return candidate
    for folder in system_library_dirs():  # JetPack's TensorRT: /usr/lib/aarch64-linux-gnu
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    stem = name[3:].split(".so")[0]
    found = ctypes.util.find_library(stem)
    return found if found and (found == name or "." not in name.split(".so", 1)[1]) else None


@lru_cache(maxsize=1)
def tensorrt_libraries() -> dict[str, str | None]:
    """Each TensorRT library the provider needs → where it is (None: not found)."""
    return {name: find_library_file(name) for name in tensorrt_needs()}


_MULTIARCH = {"x86_64": "x86_64-linux-gnu", "amd64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
              "arm64": "aarch64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu"}
#: CUDA's per-target folder: JetPack (Jetson) is aarch64-linux, an Arm server (Grace, sbsa) sbsa-linux
_CUDA_TARGETS = {"x86_64-linux-gnu": ("x86_64-linux",), "aarch64-linux-gnu": ("aarch64-linux", "sbsa-linux"),
                 "powerpc64le-linux-gnu": ("ppc64le-linux",)}


def system_library_dirs(machine: str | None = None, root: str = "/") -> list[str]:
    """The system folders holding NVIDIA's libraries on this machine's architecture (``machine``:
    platform.machine()): Debian's multiarch folder and, on Jetson, its tegra folder (libcuda), then
    /usr/local/cuda's lib64 and targets/<arch>/lib. Only folders that exist under ``root``."""
    machine = (machine or platform.machine() or "").lower()
    triple = _MULTIARCH.get(machine, f"{machine}-linux-gnu")
    folders = [f"usr/lib/{triple}", f"usr/lib/{triple}/tegra", f"usr/lib/{triple}/nvidia", "usr/local/cuda/lib64",
               *(f"usr/local/cuda/targets/{target}/lib" for target in _CUDA_TARGETS.get(triple, ()))]
    return [path for path in (os.path.join(root, folder) for folder in folders) if os.path.isdir(path)]
