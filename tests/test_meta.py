from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta, read_meta, read_metadata_props


def _tiny_model(path: Path, props: dict[str, str]) -> None:
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        initializer=[onnx.numpy_helper.from_array(np.ones((300, 300), np.float32), "big")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def test_meta_round_trips_through_metadata_props(tmp_path):
    meta = ModelMeta(task="detection", model_name="det", input_size=(128, 96), color="BGR",
                     labels=("circle", "square"), recipe={"mode": "int8-static"}, extra={"source": {"zoo": "x"}})
    path = tmp_path / "m.onnx"
    _tiny_model(path, meta.to_props())
    assert read_meta(path) == meta
    # The torch/onnx-free reader sees exactly what onnx wrote.
    assert read_metadata_props(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_unknown_keys_are_kept_in_extra(tmp_path):
    path = tmp_path / "m.onnx"
    _tiny_model(path, {"author": "someone", "task": '"classification"'})
    meta = read_meta(path)
    assert meta.task == "classification"
    assert meta.extra == {"author": "someone"}


def test_model_without_metadata_gets_defaults(tmp_path):
    path = tmp_path / "m.onnx"
    _tiny_model(path, {})
    assert read_meta(path) == ModelMeta()


@pytest.mark.parametrize("content", [b"", b"hello, I am not a model\n" * 10, bytes(range(256)) * 4])
def test_non_onnx_files_are_rejected(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="not an ONNX model"):
        read_meta(path)


def test_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        read_meta(tmp_path / "nope.onnx")


def test_ir_and_engine_metadata_are_read_without_runtimes(tmp_path):
    meta = ModelMeta(task="classification", model_name="ir", precision="int8")
    xml = tmp_path / "m.xml"
    entries = "".join(f'<{k} value="{v.replace(chr(34), "&quot;")}"/>' for k, v in meta.to_props().items())
    xml.write_text(f'<?xml version="1.0"?><net name="m" version="11"><layers/>'
                   f'<rt_info><edgekit>{entries}</edgekit></rt_info></net>')
    assert read_meta(xml) == meta
    import json

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"opaque")
    assert read_meta(engine) == ModelMeta()
    (tmp_path / "m.engine.json").write_text(json.dumps(meta.to_props()))
    assert read_meta(engine) == meta
