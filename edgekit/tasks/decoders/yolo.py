"""YOLO-style raw output: one tensor ``[N, 4 + C, anchors]`` (Ultralytics v8 and later) of centre
x, y, width, height in model-input pixels followed by C class scores; NMS runs outside the graph.

Settings: ``layout`` ``"channels-first"`` ([N, 4+C, A], the default) or ``"anchors-first"``
([N, A, 4+C]); ``objectness`` true for YOLOv5-style rows with an objectness score after the box
([N, A, 5+C]: score = objectness × class score); ``normalized`` true when the box is in [0, 1]
of the input size; ``candidates`` caps the boxes per image handed to NMS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(k, 4) centre x, y, width, height → x1 y1 x2 y2."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


class YoloDecoder(Decoder):
    """Best class per anchor above the score threshold; class-wise NMS follows in DetectionTask."""

    name: ClassVar[str] = "yolo"
    defaults: ClassVar[dict[str, Any]] = {"outputs": ["output"], "layout": "channels-first",
                                          "objectness": False, "normalized": False, "candidates": 30000}

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        (raw,) = self.named_outputs(outputs, settings, 1)
        if raw.ndim == 2:
            raw = raw[None]
        if raw.ndim != 3:
            raise BadInputError(f"yolo decoder expects one [N, 4+C, anchors] output, got shape {raw.shape}")
        rows = raw if settings["layout"] == "anchors-first" else raw.transpose(0, 2, 1)  # → [N, A, 4+C]
        first_class = 5 if settings["objectness"] else 4
        if rows.shape[2] <= first_class:
            raise BadInputError(f"yolo output has {rows.shape[2]} values per anchor; expected 4 box values "
                                f"{'+ objectness ' if settings['objectness'] else ''}+ at least one class "
                                "(check decoder.layout)")
        return [self._one(image.astype(np.float32), first_class, settings) for image in rows]

    @staticmethod
    def _one(rows: np.ndarray, first_class: int, settings: Mapping[str, Any]) -> Decoded:
        scores_all = rows[:, first_class:]
        if settings["objectness"]:
            scores_all = scores_all * rows[:, 4:5]
        labels = scores_all.argmax(axis=1)
        scores = scores_all[np.arange(len(rows)), labels]
        keep = np.flatnonzero(scores >= settings["score_threshold"])
        keep = keep[np.argsort(-scores[keep], kind="stable")][: int(settings["candidates"])]
        boxes = cxcywh_to_xyxy(rows[keep, :4])
        if settings["normalized"]:
            height, width = settings.get("input_size", (1, 1))
            boxes = boxes * np.asarray([width, height, width, height], np.float32)
        return boxes.astype(np.float32), scores[keep].astype(np.float32), labels[keep].astype(np.int64)
