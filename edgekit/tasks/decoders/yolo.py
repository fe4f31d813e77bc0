"""YOLO-style raw output: one tensor of centre x, y, width, height in model-input pixels, class scores
(after an objectness score for YOLOv5) and, for pose models, keypoints; NMS runs outside the graph.

Ultralytics v8/v11 export ``output0`` [N, 4 + C, anchors] (``layout: anchors-last``, e.g. 1×84×8400);
YOLOv5 exports [N, anchors, 5 + C] (``layout: anchors-first``, ``objectness: true``: score = objectness ×
class score). Settings: ``outputs`` (default: the model's one 3-D output, found by shape); ``layout``
``auto`` (the axis of size 4 + C (+1) when the labels give C, else the shorter axis), ``anchors-last``
(alias ``channels-first``) or ``anchors-first``; ``objectness`` null (auto: true when the rows are
5 + C long for C labels), true or false; ``keypoints`` [P, D] (Ultralytics' ``kpt_shape``: P points of
x, y (, visibility) after the classes); ``normalized`` true when boxes are in [0, 1] of the input size;
``candidates`` caps the boxes per image handed to NMS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder

LAYOUTS = ("auto", "anchors-last", "channels-first", "anchors-first")


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(k, 4) centre x, y, width, height → x1 y1 x2 y2."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def single_output(outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any], ndims: tuple[int, ...],
                  what: str) -> np.ndarray:
    """The output named by ``settings["outputs"]``, else the model's only output of ``ndims`` dims."""
    if settings.get("outputs"):
        return Decoder.named_outputs(outputs, settings, 1)[0]
    fitting = [name for name, value in outputs.items() if np.ndim(value) in ndims]
    if len(fitting) == 1:
        return np.asarray(outputs[fitting[0]])
    listed = ", ".join(f"{name} ({shape_text(np.shape(value))})" for name, value in outputs.items())
    problem = "none of" if not fitting else "several of"
    raise BadInputError(f"{settings['type']} decoder expects {what}; {problem} the model's outputs fit: {listed}: "
                        "set decoder.outputs=NAME (or another decoder.type)")


class YoloDecoder(Decoder):
    """Best class per anchor above the score threshold; NMS follows in DetectionTask."""

    name: ClassVar[str] = "yolo"
    defaults: ClassVar[dict[str, Any]] = {"outputs": None, "layout": "auto", "objectness": None, "keypoints": None,
                                          "normalized": False, "candidates": 30000}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"layout": LAYOUTS, "objectness": (None, True, False),
                                                     "normalized": (True, False)}

    def num_classes(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> int | None:
        return self.rows(outputs, settings)[1]["classes"]

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        rows, plan = self.rows(outputs, settings)
        return [self._one(image.astype(np.float32, copy=False), plan, settings) for image in rows]

    def rows(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
        """The output as [N, anchors, values] and where its parts are (objectness, classes, keypoints)."""
        raw = single_output(outputs, settings, (2, 3), "one [N, 4+C, anchors] output")
        if raw.ndim == 2:
            raw = raw[None]
        if raw.ndim != 3:
            raise BadInputError(f"yolo decoder expects one [N, 4+C, anchors] output, got shape {raw.shape}")
        extra = _keypoint_values(settings)
        layout = settings["layout"]
        if layout == "auto":
            layout = _auto_layout(raw.shape[1:], int(settings.get("label_count") or 0), extra)
        rows = raw if layout == "anchors-first" else raw.transpose(0, 2, 1)  # → [N, A, values]
        objectness = settings["objectness"]
        if objectness is None:
            count = int(settings.get("label_count") or 0)
            objectness = bool(count) and rows.shape[2] == 5 + count + extra
        first_class = 5 if objectness else 4
        classes = rows.shape[2] - first_class - extra
        if classes < 1:
            raise BadInputError(f"yolo output has {rows.shape[2]} values per anchor; expected 4 box values "
                                f"{'+ objectness ' if objectness else ''}+ at least one class"
                                f"{f' + {extra} keypoint values' if extra else ''} (check decoder.layout)")
        return rows, {"first_class": first_class, "classes": classes, "objectness": objectness}

    @staticmethod
    def _one(rows: np.ndarray, plan: dict, settings: Mapping[str, Any]) -> Decoded:
        first, end = plan["first_class"], plan["first_class"] + plan["classes"]
        scores_all = rows[:, first:end]
        if plan["objectness"]:
            scores_all = scores_all * rows[:, 4:5]
        labels = scores_all.argmax(axis=1)
        scores = scores_all[np.arange(len(rows)), labels]
        keep = np.flatnonzero(scores >= settings["score_threshold"])
        keep = keep[np.argsort(-scores[keep], kind="stable")][: int(settings["candidates"])]
        boxes = cxcywh_to_xyxy(rows[keep, :4])
        scale = np.float32(1)
        if settings["normalized"]:
            height, width = settings.get("input_size", (1, 1))
            scale = np.asarray([width, height], np.float32)
            boxes = boxes * np.tile(scale, 2)
        decoded = (boxes.astype(np.float32), scores[keep].astype(np.float32), labels[keep].astype(np.int64))
        if not settings.get("keypoints"):
            return decoded
        points, dims = settings["keypoints"]
        keypoints = rows[keep, end:end + points * dims].reshape(len(keep), points, dims)[:, :, :2] * scale
        return (*decoded, keypoints.astype(np.float32))


def _keypoint_values(settings: Mapping[str, Any]) -> int:
    """How many values per anchor the keypoints take (``keypoints: [P, D]``), checked."""
    shape = settings.get("keypoints")
    if not shape:
        return 0
    if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in shape) and shape[0] >= 1 and shape[1] in (2, 3)):
        raise BadInputError(f"metadata key 'decoder.keypoints' must be [points, 2 or 3] (Ultralytics' kpt_shape), "
                            f"got {shape!r}")
    return shape[0] * shape[1]


def _auto_layout(dims: tuple[int, int], label_count: int, extra: int) -> str:
    """Which axis holds the values: the one that is 4 + C (+1) long for C labels, else the shorter one."""
    if label_count:
        fits = [dim in (4 + label_count + extra, 5 + label_count + extra) for dim in dims]
        if fits[0] != fits[1]:
            return "anchors-last" if fits[0] else "anchors-first"
    if dims[0] == dims[1]:
        raise BadInputError(f"yolo output {dims[0]}x{dims[1]} could be read either way: set "
                            "decoder.layout=anchors-last or anchors-first")
    return "anchors-last" if dims[0] < dims[1] else "anchors-first"


class YoloEnd2EndDecoder(Decoder):
    """Ultralytics' end-to-end heads (YOLOv10, YOLO26 exported with ``end2end``): one output [N, K, 6]
    of x1 y1 x2 y2 (input pixels), score, class, best first and already free of duplicates (no NMS);
    rows past the detections score 0. ``keypoints: [P, D]`` reads pose rows (x, y (, visibility) after
    the class)."""

    name: ClassVar[str] = "yolo-end2end"
    defaults: ClassVar[dict[str, Any]] = {"outputs": None, "keypoints": None, "normalized": False}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"normalized": (True, False)}
    nms_in_graph: ClassVar[bool] = True

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        raw = single_output(outputs, settings, (2, 3), "one [N, K, 6] end-to-end output")
        raw = raw[None] if raw.ndim == 2 else raw
        extra = _keypoint_values(settings)
        if raw.ndim != 3 or raw.shape[2] != 6 + extra:
            raise BadInputError(f"yolo-end2end decoder expects [N, K, {6 + extra}] rows (x1 y1 x2 y2 score class"
                                f"{' + keypoints' if extra else ''}), got shape {raw.shape}")
        return [self._one(rows.astype(np.float32, copy=False), settings) for rows in raw]

    @staticmethod
    def _one(rows: np.ndarray, settings: Mapping[str, Any]) -> Decoded:
        keep = np.flatnonzero(rows[:, 4] >= settings["score_threshold"])
        scale = np.ones(2, np.float32)
        if settings["normalized"]:
            height, width = settings.get("input_size", (1, 1))
            scale = np.asarray([width, height], np.float32)
        decoded = ((rows[keep, :4] * np.tile(scale, 2)).astype(np.float32), rows[keep, 4].astype(np.float32),
                   rows[keep, 5].round().astype(np.int64))
        if not settings.get("keypoints"):
            return decoded
        points, dims = settings["keypoints"]
        keypoints = rows[keep, 6:6 + points * dims].reshape(len(keep), points, dims)[:, :, :2] * scale
        return (*decoded, keypoints.astype(np.float32))
