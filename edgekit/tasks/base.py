"""The task protocol: how images become model inputs and outputs become predictions.

A task is chosen by the ``task`` field of a model's metadata. Robot tier: numpy only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import ImageTransform, preprocess_images


class Evaluator(ABC):
    """Accumulates predictions against targets, then computes metrics."""

    @abstractmethod
    def update(self, predictions: Sequence[Any], targets: Sequence[Any]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Metric name → value (e.g. top1, top5; map50, map50_95)."""

    #: the metric that ranks models for this task (used by reports and --max-drop)
    primary_metric: ClassVar[str] = ""
    #: multiply a metric by this to get percentage points (1.0 for percent, 100.0 for fractions)
    points_per_unit: ClassVar[float] = 1.0


class Task(ABC):
    """Pre- and post-processing for one kind of model output."""

    name: ClassVar[str]

    def preprocess(self, images: Sequence[np.ndarray], meta: ModelMeta) -> tuple[dict[str, np.ndarray], list[ImageTransform]]:
        """Images (HxWxC uint8) → feeds for the model, plus per-image transforms."""
        batch, transforms = preprocess_images(images, meta)
        return {meta.input_name: batch}, transforms

    @abstractmethod
    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[Any]:
        """Raw outputs for a batch → one prediction per image."""

    @abstractmethod
    def evaluator(self, meta: ModelMeta) -> Evaluator: ...
