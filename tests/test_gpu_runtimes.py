"""ort-cuda, ort-trt and trt. What needs no GPU runs everywhere (probes, errors, cache keys,
libcudart choice, the EDGEKIT_REQUIRE_GPU switch); the rest is marked gpu/tensorrt and skips
without the hardware (EDGEKIT_REQUIRE_GPU=1 fails instead)."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

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
@pytest.mark.parametrize("name, provider", [("ort-cuda", "CUDAExecutionProvider"),
                                            ("ort-trt", "TensorrtExecutionProvider")])
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


def test_libcudart_matching_the_driver_is_tried_first():
    from edgekit.runtimes.cuda import order_candidates, runtime_major

    assert [runtime_major(p) for p in ("libcudart.so.12", "/v/nvidia/cu13/lib/libcudart.so.13",
                                       "/v/nvidia/cuda_runtime/lib/libcudart.so.12.4.127",
                                       "libcudart.so")] == [12, 13, 12, None]
    paths = ["libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0",
             "/v/nvidia/cu13/lib/libcudart.so.13", "libcudart.so"]
    assert order_candidates(paths, 12) == ["libcudart.so.12", "libcudart.so.11.0", "libcudart.so",
                                           "libcudart.so.13", "/v/nvidia/cu13/lib/libcudart.so.13"]
    assert order_candidates(paths, 13)[:2] == ["libcudart.so.13", "/v/nvidia/cu13/lib/libcudart.so.13"]
    assert order_candidates(paths, None) == paths  # no driver: the order given


def test_cuda_device_is_set_once_in_every_thread(monkeypatch):
    from edgekit.runtimes import cuda

    calls = []
    monkeypatch.setattr(cuda, "set_device", lambda device: calls.append((threading.get_ident(), device)))
    monkeypatch.setattr(cuda, "_CURRENT", threading.local())
    for _ in range(3):
        cuda.ensure_device(1)
    both_alive = threading.Barrier(2)  # alive together, so the two threads cannot share an ident

    def work():
        cuda.ensure_device(1)
        both_alive.wait()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cuda.ensure_device(0)
    assert [device for _, device in calls] == [1, 1, 1, 0] and len({ident for ident, _ in calls[:3]}) == 3


def test_ort_trt_engine_folder_is_keyed_by_model_content(tmp_path):
    """ONNX Runtime names engines by graph and tensor names: a retrained model (same names, new
    weights, here in an external-data file) must get a new folder, not reuse the stale engine."""
    import onnx
    from onnx import helper, numpy_helper

    def save(weights):
        w = numpy_helper.from_array(weights.astype(np.float32), "w")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", 1, [1, 4])],
                                  [helper.make_tensor_value_info("y", 1, [1, 4])], [w])
        onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"), save_as_external_data=True,
                  location="m.weights", size_threshold=0)
        return tmp_path / "m.onnx"

    trt_class = get_runtime("ort-trt")
    path = save(np.eye(4))
    first = trt_class(path, engine_cache_dir=str(tmp_path / "cache")).provider_options()
    assert first["trt_engine_cache_path"] != first["trt_timing_cache_path"]
    assert Path(first["trt_engine_cache_path"]).parent == tmp_path / "cache"
    assert first == trt_class(path, engine_cache_dir=str(tmp_path / "cache")).provider_options()
    (tmp_path / "m.weights").write_bytes((2 * np.eye(4)).astype(np.float32).tobytes())
    second = trt_class(path, engine_cache_dir=str(tmp_path / "cache")).provider_options()
    assert second["trt_engine_cache_path"] != first["trt_engine_cache_path"]
    assert "trt_engine_cache_path" not in trt_class(path, engine_cache=False).provider_options()


def test_require_gpu_turns_gpu_skips_into_failures(tmp_path):
    """Run pytest on a tiny gpu-marked test with this suite's conftest: skipped (exit 0) normally,
    failed (exit 1, reason shown) with EDGEKIT_REQUIRE_GPU=1 — xfail(run=False) used to exit 0."""
    if gpu_names():
        pytest.skip("a GPU is present: the gpu test would run")
    for helper in ("conftest.py", "cli_runner.py"):
        (tmp_path / helper).write_text((Path(__file__).parent / helper).read_text())
    (tmp_path / "test_tiny.py").write_text("import pytest\n\n@pytest.mark.gpu\ndef test_on_gpu():\n    pass\n"
                                           "\n@pytest.mark.tensorrt\ndef test_on_trt():\n    pass\n"
                                           "\ndef test_anywhere():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: x\n    tensorrt: x\n"
                                         "    openvino: x\n    slow: x\n")
    repo = Path(__file__).resolve().parents[1]

    def pytest_run(**env):
        full = {key: value for key, value in os.environ.items() if key != "EDGEKIT_REQUIRE_GPU"}
        full.update(PYTHONPATH=str(repo), **env)
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
                              capture_output=True, text=True, env=full, cwd=tmp_path, timeout=300)

    normal = pytest_run()
    assert normal.returncode == 0 and "1 passed, 2 skipped" in normal.stdout, normal.stdout
    required = pytest_run(EDGEKIT_REQUIRE_GPU="1")
    assert required.returncode == 1, required.stdout
    assert "1 passed, 2 errors" in required.stdout and "EDGEKIT_REQUIRE_GPU=1 but no NVIDIA GPU" in required.stdout


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
@pytest.mark.parametrize("name", ["ort-cuda", pytest.param("ort-trt", marks=pytest.mark.tensorrt)])
def test_ort_gpu_matches_cpu_and_benches_on_device(name, zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    options = {"engine_cache_dir": str(tmp_path / "engines")} if name == "ort-trt" else {}
    with open_runtime(name, path, device="cuda:0", **options) as runtime:
        assert runtime.describe()["providers"][0] != "CPUExecutionProvider"
        for batch in (1, 3):
            np.testing.assert_allclose(runtime.run({"input": _x(batch)})["output"], _reference(path, _x(batch)),
                                       rtol=1e-3, atol=1e-4)
        if name == "ort-trt":  # TensorRT really ran: it wrote engines into this model's own folder
            assert runtime.engines() and runtime.describe()["trt_engines"] >= 1
            assert all(engine.parent == runtime.engine_folder() for engine in runtime.engines())
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
        np.testing.assert_allclose(runtime.run({"input": _x(2)})["output"], _reference(path, _x(2)),
                                   rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_trt_fp16_and_bench_breakdown(zoo_onnx, tmp_path):
    """FP16 from an FP16 ONNX: strongly typed on TensorRT >= 10.12 (11 has no FP16 flag), the FP16
    flag before; an FP32 ONNX with fp16=True is a one-line error where strong typing is on."""
    import tensorrt as trt

    from edgekit.parity import compare_outputs
    from edgekit.quantize.base import QuantizeConfig, quantize
    from edgekit.runtimes.tensorrt_build import STRONG_TYPING_SINCE, trt_version

    path = zoo_onnx("resnet18").path
    half = quantize(path, tmp_path / "half.onnx", QuantizeConfig(mode="fp16")).path
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("ort-cpu", path) as reference, open_runtime("trt", half, fp16=True) as runtime:
        report = compare_outputs(reference.run({"input": x}), runtime.run({"input": x}),
                                 atol=0.05, rtol=0.05, min_cosine=0.99)
    assert report.outputs[0].cosine > 0.99
    if trt_version(trt) >= STRONG_TYPING_SINCE:
        with pytest.raises(BadInputError, match="builds strongly typed networks"):
            open_runtime("trt", path, fp16=True)
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


@pytest.mark.gpu
def test_cuda_buffers_streams_and_errors():
    """edgekit's ctypes CUDA layer (TensorRT's buffers and streams) against the real runtime."""
    from edgekit.runtimes import cuda

    assert int(cuda.runtime_version().split(".")[0]) >= 11
    host = np.arange(1000, dtype=np.float32)
    buffer, stream = cuda.DeviceBuffer(host.nbytes), cuda.Stream()
    try:
        buffer.copy_from(host)
        np.testing.assert_array_equal(buffer.copy_to(np.empty_like(host)), host)
        buffer.copy_from(host[::-1].copy(), stream)
        back = np.zeros_like(host)
        buffer.copy_to(back, stream)
        stream.synchronize()
        np.testing.assert_array_equal(back, host[::-1])
        with pytest.raises(ValueError, match="do not fit"):
            buffer.copy_from(np.zeros(2000, np.float32))
        assert cuda.time_copies(lambda: buffer.copy_from(host)) > 0
    finally:
        buffer.free()
        stream.close()
    with pytest.raises(cuda.CudaError, match=r"cudaMalloc\(\d+ bytes\) failed") as info:
        cuda.DeviceBuffer(1 << 50)  # a petabyte: CUDA refuses it
    assert "\n" not in str(info.value)
    assert cuda.runtime_library().cudaGetLastError() == 0   # cleared: the next CUDA user does not inherit it


@pytest.mark.gpu
def test_predictor_on_ort_cuda_matches_the_cpu_from_threads(zoo_onnx, tmp_path):
    """The plain model and its fused uint8-frame graphs give the CPU's classes and probabilities on the
    GPU, also when one Predictor is called from several threads. The Gather-resize graph carries its
    sampling positions as constants, so it matches as closely as the plain model; ONNX Resize computes
    them in each provider's own float arithmetic, which a 13x downscale of noise frames magnifies."""
    from concurrent.futures import ThreadPoolExecutor

    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model
    from edgekit.predictor import Predictor

    plain = zoo_onnx("lenet5").path
    models = {"plain": (plain, 1e-5)}
    for op, tolerance in (("gather", 1e-5), ("resize", 2e-3)):
        fused = fuse_model(plain, tmp_path / f"fused-{op}.onnx", FuseConfig(frame=(480, 640), resize_op=op))
        models[op] = (fused.path, tolerance)
    frames = [np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8) for i in range(8)]
    for name, (model, tolerance) in models.items():
        with Predictor(model, runtime="ort-cpu") as cpu, Predictor(model, runtime="ort-cuda") as gpu:
            want = [cpu(frame) for frame in frames]
            with ThreadPoolExecutor(4) as pool:
                got = list(pool.map(gpu, frames))
            assert gpu.runtime.describe()["providers"][0] == "CUDAExecutionProvider"
            gpu(frames[0])
            assert gpu.last_timing.inference_ns > 0
        worst = max(float(np.abs(np.subtract(a.probabilities, e.probabilities)).max()) for a, e in zip(got, want))
        print(f"{name}: max probability difference GPU vs CPU {worst:.2e}")
        assert [a.classes for a in got] == [e.classes for e in want]
        assert worst <= tolerance, (name, worst)


@pytest.mark.gpu
def test_ort_cuda_precisions_compare_and_predict_cli(zoo_onnx, tmp_path):
    """FP32 on ort-cuda passes `compare` at its default tolerance; FP16 files and opt-in TF32 agree with
    the CPU by cosine; `edgekit predict -r ort-cuda` works on an image."""
    from edgekit.parity import compare_outputs
    from edgekit.quantize.base import QuantizeConfig, quantize

    path = zoo_onnx("resnet18").path
    half = quantize(path, tmp_path / "half.onnx", QuantizeConfig(mode="fp16")).path
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runtime("ort-cpu", path) as reference, open_runtime("ort-cuda", half) as runtime:
        report = compare_outputs(reference.run({"input": x}), runtime.run({"input": x}), atol=0.05, rtol=0.05,
                                 min_cosine=0.99)
    assert report.outputs[0].cosine > 0.99
    compared = run_cli("compare", str(path), "-r", "ort-cpu,ort-cuda")  # FP32 means FP32: TF32 is opt-in
    assert compared.returncode == 0, compared.stdout + compared.stderr
    with open_runtime("ort-cpu", path) as reference, open_runtime("ort-cuda", path, tf32=True) as runtime:
        assert runtime._session.get_provider_options()["CUDAExecutionProvider"]["use_tf32"] == "1"
        report = compare_outputs(reference.run({"input": x}), runtime.run({"input": x}), atol=0.05, rtol=0.05,
                                 min_cosine=0.999)
    assert report.outputs[0].cosine > 0.999
    image = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    result = run_cli("predict", str(path), str(image), "--runtime", "ort-cuda", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["classes"]


def test_tensorrt_libraries_are_found_by_the_provider_s_major_version(tmp_path, monkeypatch):
    """ort-trt needs the TensorRT libraries its provider links (their major version), found on
    LD_LIBRARY_PATH or in pip's tensorrt_libs wheel; the provider's file names them."""
    from edgekit.runtimes.gpu_libraries import find_library_file, tensorrt_needs

    provider = tmp_path / "libonnxruntime_providers_tensorrt.so"
    provider.write_bytes(b"\0ELF...libnvinfer.so.10\0libnvonnxparser.so.10\0libcudart.so.13\0")
    assert tensorrt_needs(provider) == ("libnvinfer.so.10", "libnvonnxparser.so.10")
    assert tensorrt_needs(tmp_path / "missing.so") == ("libnvinfer.so",)
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    wheel = tmp_path / "site" / "tensorrt_libs"
    wheel.mkdir(parents=True)
    (wheel / "libnvinfer.so.10").write_bytes(b"")
    assert find_library_file("libnvinfer.so.10", [str(tmp_path / "site")]) == str(wheel / "libnvinfer.so.10")
    assert find_library_file("libnvinfer.so.11", [str(tmp_path / "site")]) is None   # another major is not it
    monkeypatch.setenv("LD_LIBRARY_PATH", str(wheel))
    assert find_library_file("libnvinfer.so.10", []) == str(wheel / "libnvinfer.so.10")


def test_tf32_is_an_ort_cuda_option():
    from edgekit.runtimes import get_runtime

    assert get_runtime("ort-cuda").make_options(tf32=True).tf32
    with pytest.raises(BadInputError, match="tf32 is for ort-cuda"):
        get_runtime("ort-trt").make_options(tf32=True)



def test_gpu_check_without_a_gpu_says_so_in_one_line_and_writes_nothing(tmp_path):
    """benchmarks/gpu_check.py is the one command for a lent GPU machine; here it exits 0 at once."""
    if gpu_names():
        pytest.skip("a GPU is present: the check would run")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    result = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "summary.md")],
                            capture_output=True, text=True, timeout=120, check=False)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 0 and len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith("gpu_check: no NVIDIA GPU here") and not (tmp_path / "summary.md").exists()
