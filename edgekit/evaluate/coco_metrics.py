"""COCO box mAP through a real COCO metric library (faster-coco-eval, else pycocotools).

edgekit predictions (``Detection``) and targets (dicts with ``boxes`` x1 y1 x2 y2 and
``labels``; optional ``area``, ``iscrowd``) are converted to COCO ground truth and results:
image ids are 1..N in evaluation order, category id = label index + 1 unless
``category_ids`` maps label indices to the dataset's own ids. The library is imported lazily.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, RuntimeUnavailableError

# COCOeval.stats order
STAT_NAMES = ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _category_ids(num_classes: int, category_ids: Sequence[int] | None) -> list[int]:
    if category_ids is None:
        return list(range(1, num_classes + 1))
    if len(category_ids) < num_classes:
        raise BadInputError(f"{len(category_ids)} category ids for {num_classes} classes")
    return [int(c) for c in category_ids]


def coco_ground_truth(
    targets: Sequence[Mapping[str, Any]], num_classes: int, category_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth dict for ``targets`` (image ids 1..N)."""
    ids = _category_ids(num_classes, category_ids)
    images, annotations = [], []
    for number, target in enumerate(targets, start=1):
        height, width = target.get("size", (0, 0))
        images.append({"id": number, "width": int(width), "height": int(height)})
        boxes = xyxy_to_xywh(target["boxes"])
        labels = np.asarray(target["labels"], np.int64).reshape(-1)
        if len(labels) != len(boxes):
            raise BadInputError(f"target {number - 1} has {len(boxes)} boxes but {len(labels)} labels")
        area = np.asarray(target.get("area", boxes[:, 2] * boxes[:, 3]), np.float64).reshape(-1)
        crowd = np.asarray(target.get("iscrowd", np.zeros(len(labels))), np.int64).reshape(-1)
        for box, label, box_area, is_crowd in zip(boxes, labels, area, crowd):
            if not 0 <= label < num_classes:
                raise BadInputError(f"target {number - 1} has label {label}, outside 0..{num_classes - 1}")
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": ids[label],
                                "bbox": [float(v) for v in box], "area": float(box_area), "iscrowd": int(is_crowd)})
    categories = [{"id": c, "name": str(c)} for c in ids[:num_classes]]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(predictions: Sequence[Any], num_classes: int, category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO results (one dict per box, with its score) for ``predictions`` (image ids 1..N)."""
    ids = _category_ids(num_classes, category_ids)
    results = []
    for number, prediction in enumerate(predictions, start=1):
        for box, score, label in zip(xyxy_to_xywh(prediction.boxes), prediction.scores, prediction.labels):
            if not 0 <= label < num_classes:
                raise BadInputError(f"prediction {number - 1} has label {label}, outside 0..{num_classes - 1}")
            results.append({"image_id": number, "category_id": ids[int(label)],
                            "bbox": [float(v) for v in box], "score": float(score)})
    return results


def coco_map(
    predictions: Sequence[Any], targets: Sequence[Mapping[str, Any]], num_classes: int | None = None,
    category_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO box metrics of ``predictions`` against ``targets`` (fractions; -1 where undefined)."""
    if len(predictions) != len(targets):
        raise BadInputError(f"{len(predictions)} predictions for {len(targets)} targets")
    if num_classes is None:
        seen = [np.asarray(t["labels"]).reshape(-1) for t in targets] + [np.asarray(p.labels) for p in predictions]
        num_classes = int(max((s.max() for s in seen if s.size), default=0)) + 1
    ground_truth = coco_ground_truth(targets, num_classes, category_ids)
    results = coco_results(predictions, num_classes, category_ids)
    stats = evaluate_coco(ground_truth, results)
    return {**dict(zip(STAT_NAMES, stats)), "count": float(len(targets))}


def evaluate_coco(ground_truth: dict[str, Any], results: list[dict]) -> list[float]:
    """The 12 COCOeval bbox statistics of ``results`` against ``ground_truth``."""
    if not results:  # the libraries cannot load an empty result list: nothing found scores what COCOeval gives
        return _nothing_found(ground_truth)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            from faster_coco_eval import COCO, COCOeval_faster

            gt = COCO(ground_truth)
            evaluator = COCOeval_faster(gt, gt.loadRes(results), "bbox")
        except ImportError:
            evaluator = _pycocotools_evaluator(ground_truth, results)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats[: len(STAT_NAMES)]]


#: COCO's area ranges: small < 32², medium 32²–96², large ≥ 96² (pixels)
AREA_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, float("inf"))}


def _nothing_found(ground_truth: dict[str, Any]) -> list[float]:
    """COCOeval's statistics with no detection: 0 where there is ground truth to find (crowd regions do
    not count), −1 where there is none, the whole set or an area range (undefined, as COCOeval says)."""
    areas = [float(a["area"]) for a in ground_truth.get("annotations", []) if not a.get("iscrowd")]

    def found_nothing(low: float = 0.0, high: float = float("inf")) -> float:
        return 0.0 if any(low <= area < high for area in areas) else -1.0

    by_size = [found_nothing(*AREA_RANGES[size]) for size in ("small", "medium", "large")]
    overall = found_nothing()
    return [overall, overall, overall, *by_size, overall, overall, overall, *by_size]


def _pycocotools_evaluator(ground_truth: dict[str, Any], results: list[dict]):
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise RuntimeUnavailableError(
            "COCO mAP needs faster-coco-eval or pycocotools: pip install 'edgekit[train]'"
        ) from None
    gt = COCO()
    gt.dataset = ground_truth
    gt.createIndex()
    return COCOeval(gt, gt.loadRes(results), "bbox")
