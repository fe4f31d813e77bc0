"""One Predictor (and one runtime) called from several threads at once gives every thread its
own image's result, identical to single-threaded calls — on real ONNX Runtime and OpenVINO."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgekit import Predictor
from edgekit.runtimes import open_runtime

THREADS, CALLS = 4, 50
RUNTIMES = ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)]


def _images(count):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predictor_from_four_threads_matches_single_thread(zoo_onnx, runtime):
    images = _images(THREADS * CALLS)
    with Predictor(zoo_onnx("lenet5").path, runtime, threads=1) as predict:
        expected = [predict(image).probabilities for image in images]
        assert len(set(expected)) > THREADS * CALLS // 2  # different images give different outputs

        def work(thread):
            got = []
            for index in range(thread, len(images), THREADS):
                got.append((index, predict(images[index]).probabilities))
                assert predict.last_timing.images == 1
            return got

        with ThreadPoolExecutor(THREADS) as pool:
            results = [item for chunk in pool.map(work, range(THREADS)) for item in chunk]
    assert len(results) == THREADS * CALLS
    mismatched = [index for index, probabilities in results if probabilities != expected[index]]
    assert not mismatched, f"{len(mismatched)} calls got another image's output"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtime_run_from_threads_keeps_outputs_apart(zoo_onnx, runtime):
    rng = np.random.default_rng(8)
    feeds = [rng.standard_normal((1, 1, 32, 32), dtype=np.float32) for _ in range(40)]
    with open_runtime(runtime, zoo_onnx("lenet5").path, threads=1) as rt:
        expected = [rt.run({"input": x})["output"] for x in feeds]
        kept = rt.run({"input": feeds[0]})["output"]
        rt.run({"input": feeds[1]})
        assert np.array_equal(kept, expected[0])  # a later call does not overwrite returned outputs
        with ThreadPoolExecutor(THREADS) as pool:
            got = list(pool.map(lambda x: rt.run({"input": x})["output"], feeds * 5))
    for index, output in enumerate(got):
        np.testing.assert_array_equal(output, expected[index % len(feeds)])


@pytest.mark.openvino
@pytest.mark.parametrize("call", ["sync", "async", "auto"])
def test_openvino_call_modes_agree(zoo_onnx, call):
    x = np.random.default_rng(9).standard_normal((1, 1, 32, 32), dtype=np.float32)
    with open_runtime("ort-cpu", zoo_onnx("lenet5").path) as reference:
        expected = reference.run({"input": x})["output"]
    with open_runtime("openvino", zoo_onnx("lenet5").path, call=call) as rt:
        for _ in range(20):  # auto times both ways on its first calls, then keeps one
            np.testing.assert_allclose(rt.run({"input": x})["output"], expected, rtol=1e-4, atol=1e-5)
        assert rt.describe()["call"] in (("sync", "async") if call == "auto" else (call,))


def test_a_runtime_that_cannot_run_concurrently_is_serialized(zoo_onnx):
    import threading
    import time

    from edgekit.runtimes.onnxruntime import OrtCpuRuntime

    class OneContext(OrtCpuRuntime):  # as TensorRT: one execution context, fixed buffers
        concurrent_runs = False
        active = peak = 0
        guard = threading.Lock()

        def _run(self, feeds):
            with self.guard:
                type(self).active += 1
                type(self).peak = max(type(self).peak, type(self).active)
            time.sleep(0.002)  # widen the window in which a second call could enter
            try:
                return super()._run(feeds)
            finally:
                with self.guard:
                    type(self).active -= 1

    x = np.zeros((1, 1, 32, 32), np.float32)
    with OneContext(zoo_onnx("lenet5").path) as rt, ThreadPoolExecutor(THREADS) as pool:
        outputs = list(pool.map(lambda _: rt.run({"input": x})["output"], range(40)))
    assert OneContext.peak == 1 and len(outputs) == 40
