"""Every zoo model exports, runs on ort-cpu and matches torch; export failures leave no file."""

import numpy as np
import pytest
import torch

from conftest import zoo_params

from edgekit.errors import BadInputError, CheckFailedError
from edgekit.exporters import ExportConfig
from edgekit.exporters.torch_onnx import export_zoo_model
from edgekit.meta import read_meta
from edgekit.runtimes import open_runtime
from edgekit.zoo import ZOO
from edgekit.zoo.build import build_model


@pytest.mark.parametrize("name", zoo_params(ZOO.names()))
def test_zoo_model_exports_and_matches_torch(zoo_onnx, name):
    result = zoo_onnx(name)
    assert result.parity.passed, result.parity.summary()
    meta = read_meta(result.path)
    assert meta.model_name == name and meta.task == "classification"
    assert meta.edgekit_version and meta.input_size == result.meta.input_size
    assert len(meta.labels) in (10, 1000)
    # An independent check on a fresh input, through the runtime interface.
    model = build_model(name)
    x = np.random.default_rng(1).standard_normal((1, meta.channels, *meta.input_size)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with open_runtime("ort-cpu", result.path) as runtime:
        actual = runtime.run({"input": x})["output"]
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-30)
    assert float(np.abs(actual - expected).max()) <= 1e-3 * scale + 1e-5


def test_dynamic_batch_runs_any_batch(zoo_onnx):
    result = zoo_onnx("resnet18", dynamic_batch=True)
    with open_runtime("ort-cpu", result.path) as runtime:
        assert runtime.inputs["input"].shape[0] == "batch"
        for batch in (1, 3):
            out = runtime.run({"input": np.zeros((batch, 3, 64, 64), np.float32)})["output"]
            assert out.shape == (batch, 1000)


def test_fixed_batch_is_kept(zoo_onnx):
    result = zoo_onnx("squeezenet1_1", batch=2)
    with open_runtime("ort-cpu", result.path) as runtime:
        assert runtime.inputs["input"].shape == (2, 3, 64, 64)


def test_weights_are_loaded_from_a_state_dict(tmp_path):
    model = build_model("lenet5", seed=123)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    result = export_zoo_model("lenet5", tmp_path / "w.onnx", weights=tmp_path / "w.pt")
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    with open_runtime("ort-cpu", result.path) as runtime:
        np.testing.assert_allclose(runtime.run({"input": x.numpy()})["output"], expected, atol=1e-5)
    assert read_meta(result.path).extra["source"]["weights"].startswith("sha256:")


def test_weights_that_do_not_fit_are_rejected(tmp_path):
    torch.save(build_model("lenet5").state_dict(), tmp_path / "lenet.pt")
    with pytest.raises(BadInputError, match="do not fit"):
        export_zoo_model("squeezenet1_1", tmp_path / "x.onnx", ExportConfig(input_size=(64, 64)),
                         weights=tmp_path / "lenet.pt")
    assert list(tmp_path.iterdir()) == [tmp_path / "lenet.pt"]


@pytest.mark.parametrize("name,size", [("lenet5", (64, 64)), ("alexnet", (64, 64)), ("resnet18", (8, 8))])
def test_input_size_the_model_cannot_take(tmp_path, name, size):
    with pytest.raises(BadInputError):
        export_zoo_model(name, tmp_path / "x.onnx", ExportConfig(input_size=size))
    assert list(tmp_path.iterdir()) == []


def test_validation_failure_removes_the_file(tmp_path):
    # An impossible tolerance makes the torch-vs-ORT check fail: nothing may be left behind.
    with pytest.raises(CheckFailedError, match="does not match torch"):
        export_zoo_model("resnet18", tmp_path / "r.onnx", ExportConfig(input_size=(64, 64), atol=0, rtol=0))
    assert list(tmp_path.iterdir()) == []


def test_bad_config_values():
    with pytest.raises(BadInputError, match="opset"):
        ExportConfig(opset=3)
    with pytest.raises(BadInputError, match="batch"):
        ExportConfig(batch=0)
