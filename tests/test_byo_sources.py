"""Model sources beyond zoo names: TorchScript, torch.export programs and package factories with
several inputs/outputs and dynamic dims, and .onnx files exported elsewhere shaped by --input."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from edgekit.exporters.user_module import export_source
from edgekit.inputs.specs import parse_input_specs
from edgekit.runtimes import open_runtime
from edgekit.sources import resolve_model
from tests.conftest import assert_one_line_error, run_cli


class TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, image, extra):
        features = self.conv(image)
        return self.fc(features.mean((2, 3))) + extra, features


def _check_dynamic_batch(path, net, batch=3):
    image = np.random.default_rng(1).standard_normal((batch, 3, 8, 8)).astype(np.float32)
    extra = np.ones((batch, 2), np.float32)
    with open_runtime("ort-cpu", path) as runtime:
        names = list(runtime.inputs)
        outputs = runtime.run(dict(zip(names, (image, extra))))
    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(image), torch.from_numpy(extra))]
    for got, want in zip(outputs.values(), expected):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
    return names, list(outputs)


def test_torchscript_with_two_inputs_two_outputs_and_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    net = TwoInTwoOut().eval()
    traced = torch.jit.trace(net, (torch.randn(1, 3, 8, 8), torch.randn(1, 2)))
    traced.save(str(tmp_path / "net.ts"))
    specs = parse_input_specs(["image:batchx3x8x8", "extra:batchx2"])
    result = export_source(str(tmp_path / "net.ts"), tmp_path / "net.onnx", inputs=specs)
    assert result.parity.passed and result.meta.input_name == "image" and result.meta.input_size == (8, 8)
    names, outputs = _check_dynamic_batch(result.path, net)
    assert names == ["image", "extra"] and outputs == ["output0", "output1"]


def test_torch_export_program_keeps_its_input_names(tmp_path):
    torch.manual_seed(0)
    net = TwoInTwoOut().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, 3, 8, 8), torch.randn(2, 2)),
                                  dynamic_shapes={"image": {0: batch}, "extra": {0: batch}})
    torch.export.save(program, str(tmp_path / "net.pt2"))
    result = export_source(str(tmp_path / "net.pt2"), tmp_path / "net.onnx")
    assert result.parity.passed
    names, _ = _check_dynamic_batch(result.path, net, batch=5)
    assert names == ["image", "extra"]


def test_package_factory_and_cache_follows_the_source(tmp_path, monkeypatch):
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        def build():
            return nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    specs = parse_input_specs(["x:1x3x6x6"])
    first = resolve_model("userpkg.models:build", inputs=specs)
    assert first.is_file() and resolve_model("userpkg.models:build", inputs=specs) == first  # cached
    other = resolve_model("userpkg.models:build", inputs=parse_input_specs(["x:1x3x7x7"]))
    assert other != first  # another input shape is another export
    with open_runtime("ort-cpu", other) as runtime:
        assert runtime.inputs["x"].shape == (1, 3, 7, 7)


def _foreign_onnx(path):
    """An .onnx 'exported elsewhere': two inputs and two outputs with a dynamic batch and length."""
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["product"])]
    dims = ["N", "T"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, 1, dims) for n in ("a", "b")],
                              [helper.make_tensor_value_info(n, 1, dims) for n in ("sum", "product")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="elsewhere")
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
@pytest.mark.openvino
def test_foreign_onnx_shaped_by_input_specs(tmp_path):
    path = str(_foreign_onnx(tmp_path / "foreign.onnx"))
    assert_one_line_error(run_cli("compare", path, "-r", "ort-cpu,openvino"), "symbolic dims")
    shaped = ["--input", "a:2x16", "--input", "b:2x16"]
    compared = run_cli("compare", path, "-r", "ort-cpu,openvino", *shaped, "--json", str(tmp_path / "c.json"))
    assert compared.returncode == 0, compared.stderr
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["inputs"] == {"a": [2, 16], "b": [2, 16]} and record["passed"]
    assert [o["name"] for o in record["results"][0]["parity"]["outputs"]] == ["sum", "product"]
    benched = run_cli("bench", path, "--runs", "3", "--warmup", "1", *shaped, "--json", str(tmp_path / "b.json"))
    assert benched.returncode == 0, benched.stderr
    assert json.loads((tmp_path / "b.json").read_text())["inputs"] == {"a": [2, 16], "b": [2, 16]}
    assert run_cli("meta", "set", path, "task=embedding", "model_name=adder").returncode == 0
    shown = run_cli("meta", "show", path, "--json")
    assert json.loads(shown.stdout)["task"] == "embedding" and json.loads(shown.stdout)["model_name"] == "adder"
    assert onnx.load(path).producer_name == "elsewhere"  # only the metadata changed


def test_a_first_meta_set_on_a_foreign_file_records_its_graphs_input(tmp_path):
    """`meta set their.onnx task=classification labels=...` recorded edgekit's defaults ('input',
    224×224) for a graph whose input is `images` 1×3×64×64, so predict failed on the README's step."""
    from onnx import TensorProto, numpy_helper

    from edgekit.meta import read_meta

    weight = numpy_helper.from_array(np.random.default_rng(0).random((3 * 64 * 64, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Flatten", ["images"], ["flat"]),
                               helper.make_node("MatMul", ["flat", "w"], ["logits"])], "their",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], [weight])
    model = tmp_path / "their.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    assert run_cli("meta", "set", str(model), "task=classification", "labels=a,b,c").returncode == 0
    meta = read_meta(model)
    assert meta.input_name == "images" and meta.input_size == (64, 64)
    image = tmp_path / "scene.ppm"
    image.write_bytes(b"P6 100 80 255\n" + bytes(range(256)) * 93 + bytes(192))
    result = run_cli("predict", str(model), str(image), "--json")
    assert result.returncode == 0, result.stderr
    assert run_cli("meta", "set", str(model), "input_size=32x32").returncode == 0  # what the user sets wins
    assert read_meta(model).input_size == (32, 32) and read_meta(model).input_name == "images"
