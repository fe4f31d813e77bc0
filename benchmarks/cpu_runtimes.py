"""Which runtime wins on this CPU: ort-cpu vs openvino vs torch eager, p50 latency at batch 1.

Same model, same seeded input, same thread count for all three; each is timed with edgekit's
loop (warm-up, then at least --duration seconds). Each of --rounds rounds times torch, ort-cpu,
then openvino; the speed-up over torch is the median of the rounds' torch p50 / runtime p50
(torch = 1.0x).

    python benchmarks/cpu_runtimes.py --models resnet18,mobilenet_v3_small --threads 2 --duration 3 [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402
from edgekit.bench import BenchConfig, LoopPlan, benchmark  # noqa: E402
from edgekit.bench.latency import LatencyStats, time_calls  # noqa: E402
from edgekit.sources import resolve_model  # noqa: E402


def torch_call(name: str, size: int, threads: int):
    """The eager model's call on a seeded input."""
    import torch

    from edgekit.zoo.build import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(name)
    x = torch.randn(1, 3, size, size) if name != "lenet5" else torch.randn(1, 1, 32, 32)

    def call():
        with torch.inference_mode():
            return model(x)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v3_small")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (torch, ort-cpu, openvino)")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("cpu_runtimes", enabled=not args.no_results)
    plan = LoopPlan(warmup=10, min_runs=10, min_duration_s=args.duration)
    runtimes = (("ort-cpu", {"threads": args.threads}),
                ("openvino", {"threads": args.threads, "streams": 1, "hint": "latency"}))
    print(f"speed-up: median over {args.rounds} rounds of torch p50 / runtime p50 (torch eager = 1.0x)")
    print(f"{'model':<22}{'torch eager':>13}{'ort-cpu':>13}{'openvino':>13}   speed-up vs torch (ort / ov)")
    for name in args.models.split(","):
        path = resolve_model(name, input_size=(args.input_size, args.input_size))
        call = torch_call(name, args.input_size, args.threads)
        p50: dict[str, list[float]] = {"torch": [], "ort-cpu": [], "openvino": []}
        for _ in range(args.rounds):
            p50["torch"].append(LatencyStats.from_ns(time_calls(call, plan)).p50_ms)
            for runtime, options in runtimes:
                p50[runtime].append(benchmark(path, BenchConfig(runtime=runtime, plan=plan,
                                                                runtime_options=options)).latency.p50_ms)
        speed = {runtime: results.ratio(f"{name}: torch p50 / {runtime} p50", p50["torch"], p50[runtime],
                                        "torch eager") for runtime, _ in runtimes}
        medians = {key: statistics.median(column) for key, column in p50.items()}
        print(f"{name:<22}{medians['torch']:>10.2f} ms{medians['ort-cpu']:>10.2f} ms{medians['openvino']:>10.2f} ms"
              f"   {speed['ort-cpu'][0]:.2f}x / {speed['openvino'][0]:.2f}x"
              f"   (per-round ort {rounds_text(speed['ort-cpu'][1], 2)}; ov {rounds_text(speed['openvino'][1], 2)})")
    results.write()


if __name__ == "__main__":
    main()
