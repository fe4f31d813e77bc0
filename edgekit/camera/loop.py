"""The frame loop behind `edgekit predict` on videos and cameras: pipelined prediction, a live
status line (FPS, per-stage latency, dropped frames), a clean stop on Ctrl-C, and a summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgekit.bench.latency import LatencyStats
from edgekit.stream import FrameResult

STATUS_EVERY_S = 0.5


@dataclass(frozen=True)
class LoopSummary:
    """What a frame loop did: frames predicted and dropped, time, per-stage and end-to-end latency."""

    frames: int
    dropped: int
    seconds: float
    interrupted: bool
    preprocess: LatencyStats | None
    inference: LatencyStats | None
    postprocess: LatencyStats | None
    latency: LatencyStats | None  # capture → prediction ready

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One line: frames, FPS, p50 of each stage and of the capture-to-prediction latency."""
        text = f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} FPS)"
        if self.dropped:
            text += f", {self.dropped} stale frames dropped"
        if self.latency is not None:
            text += (f"; p50 {self.preprocess.p50_ms:.2f} ms preprocess, {self.inference.p50_ms:.2f} ms inference, "
                     f"{self.postprocess.p50_ms:.2f} ms postprocess; latency p50 {self.latency.p50_ms:.1f} ms, "
                     f"p99 {self.latency.p99_ms:.1f} ms")
        return text + (" (stopped by Ctrl-C)" if self.interrupted else "")


def run_loop(predictor, source, on_result: Callable[[FrameResult], None] | None = None,
             status: Callable[[str], None] | None = None, max_frames: int | None = None) -> LoopSummary:
    """Predict every frame ``source`` hands out until it ends, ``max_frames`` or Ctrl-C."""
    samples: dict[str, list[int]] = {"pre": [], "inf": [], "post": [], "latency": []}
    start = time.perf_counter()
    next_status = start + STATUS_EVERY_S
    interrupted = False
    results = predictor.stream(source, color=source.color)
    try:
        for result in results:
            timing = result.timing
            samples["pre"].append(timing.preprocess_ns)
            samples["inf"].append(timing.inference_ns)
            samples["post"].append(timing.postprocess_ns)
            samples["latency"].append(result.latency_ns)
            if on_result is not None:
                on_result(result)
            now = time.perf_counter()
            if status is not None and now >= next_status:
                status(_status_line(samples, now - start, source.dropped))
                next_status = now + STATUS_EVERY_S
            if max_frames is not None and len(samples["latency"]) >= max_frames:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()
        source.close()
    seconds = time.perf_counter() - start
    stats = {key: LatencyStats.from_ns(values) if values else None for key, values in samples.items()}
    return LoopSummary(len(samples["latency"]), source.dropped, seconds, interrupted,
                       stats["pre"], stats["inf"], stats["post"], stats["latency"])


def _status_line(samples: dict[str, list[int]], seconds: float, dropped: int) -> str:
    recent = {key: np.asarray(values[-30:]) / 1e6 for key, values in samples.items()}
    return (f"{len(samples['latency']) / seconds:5.1f} FPS | preprocess {np.median(recent['pre']):.2f} ms, "
            f"inference {np.median(recent['inf']):.2f} ms, postprocess {np.median(recent['post']):.2f} ms | "
            f"latency {np.median(recent['latency']):.1f} ms | dropped {dropped}")
