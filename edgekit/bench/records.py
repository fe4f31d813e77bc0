"""The benchmark record: one model × runtime × precision × batch measurement."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from edgekit.bench.environment import Environment
from edgekit.bench.latency import LatencyStats


@dataclass(frozen=True)
class ColdStart:
    """Time to load the model and to run the first inference, in ms."""

    load_ms: float
    first_inference_ms: float

    @property
    def total_ms(self) -> float:
        return self.load_ms + self.first_inference_ms


@dataclass(frozen=True)
class BenchRecord:
    """Everything one ``edgekit bench`` measured; the CLI table, JSON and reports read this."""

    model: str
    model_path: str
    model_size_mb: float
    runtime: str
    runtime_version: str
    device: str
    precision: str
    batch: int
    inputs: dict[str, list[int]]
    runtime_options: dict[str, Any]
    latency: LatencyStats
    throughput_items_s: float
    cold_start: ColdStart
    peak_rss_mb: float
    rss_increase_mb: float
    environment: Environment
    timestamp: str
    breakdown_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cold_start"]["total_ms"] = self.cold_start.total_ms
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
