"""A FAKE of libcudart for tests without a GPU (part of tests/fake_tensorrt.py's fakes).

It has the functions edgekit's ctypes wrapper calls, with their names and argument conventions, over
host memory. It RECORDS copies, allocations and streams, and ENFORCES CUDA's rules: stream work runs
only at cudaStreamSynchronize, and device memory starts as 0xCD garbage, so an output read before
the sync is wrong. Device memory used by two streams with work pending on both is a race. Device
pointers must lie inside live allocations. Each thread has its own current device (0 when it
starts). A broken rule raises ``RuleBroken`` and is also kept in ``FakeCuda.broken``.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

GARBAGE = 0xCD
H2D, D2H = 1, 2


class RuleBroken(AssertionError):
    """edgekit broke a rule of CUDA or TensorRT that the real thing would punish (a crash or wrong data)."""


def _value(pointer) -> int:
    if isinstance(pointer, ctypes.c_void_p):
        return pointer.value or 0
    return int(pointer or 0)


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
