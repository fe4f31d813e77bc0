"""What the per-layer profiler costs: profiled vs plain p50, side by side, on ONNX Runtime and OpenVINO.

Each round is one `edgekit profile` run (``profile_model``): every profiled call follows a plain call of
the same model with the same settings (ORT: the bench call; OpenVINO: a synchronous infer() on the same
model compiled without profiling). The round's ratio is profiled p50 / plain p50 (plain = 1.0x); the
headline is the median of the per-round ratios. Beside it: how much of the whole the layers explain
(sum of per-layer medians / median whole-model time of the same profiled runs).

    python benchmarks/profile_overhead.py [--rounds 5] [--runs 20] [--threads 2] [--no-results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402

RUNTIMES = ("ort-cpu", "openvino")


def models(folder: Path) -> dict[str, Path]:
    """resnet18 at 224 (a real CNN, tens of layers) and LeNet-5 (tiny: the profiler's fixed cost shows)."""
    from edgekit.exporters.torch_onnx import export_zoo_model

    return {"resnet18 (224)": export_zoo_model("resnet18", folder / "r18.onnx").path,
            "lenet5 (32, tiny)": export_zoo_model("lenet5", folder / "lenet5.onnx").path}


def rounds(path: Path, runtime: str, args) -> list:
    from edgekit.profile import ProfilePlan, profile_model

    plan = ProfilePlan(warmup=5, runs=args.runs)
    return [profile_model(path, runtime, {"threads": args.threads}, plan) for _ in range(args.rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="profiled runs (each paired with a plain one) a round")
    parser.add_argument("--threads", type=int, default=2)
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("profile overhead", enabled=not args.no_results)
    print(f"ratio: median over {args.rounds} rounds of profiled p50 / plain p50 (plain = 1.0x); "
          "layers: sum of per-layer medians / median whole of the same runs")
    print(f"{'model':<20} {'runtime':<9} {'plain p50':>10} {'profiled p50':>13} {'ratio':>7} {'layers/whole':>13}")
    with tempfile.TemporaryDirectory() as folder:
        for name, path in models(Path(folder)).items():
            for runtime in RUNTIMES:
                profiles = rounds(path, runtime, args)
                plain, profiled = [p.plain_ms for p in profiles], [p.wall_ms for p in profiles]
                median, ratios = results.ratio(f"{name} on {runtime}: profiled / plain p50", profiled, plain,
                                               "plain p50 (same settings, unprofiled)")
                coverage = statistics.median(p.coverage for p in profiles)
                print(f"{name:<20} {runtime:<9} {statistics.median(plain):>8.3f}ms "
                      f"{statistics.median(profiled):>11.3f}ms {median:>6.3f}x {coverage:>12.1%}   "
                      f"rounds: {rounds_text(ratios)}")
                results.note(f"{name} on {runtime}: layers explain {coverage:.1%} of the whole (median of rounds: "
                             f"{', '.join(f'{p.coverage:.3f}' for p in profiles)}; whole = {profiles[0].total_source})")
    results.write()


if __name__ == "__main__":
    main()
