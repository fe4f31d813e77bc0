"""Anchor-free face heads with landmarks, one set of outputs per stride (SCRFD, YuNet).

Per stride s (``strides``, default 8, 16, 32) the model gives, for each of the (H/s)·(W/s) cells
(``anchors`` rows per cell, SCRFD has 2), a score [N, rows, C], a box [N, rows, 4] and keypoints
[N, rows, 2P]; a leading batch dim may be missing. The cell's centre is (cell + ``cell_offset``) · s.

- ``box_encoding: distance`` (SCRFD): left, top, right, bottom distances from the centre, × s;
  ``center-log`` (YuNet): centre + (dx, dy) · s, size exp(dw, dh) · s.
- keypoints: centre + (dx, dy) · s for each point.
- ``objectness: true`` (YuNet): a second score per row, score = √(cls · obj) (both clipped to [0, 1]).
- ``score_activation``: none (scores already in [0, 1]) or sigmoid.

``outputs`` lists the names as the source orders them (scores per stride, [objectness per stride,]
boxes per stride, keypoints per stride); without names they are told apart by their last dim (1 or C,
4, 2P) and their rows (more rows: smaller stride). ``scrfd`` and ``yunet`` are this decoder with its
defaults set for that model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder
from edgekit.tasks.decoders.yolo import shape_text


class FaceDecoder(Decoder):
    """Per-stride score, box and keypoint outputs → boxes with landmarks (NMS follows in DetectionTask)."""

    name: ClassVar[str] = "faces"
    defaults: ClassVar[dict[str, Any]] = {"outputs": None, "strides": [8, 16, 32], "anchors": None,
                                          "box_encoding": "distance", "cell_offset": 0, "objectness": False,
                                          "score_activation": "none", "candidates": 5000, "nms": "agnostic",
                                          "iou_threshold": 0.4}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "box_encoding": ("distance", "center-log"), "cell_offset": (0, 0.5), "objectness": (True, False),
        "score_activation": ("none", "sigmoid")}

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        strides = _strides(settings)
        groups = self.groups(outputs, settings, len(strides))
        height, width = (int(v) for v in settings["input_size"])
        per_stride = [_stride_rows(arrays, stride, height, width, settings)
                      for stride, arrays in zip(strides, zip(*groups), strict=True)]
        batch = per_stride[0][0].shape[0]
        return [self._one([[part[index] for part in parts] for parts in per_stride], settings)
                for index in range(batch)]

    def groups(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any], count: int) -> list[list]:
        """[scores, (objectness,) boxes, keypoints], each a list of (name, [N, rows, values]) per stride."""
        kinds = 4 if settings["objectness"] else 3
        if settings["outputs"]:
            names = list(settings["outputs"])
            arrays = self.named_outputs(outputs, settings, kinds * count)
            pairs = [(name, _batched(array)) for name, array in zip(names, arrays)]
            return [pairs[kind * count:(kind + 1) * count] for kind in range(kinds)]
        return _by_shape(outputs, kinds, count)

    @staticmethod
    def _one(per_stride: list[list[np.ndarray]], settings: Mapping[str, Any]) -> Decoded:
        scores_all, boxes, points = (np.concatenate(part) for part in zip(*per_stride))
        labels = scores_all.argmax(axis=1)
        scores = scores_all[np.arange(len(labels)), labels]
        keep = np.flatnonzero(scores >= settings["score_threshold"])
        keep = keep[np.argsort(-scores[keep], kind="stable")][: int(settings["candidates"])]
        return (boxes[keep].astype(np.float32), scores[keep].astype(np.float32), labels[keep].astype(np.int64),
                points[keep].astype(np.float32))


class ScrfdDecoder(FaceDecoder):
    """InsightFace's SCRFD: 2 anchors per cell, distances × stride, centres at the cells' corners."""

    name: ClassVar[str] = "scrfd"


class YunetDecoder(FaceDecoder):
    """OpenCV's YuNet: cls and obj per stride, centre + offset and log size, 1 row per cell."""

    name: ClassVar[str] = "yunet"
    defaults: ClassVar[dict[str, Any]] = {**FaceDecoder.defaults, "box_encoding": "center-log", "objectness": True,
                                          "anchors": 1, "iou_threshold": 0.3}


def _strides(settings: Mapping[str, Any]) -> list[int]:
    strides = settings["strides"]
    if not (isinstance(strides, (list, tuple)) and strides and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in strides)):
        raise BadInputError(f"metadata key 'decoder.strides' must be a list of positive integers, got {strides!r}")
    return list(strides)


def _batched(array: np.ndarray) -> np.ndarray:
    return array[None] if array.ndim == 2 else array


def _by_shape(outputs: Mapping[str, np.ndarray], kinds: int, count: int) -> list[list]:
    """Outputs told apart by their last dim (scores and objectness 1 or C, boxes 4, keypoints 2P ≥ 6)."""
    arrays = [(name, _batched(np.asarray(value))) for name, value in outputs.items()]
    listed = ", ".join(f"{name} ({shape_text(array.shape)})" for name, array in arrays)
    if any(array.ndim != 3 for _, array in arrays):
        raise BadInputError(f"faces decoder expects [N, rows, values] outputs per stride, got {listed}: "
                            "set decoder.outputs or another decoder.type")
    kind = [1 if array.shape[2] == 4 else 2 if array.shape[2] >= 6 and array.shape[2] % 2 == 0 else 0
            for _, array in arrays]
    scores, boxes, points = ([item for item, k in zip(arrays, kind) if k == wanted] for wanted in range(3))
    want = (count * (kinds - 2), count, count)
    if (len(scores), len(boxes), len(points)) != want:
        raise BadInputError(f"faces decoder expects {want[0]} score, {count} box and {count} keypoint outputs "
                            f"(one per stride) and found {len(scores)}, {len(boxes)} and {len(points)} among "
                            f"{listed}: set decoder.outputs (in that order) and decoder.strides")
    by_rows = [sorted(group, key=lambda item: -item[1].shape[1]) for group in (scores, boxes, points)]
    if kinds == 4:  # cls and obj of one stride have the same rows: take them in turn (√(cls·obj) is symmetric)
        return [by_rows[0][0::2], by_rows[0][1::2], by_rows[1], by_rows[2]]
    return by_rows


def _stride_rows(arrays: tuple, stride: int, height: int, width: int, settings: Mapping[str, Any]) -> list:
    """(scores [N, n, C], boxes [N, n, 4], keypoints [N, n, P, 2]) of one stride, in model-input pixels."""
    (score_name, scores), *rest = arrays
    objectness = rest.pop(0)[1] if settings["objectness"] else None
    (box_name, boxes), (point_name, points) = rest
    centres = _centres(scores.shape[1], stride, height, width, settings, score_name)
    for name, array in ((box_name, boxes), (point_name, points), *(
            [("objectness", objectness)] if objectness is not None else [])):
        if array.shape[:2] != scores.shape[:2]:
            raise BadInputError(f"faces decoder: output '{name}' {shape_text(array.shape)} does not fit "
                                f"'{score_name}' {shape_text(scores.shape)} of stride {stride}")
    scores = scores.astype(np.float32)
    if settings["score_activation"] == "sigmoid":
        scores = 1 / (1 + np.exp(-scores))
    if objectness is not None:
        scores = np.sqrt(np.clip(scores, 0, 1) * np.clip(objectness.astype(np.float32), 0, 1))
    step = np.float32(stride)
    deltas = boxes.astype(np.float32) * step
    if settings["box_encoding"] == "distance":
        xyxy = np.concatenate([centres - deltas[..., :2], centres + deltas[..., 2:]], axis=-1)
    else:
        middle, half = centres + deltas[..., :2], np.exp(boxes[..., 2:].astype(np.float32)) * step / 2
        xyxy = np.concatenate([middle - half, middle + half], axis=-1)
    keypoints = centres[..., None, :] + points.astype(np.float32).reshape(*points.shape[:2], -1, 2) * step
    return [scores, xyxy, keypoints]


def _centres(rows: int, stride: int, height: int, width: int, settings: Mapping[str, Any], name: str) -> np.ndarray:
    """(rows, 2) x y centres of one stride's rows: cell by cell, row-major, ``anchors`` rows per cell."""
    anchors = settings["anchors"]
    if anchors is not None and (isinstance(anchors, bool) or not isinstance(anchors, int) or anchors < 1):
        raise BadInputError(f"metadata key 'decoder.anchors' must be a positive integer or null, got {anchors!r}")
    # cells of the padded input (YuNet: ceil), then of the cropped one (SCRFD: input_height // stride)
    for grid_h, grid_w in ((-(-height // stride), -(-width // stride)), (height // stride, width // stride)):
        cells = max(1, grid_h * grid_w)
        count = anchors or (rows // cells if rows % cells == 0 else 0)
        if count and rows == cells * count:
            break
    else:
        per = f"{anchors} per cell" if anchors else "a whole number per cell"
        raise BadInputError(f"faces decoder: output '{name}' has {rows} rows, not {per} of the {grid_h}x{grid_w} "
                            f"cells of stride {stride} at input {height}x{width}: check decoder.strides and "
                            "decoder.anchors")
    ys, xs = np.mgrid[:grid_h, :grid_w].astype(np.float32)
    centres = (np.stack([xs, ys], axis=-1).reshape(-1, 2) + np.float32(settings["cell_offset"])) * np.float32(stride)
    return np.repeat(centres, count, axis=0)
