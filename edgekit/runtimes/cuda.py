"""A thin ctypes wrapper over the CUDA driver and runtime libraries (Polygraphy-style).

Enough for TensorRT: device names, device buffers, pinned host buffers, streams, copies and
synchronization, without torch, pycuda or cuda-python. Libraries are loaded on first use; nothing
here runs at import time. Device names come from the driver (libcuda), everything else from
libcudart. Buffers and streams free themselves when garbage-collected (``weakref.finalize``), so a
runtime that is never closed does not hold GPU memory until the process exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import re
import sys
import threading
import time
import weakref
from functools import lru_cache

import numpy as np

from edgekit.errors import BadInputError, EdgekitError

MEMCPY_HOST_TO_DEVICE = 1  # cudaMemcpyKind
MEMCPY_DEVICE_TO_HOST = 2
_RUNTIME_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


class CudaError(EdgekitError):
    """A CUDA call failed (out of memory, no device, driver too old...)."""


def parse_device_id(device: str | None, default: int = 0) -> int:
    """'cuda:1', 'gpu:1' or '1' → 1; None → ``default``."""
    if device is None:
        return default
    text = str(device).strip().lower()
    for prefix in ("cuda:", "gpu:"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text in ("cuda", "gpu"):
        return default
    if not text.isdigit():
        raise BadInputError(f"device must look like cuda:N or N, got '{device}'")
    return int(text)


def _driver() -> ctypes.CDLL | None:
    """libcuda, from the loader's path or a system folder (Jetson keeps it under .../tegra); None without."""
    from edgekit.runtimes.gpu_libraries import system_library_dirs

    for path in ("libcuda.so.1", *(os.path.join(d, "libcuda.so.1") for d in system_library_dirs())):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs the driver sees; () without a driver or GPU. Never raises."""
    driver = _driver()
    if driver is None:
        return ()
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return ()
    names = []
    for ordinal in range(count.value):
        device = ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        if driver.cuDeviceGet(ctypes.byref(device), ordinal) == 0 and \
                driver.cuDeviceGetName(name, len(name), device) == 0:
            names.append(name.value.decode(errors="replace"))
        else:
            names.append(f"GPU {ordinal}")
    return tuple(names)


@lru_cache(maxsize=1)
def driver_major() -> int | None:
    """The CUDA major version the driver supports (13 for a 13.x driver); None without a driver."""
    driver = _driver()
    if driver is None:
        return None
    version = ctypes.c_int(0)
    if driver.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return version.value // 1000


def runtime_major(path: str) -> int | None:
    """The CUDA major version a libcudart path is for: libcudart.so.12[.x] or a pip wheel's
    nvidia/cu13/lib folder; None for an unversioned name."""
    match = re.search(r"libcudart\.so\.(\d+)", path) or re.search(r"[/\\]cu(\d+)[/\\]lib[/\\]", path)
    return int(match.group(1)) if match else None


def order_candidates(paths: list[str], driver: int | None) -> list[str]:
    """Try the libcudart that matches the driver first, then older ones (newest first), then
    unversioned names; a runtime newer than the driver cannot initialize, so it comes last."""
    def rank(indexed: tuple[int, str]) -> tuple[int, int, int]:
        index, path = indexed
        major = runtime_major(path)
        if driver is None or major is None:
            return (2 if major is None else 1, 0, index)
        if major == driver:
            return (0, 0, index)
        return (1, driver - major, index) if major < driver else (3, major, index)

    unique = list(dict.fromkeys(paths))
    return [path for _, path in sorted(enumerate(unique), key=rank)]


def _candidate_paths() -> list[str]:
    """libcudart from the loader's path, pip's nvidia-cuda-runtime wheels and the system's CUDA folders
    (/usr/local/cuda, JetPack's targets/aarch64-linux), matching the driver first."""
    from edgekit.runtimes.gpu_libraries import system_library_dirs

    paths = [name for name in _RUNTIME_NAMES if name != "libcudart.so"]
    for root in sys.path:
        paths += sorted(glob.glob(os.path.join(root, "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
        paths += sorted(glob.glob(os.path.join(root, "nvidia", "cu*", "lib", "libcudart.so*")))
    for folder in system_library_dirs():
        paths += sorted(glob.glob(os.path.join(folder, "libcudart.so.*")))
    return order_candidates([*paths, "libcudart.so"], driver_major())


@lru_cache(maxsize=1)
def runtime_library() -> ctypes.CDLL:
    """libcudart, loaded once; CudaError naming what was tried when it is missing."""
    for path in _candidate_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        _declare(library)
        return library
    raise CudaError("the CUDA runtime library (libcudart) was not found — install the CUDA runtime "
                    "(pip install nvidia-cuda-runtime-cu12) or add it to LD_LIBRARY_PATH")


def _declare(lib: ctypes.CDLL) -> None:
    p, size, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    signatures = {
        "cudaSetDevice": [i],
        "cudaMalloc": [ctypes.POINTER(p), size],
        "cudaFree": [p],
        "cudaMemcpy": [p, p, size, i],
        "cudaMemcpyAsync": [p, p, size, i, p],
        "cudaHostAlloc": [ctypes.POINTER(p), size, ctypes.c_uint],
        "cudaFreeHost": [p],
        "cudaStreamCreate": [ctypes.POINTER(p)],
        "cudaStreamDestroy": [p],
        "cudaStreamSynchronize": [p],
        "cudaRuntimeGetVersion": [ctypes.POINTER(i)],
        "cudaMemGetInfo": [ctypes.POINTER(size), ctypes.POINTER(size)],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = i
    lib.cudaGetLastError.argtypes = []
    lib.cudaGetLastError.restype = i
    lib.cudaGetErrorString.argtypes = [i]
    lib.cudaGetErrorString.restype = ctypes.c_char_p


def check(status: int, what: str) -> None:
    """Raise CudaError with CUDA's own message when ``status`` is not cudaSuccess."""
    if status != 0:
        library = runtime_library()
        library.cudaGetLastError()  # clear this thread's error, or the next CUDA user in the process inherits it
        message = library.cudaGetErrorString(status)
        text = message.decode(errors="replace") if message else f"error {status}"
        raise CudaError(f"{what} failed: {text}")


def set_device(device_id: int) -> None:
    check(runtime_library().cudaSetDevice(device_id), f"cudaSetDevice({device_id})")


_CURRENT = threading.local()


def ensure_device(device_id: int) -> None:
    """Make ``device_id`` the calling thread's current device (CUDA keeps one per thread), calling
    cudaSetDevice only when this thread has not set it yet."""
    if getattr(_CURRENT, "device", None) != device_id:
        set_device(device_id)
        _CURRENT.device = device_id


def runtime_version() -> str:
    """CUDA runtime version as 'major.minor'."""
    version = ctypes.c_int(0)
    check(runtime_library().cudaRuntimeGetVersion(ctypes.byref(version)), "cudaRuntimeGetVersion")
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def _release(library: ctypes.CDLL, function: str, value: int) -> None:
    """Free one CUDA allocation or stream (also run as a finalizer, so it never raises)."""
    with contextlib.suppress(Exception):  # the library may already be unloading at exit
        getattr(library, function)(ctypes.c_void_p(value))


def memory_info() -> tuple[int, int]:
    """(free, total) bytes of the calling thread's current device."""
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    check(runtime_library().cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)), "cudaMemGetInfo")
    return free.value, total.value


class _Resource:
    """A CUDA handle freed by ``free()``/``close()`` or, failing that, when garbage-collected."""

    _release_with = ""

    def _own(self, pointer: ctypes.c_void_p) -> None:
        self._pointer = pointer
        self._finalizer = weakref.finalize(self, _release, runtime_library(), self._release_with, pointer.value or 0)

    def free(self) -> None:
        self._finalizer()  # runs once; later calls do nothing
        self._pointer = ctypes.c_void_p()


class Stream(_Resource):
    """A CUDA stream; ``handle`` is the integer TensorRT's execute_async_v3 takes."""

    _release_with = "cudaStreamDestroy"

    def __init__(self) -> None:
        pointer = ctypes.c_void_p()
        check(runtime_library().cudaStreamCreate(ctypes.byref(pointer)), "cudaStreamCreate")
        self._own(pointer)

    @property
    def handle(self) -> int:
        return self._pointer.value or 0

    def synchronize(self) -> None:
        check(runtime_library().cudaStreamSynchronize(self._pointer), "cudaStreamSynchronize")

    def close(self) -> None:
        self.free()


class DeviceBuffer(_Resource):
    """``nbytes`` of device memory; copies to and from contiguous numpy arrays."""

    _release_with = "cudaFree"

    def __init__(self, nbytes: int) -> None:
        pointer = ctypes.c_void_p()
        check(runtime_library().cudaMalloc(ctypes.byref(pointer), max(nbytes, 1)), f"cudaMalloc({nbytes} bytes)")
        self._own(pointer)
        self.nbytes = nbytes

    @property
    def ptr(self) -> int:
        return self._pointer.value or 0

    def copy_from(self, array: np.ndarray, stream: Stream | None = None) -> None:
        """Host → device; with a stream the copy is queued on it (synchronize before reusing ``array``)."""
        array = np.ascontiguousarray(array)
        self._check_size(array.nbytes)
        self._copy(self._pointer, array.ctypes.data, array.nbytes, MEMCPY_HOST_TO_DEVICE, stream)

    def copy_to(self, array: np.ndarray, stream: Stream | None = None) -> np.ndarray:
        """Device → host into ``array`` (C-contiguous); with a stream, valid after it is synchronized."""
        if not array.flags["C_CONTIGUOUS"]:
            raise ValueError("copy_to needs a C-contiguous array")
        self._check_size(array.nbytes)
        self._copy(array.ctypes.data, self._pointer, array.nbytes, MEMCPY_DEVICE_TO_HOST, stream)
        return array

    def _check_size(self, nbytes: int) -> None:
        if nbytes > self.nbytes:
            raise ValueError(f"{nbytes} bytes do not fit a {self.nbytes}-byte device buffer")

    @staticmethod
    def _copy(destination, source, nbytes: int, kind: int, stream: Stream | None) -> None:
        library = runtime_library()
        if stream is None:
            check(library.cudaMemcpy(destination, source, nbytes, kind), "cudaMemcpy")
        else:
            check(library.cudaMemcpyAsync(destination, source, nbytes, kind, stream.handle), "cudaMemcpyAsync")


class HostBuffer(_Resource):
    """``nbytes`` of pinned (page-locked) host memory: copies from and to it run asynchronously at the
    bus's full speed, where pageable numpy memory is staged by the driver first."""

    _release_with = "cudaFreeHost"

    def __init__(self, nbytes: int) -> None:
        pointer = ctypes.c_void_p()
        check(runtime_library().cudaHostAlloc(ctypes.byref(pointer), max(nbytes, 1), 0),
              f"cudaHostAlloc({nbytes} bytes)")
        self._own(pointer)
        self.nbytes = nbytes

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A numpy array of ``dtype`` and ``shape`` over this memory (it keeps the buffer alive)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize > self.nbytes:
            raise ValueError(f"{count * dtype.itemsize} bytes do not fit a {self.nbytes}-byte host buffer")
        if not self._pointer.value:
            raise CudaError("pinned host buffer used after it was freed")
        raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(self._pointer.value)
        raw._owner = self  # the array's base chain keeps this buffer, and so its memory, alive
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


def time_copies(copy, repeats: int = 20) -> float:
    """Mean ms of ``copy()`` (a synchronous copy or one followed by a stream sync)."""
    copy()  # first call pays lazy allocation / page pinning
    start = time.perf_counter_ns()
    for _ in range(repeats):
        copy()
    return (time.perf_counter_ns() - start) / repeats / 1e6
