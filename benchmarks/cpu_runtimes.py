"""Which runtime wins on this CPU: ort-cpu vs openvino vs torch eager, p50 latency at batch 1.

Same model, same seeded input, same thread count for all three; each is timed with edgekit's
loop (warm-up, then at least --duration seconds). Prints p50 and the speed-up over torch.

    python benchmarks/cpu_runtimes.py --models resnet18,mobilenet_v3_small --threads 2 --duration 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.bench import BenchConfig, LoopPlan, benchmark  # noqa: E402
from edgekit.bench.latency import LatencyStats, time_calls  # noqa: E402
from edgekit.sources import resolve_model  # noqa: E402


def torch_p50(name: str, size: int, threads: int, plan: LoopPlan) -> float:
    import torch

    from edgekit.zoo.build import build_model

    torch.set_num_threads(threads)
    model = build_model(name)
    x = torch.randn(1, 3, size, size) if name != "lenet5" else torch.randn(1, 1, 32, 32)

    def call():
        with torch.inference_mode():
            return model(x)

    return LatencyStats.from_ns(time_calls(call, plan)).p50_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v3_small")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    plan = LoopPlan(warmup=10, min_runs=10, min_duration_s=args.duration)
    print(f"{'model':<22}{'torch eager':>13}{'ort-cpu':>13}{'openvino':>13}   speed-up vs torch (ort / ov)")
    for name in args.models.split(","):
        path = resolve_model(name, input_size=(args.input_size, args.input_size))
        p50 = {"torch": torch_p50(name, args.input_size, args.threads, plan)}
        for runtime, options in (("ort-cpu", {"threads": args.threads}),
                                 ("openvino", {"threads": args.threads, "streams": 1, "hint": "latency"})):
            p50[runtime] = benchmark(path, BenchConfig(runtime=runtime, plan=plan,
                                                       runtime_options=options)).latency.p50_ms
        print(f"{name:<22}{p50['torch']:>10.2f} ms{p50['ort-cpu']:>10.2f} ms{p50['openvino']:>10.2f} ms"
              f"   {p50['torch'] / p50['ort-cpu']:.2f}x / {p50['torch'] / p50['openvino']:.2f}x")


if __name__ == "__main__":
    main()
