"""Image classification: softmax and top-k post-processing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.base import Task, check_count, check_label_count
from edgekit.tasks.preprocess import ImageTransform


@dataclass(frozen=True)
class ClassPrediction:
    """Top-k classes of one image, best first, with softmax probabilities."""

    classes: tuple[int, ...]
    probabilities: tuple[float, ...]
    names: tuple[str, ...]

    @property
    def label(self) -> int:
        return self.classes[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class ClassificationTask(Task):
    name: ClassVar[str] = "classification"
    dataset: ClassVar[str | None] = "digits"
    options: ClassVar[tuple[str, ...]] = ("top_k",)
    exact_pixels: ClassVar[bool] = False  # top-1 is the same on pixels rounded to whole levels

    def __init__(self, top_k: int | None = None) -> None:
        check_count("top_k", top_k)
        self.top_k = 5 if top_k is None else top_k

    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[ClassPrediction]:
        logits = np.asarray(next(iter(outputs.values())), dtype=np.float32)
        if logits.ndim != 2:
            raise BadInputError(f"a classifier must output (batch, classes) scores, got shape {logits.shape}")
        check_label_count(meta, logits.shape[1])
        probabilities = softmax(logits)
        k = min(self.top_k, logits.shape[1])
        order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        predictions = []
        for row, classes in enumerate(order):
            names = tuple(meta.labels[c] if c < len(meta.labels) else str(c) for c in classes)
            predictions.append(ClassPrediction(tuple(int(c) for c in classes),
                                               tuple(float(p) for p in probabilities[row, classes]), names))
        return predictions
