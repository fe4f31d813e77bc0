"""YOLO- and SSD-format detectors (built with onnx.helper, emitting known raw outputs) decode to the
expected boxes through the Predictor, score COCO mAP 1.0 on their own boxes, and agree box-matched
across runtimes; the decoders' own maths is checked in numpy."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.exporters.metadata import update_file
from edgekit.tasks.decoders import DECODERS, decoder_settings
from edgekit.tasks.decoders.ssd import decode_priors
from tests.conftest import run_cli

SIZE = 64
# centre x, centre y, width, height, class, score — the model's anchors
ANCHORS = [(20, 20, 10, 10, 0, 0.9), (21, 20, 10, 10, 0, 0.8), (40, 40, 16, 8, 1, 0.7),
           (40, 40, 16, 8, 0, 0.6), (10, 50, 4, 4, 1, 0.01)]
# after the 0.05 score threshold and class-wise NMS at 0.5: x1 y1 x2 y2, class, score
EXPECTED = [((15, 15, 25, 25), 0, 0.9), ((32, 36, 48, 44), 1, 0.7), ((32, 36, 48, 44), 0, 0.6)]


def _constant_model(path, outputs: dict[str, np.ndarray]):
    """A model whose outputs are fixed tensors (plus 0 × the image mean, so they depend on the input)."""
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", 1, [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info(n, 1, list(v.shape)) for n, v in outputs.items()],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def yolo_model(path):
    raw = np.zeros((1, 4 + 2, len(ANCHORS)), np.float32)  # [N, 4 + C, anchors]
    for a, (cx, cy, w, h, cls, score) in enumerate(ANCHORS):
        raw[0, :4, a] = (cx, cy, w, h)
        raw[0, 4 + cls, a] = score
    _constant_model(path, {"output0": raw})
    update_file(path, {"task": "detection", "input_name": "images", "input_size": SIZE, "labels": "cat,dog",
                       "mean": "0,0,0", "std": "1,1,1", "decoder": {"type": "yolo", "outputs": ["output0"]}})
    return path


def ssd_model(path):
    boxes = np.zeros((1, len(ANCHORS), 4), np.float32)  # [N, A, 4] x1 y1 x2 y2 in [0, 1]
    logits = np.full((1, len(ANCHORS), 3), -20.0, np.float32)  # background + 2 classes, softmax
    for a, (cx, cy, w, h, cls, score) in enumerate(ANCHORS):
        boxes[0, a] = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) / SIZE
        logits[0, a, 1 + cls] = np.log(score)
        logits[0, a, 0] = np.log(1 - score)
    _constant_model(path, {"boxes": boxes, "scores": logits})
    decoder = {"type": "ssd", "outputs": ["boxes", "scores"], "normalized": True, "score_activation": "softmax",
               "background": 0}
    update_file(path, {"task": "detection", "input_name": "images", "input_size": SIZE, "labels": "cat,dog",
                       "mean": "0,0,0", "std": "1,1,1", "decoder": decoder})
    return path


def _check(detection, scale: float):
    assert len(detection) == len(EXPECTED)
    for (box, cls, score), got_box, got_label, got_score in zip(EXPECTED, detection.boxes, detection.labels,
                                                               detection.scores):
        np.testing.assert_allclose(got_box, np.asarray(box) * scale, atol=1e-3)
        assert got_label == cls and got_score == pytest.approx(score, abs=1e-5)
    assert detection.names == ("cat", "dog", "cat")


@pytest.mark.parametrize("build", [yolo_model, ssd_model])
@pytest.mark.parametrize("runtime", ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_decode_to_the_expected_boxes_through_the_predictor(tmp_path, build, runtime):
    from edgekit import Predictor

    path = build(tmp_path / "model.onnx")
    image = np.zeros((2 * SIZE, 2 * SIZE, 3), np.uint8)  # twice the input: boxes come back scaled by 2
    with Predictor(path, runtime=runtime) as predict:
        (detection,) = predict([image])
    _check(detection, 2.0)


@pytest.mark.parametrize("build", [yolo_model, ssd_model])
def test_eval_coco_map_and_box_matched_compare(tmp_path, build):
    from PIL import Image

    path = build(tmp_path / "model.onnx")
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tmp_path / "a.png")
    annotations = [{"id": i + 1, "image_id": 1, "category_id": cls + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
                   for i, ((x1, y1, x2, y2), cls, _) in enumerate(EXPECTED)]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": SIZE, "height": SIZE}],
            "annotations": annotations, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    result = run_cli("eval", str(path), "--data", str(tmp_path / "coco.json"), "--no-torch",
                     "--json", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "e.json").read_text())["records"][0]["metrics"]
    assert metrics["map50_95"] == pytest.approx(1.0) and metrics["map50"] == pytest.approx(1.0)

    compared = run_cli("compare", str(path), "-r", "ort-cpu,openvino", "--json", str(tmp_path / "c.json"))
    assert compared.returncode == 0, compared.stderr
    boxes = json.loads((tmp_path / "c.json").read_text())["results"][0]["boxes"]
    assert boxes["matched"] == 3 and boxes["passed"] and boxes["label_agreement"] == 1.0


def test_box_agreement_fails_on_a_moved_box():
    from edgekit.parity import match_boxes
    from edgekit.tasks.detection import Detection

    ref = Detection(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.9, 0.8], np.float32),
                    np.array([0, 1]))
    same = Detection(ref.boxes + 0.1, ref.scores + 0.001, ref.labels)
    assert match_boxes([ref], [same], 0.05).passed
    moved = Detection(np.array([[0, 0, 10, 10], [40, 40, 50, 50]], np.float32), ref.scores, ref.labels)
    result = match_boxes([ref], [moved], 0.05)
    assert not result.passed and result.missing == 1 and result.extra == 1
    relabelled = Detection(ref.boxes, ref.scores, np.array([0, 0]))
    assert match_boxes([ref], [relabelled], 0.05).label_agreement == 0.5
    near_threshold = Detection(ref.boxes[:1], ref.scores[:1], ref.labels[:1])  # a 0.06 box may flip
    flip = Detection(ref.boxes, np.array([0.9, 0.06], np.float32), ref.labels)
    assert match_boxes([flip], [near_threshold], 0.05).passed


def test_yolo_variants_and_ssd_priors():
    yolo = DECODERS.get("yolo")()
    rows = np.array([[[20, 20, 10, 10, 0.5, 0.2, 0.9]]], np.float32)  # [N, A, 5 + C] with objectness
    settings = decoder_settings(DECODERS.get("yolo"), {"layout": "anchors-first", "objectness": True})
    (boxes, scores, labels), = yolo.decode({"output": rows}, settings)
    assert labels.tolist() == [1] and scores[0] == pytest.approx(0.45)
    np.testing.assert_allclose(boxes, [[15, 15, 25, 25]])
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    np.testing.assert_allclose(decode_priors(np.zeros((1, 4), np.float32), priors, (0.1, 0.2)), priors)
    shifted = decode_priors(np.array([[1.0, 0.0, 0.0, np.log(2) / 0.2]], np.float32), priors, (0.1, 0.2))
    np.testing.assert_allclose(shifted, [[0.5 + 0.1 * 0.2, 0.5, 0.2, 0.8]], rtol=1e-5)
    ssd = DECODERS.get("ssd")()
    settings = decoder_settings(DECODERS.get("ssd"), {"outputs": ["loc", "conf", "priors"], "encoding": "priors",
                                                      "background": 0, "input_size": [100, 200]})
    conf = np.array([[[0.1, 0.9, 0.0]]], np.float32)  # background, class 0, class 1
    (boxes, scores, labels), = ssd.decode({"loc": np.zeros((1, 1, 4), np.float32), "conf": conf,
                                           "priors": priors}, settings)
    np.testing.assert_allclose(boxes, [[0.4 * 200, 0.3 * 100, 0.6 * 200, 0.7 * 100]], rtol=1e-5)
    assert labels.tolist() == [0] and scores.tolist() == pytest.approx([0.9])
    with pytest.raises(Exception, match="expects one"):
        yolo.decode({"output": np.zeros((1, 2, 3, 4), np.float32)}, decoder_settings(DECODERS.get("yolo"), {}))
