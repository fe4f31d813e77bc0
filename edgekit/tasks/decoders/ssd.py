"""SSD-style raw outputs: boxes ``[N, A, 4]`` and class scores ``[N, A, C]``; NMS outside the graph.

Settings: ``outputs`` [boxes, scores] or [boxes, scores, priors]; ``box_format`` ``"xyxy"`` or
``"cxcywh"``; ``normalized`` true when boxes are in [0, 1] of the input size; ``encoding``
``"priors"`` when boxes are offsets from priors ([A, 4] or [N, A, 4] centre x, y, w, h, a third
output) with ``variances`` [0.1, 0.2]; ``score_activation`` none | sigmoid | softmax;
``background`` the index of a background class (dropped; the others renumbered from 0) or null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder
from edgekit.tasks.decoders.yolo import cxcywh_to_xyxy


def decode_priors(offsets: np.ndarray, priors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """SSD box regression (dx, dy, dw, dh) against centre-size priors → centre-size boxes."""
    centre = priors[..., :2] + offsets[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * np.exp(offsets[..., 2:] * variances[1])
    return np.concatenate([centre, size], axis=-1)


class SsdDecoder(Decoder):
    """Every (anchor, class) pair above the score threshold, best first, up to ``candidates``."""

    name: ClassVar[str] = "ssd"
    defaults: ClassVar[dict[str, Any]] = {"outputs": ["boxes", "scores"], "box_format": "xyxy",
                                          "normalized": False, "encoding": "corners", "variances": [0.1, 0.2],
                                          "score_activation": "none", "background": None, "candidates": 1000}

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        with_priors = settings["encoding"] == "priors"
        arrays = self.named_outputs(outputs, settings, 3 if with_priors else 2)
        boxes, scores = arrays[0].astype(np.float32), arrays[1].astype(np.float32)
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[:2] != boxes.shape[:2]:
            raise BadInputError(f"ssd decoder expects boxes [N, A, 4] and scores [N, A, C], got "
                                f"{boxes.shape} and {scores.shape}")
        if with_priors:
            priors = np.broadcast_to(arrays[2].astype(np.float32).reshape(-1, boxes.shape[1], 4), boxes.shape)
            boxes = cxcywh_to_xyxy(decode_priors(boxes, priors, tuple(settings["variances"])).reshape(-1, 4))
        elif settings["box_format"] == "cxcywh":
            boxes = cxcywh_to_xyxy(boxes.reshape(-1, 4))
        boxes = boxes.reshape(scores.shape[0], -1, 4)
        if settings["normalized"] or with_priors:
            height, width = settings.get("input_size", (1, 1))
            boxes = boxes * np.asarray([width, height, width, height], np.float32)
        scores = _activate(scores, settings["score_activation"])
        if settings["background"] is not None:
            scores = np.delete(scores, int(settings["background"]), axis=2)
        return [self._one(b, s, settings) for b, s in zip(boxes, scores)]

    @staticmethod
    def _one(boxes: np.ndarray, scores: np.ndarray, settings: Mapping[str, Any]) -> Decoded:
        anchors, classes = np.nonzero(scores >= settings["score_threshold"])
        values = scores[anchors, classes]
        order = np.argsort(-values, kind="stable")[: int(settings["candidates"])]
        anchors, classes = anchors[order], classes[order]
        return boxes[anchors].astype(np.float32), values[order].astype(np.float32), classes.astype(np.int64)


def _activate(scores: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-scores))
    if activation == "softmax":
        shifted = np.exp(scores - scores.max(axis=2, keepdims=True))
        return shifted / shifted.sum(axis=2, keepdims=True)
    if activation != "none":
        raise BadInputError(f"ssd decoder score_activation must be none, sigmoid or softmax, got '{activation}'")
    return scores
