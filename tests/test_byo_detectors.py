"""torchvision detectors with their in-graph post-processing (data-dependent output shapes) export
from a user factory, run on ONNX Runtime and OpenVINO, and agree box-matched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()


def _calibrate_batchnorm(backbone):
    """Random weights with BatchNorm's default statistics give near-constant features, so every score
    ties and any order is right; one pass in train mode sets the statistics as training would."""
    import torch

    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    backbone.train()
    # The statistics depend on torch's thread count (reduction order); pin it so the weights, and
    # which of the random detector's borderline boxes both runtimes keep, do not depend on which
    # tests ran before (a training test leaves torch at 1 thread).
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            backbone(torch.rand(4, 3, 320, 320, generator=torch.Generator().manual_seed(0)))
    finally:
        torch.set_num_threads(threads)
    backbone.eval()


def ssdlite():
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)  # never downloads
    _calibrate_batchnorm(model.backbone)
    return model


def faster_rcnn():
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    # every box kept (no cut at 100 among near-tied scores: which of them is 100th is float rounding)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, box_score_thresh=0.02,
                                                  box_detections_per_img=1000)
    _calibrate_batchnorm(model.backbone)
    with torch.no_grad():  # random class logits saturate the softmax (every score 1.0: NMS order is a tie)
        model.roi_heads.box_predictor.cls_score.weight *= 0.01
        # Random box regressions move proposals by amounts that float rounding decides (torch on AVX2
        # and ORT on AVX-512 kept different boxes): no regression, so proposals and boxes are anchors
        for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
    return model


@pytest.mark.slow
@pytest.mark.openvino
@pytest.mark.parametrize("factory", ["ssdlite", "faster_rcnn"])
def test_torchvision_detector_exports_and_agrees_across_runtimes(tmp_path, factory):
    from edgekit import Predictor
    from edgekit.compare import compare
    from edgekit.exporters.user_module import export_source
    from edgekit.meta import read_meta

    path = tmp_path / f"{factory}.onnx"
    export_source(f"{HERE}:{factory}", path, meta_changes={"decoder": {"max_detections": 1000}})
    meta = read_meta(path)
    assert meta.task == "detection" and meta.extra["decoder"]["type"] == "torchvision"
    assert meta.labels[1] == "person" and meta.input_size == (320, 320)

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", input=rng.random((1, 3, 320, 320), dtype=np.float32))
    record = compare(path, ["ort-cpu", "openvino"], inputs=tmp_path / "in.npz")
    (openvino,) = record.results
    boxes = openvino.boxes
    assert boxes is not None and boxes.matched >= 1 and not boxes.nothing_to_compare, boxes
    if factory == "faster_rcnn":
        # Two-stage with random weights: the RPN's NMS among overlapping anchors of near-equal
        # objectness keeps whichever rounding favours, and kernels differ per ISA (ORT's AVX-512
        # against OpenVINO's AVX2 moved one proposal: 143/145 boxes, one score 0.06 off). The check
        # means "the same detector": nearly every box matched, with its label.
        assert boxes.matched >= 0.95 * boxes.reference_boxes and boxes.label_agreement >= 0.95, boxes.summary()
        assert boxes.mean_iou > 0.95, boxes.summary()
    else:
        assert openvino.passed, boxes.summary()
        assert boxes.mean_iou > 0.98 and boxes.label_agreement == 1.0

    image = rng.integers(0, 255, (240, 360, 3), dtype=np.uint8)
    counts = []
    for runtime in ("ort-cpu", "openvino"):
        with Predictor(path, runtime=runtime) as predict:
            (detection,) = predict([image])
        counts.append(len(detection))
        assert np.all(detection.boxes[:, 2] <= 360 + 1e-3) and np.all(detection.boxes[:, 3] <= 240 + 1e-3)
        assert all(name in meta.labels for name in detection.names)
    assert counts[0] == counts[1]
