"""Object detection: box decoding, score threshold and class-wise NMS in numpy; COCO mAP.

Robot tier: numpy only, the same post-processing on every runtime. The model's raw
outputs and how to decode them are described by ``meta.extra["decoder"]``::

    {"type": "centernet", "outputs": ["heatmap", "size", "offset"], "stride": 4,
     "size_encoding": "log", "score_threshold": 0.05, "iou_threshold": 0.5,
     "max_detections": 100}

``heatmap`` is N×C×H×W class scores in [0, 1]; ``size`` N×2×H×W box width/height in stride
units (``log``: their logarithm); ``offset`` N×2×H×W the box centre minus the cell's corner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.base import Evaluator, Task
from edgekit.tasks.preprocess import ImageTransform

DEFAULT_DECODER = {"type": "centernet", "outputs": ["heatmap", "size", "offset"], "stride": 4,
                   "size_encoding": "log", "score_threshold": 0.05, "iou_threshold": 0.5, "max_detections": 100}


@dataclass(frozen=True)
class Detection:
    """Detections in one image, best first: boxes x1 y1 x2 y2 in original-image pixels."""

    boxes: np.ndarray   # (k, 4) float32
    scores: np.ndarray  # (k,) float32
    labels: np.ndarray  # (k,) int64 class indices
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.scores)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) x1 y1 x2 y2 boxes → (n, m)."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    width = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    height = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = width * height
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, by decreasing score (as torchvision.ops.nms).

    A box is suppressed when its IoU with a higher-scoring kept box is above ``iou_threshold``.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        if order.size == 1:
            break
        overlaps = box_iou(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-wise NMS: boxes of different labels never suppress each other."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    # shift each class into its own region so one NMS pass handles every class
    shift = (float(boxes.max()) - float(boxes.min()) + 1.0) * np.asarray(labels, np.float32)
    return nms(boxes + shift[:, None], scores, iou_threshold)


def local_peaks(heatmap: np.ndarray) -> np.ndarray:
    """Keep only the cells that are the maximum of their 3×3 neighbourhood (others → 0)."""
    padded = np.pad(heatmap, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    height, width = heatmap.shape[2:]
    neighbourhood = np.max(
        [padded[:, :, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0
    )
    return np.where(heatmap >= neighbourhood, heatmap, 0.0)


def decode_centernet(
    heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, stride: float, top_k: int = 100,
    size_encoding: str = "log",
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image, the ``top_k`` peak cells as (boxes in model-input pixels, scores, labels)."""
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.ndim != 4 or size.shape[1:] != (2, *heatmap.shape[2:]) or offset.shape != size.shape:
        raise BadInputError(
            "expected heatmap N×C×H×W with size and offset N×2×H×W, "
            f"got {heatmap.shape}, {size.shape}, {offset.shape}"
        )
    batch, classes, height, width = heatmap.shape
    peaks = local_peaks(heatmap).reshape(batch, -1)
    k = min(top_k, peaks.shape[1])
    results = []
    for index in range(batch):
        flat = np.argpartition(-peaks[index], k - 1)[:k] if k < peaks.shape[1] else np.arange(peaks.shape[1])
        flat = flat[np.argsort(-peaks[index, flat], kind="stable")]
        labels, cells = np.divmod(flat, height * width)
        rows, cols = np.divmod(cells, width)
        wh = size[index][:, rows, cols].T.astype(np.float32)  # (k, 2)
        wh = np.exp(wh) if size_encoding == "log" else wh
        centre_x = cols + offset[index, 0, rows, cols]
        centre_y = rows + offset[index, 1, rows, cols]
        boxes = np.stack([centre_x - wh[:, 0] / 2, centre_y - wh[:, 1] / 2,
                          centre_x + wh[:, 0] / 2, centre_y + wh[:, 1] / 2], axis=1) * stride
        results.append((boxes.astype(np.float32), peaks[index, flat].astype(np.float32), labels.astype(np.int64)))
    return results


class DetectionTask(Task):
    """Decode → score threshold → class-wise NMS → boxes in original-image pixels.

    ``score_threshold``/``iou_threshold``/``max_detections`` override the model's metadata.
    """

    name: ClassVar[str] = "detection"

    def __init__(self, score_threshold: float | None = None, iou_threshold: float | None = None,
                 max_detections: int | None = None) -> None:
        self.overrides = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
                          "max_detections": max_detections}

    def decoder(self, meta: ModelMeta) -> dict[str, Any]:
        """The decoding parameters: defaults, then the model's metadata, then this task's overrides."""
        settings = {**DEFAULT_DECODER, **meta.extra.get("decoder", {})}
        settings.update({k: v for k, v in self.overrides.items() if v is not None})
        if settings["type"] != "centernet":
            raise BadInputError(f"unknown detection decoder '{settings['type']}' (expected centernet)")
        return settings

    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[Detection]:
        settings = self.decoder(meta)
        missing = [name for name in settings["outputs"] if name not in outputs]
        if missing:
            raise BadInputError(f"detector outputs {sorted(outputs)} lack {missing} named in the model's metadata")
        heatmap, size, offset = (np.asarray(outputs[name]) for name in settings["outputs"])
        if meta.labels and heatmap.ndim == 4 and len(meta.labels) < heatmap.shape[1]:
            raise BadInputError(f"metadata key 'labels' has {len(meta.labels)} names but the model outputs "
                                f"{heatmap.shape[1]} classes")
        decoded = decode_centernet(heatmap, size, offset, settings["stride"], settings["max_detections"],
                                   settings["size_encoding"])
        return [self._finish(*item, transform, settings, meta.labels)
                for item, transform in zip(decoded, transforms, strict=True)]

    @staticmethod
    def _finish(boxes, scores, labels, transform: ImageTransform, settings, names) -> Detection:
        chosen = scores >= settings["score_threshold"]
        boxes, scores, labels = boxes[chosen], scores[chosen], labels[chosen]
        keep = batched_nms(boxes, scores, labels, settings["iou_threshold"])[: settings["max_detections"]]
        boxes, scores, labels = transform.boxes_to_original(boxes[keep]), scores[keep], labels[keep]
        label_names = tuple(names[c] if c < len(names) else str(c) for c in labels)
        return Detection(boxes, scores, labels, label_names)

    def evaluator(self, meta: ModelMeta) -> CocoEvaluator:
        return CocoEvaluator(num_classes=len(meta.labels) or None)


class CocoEvaluator(Evaluator):
    """COCO box mAP (pycocotools-compatible): map50_95 (primary), map50, map75, per-size APs.

    Values are fractions in [0, 1], as the COCO tools print them. Targets are dicts with
    ``boxes`` and ``labels`` (optionally ``area``, ``iscrowd``).
    """

    primary_metric: ClassVar[str] = "map50_95"
    points_per_unit: ClassVar[float] = 100.0  # fractions in [0, 1]
    reported: ClassVar[tuple[str, ...]] = ("map50_95", "map50", "map75", "ar100", "count")

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes
        self.predictions: list[Detection] = []
        self.targets: list[Mapping[str, Any]] = []

    def update(self, predictions: Sequence[Detection], targets: Sequence[Mapping[str, Any]]) -> None:
        if len(predictions) != len(targets):
            raise BadInputError(f"{len(predictions)} predictions for {len(targets)} targets")
        self.predictions.extend(predictions)
        self.targets.extend(targets)

    def compute(self) -> dict[str, float]:
        from edgekit.evaluate.coco_metrics import coco_map

        if not self.targets:
            raise BadInputError("no samples were evaluated")
        metrics = coco_map(self.predictions, self.targets, self.num_classes)
        return {key: metrics[key] for key in self.reported}
