"""Box geometry in numpy: IoU, greedy NMS and class-wise NMS (x1 y1 x2 y2 boxes)."""

from __future__ import annotations

import numpy as np


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


#: up to this many candidates NMS compares all pairs at once (an n×n float32 matrix: 16 MiB at 2048)
PAIRWISE_LIMIT = 2048


def overlaps_above(a: np.ndarray, b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(n, m) booleans: IoU(a_i, b_j) > ``iou_threshold``, tested as intersection > t·union (no
    division; boxes without area overlap nothing). Outer ufuncs, in place: ≈ 30 µs at 80 × 80."""
    ax1, ay1, ax2, ay2 = np.ascontiguousarray(a.T)
    bx1, by1, bx2, by2 = np.ascontiguousarray(b.T)
    inter = np.minimum.outer(ax2, bx2)
    inter -= np.maximum.outer(ax1, bx1)
    height = np.minimum.outer(ay2, by2)
    height -= np.maximum.outer(ay1, by1)
    np.maximum(inter, 0, out=inter)
    np.maximum(height, 0, out=height)
    inter *= height
    union = np.add.outer(np.maximum(ax2 - ax1, 0) * np.maximum(ay2 - ay1, 0),
                         np.maximum(bx2 - bx1, 0) * np.maximum(by2 - by1, 0))
    union -= inter
    union *= np.float32(iou_threshold)
    return inter > union


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, by decreasing score (as torchvision.ops.nms).

    A box is suppressed when its IoU with a higher-scoring kept box is above ``iou_threshold``.
    Up to ``PAIRWISE_LIMIT`` boxes the overlaps are computed once as a matrix and the greedy pass
    visits only the boxes that overlap a lower-scoring one (few, on a detector's peaks); above,
    each kept box is compared with the boxes still left.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    if len(order) <= PAIRWISE_LIMIT:
        ranked = boxes[order]
        above = overlaps_above(ranked, ranked, iou_threshold)  # symmetric; the diagonal is each box itself
        suppressed = np.zeros(len(order), dtype=bool)
        for index in np.flatnonzero(np.count_nonzero(above, axis=1) > above.diagonal()).tolist():
            if not suppressed[index]:  # a kept box suppresses the lower-scoring boxes it overlaps
                suppressed[index + 1 :] |= above[index, index + 1 :]
        return order[~suppressed]
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        if order.size == 1:
            break
        order = order[1:][~overlaps_above(boxes[best : best + 1], boxes[order[1:]], iou_threshold)[0]]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-wise NMS: boxes of different labels never suppress each other."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    # shift each class into its own region so one NMS pass handles every class
    shift = (float(boxes.max()) - float(boxes.min()) + 1.0) * np.asarray(labels, np.float32)
    return nms(boxes + shift[:, None], scores, iou_threshold)
