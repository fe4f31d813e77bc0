"""Latency measurement: a timed loop around one synchronous call, and its statistics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds over ``count`` timed calls."""

    count: int
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_ns(cls, samples_ns: list[int] | np.ndarray) -> LatencyStats:
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        if ms.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            count=int(ms.size), min_ms=float(ms.min()), mean_ms=float(ms.mean()), std_ms=float(ms.std()),
            p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), max_ms=float(ms.max()),
        )


@dataclass(frozen=True)
class LoopPlan:
    """How long to measure: until at least ``min_runs`` calls AND ``min_duration_s`` have passed.

    ``max_runs`` caps the count (a given ``--runs`` alone means exactly that many).
    """

    warmup: int = 10
    min_runs: int = 10
    min_duration_s: float = 2.0
    max_runs: int | None = None

    @classmethod
    def from_options(cls, warmup: int, runs: int | None, duration: float | None) -> LoopPlan:
        """The plan for --warmup/--runs/--duration, checked by the flags' limits (NaN, inf, 10¹² runs
        refused) whichever door they come through."""
        from edgekit.limits import check_number

        check_number("warmup", warmup, "warmup")
        check_number("runs", runs, "runs")
        check_number("duration", duration, "duration")
        if runs is not None and duration is None:
            return cls(warmup, runs, 0.0, runs)
        if runs is None and duration is not None:
            return cls(warmup, 1, duration)
        if runs is not None and duration is not None:
            return cls(warmup, runs, duration)
        return cls(warmup)


def time_calls(call: Callable[[], object], plan: LoopPlan) -> np.ndarray:
    """Warm up, then time ``call`` with perf_counter_ns; returns per-call nanoseconds."""
    for _ in range(plan.warmup):
        call()
    clock = time.perf_counter_ns
    capacity = plan.max_runs or max(plan.min_runs, 1024)
    samples = np.empty(capacity, dtype=np.int64)
    deadline = clock() + int(plan.min_duration_s * 1e9)
    count = 0
    while True:
        start = clock()
        call()
        end = clock()
        if count == capacity:
            samples = np.concatenate([samples, np.empty(capacity, dtype=np.int64)])
            capacity *= 2
        samples[count] = end - start
        count += 1
        if plan.max_runs is not None and count >= plan.max_runs:
            break
        if count >= plan.min_runs and end >= deadline:
            break
    return samples[:count]
