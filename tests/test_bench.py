import json

import numpy as np
import pytest

from edgekit.bench import BenchConfig, LatencyStats, LoopPlan, benchmark
from edgekit.bench.latency import time_calls
from edgekit.errors import BadInputError


def test_latency_stats_from_known_samples():
    stats = LatencyStats.from_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert (stats.count, stats.min_ms, stats.max_ms, stats.mean_ms) == (4, 1.0, 4.0, 2.5)
    assert stats.p50_ms == pytest.approx(2.5)
    assert stats.std_ms == pytest.approx(np.std([1, 2, 3, 4]))


def test_loop_plan_semantics():
    calls = []
    samples = time_calls(lambda: calls.append(1), LoopPlan.from_options(warmup=3, runs=7, duration=None))
    assert len(samples) == 7 and len(calls) == 10
    samples = time_calls(lambda: None, LoopPlan.from_options(warmup=0, runs=None, duration=0.05))
    assert len(samples) > 10
    with pytest.raises(BadInputError):
        LoopPlan.from_options(warmup=-1, runs=None, duration=None)
    with pytest.raises(BadInputError):
        LoopPlan.from_options(warmup=0, runs=0, duration=None)


def test_benchmark_record(zoo_onnx):
    path = zoo_onnx("lenet5").path
    record = benchmark(path, BenchConfig(plan=LoopPlan(warmup=2, min_runs=20, min_duration_s=0.0, max_runs=20),
                                         runtime_options={"threads": 1}))
    assert record.model == "lenet5" and record.runtime == "ort-cpu" and record.precision == "fp32"
    lat = record.latency
    assert lat.count == 20
    assert 0 < lat.min_ms <= lat.p50_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
    assert record.throughput_items_s == pytest.approx(1000 / lat.p50_ms)   # one basis with the p50
    assert record.cold_start.load_ms > 0 and record.cold_start.first_inference_ms > 0
    assert record.peak_rss_mb > 0 and record.model_size_mb == pytest.approx(path.stat().st_size / 2**20)
    assert record.inputs == {"input": [1, 1, 32, 32]}
    assert record.runtime_options["threads"] == 1
    data = json.loads(record.to_json())
    assert data["latency"]["p50_ms"] == lat.p50_ms and data["environment"]["cpu"]


def test_batch_must_fit_a_fixed_batch_model(zoo_onnx):
    with pytest.raises(BadInputError, match="fixed batch of 1"):
        benchmark(zoo_onnx("lenet5").path, BenchConfig(batch=4, plan=LoopPlan(0, 1, 0.0, 1)))


def test_dynamic_batch_model_benchmarks_at_any_batch(zoo_onnx):
    record = benchmark(zoo_onnx("lenet5", dynamic_batch=True).path, BenchConfig(batch=8, plan=LoopPlan(1, 5, 0.0, 5)))
    assert record.inputs == {"input": [8, 1, 32, 32]}
    assert record.throughput_items_s == pytest.approx(8000 / record.latency.p50_ms)


def test_unknown_runtime_option_is_rejected(zoo_onnx):
    with pytest.raises(BadInputError, match="has no option warp_speed"):
        benchmark(zoo_onnx("lenet5").path, BenchConfig(runtime_options={"warp_speed": 9}))
