"""Train the reference detector on shapes and print its COCO mAP per runtime and its training time.

    python benchmarks/train_detector.py                 # the full run (target: ≤ 10 min on 2 CPU cores)
    python benchmarks/train_detector.py --epochs 1 --train-size 256 --test-size 64   # a quick check

Target on the held-out split: mAP@0.5 ≥ 0.95 and mAP@0.5:0.95 ≥ 0.85. No side-by-side timing here;
the mAP rows go to benchmarks/RESULTS.md with the CPU and versions (unless --no-results).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidebyside import Results, add_results_flag  # noqa: E402

TARGET = {"map50": 0.95, "map50_95": 0.85}
TIME_BUDGET_S = 600


def _runtimes() -> list[str]:
    from edgekit.errors import EdgekitError
    from edgekit.runtimes import get_runtime

    names = ["ort-cpu"]
    try:
        if get_runtime("openvino").probe().available:
            names.append("openvino")
    except EdgekitError:
        pass  # not registered in this checkout
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="keep the checkpoint and ONNX here")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("train_detector", enabled=not args.no_results)

    from edgekit.datasets import load_split
    from edgekit.evaluate import evaluate
    from edgekit.train import RECIPES, TrainConfig

    options = {k: v for k, v in {"train_size": args.train_size, "test_size": args.test_size}.items() if v}
    output = args.output or Path(tempfile.mkdtemp(prefix="edgekit-detector-"))
    started = time.perf_counter()
    result = RECIPES.get("detector")(TrainConfig(data="shapes", output_dir=output, seed=args.seed,
                                                 epochs=args.epochs, options=options))
    total = time.perf_counter() - started
    test = load_split("shapes", "test", seed=args.seed, **({"test_size": args.test_size} if args.test_size else {}))

    rows = [("torch", result.metrics)]
    for runtime in _runtimes():
        rows.append((runtime, evaluate(result.onnx, test, runtime, batch_size=50).metrics))
    print(f"\ndetector on shapes (seed {args.seed}, {len(test)} held-out images, {result.epochs_run} epochs)")
    print(f"training time: {result.seconds:.0f} s (budget {TIME_BUDGET_S} s); with data, test and export {total:.0f} s")
    print(f"{'':10s} {'mAP@0.5':>8s} {'mAP@0.5:0.95':>13s}")
    for name, metrics in rows:
        print(f"{name:10s} {metrics['map50']:8.3f} {metrics['map50_95']:13.3f}")
        results.note(f"{name}: mAP@0.5 {metrics['map50']:.3f}, mAP@0.5:0.95 {metrics['map50_95']:.3f}")
    met = all(m[k] >= v for _, m in rows for k, v in TARGET.items()) and result.seconds <= TIME_BUDGET_S
    verdict = (f"target mAP@0.5 ≥ {TARGET['map50']}, mAP@0.5:0.95 ≥ {TARGET['map50_95']} in ≤ {TIME_BUDGET_S} s: "
               f"{'met' if met else 'MISSED'}")
    print(verdict)
    results.note(f"seed {args.seed}, {len(test)} test images, {result.epochs_run} epochs, trained in "
                 f"{result.seconds:.0f} s; {verdict}")
    results.write()
    print(f"checkpoint {result.checkpoint}\nonnx       {result.onnx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
