"""OpenVINO on this CPU, for real: every zoo model agrees with ort-cpu, options, IR, cache, CLI."""

import json

import numpy as np
import pytest

from conftest import block_imports, run_cli, zoo_params
from edgekit.errors import BadInputError
from edgekit.parity import compare_fp32, compare_outputs
from edgekit.runtimes import get_runtime, open_runtime
from edgekit.zoo import ZOO

pytestmark = pytest.mark.openvino


def _ort_and_ov(path, feeds, **options):
    with open_runtime("ort-cpu", path) as reference:
        expected = reference.run(feeds)
    with open_runtime("openvino", path, **options) as runtime:
        actual = runtime.run(feeds)
    return expected, actual


@pytest.mark.parametrize("name", zoo_params(ZOO.names()))
def test_every_zoo_model_agrees_with_ort_cpu(name, zoo_onnx):
    result = zoo_onnx(name)
    h, w = result.meta.input_size
    x = np.random.default_rng(1).standard_normal((1, result.meta.channels, h, w)).astype(np.float32)
    expected, actual = _ort_and_ov(result.path, {"input": x})
    report = compare_fp32(expected, actual, atol=1e-4, rtol=1e-3)  # random weights: some logits are ±1e-9
    assert report.passed, report.summary()
    assert report.outputs[0].top1_agreement == 1.0


def test_dynamic_batch_is_symbolic_and_runs_any_batch(zoo_onnx):
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    with open_runtime("openvino", path) as runtime:
        assert runtime.inputs["input"].shape == (None, 1, 32, 32)
        assert runtime.outputs["output"].shape == (None, 10)
        for batch in (1, 3):
            x = np.ones((batch, 1, 32, 32), np.float32)
            assert runtime.run({"input": x})["output"].shape == (batch, 10)


def test_prepared_call_reuses_a_request_with_inputs_set(zoo_onnx):
    path = zoo_onnx("squeezenet1_1").path
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("openvino", path, threads=1) as runtime:
        expected = runtime.run({"input": x})["output"]
        call = runtime.prepare({"input": x})
        first = call().get_output_tensor(0).data.copy()
        second = call().get_output_tensor(0).data.copy()
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first, second)


def test_reads_openvino_ir(zoo_onnx, tmp_path):
    import openvino as ov

    path = zoo_onnx("mobilenet_v3_small").path
    xml = tmp_path / "model.xml"
    ov.save_model(ov.Core().read_model(str(path)), str(xml), compress_to_fp16=False)
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("ort-cpu", path) as reference:
        expected = reference.run({"input": x})
    with open_runtime("openvino", xml) as runtime:
        actual = runtime.run({"input": x})
    assert compare_fp32(expected, actual).passed
    xml.with_suffix(".bin").unlink()
    with pytest.raises(BadInputError, match="no weights file model.bin"):
        open_runtime("openvino", xml)


def test_compiled_models_are_cached_on_disk(zoo_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path))
    path = zoo_onnx("resnet18").path
    with open_runtime("openvino", path, cache=False):
        pass
    assert not (tmp_path / "openvino").exists() or not any((tmp_path / "openvino").iterdir())
    with open_runtime("openvino", path):
        pass
    blobs = list((tmp_path / "openvino").glob("*/*.blob"))
    assert len(blobs) == 1
    with open_runtime("openvino", path):  # same model and settings: a cache hit, no new blob
        pass
    assert list((tmp_path / "openvino").glob("*/*.blob")) == blobs


@pytest.mark.parametrize("layout", ["external-data", "ir"])
def test_new_weights_in_the_same_file_names_are_never_served_from_the_cache(tmp_path, monkeypatch, layout):
    """OpenVINO keys its cache by the model file alone: rewriting only the external data (or an IR's
    .bin) with other weights once gave the old weights' outputs."""
    import os

    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    x = np.ones((1, 64), np.float32)
    for seed in (0, 1):
        weight = np.random.default_rng(seed).normal(size=(64, 64)).astype(np.float32)
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
                                  [numpy_helper.from_array(weight, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        if (tmp_path / "m.data").exists():
            os.remove(tmp_path / "m.data")
        onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
        path = tmp_path / "m.onnx"
        if layout == "ir":
            path = tmp_path / "m.xml"
            ov.save_model(ov.Core().read_model(str(tmp_path / "m.onnx")), str(path), compress_to_fp16=False)
        with open_runtime("openvino", path) as runtime:
            assert np.allclose(runtime.run({"x": x})["y"], x @ weight, rtol=1e-4, atol=1e-3), seed


def test_options_reach_openvino(zoo_onnx):
    path = zoo_onnx("lenet5").path
    with open_runtime("openvino", path, hint="throughput", streams=2, threads=2) as runtime:
        info = runtime.describe()
    assert info["performance_hint"] == "THROUGHPUT" and info["num_streams"] == "2"
    assert info["inference_num_threads"] == "2" and info["inference_precision_hint"] == "f32"
    assert info["device_name"]


def test_precision_is_checked_against_the_cpu(zoo_onnx):
    import openvino as ov

    path = zoo_onnx("resnet18").path
    capabilities = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 64)).astype(np.float32)
    if "BF16" in capabilities:
        expected, actual = _ort_and_ov(path, {"input": x}, precision="bf16")
        report = compare_outputs(expected, actual, atol=1e-4, rtol=1e-3, min_cosine=0.99)
        assert report.outputs[0].cosine > 0.99
        assert report.max_abs > 1e-6  # really ran in bf16, not silently in f32
    else:
        with pytest.raises(BadInputError, match="cannot run bf16"):
            open_runtime("openvino", path, precision="bf16")
    missing = [p for p, cap in (("f16", "FP16"), ("bf16", "BF16")) if cap not in capabilities]
    for precision in missing:
        with pytest.raises(BadInputError, match=f"cannot run {precision}"):
            open_runtime("openvino", path, precision=precision)


@pytest.mark.parametrize("options, message", [
    ({"hint": "fast"}, "hint must be one of latency, throughput"),
    ({"streams": 0}, "streams must be a positive integer or AUTO"),
    ({"precision": "int4"}, "precision must be one of"),
    ({"device": "NPU9"}, "no device 'NPU9'"),
    ({"threads": -1}, "threads must be a positive integer"),
])
def test_bad_options_are_one_line_errors(zoo_onnx, options, message):
    with pytest.raises(BadInputError, match=message):
        open_runtime("openvino", zoo_onnx("lenet5").path, **options)


def test_probe_lists_the_cpu():
    availability = get_runtime("ov").probe()
    assert availability.available and availability.name == "openvino"
    assert any(device.startswith("CPU: ") for device in availability.devices)


def test_bench_cli_on_openvino(zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5").path
    result = run_cli("bench", str(path), "--runtime", "openvino", "--runs", "20", "--warmup", "2",
                     "--threads", "1", "-O", "hint=latency", "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["runtime"] == "openvino" and record["latency"]["count"] == 20
    assert 0 < record["latency"]["p50_ms"] < 1000
    assert record["runtime_options"]["inference_num_threads"] == "1"


def test_missing_openvino_is_a_one_line_error(zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5").path
    result = run_cli("bench", str(path), "--runtime", "openvino", prelude=block_imports("openvino"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "runtime 'openvino' is not available: openvino is not installed" in lines[0]
    assert "pip install 'edgekit[openvino]'" in lines[0]
    result = run_cli("runtimes", "--json", str(tmp_path / "r.json"), prelude=block_imports("openvino"))
    row = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())}["openvino"]
    assert not row["available"] and row["install"] == "pip install 'edgekit[openvino]'"


def test_fp16_onnx_keeps_the_models_own_io_names(zoo_onnx, tmp_path):
    # An FP16 model's graph input is also named after the Cast that follows it; OpenVINO may
    # report either name, and edgekit must expose the model's own.
    from edgekit.quantize import QuantizeConfig, quantize

    half = quantize(zoo_onnx("lenet5").path, tmp_path / "half.onnx", QuantizeConfig(mode="fp16")).path
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    with get_runtime("openvino")(half) as ov_runtime, get_runtime("ort-cpu")(half) as ort_runtime:
        assert list(ov_runtime.inputs) == list(ort_runtime.inputs) == ["input"]
        assert list(ov_runtime.outputs) == ["output"]
        np.testing.assert_allclose(ov_runtime.run({"input": x})["output"], ort_runtime.run({"input": x})["output"],
                                   rtol=2e-2, atol=2e-2)
