"""The whole robot path on real frames: Predictor calls (preprocess → inference → postprocess)
timed per stage, and the pipelined throughput of ``Predictor.stream`` over the same frames.

Complements ``runner.benchmark``, which times only the inference call on a prepared tensor.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bench.latency import LatencyStats, LoopPlan
from edgekit.errors import BadInputError

MAX_FRAMES = 100  # distinct frames kept in memory (a 640×480 frame is 0.9 MB)


@dataclass(frozen=True)
class FrameSet:
    """Frames to benchmark on, all in one colour order, and where they came from."""

    frames: tuple[np.ndarray, ...]
    color: str
    source: str

    @classmethod
    def from_images(cls, paths: list[str | Path]) -> FrameSet:
        from edgekit.frames import read_image
        from edgekit.camera.sources import image_paths

        files = image_paths(paths)[:MAX_FRAMES]
        return cls(tuple(read_image(path) for path in files), "RGB", ", ".join(str(p) for p in paths))

    @classmethod
    def from_video(cls, path: str | Path) -> FrameSet:
        from edgekit.camera.sources import VideoFile

        video = VideoFile(path)
        try:
            frames = tuple(frame.image for frame in itertools.islice(video, MAX_FRAMES))
        finally:
            video.close()
        return cls(frames, video.color, str(path))


@dataclass(frozen=True)
class PipelineRecord:
    """Per-stage latency of Predictor calls on real frames (one frame per call), and throughput."""

    model: str
    runtime: str
    source: str
    frames: int
    frame_shape: tuple[int, ...]
    preprocess: LatencyStats
    inference: LatencyStats
    postprocess: LatencyStats
    end_to_end: LatencyStats
    sequential_fps: float  # one call after another
    pipelined_fps: float  # Predictor.stream: reading/pre-processing overlaps inference

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pipeline_benchmark(model: str | Path, frames: FrameSet, runtime: str = "ort-cpu", plan: LoopPlan = LoopPlan(),
                       runtime_options: dict[str, Any] | None = None) -> PipelineRecord:
    """Time Predictor calls on ``frames`` (cycled) per ``plan``, then the pipelined stream over them."""
    from edgekit import Predictor

    if not frames.frames:
        raise BadInputError(f"no frames to benchmark in {frames.source}")
    options = {k: v for k, v in (runtime_options or {}).items() if v is not None}
    with Predictor(model, runtime, color=frames.color, **options) as predict:
        for frame in itertools.islice(itertools.cycle(frames.frames), plan.warmup):
            predict(frame)
        stages, total_ns = _timed_calls(predict, frames.frames, plan)
        count = len(stages)
        start = time.perf_counter_ns()
        streamed = sum(1 for _ in predict.stream(itertools.islice(itertools.cycle(frames.frames), count)))
        pipelined_ns = time.perf_counter_ns() - start
        runtime_name = predict.runtime.name
    columns = np.asarray(stages, dtype=np.int64)
    return PipelineRecord(
        model=Path(model).stem, runtime=runtime_name, source=frames.source, frames=count,
        frame_shape=tuple(frames.frames[0].shape),
        preprocess=LatencyStats.from_ns(columns[:, 0]), inference=LatencyStats.from_ns(columns[:, 1]),
        postprocess=LatencyStats.from_ns(columns[:, 2]), end_to_end=LatencyStats.from_ns(columns[:, 3]),
        sequential_fps=count * 1e9 / total_ns, pipelined_fps=streamed * 1e9 / pipelined_ns,
    )


def _timed_calls(predict, frames: tuple[np.ndarray, ...], plan: LoopPlan) -> tuple[list[tuple[int, ...]], int]:
    """(preprocess, inference, postprocess, end-to-end) ns per call, and the loop's total ns."""
    clock = time.perf_counter_ns
    stages: list[tuple[int, ...]] = []
    began = clock()
    deadline = began + int(plan.min_duration_s * 1e9)
    for frame in itertools.cycle(frames):
        start = clock()
        predict(frame)
        end = clock()
        timing = predict.last_timing
        stages.append((timing.preprocess_ns, timing.inference_ns, timing.postprocess_ns, end - start))
        if plan.max_runs is not None and len(stages) >= plan.max_runs:
            break
        if len(stages) >= plan.min_runs and end >= deadline:
            break
    return stages, clock() - began


def frames_for(images: list[Path] | None, video: Path | None) -> FrameSet | None:
    """The frames `edgekit bench --images/--video` names, or None when it names none."""
    if images and video:
        raise BadInputError("give --images or --video, not both")
    if images:
        return FrameSet.from_images(list(images))
    if video:
        return FrameSet.from_video(video)
    return None
