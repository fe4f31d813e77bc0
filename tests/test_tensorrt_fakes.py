"""The ``trt`` runtime against fakes of TensorRT and libcudart (tests/fake_tensorrt.py) that enforce
TensorRT's and CUDA's rules: data-dependent outputs, one context per concurrent inference and the
device set in every thread, stream order, pinned copies, memory freed without close, TF32 and
INT8 flags. Each test names the finding it covers; the real GPU runs are in test_gpu_runtimes.py."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor

import fake_tensorrt
import numpy as np
import pytest
from fake_tensorrt import GARBAGE, RuleBroken, engine_bytes
from fake_tensorrt import double_model as _model

from edgekit.errors import EdgekitError
from edgekit.runtimes import open_runtime

fake_gpu = fake_tensorrt.fake_gpu  # the fixture
PROFILE = {"x": [[1, 4], [2, 4], [8, 4]]}


def _engine(folder, dynamic: bool = False):
    path = folder / ("dynamic.engine" if dynamic else "double.engine")
    path.write_bytes(engine_bytes(_model(folder, dynamic), PROFILE))
    return path


def _x(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 4)).astype(np.float32)


# ---- the fakes themselves ------------------------------------------------------------------------
def test_the_fakes_punish_what_tensorrt_and_cuda_punish(fake_gpu, tmp_path):
    fake, trt = fake_gpu()
    from edgekit.runtimes import cuda

    engine = trt.Runtime(trt.ILogger()).deserialize_cuda_engine(_engine(tmp_path, dynamic=True).read_bytes())
    context, stream = engine.create_execution_context(), cuda.Stream()
    assert context.set_input_shape("x", (2, 4)) and not context.set_input_shape("x", (9, 4))
    assert context.get_tensor_shape("y") == (2, 4) and context.get_tensor_shape("positive") == (-1,)
    x, y = cuda.DeviceBuffer(32), cuda.DeviceBuffer(32)
    context.set_tensor_address("x", x.ptr)
    context.set_tensor_address("y", y.ptr)
    assert not context.execute_async_v3(stream.handle)  # a data-dependent output without an allocator
    with pytest.raises(TypeError, match="IOutputAllocator.__init__"):
        context.set_output_allocator("positive", type("A", (trt.IOutputAllocator,), {"__init__": lambda s: None})())
    host = np.empty((2, 4), np.float32)
    y.copy_to(host, stream)  # queued only
    with pytest.raises(RuleBroken, match="two streams"):
        y.copy_to(host, cuda.Stream())
    stream.synchronize()
    assert (host.view(np.uint8) == GARBAGE).all()  # nothing ever wrote y: the device's garbage
    context.inside = 12345  # another thread is inside execute_async_v3
    with pytest.raises(RuleBroken, match="two threads use one execution context"):
        context.set_input_shape("x", (1, 4))
    context.inside = None
    cuda.ensure_device(1)
    with pytest.raises(RuleBroken, match="context of cuda:0 used while this thread's current device is cuda:1"):
        context.execute_async_v3(stream.handle)
    config = trt.Builder(None).create_builder_config()
    assert config.get_flag(trt.BuilderFlag.TF32)  # TensorRT's default
    fake.broken.clear()


# ---- finding 1: data-dependent output dims ---------------------------------------------------------
def test_data_dependent_outputs_get_memory_and_shape_from_an_output_allocator(fake_gpu, tmp_path):
    """Shapes of -1 (a detector's boxes) used to size numpy arrays before the run: ValueError."""
    fake, _ = fake_gpu()
    path = _engine(tmp_path, dynamic=True)
    with open_runtime("trt", path) as runtime:
        assert runtime.outputs["positive"].shape == (None,)
        for batch, seed in ((1, 0), (3, 1), (2, 2), (3, 3)):
            x = _x(batch, seed)
            out = runtime.run({"x": x})
            assert fake.idle()  # every queued copy was waited for before the arrays were returned
            np.testing.assert_array_equal(out["y"], 2 * x)
            np.testing.assert_array_equal(out["positive"], x.ravel()[x.ravel() > 0])
        call = runtime.prepare({"x": _x(3)})
        call()
        assert set(runtime.timing_breakdown({"x": _x(3)})) == {"h2d_ms", "d2h_ms"}


# ---- finding 2: one context per concurrent inference, the device set in each thread -------------------
@pytest.mark.parametrize("scenario", ["multi-stream", "offline"])
@pytest.mark.parametrize("device", [0, 1])
def test_concurrent_requests_each_get_a_context_on_the_runtime_s_device(fake_gpu, tmp_path, scenario, device):
    """The scenarios' worker threads used to share the runtime's one context (execute_async_v3 releases
    the GIL) and never set the device, so cuda:1 ran on cuda:0."""
    from edgekit.bench.latency import LoopPlan
    from edgekit.bench.scenarios import run_scenario

    fake, _ = fake_gpu()
    with open_runtime("trt", _engine(tmp_path), device=f"cuda:{device}") as runtime:
        result = run_scenario(runtime, {"x": _x(2)}, scenario, LoopPlan(2, 6, 0.05), rounds=1, requests=3)
        assert result.requests == 3
        engine = runtime._slot.engine
        used = [context for context in engine.contexts if context.runs]
        assert len(engine.contexts) == 4 and len(used) == 3 and all(c.device == device for c in engine.contexts)
        with ThreadPoolExecutor(4) as pool:  # run() from several threads (a Predictor's): serialized, on the device
            outs = list(pool.map(lambda seed: runtime.run({"x": _x(2, seed)})["y"], range(8)))
        assert all(np.array_equal(out, 2 * _x(2, seed)) for seed, out in enumerate(outs))
    assert fake.broken == []


# ---- finding 3: TF32 -------------------------------------------------------------------------------
def test_fp32_engines_are_built_without_tf32_unless_asked(fake_gpu, tmp_path):
    _, trt = fake_gpu("10.3.0.26")
    model = _model(tmp_path)
    with open_runtime("trt", model) as runtime:
        np.testing.assert_array_equal(runtime.run({"x": _x(2)})["y"], 2 * _x(2))
        key = runtime.cache_key("10.3.0.26", "Fake GPU 0")
    with open_runtime("trt", model, tf32=True) as runtime:
        assert runtime.cache_key("10.3.0.26", "Fake GPU 0") != key  # not the FP32 engine from the cache
    assert trt.calls["built_flags"] == [[], ["TF32"]]


# ---- finding 4: pinned host memory -------------------------------------------------------------------
def test_prepared_calls_and_copy_timings_use_pinned_host_memory(fake_gpu, tmp_path):
    fake, _ = fake_gpu()
    with open_runtime("trt", _engine(tmp_path)) as runtime:
        runtime.prepare({"x": _x(4)})()
        runtime.timing_breakdown({"x": _x(4)})
        runtime.run({"x": _x(1)})
    kinds = {(direction, host) for direction, host, _ in fake.copies}
    assert kinds == {("h2d", "pinned"), ("d2h", "pinned")}


# ---- finding 5: memory freed without close -----------------------------------------------------------
def test_a_runtime_never_closed_frees_its_gpu_memory_and_streams(fake_gpu, tmp_path):
    fake, _ = fake_gpu()
    runtime = open_runtime("trt", _engine(tmp_path))
    runtime.run({"x": _x(2)})
    del runtime
    gc.collect()
    assert fake.live() == {"device": 0, "pinned": 0, "streams": 0}
    runtime = open_runtime("trt", _engine(tmp_path))
    calls = [runtime.prepare({"x": _x(2)}) for _ in range(2)]
    for call in calls:
        call()
    del call
    assert fake.live()["streams"] == 3
    del calls[0]
    gc.collect()
    assert fake.live()["streams"] == 2  # a dropped prepared call frees its slot
    del runtime, calls
    gc.collect()
    assert fake.live() == {"device": 0, "pinned": 0, "streams": 0}


def test_close_frees_every_slot_and_a_stale_call_is_one_line(fake_gpu, tmp_path):
    fake, _ = fake_gpu()
    runtime = open_runtime("trt", _engine(tmp_path))
    call = runtime.prepare({"x": _x(2)})
    runtime.close()
    assert fake.live() == {"device": 0, "pinned": 0, "streams": 0}
    with pytest.raises(EdgekitError, match="prepared on is closed"):
        call()


# ---- stream order ------------------------------------------------------------------------------------
def test_outputs_are_read_only_after_the_stream_is_synchronized(fake_gpu, tmp_path):
    """The fake runs stream work only at synchronize; device memory starts as garbage. Outputs that
    were read early would be garbage, and work left queued would show."""
    fake, _ = fake_gpu()
    with open_runtime("trt", _engine(tmp_path)) as runtime:
        for batch in (1, 5, 2):
            x = _x(batch, batch)
            np.testing.assert_array_equal(runtime.run({"x": x})["y"], 2 * x)
            assert fake.idle()
        first = runtime.run({"x": _x(1)})["y"]
        runtime.run({"x": _x(1, 7)})
        np.testing.assert_array_equal(first, 2 * _x(1))  # a later call never overwrites the caller's arrays


# ---- the contract every runtime keeps (tests/test_runtime_contract.py), trt included ------------------
def test_trt_keeps_the_runtime_contract(fake_gpu, zoo_onnx, tmp_path):
    """lenet5 built from its ONNX by edgekit's builder (the fake engine runs it on ONNX Runtime)."""
    import test_runtime_contract as contract

    fake_gpu()
    contract.test_probe_never_raises_and_explains_itself("trt")
    contract.test_runs_a_model_like_the_reference("trt", zoo_onnx)
    contract.test_bad_feeds_are_rejected_with_the_expected_specs("trt", zoo_onnx)
    contract.test_errors_before_open("trt", tmp_path)
