"""The runtime wrapper takes every input its runtime takes: uint16/32/64 (depth cameras), strings,
sequences and optionals, checked only where a check is correct (real tiny ONNX models)."""

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.runtimes import open_runtime
from edgekit.runtimes.onnxruntime import ort_type

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _save(path, inputs, outputs, nodes, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _identity(tmp_path, element, name):
    return _save(tmp_path / f"{name}.onnx", [helper.make_tensor_value_info("x", element, [1, "n"])],
                 [helper.make_tensor_value_info("y", element, [1, "n"])], [helper.make_node("Identity", ["x"], ["y"])])


@pytest.mark.parametrize("runtime", ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)])
@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64", "int8", "float16"])
def test_unsigned_and_small_types_run_unchanged(tmp_path, runtime, dtype):
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    path = _identity(tmp_path, element, dtype)
    depth = np.array([[0, 1, 2, 65535 if dtype == "uint16" else 7]]).astype(dtype)  # a depth camera's uint16
    with open_runtime(runtime, path) as rt:
        assert rt.inputs["x"].dtype == dtype
        out = rt.run({"x": depth})["y"]
        assert out.dtype == np.dtype(dtype) and np.array_equal(out, depth)
        with pytest.raises(BadInputError, match=f"input 'x' has dtype float32; model expects x: {dtype}"):
            rt.run({"x": depth.astype(np.float32)})
        with pytest.raises(BadInputError, match="has shape"):
            rt.run({"x": depth[0]})


def test_string_tensor_input(tmp_path):
    path = _identity(tmp_path, TensorProto.STRING, "strings")
    with open_runtime("ort-cpu", path) as rt:
        assert rt.inputs["x"].dtype == "string"
        for words in (np.array([["robot", "arm"]]), np.array([["robot", "arm"]], dtype=object)):
            assert rt.run({"x": words})["y"].tolist() == [["robot", "arm"]]
        with pytest.raises(BadInputError, match="not strings"):
            rt.run({"x": np.zeros((1, 2), np.float32)})


def test_sequence_input_goes_through(tmp_path):
    sequence = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [1, 2])
    path = _save(tmp_path / "seq.onnx", [sequence], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k", 2])],
                 [helper.make_node("ConcatFromSequence", ["x"], ["y"], axis=0)])
    with open_runtime("ort-cpu", path) as rt:
        assert rt.inputs["x"].kind == "sequence"
        out = rt.run({"x": [np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32)]})["y"]
    assert out.tolist() == [[1, 1], [0, 0]]


def test_optional_input_may_be_given_or_left_out(tmp_path):
    optional = helper.make_value_info(
        "x", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    path = _save(tmp_path / "opt.onnx", [optional], [helper.make_tensor_value_info("y", TensorProto.BOOL, [])],
                 [helper.make_node("OptionalHasElement", ["x"], ["y"])])
    with open_runtime("ort-cpu", path) as rt:
        assert rt.inputs["x"].kind == "optional"
        assert bool(rt.run({"x": np.ones(2, np.float32)})["y"]) is True
        assert bool(rt.run({})["y"]) is False
        with pytest.raises(BadInputError, match="expects inputs"):
            rt.run({"z": np.ones(2, np.float32)})


def test_ort_type_strings_map_to_numpy_names():
    assert ort_type("tensor(uint16)") == ("uint16", "tensor")
    assert ort_type("tensor(float)") == ("float32", "tensor")
    assert ort_type("tensor(double)") == ("float64", "tensor")
    assert ort_type("tensor(string)") == ("string", "tensor")
    assert ort_type("tensor(bfloat16)") == ("bfloat16", "tensor")
    assert ort_type("seq(tensor(float))") == ("seq(tensor(float))", "sequence")
    assert ort_type("optional(tensor(int64))") == ("optional(tensor(int64))", "optional")
    assert ort_type("map(string,tensor(float))")[1] == "map"


def test_bfloat16_input_is_not_refused_for_a_dtype_numpy_lacks(tmp_path):
    path = _identity(tmp_path, TensorProto.BFLOAT16, "bf16")
    with open_runtime("ort-cpu", path) as rt:
        assert rt.inputs["x"].dtype == "bfloat16"
        rt.check_feeds({"x": np.zeros((1, 3), np.uint16)})  # passes the wrapper; the runtime decides


@pytest.mark.parametrize("runtime", ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_read_only_and_strided_arrays_are_taken(tmp_path, runtime):
    one = helper.make_tensor("one", TensorProto.FLOAT, [1, 16], np.ones(16, np.float32))
    path = _save(tmp_path / "add.onnx", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                 [helper.make_node("Add", ["x", "one"], ["y"])], [one])
    frozen = np.arange(16, dtype=np.float32).reshape(1, 16)
    frozen.flags.writeable = False  # e.g. np.frombuffer over a camera driver's buffer
    strided = np.arange(32, dtype=np.float32).reshape(1, 32)[:, ::2]
    with open_runtime(runtime, path) as rt:
        np.testing.assert_array_equal(rt.run({"x": frozen})["y"], frozen + 1)
        np.testing.assert_array_equal(rt.run({"x": strided})["y"], strided + 1)
