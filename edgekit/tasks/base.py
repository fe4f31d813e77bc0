"""The task protocol: how images become model inputs and outputs become predictions (no metrics:
those are ``edgekit.evaluate.metrics``).

A task is chosen by the ``task`` field of a model's metadata. Robot tier: numpy only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import ImageTransform, default_route, preprocess_images


class Task(ABC):
    """Pre- and post-processing for one kind of model output."""

    name: ClassVar[str]
    #: post-processing settings the constructor takes (Predictor keywords, ``edgekit predict`` options)
    options: ClassVar[tuple[str, ...]] = ()
    #: whether the default host route must give the reference's pixels (a box regression follows
    #: every level) or may round resized pixels to whole levels, as PIL and OpenCV's uint8 resize do
    exact_pixels: ClassVar[bool] = True
    #: the offline data set (``edgekit.datasets``) any model of this task is judged on by default, where
    #: its labels fit (``datasets.fit``); None: only on the data the model records or the user names
    dataset: ClassVar[str | None] = None

    def preprocess(
        self, images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB", route: str | None = None
    ) -> tuple[dict[str, np.ndarray], list[ImageTransform]]:
        """Images (HxWxC uint8, ``color``: RGB, BGR or GRAY) → feeds for the model, plus per-image
        transforms. A fused model gets its frames stacked; others go through ``route`` (default:
        ``default_route(self.exact_pixels)``: OpenCV when installed, else numpy)."""
        route = route or default_route(self.exact_pixels)
        batch, transforms = preprocess_images(images, meta, color=color, route=route)
        return {meta.input_name: batch}, transforms

    @abstractmethod
    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[Any]:
        """Raw outputs for a batch → one prediction per image."""


def check_label_count(meta: ModelMeta, classes: int) -> None:
    """Metadata with fewer labels than the model has classes would name some predictions by index."""
    if meta.labels and len(meta.labels) < classes:
        raise BadInputError(f"metadata key 'labels' has {len(meta.labels)} names but the model outputs "
                            f"{classes} classes")


def check_fraction(name: str, value: float | None) -> None:
    """A threshold in [0, 1] (None: the model's own)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0.0 <= value <= 1.0):
        raise BadInputError(f"{name} must be a number from 0 to 1, got {value!r}")


def check_count(name: str, value: int | None) -> None:
    """A positive whole number (None: the default)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BadInputError(f"{name} must be a positive integer, got {value!r}")
