"""One TensorRT inference in flight: an execution context with its own CUDA stream, device buffers,
pinned host buffers and output allocator.

NVIDIA's rule is one execution context (and stream) per concurrent inference: the runtime's
``run`` uses one slot under its lock, and every prepared call (the benchmark's multi-stream and
offline requests, one per worker thread) gets a slot of its own. Outputs whose shape depends on
the data (a detector's boxes: -1 dims after the input shapes are set) get their memory from an
``IOutputAllocator``, as Polygraphy does; their shape is known once ``execute_async_v3`` returns.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, EdgekitError
from edgekit.runtimes import cuda

_ALLOCATORS: dict[int, type] = {}  # id(tensorrt module) -> its IOutputAllocator subclass


def output_allocator(trt: Any):
    """A new output allocator: device memory for data-dependent outputs, grown as TensorRT asks."""
    kind = _ALLOCATORS.get(id(trt))
    if kind is None:
        kind = _ALLOCATORS[id(trt)] = _allocator_class(trt)
    return kind()


def _allocator_class(trt: Any) -> type:
    class OutputAllocator(trt.IOutputAllocator):
        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)
            self.buffers: dict[str, cuda.DeviceBuffer] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.error: Exception | None = None

        def reallocate_output(self, tensor_name, memory, size, alignment):
            buffer = self.buffers.get(tensor_name)
            if buffer is None or buffer.nbytes < size:
                try:
                    fresh = cuda.DeviceBuffer(int(size))  # cudaMalloc: 256-byte aligned
                except cuda.CudaError as exc:
                    self.error = exc
                    return None  # TensorRT then fails the enqueue
                if buffer is not None:
                    buffer.free()
                buffer = self.buffers[tensor_name] = fresh
            return buffer.ptr

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            return self.reallocate_output(tensor_name, memory, size, alignment)

        def notify_shape(self, tensor_name, shape):
            self.shapes[tensor_name] = tuple(int(d) for d in shape)

        def free(self) -> None:
            for buffer in self.buffers.values():
                buffer.free()
            self.buffers.clear()

    return OutputAllocator


class ExecutionSlot:
    """A context, a stream and buffers for one inference at a time (``lock`` serializes misuse)."""

    def __init__(self, trt: Any, engine: Any, logger: Any, device_id: int, outputs: Mapping[str, np.dtype],
                 max_batch: Mapping[str, int], keep: tuple = ()) -> None:
        cuda.ensure_device(device_id)  # contexts and streams belong to the device current when made
        self.trt, self.engine, self.logger, self.device_id = trt, engine, logger, device_id
        self.keep = keep  # what the engine needs alive while this slot lives (TensorRT's runtime)
        self.outputs, self.max_batch = dict(outputs), dict(max_batch)
        self.lock = threading.Lock()
        self.device: dict[str, cuda.DeviceBuffer] = {}
        self.host: dict[str, cuda.HostBuffer] = {}
        self.views: dict[str, np.ndarray] = {}
        self.static: dict[str, tuple[int, ...]] = {}
        self.dynamic: set[str] = set()  # outputs whose memory and shape come from the allocator
        self.allocator: Any = None
        self.inputs: dict[str, np.ndarray] = {}  # pinned staging of the last bound inputs
        self.stream = cuda.Stream()
        self.context = engine.create_execution_context()
        if self.context is None:
            self.close()
            raise EdgekitError(f"TensorRT could not create an execution context: {logger.summary()}")

    # ---- binding -----------------------------------------------------------------------------
    def bind(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Set input shapes, point the context at device memory, stage the inputs in pinned memory and
        queue their copies on this slot's stream."""
        context = self.context
        self.logger.clear()
        for name, array in feeds.items():
            limit = self.max_batch.get(name)
            if limit is not None and array.shape[0] > limit:
                raise BadInputError(f"batch {array.shape[0]} is above the engine's max batch {limit} "
                                    "(option max_batch)")
            if not context.set_input_shape(name, tuple(array.shape)):
                raise BadInputError(f"TensorRT rejects shape {tuple(array.shape)} for '{name}': "
                                    f"{self.logger.summary()}")
        self.inputs = {}
        for name, array in feeds.items():
            context.set_tensor_address(name, self._device(name, array.nbytes).ptr)
            staged = self.inputs[name] = self._host(name, array.dtype, array.shape)
            np.copyto(staged, array)
        self.static = {}
        for name, dtype in self.outputs.items():
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            # data-dependent: -1 once the inputs' shapes are set (a property of the engine, so kept: after a
            # run the context may report the last run's shape); TensorRT asks the allocator for memory
            if name in self.dynamic or any(d < 0 for d in shape):
                if self.allocator is None:
                    self.allocator = output_allocator(self.trt)
                if name not in self.dynamic:
                    context.set_output_allocator(name, self.allocator)
                    self.dynamic.add(name)
                continue
            self.static[name] = shape
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            context.set_tensor_address(name, self._device(name, nbytes).ptr)
        self.copy_inputs()

    def copy_inputs(self) -> None:
        for name, staged in self.inputs.items():
            self.device[name].copy_from(staged, self.stream)

    def _device(self, name: str, nbytes: int) -> cuda.DeviceBuffer:
        buffer = self.device.get(name)
        if buffer is None or buffer.nbytes < nbytes:
            if buffer is not None:
                buffer.free()  # cudaFree waits for the device: no queued work still uses it
            buffer = self.device[name] = cuda.DeviceBuffer(nbytes)
        return buffer

    def _host(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A pinned array for tensor ``name`` (the same one while its shape stays)."""
        view = self.views.get(name)
        if view is not None and view.shape == shape and view.dtype == dtype:
            return view
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        buffer = self.host.get(name)
        if buffer is None or buffer.nbytes < nbytes:
            self.views.pop(name, None)
            if buffer is not None:
                buffer.free()
            buffer = self.host[name] = cuda.HostBuffer(nbytes)
        view = self.views[name] = buffer.view(dtype, shape)
        return view

    # ---- running -----------------------------------------------------------------------------
    def execute(self) -> None:
        """Queue the engine on this slot's stream (data-dependent shapes are known when it returns)."""
        allocator = self.allocator
        if allocator is not None:
            allocator.shapes.clear()
            allocator.error = None
        if not self.context.execute_async_v3(self.stream.handle):
            if allocator is not None and allocator.error is not None:
                raise allocator.error
            raise EdgekitError(f"TensorRT execution failed: {self.logger.summary()}")

    def copy_outputs(self) -> dict[str, np.ndarray]:
        """Queue every output's copy into pinned memory; the arrays are valid after ``synchronize``."""
        hosts = {}
        for name, dtype in self.outputs.items():
            shape = self.static.get(name)
            if shape is not None:
                buffer = self.device[name]
            else:
                shape = self.allocator.shapes.get(name)
                buffer = self.allocator.buffers.get(name)
                if shape is None:
                    raise EdgekitError(f"TensorRT did not report the shape of output '{name}'")
            host = hosts[name] = self._host(name, dtype, shape)
            if host.nbytes:
                buffer.copy_to(host, self.stream)
        return hosts

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference: the outputs are the caller's (copied out of the pinned buffers)."""
        with self.lock:
            self.bind(feeds)
            self.execute()
            hosts = self.copy_outputs()
            self.stream.synchronize()  # outputs are valid, and pinned inputs reusable, only after this
            return {name: host.copy() for name, host in hosts.items()}

    def close(self) -> None:
        """Free the context first, then its memory and stream; safe to call twice."""
        with self.lock:  # never while this slot runs
            self.context = None
            for buffer in [*self.device.values(), *self.host.values()]:
                buffer.free()
            self.device.clear()
            self.host.clear()
            self.views.clear()
            self.inputs = {}
            if self.allocator is not None:
                self.allocator.free()
            self.stream.close()
            self.engine = None
            self.keep = ()


class PreparedCall:
    """The benchmark's call on its own slot: sets the thread's CUDA device, runs, waits for the stream."""

    def __init__(self, slot: ExecutionSlot) -> None:
        self.slot = slot

    def __call__(self) -> None:
        slot = self.slot
        if slot.context is None:
            raise EdgekitError("the TensorRT runtime this call was prepared on is closed")
        cuda.ensure_device(slot.device_id)  # a worker thread starts on device 0
        with slot.lock:
            slot.execute()
            slot.stream.synchronize()
