"""compare --layers: the first-divergence finder names exactly the perturbed layer, QDQ tensors match their
float ones, runtimes agree layer by layer, and what cannot be done is one line with exit 2."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_one_line_error, run_cli
from edgekit.compare import CompareInputs
from edgekit.profile.layers_diff import LayerRule, Side, layer_diff
from test_profile import conv_chain


def perturbed(source, target, node="conv2", scale=1.5):
    """A copy of ``source`` whose Conv ``node`` has its weights scaled; nothing else changes."""
    model = onnx.load(str(source))
    weight = next(n.input[1] for n in model.graph.node if n.name == node)
    for tensor in model.graph.initializer:
        if tensor.name == weight:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * scale, weight))
    onnx.save(model, str(target))
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layers")
    chain = conv_chain(folder / "chain.onnx", side=32)
    rng = np.random.default_rng(0)
    inputs = folder / "inputs.npz"
    np.savez(inputs, **{f"{i}:input": rng.random((1, 3, 32, 32), dtype=np.float32) for i in range(3)})
    return {"chain": chain, "conv2": perturbed(chain, folder / "conv2.onnx"), "inputs": inputs, "folder": folder}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("bisect", [False, True])
@pytest.mark.parametrize("node", ["conv1", "conv2", "conv3"])
def test_first_divergence_names_exactly_the_perturbed_layer(models, tmp_path, node, bisect):
    changed = perturbed(models["chain"], tmp_path / f"{node}.onnx", node)
    before = digest(models["chain"]), digest(changed)
    record = layer_diff(Side(models["chain"], "ort-cpu"), Side(changed, "ort-cpu"),
                        CompareInputs(inputs=models["inputs"]), LayerRule(), bisect=bisect)
    assert record.first_divergent.node == node and record.first_divergent.tensor == f"{node}_out"
    assert record.keep_in_float[0] == node and not record.quantize_command  # both FP32: nothing to quantize
    if not bisect:  # every layer before it agrees, every one after it inherits the difference
        index = [layer.tensor for layer in record.layers].index(f"{node}_out")
        assert all(layer.passed for layer in record.layers[:index])
        assert not any(layer.passed for layer in record.layers[index:])
    assert (digest(models["chain"]), digest(changed)) == before  # the users' files are never changed
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{node}.onnx"]  # the tapped copies were temporary


def test_identical_models_agree_at_every_layer(models):
    record = layer_diff(Side(models["chain"], "ort-cpu"), Side(models["chain"], "ort-cpu"),
                        CompareInputs(inputs=models["inputs"]), LayerRule())
    assert record.passed and record.first_divergent is None and len(record.layers) == 10
    assert all(layer.cosine == pytest.approx(1.0) and layer.max_abs == 0 for layer in record.layers)


@pytest.mark.openvino
def test_ort_and_openvino_agree_layer_by_layer(models):
    record = layer_diff(Side(models["chain"], "ort-cpu"), Side(models["chain"], "openvino"),
                        CompareInputs(inputs=models["inputs"]), LayerRule(atol=1e-4, rtol=1e-3))
    assert record.passed, [(layer.tensor, layer.max_abs) for layer in record.layers if not layer.passed]
    assert record.tap_drift == {"ort-cpu": 0.0, "openvino": 0.0}


def test_int8_layers_match_through_dequantize_outputs(models, tmp_path):
    quantization = pytest.importorskip("onnxruntime.quantization")
    data = np.load(models["inputs"])

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": data[f"{i}:input"]} for i in range(3)])

        def get_next(self):
            return next(self.items, None)

    int8 = tmp_path / "int8.onnx"
    quantization.quantize_static(str(models["chain"]), str(int8), Reader(),
                                 quant_format=quantization.QuantFormat.QDQ)
    # real inputs are required for a reduced-precision judgement: random ones are refused
    with pytest.raises(Exception, match="random N\\(0,1\\) inputs"):
        layer_diff(Side(models["chain"], "ort-cpu"), Side(int8, "ort-cpu"), CompareInputs(), LayerRule())
    record = layer_diff(Side(models["chain"], "ort-cpu"), Side(int8, "ort-cpu"),
                        CompareInputs(inputs=models["inputs"]), LayerRule(reduced_min_cosine=0.999999), keep=2)
    views = {layer.tensor: layer.candidate_tensor for layer in record.layers}
    assert views["relu1"] == "relu1_DequantizeLinear_Output" and views["pooled"] == "pooled_DequantizeLinear_Output"
    assert "conv1_out" not in views and record.not_compared == 4  # the quantizer folded each Relu into its Conv
    assert record.precision == "fp32 vs int8" and "a reduced-precision side" in record.rule
    assert all(layer.cosine > 0.95 for layer in record.layers)  # quantized, not broken
    first = record.first_divergent  # at cosine 0.999999 some INT8 layer always parts
    assert first is not None and len(record.keep_in_float) <= 2
    assert first.candidate_node == record.keep_in_float[0] == "conv0"  # the INT8 graph's Conv makes relu0
    assert record.quantize_command.startswith(f"edgekit quantize {models['chain']} -o ")
    assert "--exclude conv0" in record.quantize_command


def test_cli_layers_table_json_and_exit_code(models, tmp_path):
    out = tmp_path / "layers.json"
    result = run_cli("compare", str(models["chain"]), str(models["conv2"]), "--layers", "--inputs",
                     str(models["inputs"]), "--json", str(out))
    assert result.returncode == 1, result.stderr  # a layer diverges: the check failed
    assert "first divergent layer: conv2" in result.stdout and "layers part at conv2" in result.stderr
    data = json.loads(out.read_text())
    assert data["first_divergent"]["node"] == "conv2" and data["passed"] is False


def control_flow_model(path):
    """A graph with an If node: its branches' tensors are not values of the graph."""
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["y_then"])], "then", [],
                             [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["y_else"])], "else", [],
                              [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [1])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], name="sum", keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["positive"], name="gt"),
             helper.make_node("If", ["positive"], ["y"], name="branch", then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "flow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                              [numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_what_cannot_be_done_is_one_line(models, tmp_path):
    flow = control_flow_model(tmp_path / "flow.onnx")
    np.savez(tmp_path / "x.npz", x=np.ones(1, np.float32))
    assert_one_line_error(run_cli("compare", str(flow), str(flow), "--layers", "--inputs", str(tmp_path / "x.npz")),
                          "cannot expose the intermediate tensors of flow.onnx", "If 'branch'")
    other = conv_chain(tmp_path / "other.onnx", side=32)
    renamed = onnx.load(str(other))  # the same graph, every computed tensor renamed
    computed = {name for node in renamed.graph.node for name in node.output}
    for node in renamed.graph.node:
        node.output[:] = [f"renamed_{name}" for name in node.output]
        node.input[:] = [f"renamed_{name}" if name in computed else name for name in node.input]
    renamed.graph.output[0].name = "renamed_output"
    onnx.save(renamed, str(other))
    assert_one_line_error(run_cli("compare", str(models["chain"]), str(other), "--layers", "--inputs",
                                  str(models["inputs"])), "no layer of chain.onnx matches one of other.onnx")
    assert_one_line_error(run_cli("compare", str(models["chain"]), str(models["conv2"]), "--layers", "-r",
                                  "ort-cpu,openvino"), "--layers diffs two sides")


def test_output_attribution_names_the_output_the_disagreement_comes_from():
    from types import SimpleNamespace

    from edgekit.profile.attribution import named_outputs, output_shares

    rng = np.random.default_rng(0)
    reference = [{"boxes": rng.random((1, 8)), "scores": rng.random((1, 4))} for _ in range(3)]
    candidate = [{"boxes": r["boxes"] * 1.2, "scores": r["scores"] + 1e-4} for r in reference]
    shares = output_shares(SimpleNamespace(task="classification"), reference, candidate)
    assert shares["boxes"] > 0.95 and shares["scores"] < 0.05 and named_outputs(shares) == ["boxes"]
    assert output_shares(SimpleNamespace(task="classification"), reference, reference) == {}
