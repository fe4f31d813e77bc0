"""Train the reference classifiers and print accuracy and training time.

1. LeNet-5 on scikit-learn's digits, full recipe, on several split seeds: per-seed test
   top-1 (270 test images: one image = 0.37 points), mean, and training time.
   Target (issue 4): mean ≥ 98.5 %, every seed ≥ 97.5 %, under a minute each.
2. Transfer: a backbone trained on digits 0–4, then digits 5–9 learned from a few images per
   class — from scratch vs features (frozen backbone, new linear head) vs fine-tune — all on
   the same few-shot training set and the same full 5–9 test split, per seed.

    python benchmarks/train_classifiers.py [--seeds 0,1,2] [--per-class 5,10] [--epochs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.train import RECIPES, TrainConfig  # noqa: E402


def train(out: Path, **config):
    return RECIPES.get("lenet5")(TrainConfig(data="digits", output_dir=out, progress=False, **config))


def lenet_table(seeds: list[int], epochs: int | None, out: Path) -> None:
    print("LeNet-5 on digits (train 1257 / val 270 / test 270 images)")
    print(f"{'seed':>4}  {'test top-1':>10}  {'val top-1':>9}  {'epochs':>6}  {'seconds':>7}")
    scores = []
    for seed in seeds:
        result = train(out / f"lenet5-seed{seed}", seed=seed, epochs=epochs)
        scores.append(result.metrics["test_top1"])
        print(f"{seed:>4}  {result.metrics['test_top1']:>9.2f}%  {result.metrics['val_top1']:>8.2f}%  "
              f"{result.epochs_run:>6}  {result.seconds:>7.1f}")
    print(f"mean test top-1 {statistics.mean(scores):.2f}% (min {min(scores):.2f}%) over seeds {seeds}\n")


def transfer_table(seeds: list[int], shots: list[int], epochs: int | None, out: Path) -> None:
    print("Transfer: backbone on digits 0-4 → head for digits 5-9 (test: all 5-9 test images of the seed)")
    print(f"{'seed':>4}  {'per class':>9}  {'backbone 0-4':>12}  {'scratch':>8}  {'features':>8}  {'finetune':>8}  {'test n':>6}")
    sums: dict[tuple[int, str], list[float]] = {}
    for seed in seeds:
        backbone = train(out / f"backbone-seed{seed}", seed=seed, epochs=epochs, options={"classes": "0-4"})
        for shots_per_class in shots:
            target = {"classes": "5-9", "per_class": shots_per_class}
            row = {}
            for mode in ("scratch", "features", "finetune"):
                transfer = {} if mode == "scratch" else {"transfer_from": backbone.checkpoint, "mode": mode}
                result = train(out / f"{mode}-{seed}-{shots_per_class}", seed=seed, epochs=epochs,
                               options=dict(target), **transfer)
                row[mode] = result.metrics["test_top1"]
                sums.setdefault((shots_per_class, mode), []).append(row[mode])
            print(f"{seed:>4}  {shots_per_class:>9}  {backbone.metrics['test_top1']:>11.2f}%  {row['scratch']:>7.2f}%  "
                  f"{row['features']:>7.2f}%  {row['finetune']:>7.2f}%  {int(result.metrics['test_count']):>6}")
    for shots_per_class in shots:
        means = {mode: statistics.mean(sums[(shots_per_class, mode)]) for mode in ("scratch", "features", "finetune")}
        print(f"mean  {shots_per_class:>9}  {'':>12}  {means['scratch']:>7.2f}%  {means['features']:>7.2f}%  "
              f"{means['finetune']:>7.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="split seeds, comma-separated")
    parser.add_argument("--per-class", default="5,10", help="few-shot sizes for the transfer table")
    parser.add_argument("--epochs", type=int, default=None, help="cap epochs (default: the recipe's)")
    parser.add_argument("--skip-transfer", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        lenet_table(seeds, args.epochs, Path(folder))
        if not args.skip_transfer:
            transfer_table(seeds, [int(s) for s in args.per_class.split(",")], args.epochs, Path(folder))


if __name__ == "__main__":
    main()
