"""ort-cuda, ort-trt and trt. What needs no GPU runs everywhere (probes, errors, cache keys);
the rest is marked gpu/tensorrt and skips without the hardware (EDGEKIT_REQUIRE_GPU=1 fails instead)."""

import json

import numpy as np
import pytest

from conftest import run_cli
from edgekit.errors import BadInputError
from edgekit.runtimes import get_runtime, open_runtime
from edgekit.runtimes.cuda import gpu_names, parse_device_id


def _ort_providers():
    import onnxruntime as ort

    return ort.get_available_providers()


# ---- everywhere ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, provider", [("ort-cuda", "CUDAExecutionProvider"), ("ort-trt", "TensorrtExecutionProvider")])
def test_cpu_onnxruntime_explains_the_gpu_package(name, provider):
    if provider in _ort_providers():
        pytest.skip("this onnxruntime has GPU providers")
    availability = get_runtime(name).probe()
    assert not availability.available
    assert f"no {provider}" in availability.reason and "'onnxruntime-gpu' replaces it" in availability.reason
    assert availability.install == "pip uninstall onnxruntime && pip install 'edgekit[ort-gpu]'"


def test_trt_probe_names_the_extra():
    availability = get_runtime("tensorrt").probe()
    assert availability.name == "trt"
    if not availability.available:
        assert availability.reason and "pip install 'edgekit[tensorrt]'" in availability.install


def test_gpu_names_never_raises():
    names = gpu_names()
    assert isinstance(names, tuple) and all(isinstance(n, str) and n for n in names)


def test_parse_device_id():
    assert parse_device_id(None, 2) == 2
    assert [parse_device_id(d) for d in ("cuda:1", "GPU:3", "0", "cuda")] == [1, 3, 0, 0]
    with pytest.raises(BadInputError, match="cuda:N"):
        parse_device_id("npu")


def test_engine_cache_key_covers_model_flags_version_and_gpu(zoo_onnx):
    trt_class = get_runtime("trt")
    path = zoo_onnx("lenet5").path
    base = trt_class(path).cache_key("10.3.0", "NVIDIA A100")
    assert base == trt_class(path).cache_key("10.3.0", "NVIDIA A100")
    others = {
        trt_class(path, fp16=True).cache_key("10.3.0", "NVIDIA A100"),
        trt_class(path, max_batch=8).cache_key("10.3.0", "NVIDIA A100"),
        trt_class(path).cache_key("10.4.0", "NVIDIA A100"),
        trt_class(path).cache_key("10.3.0", "NVIDIA L4"),
        trt_class(zoo_onnx("lenet5", dynamic_batch=True).path).cache_key("10.3.0", "NVIDIA A100"),
    }
    assert base not in others and len(others) == 5


@pytest.mark.parametrize("name", ["ort-cuda", "ort-trt", "trt"])
def test_unavailable_gpu_runtime_is_a_one_line_error(name, zoo_onnx):
    if get_runtime(name).probe().available:
        pytest.skip(f"{name} is available here")
    result = run_cli("bench", str(zoo_onnx("lenet5").path), "--runtime", name)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"runtime '{name}' is not available" in lines[0] and "pip install" in lines[0]


# ---- on an NVIDIA GPU ---------------------------------------------------------------------
def _x(batch):
    return np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(np.float32)


def _reference(path, x):
    with open_runtime("ort-cpu", path) as runtime:
        return runtime.run({"input": x})["output"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["ort-cuda", "ort-trt"])
def test_ort_gpu_matches_cpu_and_benches_on_device(name, zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    with open_runtime(name, path, device="cuda:0") as runtime:
        assert runtime.describe()["providers"][0] != "CPUExecutionProvider"
        for batch in (1, 3):
            np.testing.assert_allclose(runtime.run({"input": _x(batch)})["output"], _reference(path, _x(batch)),
                                       rtol=1e-3, atol=1e-4)
    result = run_cli("bench", str(zoo_onnx("lenet5").path), "--runtime", name, "--runs", "20", "--warmup", "2",
                     "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["latency"]["count"] == 20 and set(record["breakdown_ms"]) == {"h2d_ms", "d2h_ms"}
    assert all(value > 0 for value in record["breakdown_ms"].values())


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_trt_builds_caches_and_runs_dynamic_batch(zoo_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path))
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    with open_runtime("trt", path, opt_batch=2, max_batch=4) as runtime:
        assert runtime.inputs["input"].shape == (None, 1, 32, 32) and not runtime.cache_hit
        for batch in (1, 3):
            np.testing.assert_allclose(runtime.run({"input": _x(batch)})["output"], _reference(path, _x(batch)),
                                       rtol=1e-3, atol=1e-4)
        with pytest.raises(BadInputError, match="above the engine's max batch 4"):
            runtime.run({"input": _x(5)})
    engines = list((tmp_path / "tensorrt").glob("*.engine"))
    assert len(engines) == 1 and list((tmp_path / "tensorrt").glob("timing-*.cache"))
    with open_runtime("trt", path, opt_batch=2, max_batch=4) as runtime:
        assert runtime.cache_hit and runtime.engine_path == engines[0]
    with open_runtime("trt", engines[0]) as runtime:  # a prebuilt engine loads directly
        np.testing.assert_allclose(runtime.run({"input": _x(2)})["output"], _reference(path, _x(2)), rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_trt_fp16_and_bench_breakdown(zoo_onnx, tmp_path):
    from edgekit.parity import compare_outputs

    path = zoo_onnx("resnet18").path
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("ort-cpu", path) as reference, open_runtime("trt", path, fp16=True) as runtime:
        report = compare_outputs(reference.run({"input": x}), runtime.run({"input": x}), atol=0.05, rtol=0.05, min_cosine=0.99)
    assert report.outputs[0].cosine > 0.99
    result = run_cli("bench", str(path), "--runtime", "trt", "--runs", "20", "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["runtime_options"]["engine_cache_hit"] in (True, False) and record["device"]
    assert set(record["breakdown_ms"]) == {"h2d_ms", "d2h_ms"}


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_trt_parser_error_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(BadInputError, match="TensorRT cannot parse") as info:
        open_runtime("trt", tmp_path / "bad.onnx")
    assert "\n" not in str(info.value)
