"""Train the reference classifiers and print accuracy and training time.

1. LeNet-5 on scikit-learn's digits, full recipe, on several split seeds: per-seed test
   top-1 (270 test images: one image = 0.37 points), mean, and training time.
   Target (issue 4): mean ≥ 98.5 %, every seed ≥ 97.5 %, under a minute each.
2. Transfer curve: a LeNet-5 backbone trained on digits 0–4 (train split of the seed), then
   digits 5–9 learned from k images per class, three ways on the same data:
   scratch (the lenet5 recipe), features (frozen backbone + logistic-regression head) and
   finetune (that head, then conv2 + head trained, conv2 at a tenth of the LR).
   Protocol: for each seed the k-shot train images (stratified, seeded) and the k-per-class
   val images (early stopping) are identical for the three; scratch and finetune share the
   augmentation, epoch budget and early-stopping rule. Test: every 5–9 image of the train and
   test splits not in the k-shot set (~750 images; the backbone never saw a 5–9 digit). The
   5–9 val split is left out of the test: design choices were made on it.

   Finding (5 seeds × k = 1, 2, 5, 10, 20; about 6 minutes on 2 cores): transfer beats
   scratch only at 2 images per class (+3.0 points for features, +3.4 for finetune, won on
   4 of 5 seeds, most of it one seed); at 1 per class and from 5 per class on the three are
   within ±0.7 points, far inside the seed-to-seed spread (which few-shot images are drawn
   matters more than the method). These digits are clean and LeNet-5 with augmentation
   learns them from a handful of images, so a 0–4 backbone adds little. The backbone's
   conv features beat its fc120/fc84 features as the head's input (checked on val).

    python benchmarks/train_classifiers.py [--seeds 0,1,2,3,4] [--per-class 1,2,5,10,20]
        [--epochs N] [--skip-lenet] [--skip-transfer] [--no-results]

No side-by-side timing here (accuracies and gains in points, not ratios); the summary lines go to
benchmarks/RESULTS.md with the CPU and versions.

A quick run: --seeds 0,1 --per-class 1,5 --skip-lenet (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgekit.datasets import load_split  # noqa: E402
from edgekit.datasets.base import Split  # noqa: E402
from edgekit.train import RECIPES, TrainConfig  # noqa: E402
from sidebyside import Results, add_results_flag  # noqa: E402

MODES = ("scratch", "features", "finetune")
SOURCE, TARGET = "0-4", "5-9"


def train(out: Path, **config):
    return RECIPES.get("lenet5")(TrainConfig(data="digits", output_dir=out, progress=False, **config))


def lenet_table(seeds: list[int], epochs: int | None, out: Path, results: Results) -> None:
    print("LeNet-5 on digits (train 1257 / val 270 / test 270 images)")
    print(f"{'seed':>4}  {'test top-1':>10}  {'val top-1':>9}  {'epochs':>6}  {'seconds':>7}")
    scores = []
    for seed in seeds:
        result = train(out / f"lenet5-seed{seed}", seed=seed, epochs=epochs)
        scores.append(result.metrics["test_top1"])
        print(f"{seed:>4}  {result.metrics['test_top1']:>9.2f}%  {result.metrics['val_top1']:>8.2f}%  "
              f"{result.epochs_run:>6}  {result.seconds:>7.1f}")
    summary = f"LeNet-5 mean test top-1 {statistics.mean(scores):.2f}% (min {min(scores):.2f}%) over seeds {seeds}"
    print(summary + "\n")
    results.note(summary)


def held_out(seed: int, per_class: int) -> Split:
    """Every target-class image of the train and test splits that the k-shot train set lacks."""
    from edgekit.train.classifier import take_per_class

    train = load_split("digits", "train", seed, classes=TARGET)
    positions = Split("train", train.task, np.arange(len(train)), train.targets, train.labels)
    used = take_per_class(positions, per_class, seed).images  # the recipe's own k-shot draw
    rest = np.setdiff1d(np.arange(len(train)), used)
    test = load_split("digits", "test", seed, classes=TARGET)
    return Split("held-out", "classification", np.concatenate([train.images[rest], test.images]),
                 np.concatenate([np.asarray(train.targets)[rest], test.targets]), train.labels)


def score(result, split: Split) -> float:
    from edgekit.train.classifier import evaluate_checkpoint, load_checkpoint

    return evaluate_checkpoint(result.checkpoint, load_checkpoint(result.checkpoint)[1], split)["top1"]


def transfer_table(seeds: list[int], shots: list[int], epochs: int | None, out: Path, results: Results) -> None:
    print(f"Transfer: LeNet-5 backbone on digits {SOURCE} → digits {TARGET} from k images per class "
          f"(top-1 on the held-out {TARGET} images)")
    print(f"{'seed':>4}  {'k':>3}  {'backbone':>8}  {'scratch':>8}  {'features':>8}  {'finetune':>8}  {'test n':>6}")
    scores: dict[tuple[int, str], list[float]] = {}
    for seed in seeds:
        backbone = train(out / f"backbone-{seed}", seed=seed, epochs=epochs, options={"classes": SOURCE})
        for k in shots:
            test = held_out(seed, k)
            row = {}
            for mode in MODES:
                transfer = {} if mode == "scratch" else {"transfer_from": backbone.checkpoint, "mode": mode}
                result = train(out / f"{mode}-{seed}-{k}", seed=seed, epochs=epochs,
                               options={"classes": TARGET, "per_class": k}, **transfer)
                row[mode] = score(result, test)
                scores.setdefault((k, mode), []).append(row[mode])
            print(f"{seed:>4}  {k:>3}  {backbone.metrics['test_top1']:>7.1f}%  "
                  + "  ".join(f"{row[m]:>7.1f}%" for m in MODES) + f"  {len(test):>6}", flush=True)
    print(f"\nmean ± std over seeds {seeds}; Δ: paired gain over scratch (mean ± std, seeds won)")
    print(f"{'k':>3}  " + "  ".join(f"{m:>12}" for m in MODES) + "  "
          + "  ".join(f"{'Δ ' + m:>20}" for m in MODES[1:]))
    for k in shots:
        cells = [_mean_std(scores[(k, mode)]) for mode in MODES]
        for mode in MODES[1:]:
            gains = [a - b for a, b in zip(scores[(k, mode)], scores[(k, "scratch")])]
            cells.append(f"{_mean_std(gains, signed=True)} ({sum(g > 0 for g in gains)}/{len(gains)})")
        print(f"{k:>3}  " + "  ".join(f"{c:>12}" for c in cells[:3]) + "  " + "  ".join(f"{c:>20}" for c in cells[3:]))
        results.note(f"transfer k={k}: " + ", ".join(f"{m} {c}" for m, c in zip(MODES, cells))
                     + "; Δ " + ", ".join(f"{m} {c}" for m, c in zip(MODES[1:], cells[3:])))


def _mean_std(values: list[float], signed: bool = False) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{'+' if signed else ''}5.1f} ± {spread:>4.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds, comma-separated")
    parser.add_argument("--per-class", default="1,2,5,10,20", help="few-shot sizes k for the transfer curve")
    parser.add_argument("--epochs", type=int, default=None, help="cap epochs (default: the recipe's)")
    parser.add_argument("--skip-lenet", action="store_true", help="only the transfer curve")
    parser.add_argument("--skip-transfer", action="store_true", help="only the LeNet-5 table")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("train_classifiers", enabled=not args.no_results)
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_lenet:
            lenet_table(seeds, args.epochs, Path(folder), results)
        if not args.skip_transfer:
            transfer_table(seeds, [int(s) for s in args.per_class.split(",")], args.epochs, Path(folder), results)
    results.write()


if __name__ == "__main__":
    main()
