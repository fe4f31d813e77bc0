"""MLPerf-style scenarios over one open runtime (robot tier: numpy + the runtime).

- single-stream: one query of ``batch`` samples at a time; figure: p90 latency. The loop is
  ``edgekit bench``'s own (``LoopPlan``: minimum query count and minimum duration).
- multi-stream: each query is ``streams`` requests started together; its latency ends when the
  last one finishes (MLPerf's multi-stream: several camera frames per query); figure: p90.
- offline: all requests kept busy for the duration; figure: throughput (items/s). OpenVINO runs
  its THROUGHPUT hint with streams and an AsyncInferQueue; other runtimes run ``requests``
  concurrent calls from a thread pool (ONNX Runtime releases the GIL in ``run``).
Each scenario repeats its timed loop for ``rounds`` rounds and keeps one figure per round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bench.latency import LatencyStats, LoopPlan, time_calls
from edgekit.errors import BadInputError

SCENARIOS = ("single-stream", "multi-stream", "offline")
PERCENTILES = tuple(range(5, 100, 5))
P50_BASIS = "items per query / p50"
OFFLINE_BASIS = "items / wall time, median of rounds"


@dataclass(frozen=True)
class ScenarioResult:
    """Timing of one scenario: ``latency`` is per query; ``round_ms`` one figure per round (p50
    latency, or ms per item for offline); throughput in items (samples) per second, on the basis
    ``throughput_basis`` names (the p50 for latency scenarios, so FPS and p50 rank runtimes alike)."""

    scenario: str
    latency: LatencyStats | None
    percentiles_ms: tuple[float, ...]
    round_ms: tuple[float, ...]
    throughput_items_s: float
    requests: int
    items_per_query: int
    throughput_basis: str = P50_BASIS



def default_requests(runtime: Any) -> int:
    """Parallel requests for offline/multi-stream: OpenVINO's optimal number, else one per core (2 to 4)."""
    compiled = getattr(runtime, "_compiled", None)
    if compiled is not None:
        try:
            return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception:  # a device that does not say: fall through
            pass
    from edgekit.system import cpu_count

    return max(2, min(4, cpu_count()))


def run_scenario(runtime: Any, feeds: dict[str, np.ndarray], scenario: str, plan: LoopPlan, rounds: int,
                 requests: int | None = None) -> ScenarioResult:
    """Time ``scenario`` on an open runtime with prepared ``feeds`` (one query's samples)."""
    if scenario not in SCENARIOS:
        raise BadInputError(f"unknown scenario '{scenario}' (expected {', '.join(SCENARIOS)})")
    if rounds < 1:
        raise BadInputError(f"rounds must be at least 1, got {rounds}")
    batch = int(next(iter(feeds.values())).shape[0]) if feeds else 1
    if scenario == "single-stream":
        return _latency_rounds(scenario, runtime.prepare(feeds), plan, rounds, 1, batch)
    pool = request_pool(runtime, feeds, requests or default_requests(runtime))
    try:
        if scenario == "multi-stream":
            return _latency_rounds(scenario, pool.query, plan, rounds, pool.requests, batch * pool.requests)
        return _offline(pool, plan, rounds, batch)
    finally:
        pool.close()


def _latency_rounds(scenario: str, call: Callable[[], object], plan: LoopPlan, rounds: int, requests: int,
                    items: int) -> ScenarioResult:
    chunks = []
    for index in range(rounds):
        round_plan = plan if index == 0 else LoopPlan(0, plan.min_runs, plan.min_duration_s, plan.max_runs)
        chunks.append(time_calls(call, round_plan))
    samples = np.concatenate(chunks)
    stats = LatencyStats.from_ns(samples)
    round_ms = tuple(float(np.median(chunk)) / 1e6 for chunk in chunks)
    return ScenarioResult(scenario, stats, _percentiles(samples), round_ms,
                          items * 1000.0 / stats.p50_ms if stats.p50_ms > 0 else 0.0, requests, items)


def _offline(pool: RequestPool, plan: LoopPlan, rounds: int, batch: int) -> ScenarioResult:
    duration = max(plan.min_duration_s, 0.2)
    pool.run_for(min(1.0, duration / 2), minimum=plan.warmup)        # warm-up: every request once or more
    per_item_ms = []
    for _ in range(rounds):
        count, seconds = pool.run_for(duration, minimum=max(plan.min_runs, pool.requests))
        per_item_ms.append(seconds * 1000.0 / (count * batch))
    throughput = 1000.0 / float(np.median(per_item_ms))
    return ScenarioResult("offline", None, (), tuple(per_item_ms), throughput, pool.requests, batch, OFFLINE_BASIS)


def _percentiles(samples_ns: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) / 1e6 for v in np.percentile(samples_ns, PERCENTILES))


class RequestPool:
    """``requests`` concurrent inferences on one runtime: ``query()`` starts one on each and waits
    for all; ``run_for(s)`` keeps them all busy for ``s`` seconds and returns (completed, seconds)."""

    requests: int

    def query(self) -> None: ...

    def run_for(self, seconds: float, minimum: int = 0) -> tuple[int, float]: ...

    def close(self) -> None: ...


def request_pool(runtime: Any, feeds: dict[str, np.ndarray], requests: int) -> RequestPool:
    """OpenVINO's AsyncInferQueue when the runtime offers one, else a thread pool of prepared calls."""
    if requests < 1:
        raise BadInputError(f"requests must be at least 1, got {requests}")
    runtime.check_feeds(feeds)
    make_queue = getattr(runtime, "throughput_runner", None)
    if make_queue is not None:
        return _QueuePool(make_queue(feeds, requests))
    return _ThreadPool([runtime.prepare(feeds) for _ in range(requests)])


class _QueuePool(RequestPool):
    """An OpenVINO AsyncInferQueue whose requests already hold their input tensors."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.requests = len(queue)

    def query(self) -> None:
        for _ in range(self.requests):
            self.queue.start_async()
        self.queue.wait_all()

    def run_for(self, seconds: float, minimum: int = 0) -> tuple[int, float]:
        clock = time.perf_counter_ns
        start = clock()
        deadline = start + int(seconds * 1e9)
        count = 0
        while count < minimum or clock() < deadline:
            self.queue.start_async()   # blocks until a request is idle, as benchmark_app's loop does
            count += 1
        self.queue.wait_all()
        return count, (clock() - start) / 1e9

    def close(self) -> None:
        self.queue.wait_all()


class _ThreadPool(RequestPool):
    """One worker thread per prepared call (a call per request, so bound buffers are not shared)."""

    def __init__(self, calls: list[Callable[[], object]]) -> None:
        self.calls = calls
        self.requests = len(calls)
        self.executor = ThreadPoolExecutor(max_workers=self.requests, thread_name_prefix="edgekit-request")

    def query(self) -> None:
        for future in [self.executor.submit(call) for call in self.calls]:
            future.result()

    def run_for(self, seconds: float, minimum: int = 0) -> tuple[int, float]:
        clock = time.perf_counter_ns
        start = clock()
        deadline = start + int(seconds * 1e9)
        each = -(-minimum // self.requests)

        def worker(call: Callable[[], object]) -> int:
            done = 0
            while done < each or clock() < deadline:
                call()
                done += 1
            return done

        futures = [self.executor.submit(worker, call) for call in self.calls]
        count = sum(future.result() for future in futures)
        return count, (clock() - start) / 1e9

    def close(self) -> None:
        self.executor.shutdown(wait=True)
