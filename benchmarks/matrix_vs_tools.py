"""The matrix's figures beside the tools they must agree with, measured side by side in one run.

1. OpenVINO offline throughput (the matrix's offline scenario: THROUGHPUT hint, streams,
   AsyncInferQueue with the optimal number of requests) vs `benchmark_app -hint throughput`
   with the same model and inference threads (target: within 5 %).
2. The p50 latency of a single-stream matrix cell vs `edgekit bench` alone (the same
   ``benchmark()`` the command runs), same model, runtime and threads (target: within 2 %).
Measurements are interleaved over --rounds (matrix, then the tool, in each round); a ratio is the
median of the rounds' matrix / tool ratios (the tool = 1.0x).

    python benchmarks/matrix_vs_tools.py --models mobilenet_v3_small,resnet18 --threads 2 --duration 3 [--no-results]
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
from edgekit.matrix import Evaluation, MatrixSpec, Timing  # noqa: E402
from edgekit.matrix.measure import MatrixContext, measure_cell  # noqa: E402
from edgekit.sources import resolve_model  # noqa: E402
from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402


def benchmark_app_fps(path: Path, threads: int, duration: float) -> float:
    """Throughput (FPS) that benchmark_app reports with the throughput hint and ``threads`` threads."""
    executable = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    properties = {"CPU": {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": str(threads),
                          "INFERENCE_PRECISION_HINT": "f32"}}
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.json"
        config.write_text(json.dumps(properties))
        command = [executable, "-m", str(path), "-d", "CPU", "-hint", "throughput", "-api", "async", "-b", "1",
                   "-load_config", str(config), "-t", str(max(1, round(duration)))]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"Throughput:\s+([\d.]+)\s*FPS", result.stdout)
    if result.returncode != 0 or not match:
        raise SystemExit(f"benchmark_app failed ({result.returncode}): {result.stdout[-800:]}{result.stderr[-500:]}")
    return float(match.group(1))


def matrix_cell(path: Path, runtime: str, scenario: str, threads: int, duration: float):
    spec = MatrixSpec(models=(str(path),), runtimes=(runtime,), threads=(threads,), scenarios=(scenario,),
                      timing=Timing(10, 10, duration, None, 1), evaluation=Evaluation(samples=8, agreement_samples=4))
    [cell] = spec.cells()
    record = measure_cell(cell, cell.key(spec.timing, spec.evaluation), MatrixContext(spec))
    if record.status != "ok":
        raise SystemExit(f"{cell.label}: {record.status}: {record.reason}")
    return record


def bench_alone_p50(path: Path, runtime: str, threads: int, duration: float) -> float:
    options = {"threads": threads, **({"hint": "latency"} if runtime == "openvino" else {})}
    config = BenchConfig(runtime=runtime, plan=LoopPlan(10, 10, duration), runtime_options=options)
    return benchmark(path, config).latency.p50_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v3_small,resnet18")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the paired ratios' median")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("matrix_vs_tools", enabled=not args.no_results)
    print(f"ratio: median over {args.rounds} rounds of matrix / reference (reference = 1.0x); columns: medians")
    print(f"{'model':<20}{'figure':<34}{'matrix':>12}{'reference':>12}{'ratio':>8}  per-round ratios")
    worst = {"offline": 0.0, "single": 0.0}
    for name in args.models.split(","):
        path = resolve_model(name, input_size=(args.input_size, args.input_size))
        ours, apps = [], []
        single = {"ort-cpu": ([], []), "openvino": ([], [])}
        for _ in range(args.rounds):
            ours.append(matrix_cell(path, "openvino", "offline", args.threads, args.duration).throughput_items_s)
            apps.append(benchmark_app_fps(path, args.threads, args.duration))
            for runtime, (cells, alone) in single.items():
                cells.append(matrix_cell(path, runtime, "single-stream", args.threads, args.duration).p50_ms)
                alone.append(bench_alone_p50(path, runtime, args.threads, args.duration))
        ratio, ratios = results.ratio(f"{name}: openvino offline FPS, matrix / benchmark_app", ours, apps,
                                      "benchmark_app -hint throughput")
        worst["offline"] = max(worst["offline"], abs(ratio - 1))
        print(f"{name:<20}{'openvino offline FPS vs benchmark_app':<34}{statistics.median(ours):>12.1f}"
              f"{statistics.median(apps):>12.1f}{ratio:>8.3f}  {rounds_text(ratios)}")
        for runtime, (cells, alone) in single.items():
            ratio, ratios = results.ratio(f"{name}: {runtime} single-stream p50, matrix cell / edgekit bench",
                                          cells, alone, "edgekit bench")
            worst["single"] = max(worst["single"], abs(ratio - 1))
            print(f"{name:<20}{runtime + ' single-stream p50 ms vs bench':<34}{statistics.median(cells):>12.3f}"
                  f"{statistics.median(alone):>12.3f}{ratio:>8.3f}  {rounds_text(ratios)}")
    print(f"worst deviation: offline vs benchmark_app {worst['offline']:.1%} (target 5 %), "
          f"single-stream cell vs edgekit bench {worst['single']:.1%} (target 2 %)")
    results.note(f"worst deviation: offline {worst['offline']:.1%} (target 5 %), single-stream {worst['single']:.1%}"
                 " (target 2 %)")
    results.write()


if __name__ == "__main__":
    main()
