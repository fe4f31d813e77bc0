"""Images in, predictions out: preprocess, run an open runtime in batches, postprocess (numpy only).

Every stage is timed with ``perf_counter_ns`` (a few calls per batch), so a caller can say
where the time of a prediction went.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.meta import ModelMeta
from edgekit.tasks.base import Task

#: images per inference call for a dynamic-batch model when the caller does not say
DEFAULT_BATCH = 8


@dataclass(frozen=True)
class StageTiming:
    """Where the time of one prediction call went, in nanoseconds, over ``images`` images."""

    images: int
    preprocess_ns: int
    inference_ns: int
    postprocess_ns: int

    @property
    def total_ns(self) -> int:
        return self.preprocess_ns + self.inference_ns + self.postprocess_ns

    def per_image_ms(self) -> dict[str, float]:
        """Milliseconds per image of each stage and of the whole call."""
        count = max(self.images, 1)
        return {"preprocess": self.preprocess_ns / 1e6 / count, "inference": self.inference_ns / 1e6 / count,
                "postprocess": self.postprocess_ns / 1e6 / count, "total": self.total_ns / 1e6 / count}

    def __add__(self, other: StageTiming) -> StageTiming:
        return StageTiming(self.images + other.images, self.preprocess_ns + other.preprocess_ns,
                           self.inference_ns + other.inference_ns, self.postprocess_ns + other.postprocess_ns)

    def line(self) -> str:
        """'1.2 ms preprocess, 3.4 ms inference, 0.1 ms postprocess per image'."""
        ms = self.per_image_ms()
        return (f"{ms['preprocess']:.2f} ms preprocess, {ms['inference']:.2f} ms inference, "
                f"{ms['postprocess']:.2f} ms postprocess per image")


NO_TIME = StageTiming(0, 0, 0, 0)


def batch_size_for(runtime, meta: ModelMeta, requested: int | None) -> tuple[int, int | None]:
    """(images per call, fixed batch of the model or None). A fixed-batch model gets exactly its batch."""
    spec = runtime.inputs.get(meta.input_name)
    batch_dim = spec.shape[0] if spec is not None and spec.shape else None
    if isinstance(batch_dim, int):
        return batch_dim, batch_dim
    return max(1, requested or DEFAULT_BATCH), None


def run_batches(runtime, task: Task, meta: ModelMeta, images: Sequence[np.ndarray],
                batch_size: int | None = None, color: str = "RGB", route: str | None = None,
                ) -> tuple[list[Any], StageTiming]:
    """One prediction per image and the time each stage took. Images go to the model in chunks
    of ``batch_size`` (default 8), so memory stays flat however many images are given.
    ``color`` is the images' channel order (RGB or BGR); ``route`` the pre-processing route."""
    size, fixed = batch_size_for(runtime, meta, batch_size)
    predictions: list[Any] = []
    timing = NO_TIME
    for start in range(0, len(images), size):
        prepared = prepare_chunk(task, meta, images[start : start + size], fixed, color, route)
        chunk_predictions, chunk_timing = finish_chunk(runtime, task, meta, prepared)
        predictions.extend(chunk_predictions)
        timing = timing + chunk_timing
    return predictions, timing


@dataclass(frozen=True)
class Prepared:
    """A pre-processed chunk of images, ready for the runtime."""

    feeds: dict[str, np.ndarray]
    transforms: list[Any]
    count: int
    preprocess_ns: int
    padded: bool = False


def prepare_chunk(task: Task, meta: ModelMeta, images: Sequence[np.ndarray], fixed: int | None,
                  color: str = "RGB", route: str | None = None) -> Prepared:
    """Pre-process ``images`` (padded to a fixed batch by repeating the last one)."""
    start = time.perf_counter_ns()
    feeds, transforms = task.preprocess(images, meta, color=color, route=route)
    padded = fixed is not None and len(images) < fixed
    if padded:
        feeds = {name: _pad(array, fixed) for name, array in feeds.items()}
    return Prepared(feeds, list(transforms), len(images), time.perf_counter_ns() - start, padded)


def finish_chunk(runtime, task: Task, meta: ModelMeta, prepared: Prepared) -> tuple[list[Any], StageTiming]:
    """Run and post-process a prepared chunk: its predictions and the time of all three stages."""
    clock = time.perf_counter_ns
    start = clock()
    outputs = runtime.run(prepared.feeds)
    inferred = clock()
    if prepared.padded:
        outputs = {name: array[: prepared.count] for name, array in outputs.items()}
    predictions = task.postprocess(outputs, meta, prepared.transforms)
    done = clock()
    return predictions, StageTiming(prepared.count, prepared.preprocess_ns, inferred - start, done - inferred)


def predict_images(runtime, task: Task, meta: ModelMeta, images: Sequence[np.ndarray], batch_size: int) -> list[Any]:
    """One prediction per image (see ``run_batches``)."""
    return run_batches(runtime, task, meta, images, batch_size)[0]


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    """Repeat the last sample up to ``size`` (its outputs are dropped)."""
    return np.concatenate([array, np.repeat(array[-1:], size - array.shape[0], axis=0)], axis=0)
