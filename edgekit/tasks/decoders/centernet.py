"""CenterNet-style raw outputs: class heatmap, box size and centre offset maps.

``heatmap`` is N×C×H×W class scores in [0, 1]; ``size`` N×2×H×W box width/height in stride
units (``log``: their logarithm); ``offset`` N×2×H×W the box centre minus the cell's corner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder


class CenterNetDecoder(Decoder):
    """3×3 peak extraction and top-k over the heatmap; boxes from the size/offset maps."""

    name: ClassVar[str] = "centernet"
    defaults: ClassVar[dict[str, Any]] = {"outputs": ["heatmap", "size", "offset"], "stride": 4,
                                          "size_encoding": "log"}

    def num_classes(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> int | None:
        heatmap = outputs.get(settings["outputs"][0])
        return heatmap.shape[1] if heatmap is not None and heatmap.ndim == 4 else None

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        heatmap, size, offset = self.named_outputs(outputs, settings, 3)
        return decode_centernet(heatmap, size, offset, settings["stride"], settings["max_detections"],
                                settings["size_encoding"], settings.get("score_threshold", 0.0))


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
    threshold after decoding keeps, found without ranking every cell)."""
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
        scores = peaks[index]
        flat = np.flatnonzero(scores >= min_score) if min_score > 0 else np.arange(scores.size)
        if flat.size > k:
            flat = np.sort(flat[np.argpartition(-scores[flat], k - 1)[:k]])
        # equal scores: lower index first, as ONNX TopK (so NMS sees one order)
        flat = flat[np.argsort(-scores[flat], kind="stable")]
        labels, cells = np.divmod(flat, height * width)
        rows, cols = np.divmod(cells, width)
        wh = size[index].reshape(2, -1)[:, cells].astype(np.float32)  # (2, k): width, height
        half = (np.exp(wh) if size_encoding == "log" else wh) / 2
        centre = np.stack([cols, rows]) + offset[index].reshape(2, -1)[:, cells]  # (2, k): x, y
        boxes = np.concatenate([centre - half, centre + half]).T * stride
        results.append((boxes.astype(np.float32), scores[flat].astype(np.float32), labels.astype(np.int64)))
    return results
