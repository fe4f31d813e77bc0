"""`edgekit edit` and `inspect`'s warnings on foreign files: a CenterFace-style export fixed at batch 10
with its weights listed as graph inputs, and an MTCNN-O-Net-style classifier with three outputs."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from edgekit.cli.app import app


def _old_export(path, batch=10, reshape_batch=False):
    """Conv 3→4 (3x3) + ReLU at 32x32, batch fixed, weights listed as graph inputs (as old exporters did);
    ``reshape_batch``: a Reshape that hard-codes the batch, so it cannot become dynamic."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "conv.weight")
    bias = numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "conv.bias")
    nodes = [helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["heatmap"])]
    initializers = [weight, bias]
    if reshape_batch:
        shape = numpy_helper.from_array(np.array([batch, -1], np.int64), "shape")
        nodes.append(helper.make_node("Reshape", ["heatmap", "shape"], ["flat"]))
        initializers.append(shape)
    out = "flat" if reshape_batch else "heatmap"
    out_shape = [batch, 4 * 32 * 32] if reshape_batch else [batch, 4, 32, 32]
    inputs = [helper.make_tensor_value_info("input", 1, [batch, 3, 32, 32]),
              helper.make_tensor_value_info("conv.weight", 1, [4, 3, 3, 3]),
              helper.make_tensor_value_info("conv.bias", 1, [4])]
    graph = helper.make_graph(nodes, "old", inputs, [helper.make_tensor_value_info(out, 1, out_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def _onet(path):
    """Three outputs: boxes (N, 4), landmarks (N, 10) and the face score (N, 2) from one feature."""
    rng = np.random.default_rng(1)
    weights = {name: numpy_helper.from_array(rng.normal(0, 1, (16, n)).astype(np.float32), name)
               for name, n in (("wb", 4), ("wl", 10), ("ws", 2))}
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]),
             helper.make_node("MatMul", ["flat", "wb"], ["boxes"]),
             helper.make_node("MatMul", ["flat", "wl"], ["landmarks"]),
             helper.make_node("MatMul", ["flat", "ws"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["score"], axis=1)]
    graph = helper.make_graph(nodes, "onet", [helper.make_tensor_value_info("input", 1, ["N", 1, 4, 4])],
                              [helper.make_tensor_value_info(n, 1, ["N", k]) for n, k in
                               (("boxes", 4), ("landmarks", 10), ("score", 2))], list(weights.values()))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_inspect_warns_and_edit_fixes_a_centerface_style_export(tmp_path):
    model = _old_export(tmp_path / "centerface.onnx")
    code, text = run("inspect", model)
    assert code == 0, text
    assert "2 weights are listed as graph inputs" in text and "--weights-to-initializers" in text
    assert "fixed batch of 10" in text and "--input input:Nx3x32x32" in text
    fixed = tmp_path / "fixed.onnx"
    code, text = run("edit", model, "-o", fixed, "--weights-to-initializers", "--input", "input:Nx3xHxW")
    assert code == 0, text
    assert "2 weights moved out of the graph inputs" in text and "input input: 10x3x32x32 → Nx3xHxW" in text
    assert "outputs equal to the original's" in text
    session = ort.InferenceSession(str(fixed), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"] and session.get_inputs()[0].shape == ["N", 3, "H", "W"]
    assert session.run(None, {"input": np.zeros((2, 3, 48, 64), np.float32)})[0].shape == (2, 4, 48, 64)
    code, text = run("inspect", fixed)
    assert code == 0 and "warning" not in text


def test_a_graph_that_hard_codes_its_batch_is_refused_and_nothing_written(tmp_path):
    model = _old_export(tmp_path / "m.onnx", batch=10, reshape_batch=True)
    out = tmp_path / "dyn.onnx"
    code, text = run("edit", model, "-o", out, "--input", "input:1x3x32x32")
    assert code == 1 and "the edited model does not" in text and "nothing written" in text, text
    assert not out.exists()


def test_the_scores_output_of_a_multi_output_classifier(tmp_path):
    out = tmp_path / "scores.onnx"
    code, text = run("edit", _onet(tmp_path / "onet.onnx"), "-o", out, "--output-name", "score")
    assert code == 0, text
    assert "kept output score (dropped boxes, landmarks)" in text
    kept = onnx.load(str(out))
    assert [o.name for o in kept.graph.output] == ["score"]
    assert {n.op_type for n in kept.graph.node} == {"Flatten", "MatMul", "Softmax"} and len(kept.graph.node) == 3
    assert {i.name for i in kept.graph.initializer} == {"ws"}
    code, text = run("meta", "set", out, "task=classification", "labels=background,face")
    assert code == 0, text


@pytest.mark.parametrize("args, fragment", [
    ([], "nothing to change"),
    (["--input", "input"], "--input takes NAME:DIMS"),
    (["--input", "input:0x3x32x32"], "each fixed dim must be 1..4096"),
    (["--input", "image:1x3x32x32"], "the model has no input 'image' (it has input)"),
    (["--input", "input:1x3x32"], "input 'input' has 4 dims, --input gives 3"),
    (["--output-name", "nope"], "the model has no output 'nope' (it has heatmap)"),
])
def test_bad_edits_are_one_line_and_write_nothing(tmp_path, args, fragment):
    model = _old_export(tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    code, text = run("edit", model, "-o", out, *args)
    assert code == 2 and fragment in text, text
    assert not out.exists()
    code, text = run("edit", model, "-o", model, "--weights-to-initializers")
    assert code == 2 and "input" in text and model.read_bytes()
