"""Scenarios over real runtimes: request pools (OpenVINO's AsyncInferQueue, a thread pool for ORT)
run the requests they say, and each scenario reports its figures per round."""

import numpy as np
import pytest

from edgekit.bench.latency import LoopPlan
from edgekit.bench.scenarios import request_pool, run_scenario
from edgekit.errors import BadInputError
from edgekit.runtimes import get_runtime

PLAN = LoopPlan(warmup=2, min_runs=5, min_duration_s=0.05)


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    return zoo_onnx("lenet5").path


def _feeds(runtime):
    spec = next(iter(runtime.inputs.values()))
    return {spec.name: np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)}


@pytest.mark.parametrize("name", ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_request_pool_runs_every_request(name, lenet):
    with get_runtime(name)(lenet, threads=1) as runtime:
        pool = request_pool(runtime, _feeds(runtime), 3)
        try:
            assert pool.requests == 3
            pool.query()
            count, seconds = pool.run_for(0.05, minimum=7)
            assert count >= 7 and seconds >= 0.05
        finally:
            pool.close()
        with pytest.raises(BadInputError):
            request_pool(runtime, _feeds(runtime), 0)
        with pytest.raises(BadInputError):
            request_pool(runtime, {"wrong": np.zeros((1, 1, 32, 32), np.float32)}, 2)


@pytest.mark.parametrize("name", ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_each_scenario_reports_its_figures(name, lenet):
    options = {"threads": 1, **({"hint": "throughput"} if name == "openvino" else {})}
    with get_runtime(name)(lenet, **options) as runtime:
        feeds = _feeds(runtime)
        single = run_scenario(runtime, feeds, "single-stream", PLAN, rounds=3)
        multi = run_scenario(runtime, feeds, "multi-stream", PLAN, rounds=2, requests=2)
        offline = run_scenario(runtime, feeds, "offline", PLAN, rounds=2, requests=2)
    assert len(single.round_ms) == 3 and single.latency.count >= 15 and single.items_per_query == 1
    assert list(single.percentiles_ms) == sorted(single.percentiles_ms) and len(single.percentiles_ms) == 19
    assert multi.items_per_query == 2 and multi.requests == 2 and len(multi.round_ms) == 2
    assert offline.latency is None and offline.requests == 2 and offline.throughput_items_s > 0
    assert offline.throughput_items_s == pytest.approx(1000.0 / np.median(offline.round_ms))
    with pytest.raises(BadInputError):
        run_scenario(runtime, feeds, "server", PLAN, rounds=1)
