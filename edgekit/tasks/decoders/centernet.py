"""CenterNet-style raw outputs: class heatmap, box size and centre offset maps (and landmarks).

``heatmap`` is N×C×H×W class scores in [0, 1]; ``size`` N×2×H×W box width/height in stride
units (``log``: their logarithm); ``offset`` N×2×H×W the box centre minus the cell's corner.

The conventions differ between models and are settings (defaults: edgekit's own detector):
``size_order`` wh|hw, ``offset_order`` xy|yx, ``cell_offset`` 0|0.5 (centre at the cell's corner or
middle), ``size_encoding`` log|linear with ``size_scale`` (size = scale × exp(value) or scale × value,
in stride units), ``peaks`` true (3×3 local maxima, top ``candidates``) or false (every cell above the
score threshold, as CenterFace; NMS sorts them out). A fourth output name adds landmarks N×2P×H×W:
``landmark_order`` xy|yx, ``landmark_encoding`` box (top-left + value × box size, CenterFace) or cell
((cell + value) × stride, CenterNet's pose head).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder, number

#: edgekit's own detector: the conventions of its head (and of ``decode_centernet``)
EDGEKIT_CONVENTIONS: dict[str, Any] = {"size_order": "wh", "offset_order": "xy", "cell_offset": 0,
                                       "size_encoding": "log", "size_scale": 1.0, "peaks": True}


class CenterNetDecoder(Decoder):
    """Peak (or thresholded) cells of the heatmap; boxes from the size/offset maps in the model's conventions."""

    name: ClassVar[str] = "centernet"
    defaults: ClassVar[dict[str, Any]] = {"outputs": ["heatmap", "size", "offset"], "stride": 4,
                                          **EDGEKIT_CONVENTIONS, "candidates": None, "landmark_order": "xy",
                                          "landmark_encoding": "box"}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "size_order": ("wh", "hw"), "offset_order": ("xy", "yx"), "cell_offset": (0, 0.5),
        "size_encoding": ("log", "linear"), "peaks": (True, False), "landmark_order": ("xy", "yx"),
        "landmark_encoding": ("box", "cell")}

    def num_classes(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> int | None:
        heatmap = outputs.get(settings["outputs"][0])
        return heatmap.shape[1] if heatmap is not None and heatmap.ndim == 4 else None

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        count = len(settings["outputs"])
        if count not in (3, 4):
            raise BadInputError(f"centernet decoder needs 3 output names (heatmap, size, offset) or 4 (+ landmarks), "
                                f"metadata gives {list(settings['outputs'])}")
        maps = self.named_outputs(outputs, settings, count)
        candidates = settings["candidates"] or (settings["max_detections"] if settings["peaks"] else 1000)
        return decode_maps(*maps[:3], landmarks=maps[3] if count == 4 else None, stride=number(settings, "stride"),
                           top_k=int(candidates), min_score=settings.get("score_threshold", 0.0),
                           conventions=settings)


def local_peaks(heatmap: np.ndarray) -> np.ndarray:
    """Keep only the cells that are the maximum of their 3×3 neighbourhood (others → 0).

    The 3×3 maximum is taken as a maximum over rows, then over columns (separable; cells past
    the border do not count), which is several times faster than stacking nine shifted copies.
    """
    neighbourhood = _max_of_three(_max_of_three(heatmap, axis=2), axis=3)
    return np.where(heatmap >= neighbourhood, heatmap, 0.0)


def _max_of_three(array: np.ndarray, axis: int) -> np.ndarray:
    """Each element's maximum with its two neighbours along ``axis``."""
    result = array.copy()
    lower = [slice(None)] * array.ndim
    upper = [slice(None)] * array.ndim
    lower[axis], upper[axis] = slice(None, -1), slice(1, None)
    lower, upper = tuple(lower), tuple(upper)
    np.maximum(result[upper], array[lower], out=result[upper])
    np.maximum(result[lower], array[upper], out=result[lower])
    return result


def decode_centernet(
    heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, stride: float, top_k: int = 100,
    size_encoding: str = "log", min_score: float = 0.0,
) -> list[Decoded]:
    """Per image, the ``top_k`` peak cells as (boxes in model-input pixels, scores, labels), best
    first; with ``min_score`` > 0 only peaks scoring at least that (the same boxes a score
    threshold after decoding keeps, found without ranking every cell). edgekit's conventions."""
    return decode_maps(heatmap, size, offset, stride=stride, top_k=top_k, min_score=min_score,
                       conventions={**EDGEKIT_CONVENTIONS, "size_encoding": size_encoding})


def decode_maps(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, *, stride: float, top_k: int,
                min_score: float, conventions: Mapping[str, Any], landmarks: np.ndarray | None = None) -> list[Decoded]:
    """``decode_centernet`` in any of the conventions (and with landmarks, as a fourth item per image)."""
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.ndim != 4 or size.shape[1:] != (2, *heatmap.shape[2:]) or offset.shape != size.shape:
        raise BadInputError(
            "expected heatmap N×C×H×W with size and offset N×2×H×W, "
            f"got {heatmap.shape}, {size.shape}, {offset.shape}"
        )
    if landmarks is not None and (landmarks.ndim != 4 or landmarks.shape[1] % 2
                                  or landmarks.shape[2:] != size.shape[2:]):
        raise BadInputError(f"expected landmarks N×2P×H×W beside the heatmap {heatmap.shape}, got {landmarks.shape}")
    batch, _, height, width = heatmap.shape
    size_scale = number(conventions, "size_scale", positive=True)
    peaks = (local_peaks(heatmap) if conventions["peaks"] else heatmap).reshape(batch, -1)
    k = min(top_k, peaks.shape[1])
    results = []
    for index in range(batch):
        flat = _top_cells(peaks[index], k, min_score)
        labels, cells = np.divmod(flat, height * width)
        rows, cols = np.divmod(cells, width)
        wh = _pair(size[index], cells, conventions["size_order"] == "hw")  # (2, k): width, height
        wh = (np.exp(wh) if conventions["size_encoding"] == "log" else wh) * np.float32(size_scale)
        centre = np.stack([cols, rows]) + np.float32(conventions["cell_offset"]) \
            + _pair(offset[index], cells, conventions["offset_order"] == "yx")  # (2, k): x, y
        corner, box_wh = (centre - wh / 2) * stride, wh * stride
        boxes = np.concatenate([corner, corner + box_wh]).T
        item = (boxes.astype(np.float32), peaks[index][flat].astype(np.float32), labels.astype(np.int64))
        if landmarks is not None:
            cell_xy = np.stack([cols, rows]).astype(np.float32)
            item = (*item, _landmarks(landmarks[index], cells, cell_xy, corner, box_wh, stride, conventions))
        results.append(item)
    return results


def _top_cells(scores: np.ndarray, k: int, min_score: float) -> np.ndarray:
    """The flat indices of the ``k`` best cells (at least ``min_score`` when > 0), best first."""
    flat = np.flatnonzero(scores >= min_score) if min_score > 0 else np.arange(scores.size)
    if flat.size > k:
        flat = np.sort(flat[np.argpartition(-scores[flat], k - 1)[:k]])
    # equal scores: lower index first, as ONNX TopK (so NMS sees one order)
    return flat[np.argsort(-scores[flat], kind="stable")]


def _pair(maps: np.ndarray, cells: np.ndarray, swapped: bool) -> np.ndarray:
    """(2, k) float32 values of a 2×H×W map at ``cells``, x (width) first."""
    values = maps.reshape(2, -1)[:, cells].astype(np.float32)
    return values[::-1] if swapped else values


def _landmarks(maps: np.ndarray, cells: np.ndarray, cell_xy: np.ndarray, corner: np.ndarray, box_wh: np.ndarray,
               stride: float, conventions: Mapping[str, Any]) -> np.ndarray:
    """(k, P, 2) landmark x y in model-input pixels (``corner``, ``box_wh``: (2, k) in pixels)."""
    values = maps.reshape(-1, 2, maps.shape[1] * maps.shape[2])[:, :, cells].astype(np.float32)  # (P, 2, k)
    if conventions["landmark_order"] == "yx":
        values = values[:, ::-1]
    if conventions["landmark_encoding"] == "box":
        points = corner[None] + values * box_wh[None]
    else:
        points = (cell_xy[None] + values) * np.float32(stride)
    return points.transpose(2, 0, 1).astype(np.float32)
