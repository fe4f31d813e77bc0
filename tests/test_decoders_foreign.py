"""Detectors in the layouts people already have, built the way their sources build them, decode on a real
photo (scikit-image's chelsea) to the boxes of the source's own decode: IoU ≥ 0.99, scores within 1e-3,
on ort-cpu and OpenVINO.

- YOLOv8/v11 (Ultralytics' Detect head: DFL distances from cell centres, sigmoid scores, ``output0``
  [1, 4+C, anchors]) and YOLOv5 (anchor boxes, objectness, [1, anchors, 5+C]) heads written here in
  torch; the reference is Ultralytics' NMS (conf > t, best class, class-offset NMS through torchvision)
  and ``scale_boxes`` written in torch, or Ultralytics itself when it is installed (real YOLOv8n and
  YOLO11n built from their yaml, random weights, nothing downloaded).
- Random weights say nothing on a photo, so every network has BatchNorm set from the photos (a
  training-mode pass, as a trained network's statistics): the scores then spread over [0, 1].
- Both sides decode the same raw outputs of the same input; the input itself is checked against the
  source's letterbox (Ultralytics' LetterBox: cv2.resize on uint8, 114 padding, centred).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.errors import BadInputError
from edgekit.exporters.metadata import parse_pairs, update_file
from edgekit.meta import read_meta
from conftest import assert_one_line_error, run_cli  # noqa: E402
from foreign_yolo import (  # noqa: E402  (after torch is known to be installed)
    CONF, IOU, LAYOUTS, RUNTIMES, SIZE, AnchorsFirst, agreement, calibrate, check_ultralytics_input, export,
    nms_reference, photo, run_edgekit, scale_boxes_reference, spread_logits, ultralytics_meta, yolo_like,
)


@pytest.fixture(scope="module")
def yolo_files(tmp_path_factory):
    folder, built = tmp_path_factory.mktemp("yolo"), {}

    def build(layout: str):
        if layout not in built:
            head, transposed, agnostic = LAYOUTS[layout]
            model = yolo_like(head)
            path = export(AnchorsFirst(model) if transposed else model, folder / f"{layout}.onnx", ["output0"])
            update_file(path, ultralytics_meta({"nms": "agnostic"} if agnostic else None))
            built[layout] = path
        return built[layout]
    return build


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_yolo_layouts_decode_to_the_source_boxes(yolo_files, layout, runtime):
    head, transposed, agnostic = LAYOUTS[layout]
    path = yolo_files(layout)
    assert "outputs" not in read_meta(path).extra["decoder"]  # found by shape, layout and objectness auto
    bgr = np.ascontiguousarray(photo()[..., ::-1])
    tensor, outputs, detection = run_edgekit(path, bgr, runtime)
    check_ultralytics_input(tensor, bgr)
    raw = outputs["output0"].transpose(0, 2, 1) if transposed else outputs["output0"]
    reference = nms_reference(raw, objectness=head == "v5", agnostic=agnostic)
    reference[:, :4] = scale_boxes_reference(reference[:, :4], bgr.shape[:2])
    agreement(f"{layout} {runtime}", reference, detection, bgr.shape[:2])


def ultralytics_model(cfg: str, folder) -> str:
    """YOLOv8n / YOLO11n from Ultralytics' own yaml (random weights, BatchNorm from the photos), exported as
    its exporter does for ONNX (Detect in export mode: output0 [1, 84, anchors])."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=80, verbose=False)
    calibrate(model)
    head, end2end = model.model[-1], cfg.startswith("yolo26")  # YOLO26: NMS-free one-to-one head, top 300
    spread_logits(model, [branch[-1] for branch in (head.one2one_cv3 if end2end else head.cv3)])
    for module in model.modules():
        if isinstance(module, Detect):
            module.export, module.format, module.end2end, module.max_det = True, "onnx", end2end, 300
    path = export(model, folder / f"{cfg}.onnx", ["output0"])
    update_file(path, ultralytics_meta({"type": "yolo-end2end"} if end2end else None))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"])
def test_ultralytics_models_decode_as_ultralytics(tmp_path, cfg, runtime):
    pytest.importorskip("ultralytics", reason="Ultralytics is not installed (pip install ultralytics --no-deps)")
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    path = ultralytics_model(cfg, tmp_path)
    bgr = np.ascontiguousarray(photo()[..., ::-1])
    tensor, outputs, detection = run_edgekit(path, bgr, runtime)
    check_ultralytics_input(tensor, bgr)
    if cfg.startswith("yolo26"):  # end to end: [1, 300, 6] x1 y1 x2 y2 score class, Ultralytics only thresholds
        assert outputs["output0"].shape == (1, 300, 6)
        reference = non_max_suppression(torch.from_numpy(outputs["output0"]), CONF, IOU, end2end=True)[0].numpy()
    else:
        assert outputs["output0"].shape == (1, 84, 2100)
        reference = nms_reference(outputs["output0"], objectness=False)
    reference[:, :4] = ops.scale_boxes((SIZE, SIZE), torch.from_numpy(reference[:, :4]), bgr.shape[:2]).numpy()
    agreement(f"{cfg} {runtime}", reference, detection, bgr.shape[:2])


@pytest.fixture()
def plain_yolo(yolo_files, tmp_path):
    """The v8 model with metadata naming no output, to be set through ``edgekit meta set``."""
    import shutil

    import cv2

    path = shutil.copy(yolo_files("v8-anchors-last"), tmp_path / "model.onnx")
    cv2.imwrite(str(tmp_path / "chelsea.png"), photo()[..., ::-1])
    return path, tmp_path / "chelsea.png"


def test_suggested_meta_set_syntax_works_as_written(plain_yolo):
    path, image = plain_yolo
    result = run_cli("meta", "set", str(path), "decoder.outputs=output0", "decoder.nms=agnostic")
    assert result.returncode == 0, result.stderr
    assert read_meta(path).extra["decoder"]["outputs"] == ["output0"]
    assert parse_pairs(["decoder.outputs=a, b"])["decoder"]["outputs"] == ["a", "b"]
    assert parse_pairs(["decoder.strides=8,16,32"])["decoder"]["strides"] == [8, 16, 32]
    predicted = run_cli("predict", str(path), str(image), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert '"detections": [{"box"' in predicted.stdout


def _props(path, **changes) -> None:
    """Rewrite metadata entries as another tool might (no checks on the way in)."""
    import json

    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({key: json.dumps(value) for key, value in changes.items()})
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


@pytest.mark.parametrize("key,value,fragments", [
    ("decoder", {"type": "yolo", "nms": "maybe"}, ["'decoder.nms'", "class, agnostic", "maybe"]),
    ("decoder", {"type": "yolo", "layout": "sideways"}, ["'decoder.layout'", "sideways"]),
    ("decoder", {"type": "yolo", "outputs": ["logits"]}, ["lack ['logits']"]),
    ("decoder", {"type": "scrfd"}, ["faces decoder expects", "output0 (1x84x2100)"]),
    ("decoder", {"type": "centernet", "size_order": "whd"}, ["'decoder.size_order'"]),
    ("decoder", {"type": "yunet", "strides": [8, "x"]}, ["'decoder.strides'"]),
    ("letterbox", {"align": "middle"}, ["'letterbox.align'", "center or top-left"]),
    ("letterbox", {"pad_value": 300}, ["'letterbox.pad_value'"]),
])
def test_bad_decoder_settings_are_one_line_naming_the_key(plain_yolo, key, value, fragments):
    path, image = plain_yolo
    _props(path, **{key: value})
    assert_one_line_error(run_cli("predict", str(path), str(image)), *fragments)


def test_a_decoder_that_fits_no_output_names_them(plain_yolo, tmp_path):
    from tests.test_decoders_formats import _constant_model

    path, image = plain_yolo
    assert_one_line_error(run_cli("meta", "set", str(path), "decoder.nms=maybe"), "'decoder.nms'")
    other = _constant_model(tmp_path / "maps.onnx", {"heatmap": np.zeros((1, 2, 16, 16), np.float32)})
    update_file(other, {"task": "detection", "input_name": "images", "input_size": 64, "labels": "a,b",
                        "decoder": "yolo"})
    assert_one_line_error(run_cli("predict", str(other), str(image)), "yolo decoder expects one",
                          "heatmap (1x2x16x16)", "decoder.outputs=NAME")
    from edgekit.tasks.decoders.yolo import _auto_layout

    with pytest.raises(BadInputError, match="could be read either way"):
        _auto_layout((84, 84), 0, 0)
