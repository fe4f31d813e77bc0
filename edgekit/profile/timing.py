"""What every profiler hands back, and how runs are timed.

Each timed run pairs one call of the plain (unprofiled) runtime, as ``bench`` times it, with one
profiled call beside it (the order alternates): the overhead is the median of those per-run ratios, and profiled
runs are never part of a ``bench`` figure. A profiled run during which the calling thread was
preempted (other work took the core) is left out of the medians while enough others remain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import BadInputError
from edgekit.profile.records import RunSamples

MAX_RUNS = 10_000


@dataclass(frozen=True)
class ProfilePlan:
    """Untimed warm-up calls (each side), then ``runs`` timed pairs."""

    warmup: int = 5
    runs: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.warmup <= MAX_RUNS:
            raise BadInputError(f"--warmup must be from 0 to {MAX_RUNS}, got {self.warmup}")
        if not 1 <= self.runs <= MAX_RUNS:
            raise BadInputError(f"--runs must be from 1 to {MAX_RUNS}, got {self.runs}")


@dataclass(frozen=True)
class Collected:
    """A profiler's raw result: the runs, what their totals are, and what ran them."""

    runs: list[RunSamples]
    total_source: str
    version: str
    device: str
    original_names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # layer → the runtime's own
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    slow_kernels: tuple[str, ...] = ()
    asked: str = ""  # the precision the runtime was asked for, when it is the runtime's setting


def timed_ms(call: Callable[[], object]) -> float:
    """Milliseconds one call takes (perf_counter_ns)."""
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def timed_run(call: Callable[[], object]) -> tuple[float, bool]:
    """(ms, whether the calling thread was switched out meanwhile): then the run's time may hold a stall of
    the scheduler's (other work on the machine), not the model's."""
    before = preemptions()
    ms = timed_ms(call)
    return ms, preemptions() > before


def paired(plain: Callable[[], object], profiled: Callable[[], object], index: int) -> tuple[float, float, bool]:
    """(plain ms, profiled ms, either preempted): one call of each, in an order that alternates with
    ``index`` so neither side always runs second (on caches the other warmed)."""
    if index % 2:
        wall, stalled = timed_run(profiled)
        plain_ms, plain_stalled = timed_run(plain)
    else:
        plain_ms, plain_stalled = timed_run(plain)
        wall, stalled = timed_run(profiled)
    return plain_ms, wall, stalled or plain_stalled


def preemptions() -> int:
    """Context switches of the calling thread so far: involuntary (other work took its core) and voluntary
    (it waited, e.g. for a worker thread that other work kept off a core); 0 where the OS does not count."""
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_nivcsw + usage.ru_nvcsw
    except (ImportError, AttributeError, OSError):  # not Linux
        return 0
