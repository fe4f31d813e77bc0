"""Latency benchmarking (robot tier: numpy and one runtime)."""

from edgekit.bench.latency import LatencyStats, LoopPlan
from edgekit.bench.records import BenchRecord, ColdStart
from edgekit.bench.runner import BenchConfig, benchmark

__all__ = ["BenchConfig", "BenchRecord", "ColdStart", "LatencyStats", "LoopPlan", "benchmark"]
