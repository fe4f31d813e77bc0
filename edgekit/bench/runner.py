"""Benchmark a model file on one runtime: cold start, timed loop, memory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.bench.environment import Environment
from edgekit.bench.inputs import random_feeds
from edgekit.bench.latency import LatencyStats, LoopPlan, time_calls
from edgekit.bench.records import BenchRecord, ColdStart
from edgekit.errors import BadInputError
from edgekit.fileio import model_size_mb
from edgekit.meta import read_meta
from edgekit.runtimes import get_runtime
from edgekit.system import current_rss_mb, peak_rss_mb


@dataclass(frozen=True)
class BenchConfig:
    """What to measure; ``runtime_options`` go to the runtime (threads, device, ...)."""

    runtime: str = "ort-cpu"
    batch: int = 1
    plan: LoopPlan = LoopPlan()
    seed: int = 0
    runtime_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise BadInputError(f"batch must be at least 1, got {self.batch}")


def benchmark(model: str | Path, config: BenchConfig = BenchConfig(), name: str | None = None,
              feeds: dict[str, Any] | None = None) -> BenchRecord:
    """Measure ``model`` on ``config.runtime``; timing wraps only the prepared inference call.

    ``feeds``: the inputs to time (e.g. from the user's data loader) instead of seeded random ones.
    """
    given_feeds = feeds
    path = Path(model)
    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    meta = read_meta(path)
    runtime_class = get_runtime(config.runtime)
    runtime = runtime_class(path, **config.runtime_options)
    availability = runtime_class.ensure_available()  # imports the backend outside the cold-start clock
    rss_before = current_rss_mb()
    start = time.perf_counter_ns()
    runtime.open()
    try:
        loaded = time.perf_counter_ns()
        feeds = given_feeds if given_feeds is not None else random_feeds(runtime.inputs, config.batch, meta,
                                                                         config.seed)
        call = runtime.prepare(feeds)
        first_start = time.perf_counter_ns()
        call()
        first_end = time.perf_counter_ns()
        samples = time_calls(call, config.plan)
        breakdown = runtime.timing_breakdown(feeds)
        rss_after = current_rss_mb()
        latency = LatencyStats.from_ns(samples)
        description = runtime.describe()
    finally:
        runtime.close()
    return BenchRecord(
        model=name or meta.model_name or path.stem,
        model_path=str(path),
        model_size_mb=model_size_mb(path),
        runtime=runtime_class.name,
        runtime_version=availability.version,
        device=description.get("device_name") or (availability.devices[0] if availability.devices else ""),
        precision=meta.precision,
        batch=config.batch,
        inputs={k: list(v.shape) for k, v in feeds.items()},
        runtime_options=description,
        latency=latency,
        throughput_items_s=config.batch * 1000.0 / latency.p50_ms if latency.p50_ms > 0 else 0.0,
        cold_start=ColdStart((loaded - start) / 1e6, (first_end - first_start) / 1e6),
        peak_rss_mb=peak_rss_mb(),
        rss_increase_mb=max(0.0, rss_after - rss_before),
        environment=Environment.capture(),
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        breakdown_ms=breakdown,
    )
