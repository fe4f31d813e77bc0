"""edgekit's `openvino` p50 latency beside OpenVINO's own benchmark_app, same settings.

Both use: CPU, latency hint, 1 stream, the same inference threads, f32 precision, batch 1,
one pre-created infer request started and waited for (benchmark_app's default async API
with -nireq 1; edgekit's prepared call is start_async + wait). Prints each p50 and edgekit / benchmark_app
(target: within 5 %). Runs are interleaved over --rounds (edgekit, then benchmark_app) to share the
machine's noise; the ratio is the median of the rounds' edgekit / benchmark_app (benchmark_app = 1.0x).

    python benchmarks/openvino_vs_benchmark_app.py --models resnet18,mobilenet_v3_small --threads 2 --duration 3
        [--rounds 2] [--no-results]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgekit.bench import BenchConfig, LoopPlan, benchmark  # noqa: E402
from edgekit.sources import resolve_model  # noqa: E402
from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402


def benchmark_app_p50(path: Path, threads: int, duration: float) -> float:
    """Median latency (ms) that benchmark_app reports.

    Its command line refuses -nstreams/-nthreads together with a hint, so streams and
    threads go in through -load_config (the same CPU properties edgekit sets).
    """
    executable = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    properties = {"CPU": {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads),
                          "INFERENCE_PRECISION_HINT": "f32"}}
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.json"
        config.write_text(json.dumps(properties))
        command = [executable, "-m", str(path), "-d", "CPU", "-hint", "latency", "-api", "async", "-nireq", "1",
                   "-b", "1", "-load_config", str(config), "-t", str(max(1, round(duration)))]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if "INFERENCE_NUM_THREADS: " + str(threads) not in result.stdout:
        raise SystemExit(f"benchmark_app did not apply INFERENCE_NUM_THREADS={threads}:\n{result.stdout[-1500:]}")
    match = re.search(r"Median:\s+([\d.]+)\s*ms", result.stdout)
    if result.returncode != 0 or not match:
        raise SystemExit(f"benchmark_app failed ({result.returncode}): {result.stdout[-500:]}{result.stderr[-500:]}")
    return float(match.group(1))


def edgekit_p50(path: Path, threads: int, duration: float) -> float:
    options = {"threads": threads, "hint": "latency", "streams": 1, "precision": "f32"}
    config = BenchConfig(runtime="openvino", plan=LoopPlan(warmup=10, min_runs=10, min_duration_s=duration),
                         runtime_options=options)
    return benchmark(path, config).latency.p50_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v3_small")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the paired ratios' median")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("openvino_vs_benchmark_app", enabled=not args.no_results)
    print(f"ratio: median over {args.rounds} rounds of edgekit p50 / benchmark_app p50 (benchmark_app = 1.0x)")
    print(f"{'model':<22}{'edgekit p50':>14}{'benchmark_app p50':>20}{'ratio':>9}  per-round ratios")
    worst = 0.0
    for name in args.models.split(","):
        path = resolve_model(name, input_size=(args.input_size, args.input_size))
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(edgekit_p50(path, args.threads, args.duration))
            theirs.append(benchmark_app_p50(path, args.threads, args.duration))
        mine, reference = statistics.median(ours), statistics.median(theirs)
        ratio, ratios = results.ratio(f"{name}: openvino p50, edgekit / benchmark_app", ours, theirs,
                                      "benchmark_app -hint latency")
        worst = max(worst, abs(ratio - 1))
        print(f"{name:<22}{mine:>11.3f} ms{reference:>17.3f} ms{ratio:>9.3f}  {rounds_text(ratios)}")
    print(f"worst deviation {worst:.1%} (target: within 5 %)")
    results.note(f"worst deviation {worst:.1%} (target: within 5 %)")
    results.write()


if __name__ == "__main__":
    main()
