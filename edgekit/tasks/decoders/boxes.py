"""Detectors that decode in the graph (``edgekit fuse --postprocess``): ``boxes`` N×K×4 (x1 y1 x2 y2
in model-input pixels), ``scores`` N×K, ``labels`` N×K.

``boxes``: the host still runs class-wise NMS. ``boxes-nms``: the graph ran NMS too and marked
suppressed boxes with a negative score; the host only drops them, thresholds and truncates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder


class BoxesDecoder(Decoder):
    """Boxes, scores and labels straight from the graph."""

    name: ClassVar[str] = "boxes"
    defaults: ClassVar[dict[str, Any]] = {"outputs": ["boxes", "scores", "labels"]}

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        boxes, scores, labels = self.named_outputs(outputs, settings, 3)
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != boxes.shape[:2] or labels.shape != scores.shape:
            raise BadInputError(f"expected boxes N×K×4 with scores and labels N×K, got {boxes.shape}, "
                                f"{scores.shape}, {labels.shape}")
        results = []
        for index in range(boxes.shape[0]):
            keep = scores[index] >= 0  # boxes-nms marks suppressed boxes with a negative score
            results.append((boxes[index][keep].astype(np.float32), scores[index][keep].astype(np.float32),
                            labels[index][keep].astype(np.int64)))
        return results


class BoxesNMSDecoder(BoxesDecoder):
    """Boxes left after the graph's class-wise NMS."""

    name: ClassVar[str] = "boxes-nms"
    nms_in_graph: ClassVar[bool] = True
