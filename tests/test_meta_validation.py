"""Metadata is validated when it is read (one BadInputError naming the key), without onnx or torch;
fewer labels than the model's classes is refused at post-processing; backend errors keep their reason."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import REPO, block_imports
from edgekit.errors import BadInputError, first_line
from edgekit.meta import ModelMeta, read_meta

GOOD = ModelMeta(task="classification", model_name="m", input_size=(32, 32), color="GRAY", mean=(0.5,), std=(0.25,),
                 labels=("a", "b", "c"))


def _model(path, props: dict[str, str]) -> None:
    node = onnx.helper.make_node("Flatten", ["input"], ["output"])
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 1, 1])],
        [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


@pytest.mark.parametrize("key,value,fragment", [
    ("std", "[0]", "'std' must be positive"), ("std", "[-0.2]", "'std' must be positive"),
    ("std", '"abc"', "'std' must be 1 finite numbers"), ("mean", "[0.1, 0.2, 0.3]", "'mean' must be 1 finite numbers"),
    ("mean", '[NaN]', "'mean' must be 1 finite numbers"), ("color", '"RGBA"', "'color' must be one of"),
    ("color", "3", "'color' must be one of"), ("resize", '"crop"', "'resize' must be one of"),
    ("input_layout", '"CHW"', "'input_layout' must be one of"), ("task", '"segment"', "'task' must be one of"),
    ("input_size", '[32]', "'input_size' must be [height, width]"), ("input_size", '[32, -1]', "'input_size'"),
    ("input_size", '[32.5, 32]', "'input_size'"), ("input_size", '[true, 32]', "'input_size'"),
    ("input_size", '"32x32"', "'input_size'"), ("labels", '"abc"', "'labels' must be a list of strings"),
    ("labels", '[1, 2, 3]', "'labels' must be a list of strings"), ("precision", "8", "'precision' must be a string"),
    ("recipe", "[1]", "'recipe' must be an object"), ("decoder", "[1]", "'decoder' must be an object"),
    ("decoder", '{"outputs": "a"}', "'decoder.outputs' must be a list of output names"),
    ("decoder", '{"score_threshold": "high"}', "'decoder.score_threshold' must be a number from 0 to 1"),
    ("decoder", '{"iou_threshold": 2}', "'decoder.iou_threshold'"),
    ("decoder", '{"max_detections": 0}', "'decoder.max_detections' must be a positive integer"),
    ("decoder", '{"size_encoding": "exp"}', "'decoder.size_encoding' must be log or linear"),
])
def test_malformed_value_is_one_error_naming_the_key(tmp_path, key, value, fragment):
    props = {**GOOD.to_props(), key: value}
    _model(tmp_path / "m.onnx", props)
    with pytest.raises(BadInputError,
                       match="metadata key " + fragment.replace("[", r"\[").replace("]", r"\]")) as caught:
        read_meta(tmp_path / "m.onnx")
    assert str(tmp_path / "m.onnx") in str(caught.value) and "\n" not in str(caught.value)


def test_good_metadata_and_defaults_still_read(tmp_path):
    _model(tmp_path / "m.onnx", GOOD.to_props())
    assert read_meta(tmp_path / "m.onnx") == GOOD
    _model(tmp_path / "none.onnx", {})
    assert read_meta(tmp_path / "none.onnx") == ModelMeta()
    decoder = {"decoder": json.dumps({"type": "centernet", "outputs": ["h", "s", "o"], "stride": 4})}
    _model(tmp_path / "det.onnx", {**GOOD.with_(task="detection").to_props(), **decoder})
    assert read_meta(tmp_path / "det.onnx").extra["decoder"]["stride"] == 4


def test_engine_sidecar_is_checked(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(BadInputError, match="is not JSON"):
        read_meta(engine)
    (tmp_path / "m.engine.json").write_text(json.dumps({**GOOD.to_props(), "std": "[0]"}))
    with pytest.raises(BadInputError, match="metadata key 'std'"):
        read_meta(engine)
    (tmp_path / "m.engine.json").write_text(json.dumps({"std": [0.5]}))
    with pytest.raises(BadInputError, match="JSON-encoded strings"):
        read_meta(engine)


def test_validation_runs_on_the_robot_tier_without_onnx_or_torch(tmp_path):
    import subprocess
    import sys

    _model(tmp_path / "m.onnx", {**GOOD.to_props(), "std": "[0]"})
    code = (block_imports("onnx", "torch") + f"\nimport sys; sys.path.insert(0, {str(REPO)!r})\n"
            "from edgekit.meta import read_meta\nfrom edgekit.errors import BadInputError\n"
            f"try:\n    read_meta({str(tmp_path / 'm.onnx')!r})\nexcept BadInputError as e:\n    print('refused', e)\n"
            "print('onnx' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused" in result.stdout and "metadata key 'std'" in result.stdout, result.stderr
    assert result.stdout.strip().endswith("False False")


def test_fewer_labels_than_classes_is_refused():
    from edgekit.tasks.classification import ClassificationTask
    from edgekit.tasks.detection import DetectionTask

    meta = GOOD.with_(labels=("a", "b"))
    with pytest.raises(BadInputError, match="metadata key 'labels' has 2 names but the model outputs 3 classes"):
        ClassificationTask().postprocess({"output": np.zeros((1, 3), np.float32)}, meta, [None])
    det = meta.with_(task="detection", color="RGB", mean=(0.5,) * 3, std=(0.25,) * 3)
    outputs = {"heatmap": np.zeros((1, 3, 8, 8), np.float32), "size": np.zeros((1, 2, 8, 8), np.float32),
               "offset": np.zeros((1, 2, 8, 8), np.float32)}
    with pytest.raises(BadInputError, match="'labels' has 2 names but the model outputs 3 classes"):
        DetectionTask().postprocess(outputs, det, [None])


def test_checkpoint_metadata_is_validated_too(tmp_path):
    import torch

    from edgekit.train.classifier import load_checkpoint
    from edgekit.zoo.lenet import lenet5

    torch.save({"format": "edgekit-checkpoint/1", "arch": {"name": "lenet5", "num_classes": 10},
                "state_dict": lenet5(num_classes=10).state_dict(),
                "meta": json.dumps({"color": "GRAY", "mean": [0.1], "std": [0.2], "resize": "squash"})},
               tmp_path / "ck.pt")
    with pytest.raises(BadInputError, match="metadata key 'resize'"):
        load_checkpoint(tmp_path / "ck.pt")


def _broken(path, node) -> None:
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        initializer=[onnx.numpy_helper.from_array(np.ones(4, np.float32), "w")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                         onnx.helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(path))


@pytest.mark.openvino
def test_openvino_errors_keep_their_reason(tmp_path):
    from edgekit.runtimes import open_runtime

    _broken(tmp_path / "custom.onnx", onnx.helper.make_node("FooBar", ["x"], ["y"], domain="com.example"))
    _broken(tmp_path / "shapes.onnx", onnx.helper.make_node("Add", ["x", "w"], ["y"]))
    with pytest.raises(BadInputError) as caught, open_runtime("openvino", tmp_path / "custom.onnx"):
        pass
    assert "No conversion rule found for operations: com.example.FooBar" in str(caught.value)
    with pytest.raises(BadInputError) as caught, open_runtime("openvino", tmp_path / "shapes.onnx"):
        pass
    assert str(caught.value).endswith("Argument shapes are inconsistent.")


def test_first_line_skips_banners_and_headers():
    message = ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at x.cpp:151:\n"
               "FrontEnd API failed with OpConversionFailure:\nModel wasn't fully converted.\nSummary:\n"
               "-- No conversion rule found for operations: com.example.FooBar\n")
    assert first_line(RuntimeError(message)) == "No conversion rule found for operations: com.example.FooBar"
    assert first_line(RuntimeError("only a header:")) == "only a header:"
    converted = ("Check 'false' failed at x.cpp:151:\nFrontEnd API failed with OpConversionFailure:\n-- Add-17 with a "
                 "message:\n[ONNX Frontend] Conversion failed for Add-17\nWhile validating node 'Add':\n"
                 "Argument shapes are inconsistent.\n")
    assert first_line(RuntimeError(converted)) == "Argument shapes are inconsistent."
    assert first_line(RuntimeError("[ONNX Frontend] Conversion failed for Foo-1\n")) == \
        "[ONNX Frontend] Conversion failed for Foo-1"
    assert first_line(ValueError("")) == "ValueError"
