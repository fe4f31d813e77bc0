"""Object detection: decoding, score threshold and class-wise NMS in numpy.

Robot tier: numpy only, the same post-processing on every runtime. How to decode a model's
raw outputs is described by ``meta.extra["decoder"]`` and its ``type`` picks a decoder from
``edgekit.tasks.decoders`` (e.g. ``centernet``)::

    {"type": "centernet", "outputs": ["heatmap", "size", "offset"], "stride": 4,
     "size_encoding": "log", "score_threshold": 0.05, "iou_threshold": 0.5,
     "max_detections": 100, "nms": "class"}

A decoder may give keypoints per box (face landmarks, pose): they are mapped back to the original
image like the boxes and kept through NMS (``Detection.keypoints``, (k, P, 2)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.base import Task, check_count, check_fraction, check_label_count
from edgekit.tasks.boxes import batched_nms, box_iou, nms
from edgekit.tasks.decoders import DECODERS, Decoder, decoder_settings
from edgekit.tasks.decoders.base import COMMON_CHOICES, Decoded
from edgekit.tasks.decoders.centernet import CenterNetDecoder, decode_centernet, local_peaks
from edgekit.tasks.preprocess import ImageTransform

DEFAULT_DECODER = decoder_settings(CenterNetDecoder, {})

__all__ = ["DEFAULT_DECODER", "Detection", "DetectionTask", "batched_nms", "box_iou", "decode_centernet",
           "local_peaks", "nms"]


@dataclass(frozen=True)
class Detection:
    """Detections in one image, best first: boxes x1 y1 x2 y2 in original-image pixels, and for a
    model with landmarks their keypoints (x y in original-image pixels)."""

    boxes: np.ndarray   # (k, 4) float32
    scores: np.ndarray  # (k,) float32
    labels: np.ndarray  # (k,) int64 class indices
    names: tuple[str, ...] = ()
    keypoints: np.ndarray | None = None  # (k, P, 2) float32, or None when the model has none

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self, digits: int = 1) -> dict[str, Any]:
        """A JSON-ready view: one entry per box (box, score, label, name, and keypoints when present)."""
        names = self.names or tuple(str(int(c)) for c in self.labels)
        items = []
        for index, (box, score, label, name) in enumerate(zip(self.boxes, self.scores, self.labels, names)):
            item = {"box": [round(float(v), digits) for v in box], "score": round(float(score), 4),
                    "label": int(label), "name": name}
            if self.keypoints is not None:
                item["keypoints"] = [[round(float(x), digits), round(float(y), digits)]
                                     for x, y in self.keypoints[index]]
            items.append(item)
        return {"detections": items}


class DetectionTask(Task):
    """Decode → score threshold → class-wise NMS → boxes in original-image pixels (boxes that
    clip to nothing there, e.g. wholly in the letterbox padding, are dropped; after NMS, as a
    graph with NMS in it has them, so such a box can still have suppressed one it overlaps).

    ``score_threshold``/``iou_threshold``/``max_detections``/``nms`` (class or agnostic) override the
    model's metadata.
    """

    name: ClassVar[str] = "detection"
    dataset: ClassVar[str | None] = "shapes"
    options: ClassVar[tuple[str, ...]] = ("score_threshold", "iou_threshold", "max_detections", "nms")

    def __init__(self, score_threshold: float | None = None, iou_threshold: float | None = None,
                 max_detections: int | None = None, nms: str | None = None) -> None:
        check_fraction("score_threshold", score_threshold)
        check_fraction("iou_threshold", iou_threshold)
        check_count("max_detections", max_detections)
        if nms is not None and nms not in COMMON_CHOICES["nms"]:
            raise BadInputError(f"nms must be class or agnostic, got {nms!r}")
        self.overrides = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
                          "max_detections": max_detections, "nms": nms}
        self._last: tuple[ModelMeta, Decoder, dict[str, Any]] | None = None

    def decoder(self, meta: ModelMeta) -> tuple[Decoder, dict[str, Any]]:
        """The model's decoder and its settings (read-only): defaults, the model's metadata, this
        task's overrides. Kept for the last metadata object, as a Predictor asks for every frame."""
        last = self._last
        if last is not None and last[0] is meta:
            return last[1], last[2]
        decoder, settings = self._resolve(meta)
        self._last = (meta, decoder, settings)
        return decoder, settings

    def _resolve(self, meta: ModelMeta) -> tuple[Decoder, dict[str, Any]]:
        given = dict(meta.extra.get("decoder", {}))
        decoder = DECODERS.get(str(given.get("type", "centernet")))
        settings = decoder_settings(decoder, given)
        settings.setdefault("input_size", list(meta.input_size))  # for decoders of normalized boxes
        settings.setdefault("label_count", len(meta.labels))  # for decoders that read their layout by shape
        settings.update({k: v for k, v in self.overrides.items() if v is not None})
        decoder.check_settings(settings)
        return decoder(), settings

    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[Detection]:
        decoder, settings = self.decoder(meta)
        classes = decoder.num_classes(outputs, settings)
        if classes is not None:
            check_label_count(meta, classes)
        decoded = decoder.decode(outputs, settings)
        return [self._finish(item, transform, settings, meta.labels, decoder.nms_in_graph)
                for item, transform in zip(decoded, transforms, strict=True)]

    @staticmethod
    def _finish(item: Decoded, transform: ImageTransform, settings, names, nms_done: bool) -> Detection:
        boxes, scores, labels = item[:3]
        points = item[3] if len(item) > 3 else None
        chosen = np.flatnonzero(scores >= settings["score_threshold"])
        boxes, scores, labels = boxes[chosen], scores[chosen], labels[chosen]
        if nms_done:
            keep = np.argsort(-scores, kind="stable")
        elif settings["nms"] == "agnostic":
            keep = nms(boxes, scores, settings["iou_threshold"])
        else:
            keep = batched_nms(boxes, scores, labels, settings["iou_threshold"])
        boxes, scores, labels = transform.boxes_to_original(boxes[keep]), scores[keep], labels[keep]
        # a box wholly in the letterbox padding or off the image is empty once clipped: not a detection
        seen = np.flatnonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[: settings["max_detections"]]
        boxes, scores, labels = boxes[seen], scores[seen], labels[seen]
        if points is not None:
            points = transform.points_to_original(points[chosen[keep[seen]]]).astype(np.float32, copy=False)
        codes = labels.tolist()
        if max(codes, default=-1) < len(names):
            label_names = tuple(map(names.__getitem__, codes))
        else:
            label_names = tuple(names[c] if c < len(names) else str(c) for c in codes)
        return Detection(boxes, scores, labels, label_names, points)
