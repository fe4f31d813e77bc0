"""edgekit bench's p50 against a bare InferenceSession.run loop, side by side in one run.

Targets (issue 2): ratio ≤ 1.02 on resnet18 (224, batch 1) and ≤ 10 µs per call on a tiny
model. Rounds alternate between the two (bare, then edgekit) so machine noise hits both alike;
the ratio is the median of the per-round ratios edgekit / bare (bare = 1.0x).

    python benchmarks/overhead.py [--rounds 5] [--seconds 2] [--threads 2] [--no-results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402


def bare_p50_ms(path: Path, threads: int, seconds: float, warmup: int) -> float:
    """The loop a user would write with ONNX Runtime alone."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    feeds = {spec.name: np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)}
    for _ in range(warmup):
        session.run(None, feeds)
    samples = []
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while True:
        start = time.perf_counter_ns()
        session.run(None, feeds)
        end = time.perf_counter_ns()
        samples.append(end - start)
        if end >= deadline and len(samples) >= 10:
            break
    return float(np.percentile(samples, 50)) / 1e6


def edgekit_p50_ms(path: Path, threads: int, seconds: float, warmup: int) -> float:
    from edgekit.bench import BenchConfig, LoopPlan, benchmark

    config = BenchConfig(plan=LoopPlan(warmup=warmup, min_runs=10, min_duration_s=seconds),
                         runtime_options={"threads": threads})
    return benchmark(path, config).latency.p50_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("overhead", enabled=not args.no_results)

    from edgekit.exporters.torch_onnx import export_zoo_model

    with tempfile.TemporaryDirectory() as folder:
        models = {
            "resnet18 (224)": export_zoo_model("resnet18", Path(folder) / "r18.onnx").path,
            "lenet5 (32, tiny)": export_zoo_model("lenet5", Path(folder) / "lenet5.onnx").path,
        }
        print(f"ratio: median over {args.rounds} rounds of edgekit p50 / bare p50 (bare session.run = 1.0x)")
        print(f"{'model':<20} {'bare p50':>12} {'edgekit p50':>12} {'ratio':>8} {'overhead/call':>14}")
        for name, path in models.items():
            bare, ours = [], []
            for _ in range(args.rounds):
                bare.append(bare_p50_ms(path, args.threads, args.seconds, warmup=20))
                ours.append(edgekit_p50_ms(path, args.threads, args.seconds, warmup=20))
            b, o = statistics.median(bare), statistics.median(ours)
            ratio, ratios = results.ratio(f"{name}: edgekit / bare p50", ours, bare, "bare session.run")
            overhead = statistics.median(x - y for x, y in zip(ours, bare))
            print(f"{name:<20} {b:>10.4f}ms {o:>10.4f}ms {ratio:>8.3f} {1000 * overhead:>11.2f} µs"
                  f"   (per-round ratios {rounds_text(ratios)})")
    results.write()


if __name__ == "__main__":
    main()
