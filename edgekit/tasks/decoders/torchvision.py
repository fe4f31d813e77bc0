"""torchvision detectors exported with their own post-processing: ``boxes`` (k, 4) x1 y1 x2 y2 in
model-input pixels, ``scores`` (k,), ``labels`` (k,) — already NMS'd, k known only at run time.
A leading batch dim ([N, k, 4], ...) is accepted too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder


class TorchvisionDecoder(Decoder):
    """Passes the graph's detections through (thresholding and truncation follow in DetectionTask)."""

    name: ClassVar[str] = "torchvision"
    defaults: ClassVar[dict[str, Any]] = {"outputs": ["boxes", "scores", "labels"]}
    nms_in_graph: ClassVar[bool] = True

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        boxes, scores, labels = self.named_outputs(outputs, settings, 3)
        if boxes.ndim == 2:
            boxes, scores, labels = boxes[None], scores[None], labels[None]
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2] or labels.shape != scores.shape:
            raise BadInputError(f"torchvision decoder expects boxes (k, 4), scores (k,), labels (k,), got "
                                f"{boxes.shape}, {scores.shape}, {labels.shape}")
        return [(b.astype(np.float32), s.astype(np.float32), lab.astype(np.int64))
                for b, s, lab in zip(boxes, scores, labels)]
