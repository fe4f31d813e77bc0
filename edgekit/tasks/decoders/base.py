"""The decoder protocol: a detector's raw outputs → boxes, scores and labels per image.

A decoder is chosen by ``meta.extra["decoder"]["type"]``; its settings are the common ones
below, then the decoder's own ``defaults``, then the model's metadata. Robot tier: numpy only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError

#: (boxes (k, 4) x1 y1 x2 y2 in model-input pixels, scores (k,), labels (k,) int64) for one image, and for
#: a format with landmarks a fourth item: keypoints (k, P, 2) x y in model-input pixels
Decoded = tuple[np.ndarray, ...]

#: settings every decoder takes: what DetectionTask applies after decoding. ``nms``: ``class`` (boxes of
#: different labels never suppress each other, Ultralytics' predict default) or ``agnostic`` (one box per object)
COMMON_SETTINGS: dict[str, Any] = {"score_threshold": 0.05, "iou_threshold": 0.5, "max_detections": 100,
                                   "nms": "class"}
#: settings with a fixed set of values, every decoder's (a decoder adds its own in ``choices``)
COMMON_CHOICES: dict[str, tuple[Any, ...]] = {"nms": ("class", "agnostic")}


class Decoder(ABC):
    """Turns one batch of raw detector outputs into candidate boxes per image."""

    name: ClassVar[str]
    #: this format's own settings and their defaults (output names, stride, ...)
    defaults: ClassVar[dict[str, Any]] = {}
    #: True when the model already ran NMS (DetectionTask then only thresholds and truncates)
    nms_in_graph: ClassVar[bool] = False
    #: this format's settings that take one of a few values
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        """A setting outside its values is one line naming the key (before any output is read)."""
        for key, allowed in {**COMMON_CHOICES, **cls.choices}.items():
            if key in settings and settings[key] not in allowed:
                shown = ", ".join(map(_shown, allowed))
                raise BadInputError(f"metadata key 'decoder.{key}' must be one of {shown}, got {settings[key]!r}")

    @abstractmethod
    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        """One ``Decoded`` per image of the batch, best first or in any order."""

    def num_classes(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> int | None:
        """How many classes the raw outputs score, where the format says (checked against the labels)."""
        return None

    @staticmethod
    def named_outputs(outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any], count: int) -> list[np.ndarray]:
        """The ``count`` outputs named by ``settings["outputs"]``, in that order."""
        names = list(settings["outputs"])
        if len(names) != count:
            raise BadInputError(f"decoder '{settings['type']}' needs {count} output names, metadata gives {names}")
        missing = [name for name in names if name not in outputs]
        if missing:
            raise BadInputError(f"detector outputs {sorted(outputs)} lack {missing} named in the model's metadata")
        return [np.asarray(outputs[name]) for name in names]


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def number(settings: Mapping[str, Any], key: str, positive: bool = False) -> float:
    """A numeric setting, or one line naming the key."""
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
            or (positive and value <= 0):
        raise BadInputError(f"metadata key 'decoder.{key}' must be a {'positive ' if positive else ''}number, "
                            f"got {value!r}")
    return float(value)
