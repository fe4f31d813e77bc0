"""Images in, predictions out: preprocess, run an open runtime in batches, postprocess (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.meta import ModelMeta
from edgekit.tasks.base import Task


def predict_images(runtime, task: Task, meta: ModelMeta, images: Sequence[np.ndarray], batch_size: int) -> list[Any]:
    """One prediction per image. A fixed-batch model gets exactly its batch (the last one padded)."""
    batch_dim = runtime.inputs[meta.input_name].shape[0] if meta.input_name in runtime.inputs else None
    if isinstance(batch_dim, int):
        batch_size = batch_dim
    predictions: list[Any] = []
    for start in range(0, len(images), batch_size):
        chunk = list(images[start : start + batch_size])
        feeds, transforms = task.preprocess(chunk, meta)
        if isinstance(batch_dim, int) and len(chunk) < batch_dim:
            feeds = {name: _pad(array, batch_dim) for name, array in feeds.items()}
        outputs = runtime.run(feeds)
        outputs = {name: array[: len(chunk)] for name, array in outputs.items()}
        predictions.extend(task.postprocess(outputs, meta, transforms))
    return predictions


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    """Repeat the last sample up to ``size`` (its outputs are dropped)."""
    return np.concatenate([array, np.repeat(array[-1:], size - array.shape[0], axis=0)], axis=0)
