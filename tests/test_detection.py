"""Detection post-processing (decode, NMS) and COCO mAP against hand-checked cases and the libraries."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.evaluate.coco_metrics import coco_map
from edgekit.evaluate.metrics import make_evaluator
from edgekit.meta import ModelMeta
from edgekit.tasks import get_task
from edgekit.tasks.detection import Detection, batched_nms, box_iou, decode_centernet, local_peaks, nms
from edgekit.tasks.preprocess import ImageTransform


def test_nms_hand_checked_case():
    boxes = np.array([
        [0, 0, 10, 10],    # 0: best
        [1, 0, 11, 10],    # 1: IoU with 0 = 90/110 = 0.818 → suppressed at 0.5
        [0, 0, 10, 20],    # 2: IoU with 0 = 100/200 = 0.5 → kept (suppression needs > 0.5)
        [20, 20, 30, 30],  # 3: disjoint → kept
        [21, 21, 30, 30],  # 4: IoU with 3 = 81/100 → suppressed
    ], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95], dtype=np.float32)
    # 4 (0.95) first, suppresses 3; then 0, which suppresses 1; 2 survives
    assert nms(boxes, scores, 0.5).tolist() == [4, 0, 2]
    assert nms(boxes, scores, 0.85).tolist() == [4, 0, 1, 2, 3]
    assert box_iou(boxes[:1], boxes[1:3])[0].tolist() == pytest.approx([90 / 110, 0.5])


def test_nms_matches_torchvision_on_random_boxes():
    torch = pytest.importorskip("torch")
    tv_ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(0)
    for trial in range(20):
        count = int(rng.integers(1, 300))
        corners = rng.uniform(0, 200, (count, 2))
        sizes = rng.uniform(1, 60, (count, 2))
        boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
        scores = rng.permutation(count).astype(np.float32) / count  # distinct scores: order is unambiguous
        labels = rng.integers(0, 4, count)
        threshold = float(rng.uniform(0.2, 0.8))
        expected = tv_ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
        assert nms(boxes, scores, threshold).tolist() == expected.tolist(), trial
        expected = tv_ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                      torch.from_numpy(labels), threshold).numpy()
        assert batched_nms(boxes, scores, labels, threshold).tolist() == expected.tolist(), trial


def test_nms_of_nothing():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def _maps(classes=2, cells=8):
    return (np.zeros((1, classes, cells, cells), np.float32), np.zeros((1, 2, cells, cells), np.float32),
            np.zeros((1, 2, cells, cells), np.float32))


def test_decode_centernet_boxes_and_peaks():
    heatmap, size, offset = _maps()
    heatmap[0, 1, 2, 3] = 0.9          # class 1 at row 2, column 3
    heatmap[0, 1, 2, 4] = 0.5          # its neighbour: not a local peak
    heatmap[0, 0, 6, 6] = 0.7          # class 0 elsewhere
    size[0, :, 2, 3] = np.log([2.0, 4.0])   # 2 × 4 cells
    offset[0, :, 2, 3] = [0.5, 0.25]
    size[0, :, 6, 6] = 0.0                   # 1 × 1 cell
    boxes, scores, labels = decode_centernet(heatmap, size, offset, stride=4, top_k=3)[0]
    assert labels[:2].tolist() == [1, 0] and scores[:2].tolist() == pytest.approx([0.9, 0.7])
    assert scores[2] == 0.0  # the suppressed neighbour scores zero
    # centre (3.5, 2.25) cells → (14, 9) px; 8 × 16 px
    assert boxes[0].tolist() == pytest.approx([10, 1, 18, 17])
    assert boxes[1].tolist() == pytest.approx([22, 22, 26, 26])
    linear = decode_centernet(heatmap, np.exp(size), offset, stride=4, top_k=1, size_encoding="linear")[0][0]
    assert linear[0].tolist() == pytest.approx([10, 1, 18, 17])


def test_local_peaks_keeps_plateau_maxima_only():
    heatmap = np.zeros((1, 1, 4, 4), np.float32)
    heatmap[0, 0, 1, 1], heatmap[0, 0, 1, 2], heatmap[0, 0, 3, 3] = 0.8, 0.6, 0.3
    peaks = local_peaks(heatmap)
    assert np.argwhere(peaks[0, 0] > 0).tolist() == [[1, 1], [3, 3]]


def test_postprocess_threshold_nms_and_mapping_to_original_pixels():
    heatmap, size, offset = _maps(classes=1)
    heatmap[0, 0, 2, 2], heatmap[0, 0, 2, 4], heatmap[0, 0, 6, 6] = 0.9, 0.8, 0.01
    size[0, :, 2, 2] = size[0, :, 2, 4] = np.log(4.0)  # two 16 px boxes 8 px apart: IoU 1/3
    meta = ModelMeta(task="detection", input_size=(32, 32), labels=("thing",),
                     extra={"decoder": {"stride": 4, "score_threshold": 0.1, "iou_threshold": 0.3}})
    task = get_task("detection")
    transform = ImageTransform(0.5, 0.5, 0.0, 4.0, (56, 64))  # letterboxed 64×56 → 32×28, 4 px on top
    outputs = {"heatmap": heatmap, "size": size, "offset": offset}
    [result] = task.postprocess(outputs, meta, [transform])
    assert isinstance(result, Detection) and len(result) == 1 and result.names == ("thing",)
    # box (0, 0, 16, 16) in model pixels → x / 0.5, (y - 4) / 0.5, clipped to the 64×56 image
    assert result.boxes[0].tolist() == pytest.approx([0, 0, 32, 24])
    meta_loose = meta.with_(extra={"decoder": {"stride": 4, "score_threshold": 0.1, "iou_threshold": 0.5}})
    assert len(task.postprocess(outputs, meta_loose, [transform])[0]) == 2
    missing = {"heatmap": heatmap, "size": size}
    with pytest.raises(Exception, match="lack"):
        task.postprocess(missing, meta, [transform])


def test_boxes_wholly_in_the_letterbox_padding_are_dropped():
    """A peak in the padding maps to a box that clips to nothing in the image: no detection."""
    heatmap, size, offset = _maps(classes=1)
    heatmap[0, 0, 0, 2], heatmap[0, 0, 4, 2] = 0.9, 0.8   # rows 0 (the padding) and 4 (the image)
    size[0, :, 0, 2] = size[0, :, 4, 2] = np.log(0.5)      # 2 px boxes: the first ends at y = 3
    meta = ModelMeta(task="detection", input_size=(32, 32), labels=("thing",),
                     extra={"decoder": {"stride": 4, "score_threshold": 0.1}})
    transform = ImageTransform(0.5, 0.5, 0.0, 4.0, (56, 64))  # the image starts 4 model px down
    outputs = {"heatmap": heatmap, "size": size, "offset": offset}
    [result] = get_task("detection").postprocess(outputs, meta, [transform])
    assert result.scores.tolist() == pytest.approx([0.8]) and result.boxes[0, 3] > result.boxes[0, 1]
    [both] = get_task("detection").postprocess(outputs, meta, [ImageTransform(0.5, 0.5, 0.0, 0.0, (64, 64))])
    # without padding the first box is in the image (y from 0 to 2 px)
    assert len(both) == 2


def _detection(boxes, scores, labels):
    return Detection(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                     np.array(labels, np.int64))


def test_map_hand_computed_case():
    # two objects of class 0; detections: hit (0.9), false positive (0.8), hit (0.7)
    targets = [{"boxes": np.array([[0, 0, 10, 10], [50, 50, 70, 70]], np.float32), "labels": np.array([0, 0])}]
    predictions = [_detection([[0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 70, 70]], [0.9, 0.8, 0.7], [0, 0, 0])]
    metrics = coco_map(predictions, targets, num_classes=1)
    # 101-point interpolated precision: 1.0 up to recall 0.5 (51 points), 2/3 above (50 points)
    expected = (51 + 50 * 2 / 3) / 101
    assert metrics["map50"] == pytest.approx(expected, abs=1e-6)
    assert metrics["map50_95"] == pytest.approx(expected, abs=1e-6)  # exact boxes: same at every IoU
    # a loose second hit (IoU 0.625) counts at IoU 0.50, 0.55, 0.60 only: 3 of 10 thresholds;
    # at the other 7 recall stops at 0.5 with precision 1 → AP 51/101
    loose = [_detection([[0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 70, 82]], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert box_iou(loose[0].boxes[2:], targets[0]["boxes"][1:])[0, 0] == pytest.approx(0.625)
    metrics = coco_map(loose, targets, num_classes=1)
    assert metrics["map50"] == pytest.approx(expected, abs=1e-6)
    assert metrics["map50_95"] == pytest.approx((3 * expected + 7 * 51 / 101) / 10, abs=1e-6)


def test_map_agrees_with_pycocotools_directly():
    pycoco = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    rng = np.random.default_rng(1)
    targets, predictions = [], []
    for _ in range(12):
        count = int(rng.integers(1, 5))
        xy = rng.uniform(0, 80, (count, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 40, (count, 2))], axis=1).astype(np.float32)
        labels = rng.integers(0, 3, count)
        targets.append({"boxes": boxes, "labels": labels})
        jitter = boxes + rng.normal(0, 2.5, boxes.shape).astype(np.float32)
        extra = rng.uniform(0, 100, (2, 4)).astype(np.float32)
        extra[:, 2:] = extra[:, :2] + 15
        predictions.append(_detection(np.concatenate([jitter, extra]), rng.uniform(0, 1, count + 2),
                                      np.concatenate([labels, rng.integers(0, 3, 2)])))
    ours = coco_map(predictions, targets, num_classes=3)

    gt = COCO()
    gt.dataset = {"images": [{"id": i + 1} for i in range(12)], "categories": [{"id": c} for c in (1, 2, 3)],
                  "annotations": [{"id": len(a) + 1, "image_id": i + 1, "category_id": int(l) + 1, "iscrowd": 0,
                                   "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                                   "area": float((b[2] - b[0]) * (b[3] - b[1]))}
                                  for a in [[]] for i, t in enumerate(targets)
                                  for b, l in zip(t["boxes"], t["labels"]) if not a.append(0)]}
    gt.createIndex()
    results = [{"image_id": i + 1, "category_id": int(l) + 1, "score": float(s),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
               for i, p in enumerate(predictions) for b, s, l in zip(p.boxes, p.scores, p.labels)]
    evaluator = pycoco.COCOeval(gt, gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert 0.2 < ours["map50_95"] < 0.95
    assert ours["map50_95"] == pytest.approx(evaluator.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(evaluator.stats[1], abs=1e-6)


def test_no_detections_scores_zero_and_evaluator_needs_samples():
    targets = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([0])}]
    evaluator = make_evaluator(ModelMeta(task="detection", labels=("a",)))
    with pytest.raises(Exception, match="no samples"):
        evaluator.compute()
    evaluator.update([_detection([], [], [])], targets)
    assert evaluator.compute()["map50"] == 0.0
    assert type(evaluator).primary_metric == "map50_95"


def test_pairwise_nms_keeps_what_the_one_by_one_pass_keeps(monkeypatch):
    """The matrix NMS (the fast path up to PAIRWISE_LIMIT boxes) and the iterative pass agree,
    ties in score included."""
    from edgekit.tasks import boxes

    rng = np.random.default_rng(0)
    for trial in range(60):
        count = int(rng.integers(0, 150))
        corner = rng.uniform(0, 100, (count, 2))
        candidates = np.concatenate([corner, corner + rng.uniform(1, 40, (count, 2))], 1).astype(np.float32)
        scores = rng.uniform(0, 1, count).astype(np.float32)
        if trial % 3 == 0:
            scores = np.round(scores, 1)
        threshold = float(rng.uniform(0.1, 0.9))
        fast = boxes.nms(candidates, scores, threshold)
        monkeypatch.setattr(boxes, "PAIRWISE_LIMIT", -1)
        slow = boxes.nms(candidates, scores, threshold)
        monkeypatch.undo()
        assert np.array_equal(fast, slow), trial


def test_nothing_found_gives_cocoevals_figures_and_no_ground_truth_no_map():
    """With no detection, a statistic is 0 where there was something to find and −1 (undefined) where
    there was none (an area range without boxes); with no ground truth at all mAP is refused, not
    shown as 0 (or as −100 points)."""
    large = [{"boxes": np.array([[0, 0, 120, 120]], np.float32), "labels": np.array([0])}]
    figures = coco_map([_detection([], [], [])], large, 1)
    assert figures["map50_95"] == 0.0 and figures["map_large"] == 0.0 and figures["ar_large"] == 0.0
    assert figures["map_small"] == figures["map_medium"] == figures["ar_small"] == -1.0
    evaluator = make_evaluator(ModelMeta(task="detection", labels=("a",)))
    evaluator.update([_detection([1, 1, 5, 5], [0.9], [0])], [{"boxes": np.zeros((0, 4), np.float32),
                                                              "labels": np.zeros(0, np.int64)}])
    with pytest.raises(BadInputError, match="hold no ground-truth box: mAP is undefined"):
        evaluator.compute()
