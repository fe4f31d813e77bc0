"""Image classification: softmax/top-k post-processing and top-1/top-5 accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.base import Evaluator, Task
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


def check_label_count(meta: ModelMeta, classes: int) -> None:
    """Metadata with fewer labels than the model has classes would name some predictions by index."""
    if meta.labels and len(meta.labels) < classes:
        raise BadInputError(f"metadata key 'labels' has {len(meta.labels)} names but the model outputs "
                            f"{classes} classes")


class ClassificationTask(Task):
    name: ClassVar[str] = "classification"
    top_k: int = 5

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

    def evaluator(self, meta: ModelMeta) -> TopKEvaluator:
        return TopKEvaluator()


class TopKEvaluator(Evaluator):
    """Top-1 and top-5 accuracy in percent."""

    primary_metric: ClassVar[str] = "top1"

    def __init__(self) -> None:
        self._top1 = self._top5 = self._count = 0

    def update(self, predictions: Sequence[ClassPrediction], targets: Sequence[int]) -> None:
        for prediction, target in zip(predictions, targets, strict=True):
            self._count += 1
            self._top1 += int(prediction.classes[0] == int(target))
            self._top5 += int(int(target) in prediction.classes[:5])

    def compute(self) -> dict[str, float]:
        if not self._count:
            raise BadInputError("no samples were evaluated")
        return {"top1": 100.0 * self._top1 / self._count, "top5": 100.0 * self._top5 / self._count,
                "count": float(self._count)}
