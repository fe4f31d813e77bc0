"""Foreign metadata never blocks a model: an ONNX file carrying Ultralytics' own metadata_props (Python
text, `task: detect`) opens in every command with no `meta set`, its names/imgsz read as labels and input
size with Ultralytics' letterbox and the yolo decoder; meta set overrides or deletes any key."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from edgekit.cli.app import app
from edgekit.errors import BadInputError
from edgekit.meta import read_meta

NAMES = {0: "person", 1: "bicycle", 2: "car"}


def ultralytics_like(path, names=NAMES, **props):
    """A YOLOv8-format head (output0: 1 x (4 + C) x anchors) with the metadata Ultralytics writes:
    every value as Python's str()."""
    classes = len(names)
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.5, (4 + classes, 3, 8, 8)).astype(np.float32), "w")
    scale = numpy_helper.from_array(np.array([64.0] * 4 + [1.0] * classes, np.float32).reshape(1, -1, 1), "scale")
    shape = numpy_helper.from_array(np.array([1, 4 + classes, 64], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["images", "w"], ["conv"], strides=[8, 8]),
             helper.make_node("Sigmoid", ["conv"], ["unit"]),
             helper.make_node("Reshape", ["unit", "shape"], ["flat"]),
             helper.make_node("Mul", ["flat", "scale"], ["output0"])]
    graph = helper.make_graph(nodes, "main_graph", [helper.make_tensor_value_info("images", 1, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", 1, [1, 4 + classes, 64])],
                              [weight, scale, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    metadata = {"description": "Ultralytics YOLOv8n model trained on coco.yaml", "author": "Ultralytics",
                "version": "8.3.0", "license": "AGPL-3.0 License", "stride": 8, "task": "detect", "batch": 1,
                "imgsz": [64, 64], "names": names, **props}
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))
    return path


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_an_ultralytics_export_reads_as_edgekit_defaults(tmp_path):
    meta = read_meta(ultralytics_like(tmp_path / "yolo.onnx"))
    assert meta.task == "detection" and meta.labels == ("person", "bicycle", "car") and meta.input_size == (64, 64)
    assert meta.resize == "letterbox" and meta.mean == (0, 0, 0) and meta.std == (1, 1, 1) and meta.color == "RGB"
    assert meta.extra["decoder"] == {"type": "yolo", "score_threshold": 0.25, "iou_threshold": 0.7,
                                     "max_detections": 300, "nms": "class"}    # Ultralytics' predict defaults
    assert meta.extra["letterbox"]["pad_value"] == 114
    assert meta.extra["convention"] == "ultralytics" and meta.extra["task"] == "detect"   # the raw key, kept


def test_every_command_opens_it_with_no_meta_set(tmp_path):
    model = ultralytics_like(tmp_path / "yolo.onnx")
    for args in (["inspect", model], ["meta", "show", model], ["bench", model, "--runs", "3", "--warmup", "1"]):
        code, text = run(*args)
        assert code == 0, (args, text)
    code, text = run("inspect", model)   # its names and imgsz are read: nothing to warn about or set
    assert "does not read" not in text and "person" in text
    image = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 255, (48, 80, 3), dtype=np.uint8))
    code, text = run("predict", model, image, "--json")
    assert code == 0, text
    record = json.loads(text[text.index("{"):text.rindex("}") + 1])
    assert record["detections"], record
    assert all(d["name"] == NAMES[d["label"]] for d in record["detections"])   # labels from Ultralytics' names
    assert all(0 <= d["box"][0] <= d["box"][2] <= 80 and 0 <= d["box"][1] <= d["box"][3] <= 48
               for d in record["detections"])                                  # letterbox undone: frame pixels


def test_meta_set_overrides_and_deletes_any_key(tmp_path):
    model = ultralytics_like(tmp_path / "yolo.onnx")
    code, text = run("meta", "set", model, "labels=a,b,c", "decoder.nms=agnostic")
    assert code == 0, text
    meta = read_meta(model)
    assert meta.labels == ("a", "b", "c") and meta.extra["decoder"]["nms"] == "agnostic"
    assert meta.extra["decoder"]["type"] == "yolo"
    code, text = run("meta", "set", model, "--delete", "license", "--delete", "author")
    assert code == 0, text
    props = {p.key for p in onnx.load(str(model)).metadata_props}
    assert "license" not in props and "author" not in props and "names" in props
    code, text = run("meta", "set", model, "--delete", "nope")
    assert code == 2 and "the model has no metadata key 'nope'" in text


@pytest.mark.parametrize("key, value, fragment", [
    ("names", "{0: 'person', 1: ", "metadata key 'names' cannot be read"),
    ("names", "['person']", "metadata key 'names' (Ultralytics) must be a dict"),
    ("imgsz", "[64, 'x']", "metadata key 'imgsz' (Ultralytics) must be an int or [height, width]"),
])
def test_a_foreign_value_that_cannot_be_read_is_one_line_naming_the_key(tmp_path, key, value, fragment):
    model = ultralytics_like(tmp_path / "yolo.onnx")
    loaded = onnx.load(str(model))
    for entry in loaded.metadata_props:
        if entry.key == key:
            entry.value = value
    onnx.save(loaded, str(model))
    with pytest.raises(BadInputError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        read_meta(model)
    code, text = run("predict", model, model)
    assert code == 2 and fragment in text


def test_end_to_end_and_pose_exports_get_their_decoders(tmp_path):
    end2end = read_meta(ultralytics_like(tmp_path / "e2e.onnx", end2end=True))
    assert end2end.extra["decoder"]["type"] == "yolo-end2end"
    pose = read_meta(ultralytics_like(tmp_path / "pose.onnx", task="pose", kpt_shape=[17, 3]))
    assert pose.task == "detection" and pose.extra["decoder"]["keypoints"] == [17, 3]


def test_inspect_warns_of_unread_keys_but_not_of_tools_bookkeeping(tmp_path):
    """ONNX Runtime's quantization writes onnx.infer / onnx.quant.pre_process into every file edgekit
    quantizes: no warning for those; a key nobody reads still gets one."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", 1, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (("onnx.infer", "onnxruntime.quant"), ("onnx.quant.pre_process", "onnxruntime.quant")):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "q.onnx"))
    code, text = run("inspect", tmp_path / "q.onnx")
    assert code == 0 and "does not read" not in text, text
    model.metadata_props.add(key="owner", value="someone")
    onnx.save(model, str(tmp_path / "o.onnx"))
    code, text = run("inspect", tmp_path / "o.onnx")
    assert code == 0 and "metadata keys edgekit does not read: owner;" in text, text
