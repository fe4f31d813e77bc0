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
from dataclasses import dataclass
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


# ---- what `edgekit runtimes` reports about the GPU stack --------------------------------------------
@dataclass(frozen=True)
class Component:
    """One piece of the GPU stack: found or missing, and what (version, where) or why not."""

    name: str
    found: bool
    detail: str


def l4t_release(root: str = "/") -> str | None:
    """The Jetson Linux (L4T) release, e.g. 'R36.4.3' from /etc/nv_tegra_release; None off a Jetson."""
    try:
        with open(os.path.join(root, "etc", "nv_tegra_release"), encoding="utf-8") as release:
            line = release.readline()
    except OSError:
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", line)
    return f"R{match.group(1)}.{match.group(2)}" if match else line.strip("# \n") or "unknown"


def package_origin(path: str) -> str:
    """Where a Python package at ``path`` comes from: this virtual environment, the user's site-packages,
    or the system's site-packages (a JetPack package seen through a venv made with --system-site-packages)."""
    import site

    real = os.path.realpath(path)

    def under(folder: str | None) -> bool:
        return bool(folder) and real.startswith(os.path.realpath(folder) + os.sep)

    in_venv = sys.prefix != sys.base_prefix
    if in_venv and under(sys.prefix):
        return "this virtual environment"
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if under(user):
        return "user site-packages"
    if under(sys.base_prefix) or "dist-packages" in real.split(os.sep) or real.startswith("/usr/"):
        return "system site-packages"
    return "sys.path"


def gpu_stack() -> list[Component]:
    """The GPU stack as the GPU runtimes will find it: driver and GPUs, libcudart, TensorRT's Python
    module and libraries, onnxruntime's GPU providers; the machine (and Jetson release). Never raises."""
    machine = platform.machine() or "unknown"
    release = l4t_release()
    parts = [Component("machine", True, machine + (f", Jetson (L4T {release})" if release else ""))]
    parts += [_driver_part(), _cudart_part()]
    tensorrt, major = _tensorrt_part()
    parts += [tensorrt, _nvinfer_part(major), _onnxruntime_part()]
    return parts


def _driver_part() -> Component:
    from edgekit.runtimes import cuda

    names = cuda.gpu_names()
    if not names:
        return Component("CUDA driver", False, "no NVIDIA driver or GPU (libcuda.so.1 not loaded, or no device)")
    major = cuda.driver_major()
    return Component("CUDA driver", True, f"{', '.join(names)}" + (f"; supports CUDA {major}" if major else ""))


def _cudart_part() -> Component:
    from edgekit.runtimes import cuda

    try:
        library = cuda.runtime_library()
    except cuda.CudaError as exc:
        return Component("libcudart", False, first_line(exc))
    name = loaded_path("libcudart") or getattr(library, "_name", "libcudart")
    version = ""
    with contextlib.suppress(Exception):  # no driver: the library loads but cannot say its version
        version = f" (CUDA {cuda.runtime_version()})"
    return Component("libcudart", True, f"{name}{version}")


def loaded_path(stem: str) -> str | None:
    """The file of a loaded shared library whose name starts with ``stem`` (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
                if os.path.basename(path).startswith(stem + ".so"):
                    return path
    except OSError:
        pass
    return None


def _tensorrt_part() -> tuple[Component, int | None]:
    import importlib.util

    try:
        spec = importlib.util.find_spec("tensorrt")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        hint = ("JetPack's python3-libnvinfer in a venv made with --system-site-packages (docs/jetson.md)"
                if l4t_release() else "pip install 'edgekit[tensorrt]'")
        return Component("tensorrt", False, f"Python module not found — {hint}"), None
    location = spec.origin or next(iter(spec.submodule_search_locations or []), "")
    where = f"from {package_origin(location)} ({os.path.dirname(location) if spec.origin else location})"
    try:
        import tensorrt
    except Exception as exc:  # noqa: BLE001 - a wheel without its libraries fails with OSError and others
        return Component("tensorrt", False, f"found {where} but it failed to import: {first_line(exc)}"), None
    version = str(getattr(tensorrt, "__version__", "?"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else None
    return Component("tensorrt", True, f"{version} {where}"), major


def _nvinfer_part(major: int | None) -> Component:
    names = [f"libnvinfer.so.{major}"] if major else ["libnvinfer.so.10", "libnvinfer.so.11"]
    for name in names:
        path = find_library_file(name)
        if path:
            return Component("libnvinfer", True, path)
    return Component("libnvinfer", False, f"{' or '.join(names)} not found on LD_LIBRARY_PATH, in pip's "
                                          "tensorrt_libs or in the system library folders")


def _onnxruntime_part() -> Component:
    try:
        import onnxruntime as ort
    except Exception as exc:  # noqa: BLE001
        return Component("onnxruntime", False, f"not importable: {first_line(exc)}")
    gpu = [p for p in ort.get_available_providers() if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    where = package_origin(ort.__file__)
    providers = ", ".join(gpu) if gpu else "no GPU provider (the CPU-only package)"
    return Component("onnxruntime", bool(gpu), f"{ort.__version__} from {where}; {providers}")
