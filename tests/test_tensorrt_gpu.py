"""Native TensorRT on a real GPU: the paths the fakes (test_tensorrt_fakes.py) stand in for here —
data-dependent outputs, concurrent requests (multi-stream, offline) on their own contexts and on the
runtime's device, FP32 without TF32, INT8/FP16 engines from `quantize --backend trt`, memory freed
without close. Marked gpu + tensorrt: skipped without them (EDGEKIT_REQUIRE_GPU=1 fails instead).
Engines go to the session's cache (conftest), so tests on the same model and build share them."""

from __future__ import annotations

import gc
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fake_tensorrt import double_model

from edgekit.meta import read_meta
from edgekit.runtimes import open_runtime

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]
HERE = Path(__file__).resolve().parent


def _x(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 4)).astype(np.float32)


def test_data_dependent_outputs(tmp_path):
    """A NonZero-sized output is -1 after the input shapes are set: its memory and shape come from
    the output allocator (it used to end in 'negative dimensions are not allowed')."""
    path = double_model(tmp_path, dynamic=True)
    with open_runtime("trt", path) as runtime, open_runtime("ort-cpu", path) as cpu:
        for batch, seed in ((1, 0), (4, 1), (2, 2), (4, 3)):
            x = _x(batch, seed)
            got, want = runtime.run({"x": x}), cpu.run({"x": x})
            for name in ("y", "positive"):
                np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
        runtime.prepare({"x": _x(4)})()
        assert all(value > 0 for value in runtime.timing_breakdown({"x": _x(4)}).values())


@pytest.mark.slow
def test_torchvision_detector_matches_the_cpu_box_for_box(tmp_path):
    """edgekit's torchvision detector export (NMS in the graph: boxes, scores and labels of a
    data-dependent count) on trt against ort-cpu."""
    from edgekit.compare import compare
    from edgekit.exporters.user_module import export_source

    path = tmp_path / "ssdlite.onnx"
    export_source(f"{HERE / 'test_byo_detectors.py'}:ssdlite", path, meta_changes={"decoder": {"max_detections": 1000}})
    np.savez(tmp_path / "in.npz", input=np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32))
    (result,) = compare(path, ["ort-cpu", "trt"], inputs=tmp_path / "in.npz").results
    assert result.boxes is not None and result.boxes.matched >= 1, result.boxes
    assert result.boxes.label_agreement >= 0.95 and result.boxes.mean_iou > 0.95, result.boxes.summary()


@pytest.mark.parametrize("scenario", ["multi-stream", "offline"])
@pytest.mark.parametrize("which", ["first", "last"])
def test_concurrent_requests_on_their_own_contexts_and_device(zoo_onnx, scenario, which):
    """Each request of the thread-pool scenarios has its own context and stream and sets the device
    in its thread; outputs stay right afterwards. 'last' is cuda:N-1 (skipped with one GPU)."""
    from edgekit.bench.latency import LoopPlan
    from edgekit.bench.scenarios import run_scenario
    from edgekit.runtimes.cuda import gpu_names

    if which == "last" and len(gpu_names()) < 2:
        pytest.skip("one GPU: no second device to pin")
    device = 0 if which == "first" else len(gpu_names()) - 1
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    with open_runtime("ort-cpu", path) as cpu:
        want = cpu.run({"input": x})["output"]
    with open_runtime("trt", path, device=f"cuda:{device}", max_batch=4) as runtime:
        result = run_scenario(runtime, {"input": x}, scenario, LoopPlan(5, 50, 0.3), rounds=2, requests=4)
        assert result.requests == 4 and result.throughput_items_s > 0
        with ThreadPoolExecutor(4) as pool:  # run() from several threads, as a Predictor's callers
            outs = list(pool.map(lambda _: runtime.run({"input": x})["output"], range(16)))
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-3, atol=1e-4)


def test_bench_scenarios_on_trt_cli(zoo_onnx, tmp_path):
    result = run_cli("bench", str(zoo_onnx("lenet5", dynamic_batch=True).path), "--runtime", "trt",
                     "--scenario", "single-stream,multi-stream,offline", "--rounds", "1", "--duration", "0.5",
                     "--db", f"sqlite:///{tmp_path / 'h.db'}")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"\bok\b", result.stdout)) >= 3, result.stdout  # every cell's status


def test_fp32_is_fp32_and_tf32_is_opt_in(zoo_onnx):
    """TF32 is cleared: trt passes `compare` against the CPU at its default FP32 tolerance."""
    path = zoo_onnx("resnet18").path
    compared = run_cli("compare", str(path), "-r", "ort-cpu,trt")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    from edgekit.parity import compare_outputs

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("ort-cpu", path) as cpu, open_runtime("trt", path, tf32=True) as fast:
        report = compare_outputs(cpu.run({"input": x}), fast.run({"input": x}), atol=0.05, rtol=0.05,
                                 min_cosine=0.999)
    assert report.outputs[0].cosine > 0.999


@pytest.mark.parametrize("mode", ["int8-static", "fp16"])
def test_quantize_backend_trt_engines_run(zoo_onnx, tmp_path, mode):
    """`quantize --backend trt` writes an engine (and its .json) that the trt runtime runs and that
    agrees with FP32; INT8 gets only the INT8 flag on every TensorRT version."""
    path = zoo_onnx("resnet18").path
    np.savez(tmp_path / "calib.npz", input=np.random.default_rng(1).standard_normal((32, 3, 64, 64)).astype(np.float32))
    engine = tmp_path / f"r18.{mode}.engine"
    args = ["--calib", str(tmp_path / "calib.npz")] if mode == "int8-static" else []
    result = run_cli("quantize", str(path), "-o", str(engine), "--backend", "trt", "--mode", mode, *args)
    assert result.returncode == 0, result.stderr
    check = read_meta(engine).recipe["check"]  # the quantizer's own run of the engine against FP32
    assert check["samples"] > 0 and check["cosine"] > (0.9 if mode == "int8-static" else 0.99), check
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("ort-cpu", path) as cpu, open_runtime("trt", engine) as runtime:
        a, b = cpu.run({"input": x})["output"].ravel(), runtime.run({"input": x})["output"].ravel()
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cosine > (0.9 if mode == "int8-static" else 0.99), cosine
    bench = run_cli("bench", str(engine), "--runtime", "trt", "--runs", "20", "--json", str(tmp_path / "b.json"))
    assert bench.returncode == 0, bench.stderr


def test_runtimes_never_closed_give_their_gpu_memory_back(zoo_onnx):
    from edgekit.runtimes import cuda

    path = zoo_onnx("resnet18").path
    x = np.zeros((1, 3, 64, 64), np.float32)
    with open_runtime("trt", path) as runtime:  # builds the engine; TensorRT's one-time allocations
        runtime.run({"input": x})
    gc.collect()
    before = cuda.memory_info()[0]
    for _ in range(3):
        runtime = open_runtime("trt", path)
        runtime.run({"input": x})
        calls = [runtime.prepare({"input": x}) for _ in range(2)]
        for call in calls:
            call()
        del runtime, calls, call
    gc.collect()
    assert cuda.memory_info()[0] >= before - (64 << 20), (before, cuda.memory_info()[0])
