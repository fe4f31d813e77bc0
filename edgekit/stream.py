"""Pipelined prediction over a stream of frames: a worker thread reads and pre-processes frame
n+1 while the caller's thread runs inference and post-processing of frame n.

The runtimes release the GIL while they infer, so the two overlap on separate cores. The
hand-off holds one prepared frame: a slow model makes the reader wait instead of queueing
frames (a live source drops the stale ones itself, see ``sources.LatestFrames``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.frames import to_frame
from edgekit.tasks.run import StageTiming, batch_size_for, finish_chunk, prepare_chunk

_END = object()


@dataclass(frozen=True)
class Frame:
    """One captured frame: uint8 pixels, its number in the source, when it was captured."""

    image: np.ndarray
    index: int
    captured_ns: int
    name: str = ""


@dataclass(frozen=True)
class FrameResult:
    """A frame with its prediction, stage timing and capture-to-prediction latency."""

    frame: Frame
    prediction: Any
    timing: StageTiming
    latency_ns: int


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def pipelined(predictor, frames: Iterable[Any], color: str, depth: int = 1) -> Iterator[FrameResult]:
    """FrameResults in order for ``frames`` (Frame objects, arrays, paths or PIL images)."""
    runtime, task, meta = predictor.runtime, predictor.task, predictor.meta
    fixed = batch_size_for(runtime, meta, 1)[1]
    handoff: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for index, item in enumerate(frames):
                frame = item if isinstance(item, Frame) else Frame(to_frame(item, index), index, time.perf_counter_ns())
                prepared = prepare_chunk(task, meta, [frame.image], fixed, color, predictor.route)
                if not _put(handoff, (frame, prepared), stop):
                    return
        except BaseException as error:  # handed to the caller's thread, raised there
            _put(handoff, _Failure(error), stop)
        _put(handoff, _END, stop)

    worker = threading.Thread(target=produce, name="edgekit-prepare", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            frame, prepared = item
            predictions, timing = finish_chunk(runtime, task, meta, prepared)
            yield FrameResult(frame, predictions[0], timing, time.perf_counter_ns() - frame.captured_ns)
    finally:
        stop.set()
        while not handoff.empty():  # unblock a reader waiting to hand over
            handoff.get_nowait()
        worker.join(timeout=5)


def _put(handoff: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Hand ``item`` over unless the consumer has stopped; False when it has."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
