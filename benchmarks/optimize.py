"""`edgekit optimize` against its targets (issue 12), one run; every ratio comes from one search,
where FP32 (ONNX Runtime CPU, its default threads) and the finalists are timed one after the other.

Parts (``--parts``):
- resnet18: random weights at 224, calibrated and judged (top-1 agreement with FP32) on an image
  folder of photo-like images (two class folders, as the quantization benchmark's images).
  Targets: chosen >= 3x faster than ORT FP32, within --max-drop 2 (agreement >= 98 %), search
  <= 5 minutes, candidates pruned.
- mobilenet: mobilenet_v3_small at 224 (INT8 is slower than FP32 on ONNX Runtime there): the
  choice must not be ORT INT8, and never slower than FP32.
- lenet: LeNet-5 trained on digits, judged on its own test split, --max-drop 1.
- detector: the shapes detector, judged (mAP@0.5:0.95) on its own test split, --max-drop 1.
  Targets of both: within budget, never slower than FP32.

    python benchmarks/optimize.py [--parts resnet18,mobilenet,lenet,detector] [--detector-epochs 4]
        [--time-limit 300]

The machine is shared: the script prints its load average before and after each part.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's edgekit

from edgekit.errors import CheckFailedError  # noqa: E402
from edgekit.optimize import OptimizeConfig, optimize  # noqa: E402
from edgekit.optimize.report import summary_lines  # noqa: E402
from edgekit.optimize.select import speedup  # noqa: E402
from edgekit.store import open_store  # noqa: E402

PARTS = ("resnet18", "mobilenet", "lenet", "detector")


def image_folder(root: Path, per_class: int = 48, size: int = 256) -> Path:
    """Photo-like PNGs (coarse colour blocks, as benchmarks/quantization.py makes) in two class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            coarse = rng.uniform(0, 255, (size // 16 + 1, size // 16 + 1, 3))
            image = coarse.repeat(16, axis=0).repeat(16, axis=1)[:size, :size].astype(np.uint8)
            Image.fromarray(image).save(folder / f"{index}.png")
    return root


def check(label: str, ok: bool, detail: str) -> str:
    return f"  [{'PASS' if ok else 'FAIL'}] {label}: {detail}"


def run(name: str, config: OptimizeConfig, folder: Path, store) -> object | None:
    print(f"\n== {name}: max drop {config.max_drop:g} pt, runtimes {', '.join(config.runtimes)}; "
          f"load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    try:
        stem = "".join(c if c.isalnum() else "-" for c in name)
        done = optimize(config, folder / f"{stem}.optimized.onnx", store, log=lambda line: None)
    except CheckFailedError as exc:
        print(f"  [FAIL] {name}: {exc}")
        return None
    for line in summary_lines(done.result):
        print(f"  {line}")
    print(f"  {done.verdict}")
    print(f"  search {time.perf_counter() - start:.0f} s (export included); load average after "
          f"{os.getloadavg()[0]:.1f}")
    return done


def gain(done) -> float:
    result = done.result
    chosen = result.winner or result.baseline
    return speedup(result.baseline.ms, chosen.ms) or 0.0


def against_best_fp32(done) -> str:
    """The chosen candidate against the fastest FP32 setting of the latency pass (same pass): on a loaded
    machine ORT's default threads can be far slower than one thread, which flatters the main ratio."""
    result = done.result
    chosen = result.winner or result.baseline
    fp32 = [e for e in result.entries if e.candidate.precision == "fp32" and e.quick is not None]
    best = min(fp32, key=lambda e: e.quick.per_item_ms)
    ratio = speedup(best.quick.per_item_ms, chosen.quick.per_item_ms) if chosen.quick else None
    return f"  vs the fastest FP32 setting ({best.candidate.label}, latency pass): {ratio or 0:.2f}x"


def resnet18_part(folder: Path, store, time_limit: float) -> None:
    data = image_folder(folder / "images")
    start = time.perf_counter()
    done = run("resnet18", OptimizeConfig("resnet18", max_drop=2.0, data=str(data), eval_size=64,
                                          time_limit_s=time_limit), folder, store)
    seconds = time.perf_counter() - start
    if done is None:
        return
    chosen = done.result.winner or done.result.baseline
    print(check("chosen >= 3x faster than ORT FP32", gain(done) >= 3.0,
                f"{gain(done):.2f}x ({chosen.candidate.label})"))
    print(against_best_fp32(done))
    print(check("within budget", chosen.in_budget(2.0), f"drop {chosen.drop:+.2f} pt (top-1 disagreement %)"))
    print(check("search <= 5 minutes", seconds <= 300, f"{seconds:.0f} s"))
    pruned = sum(done.result.pruned.values())
    print(check("candidates pruned", pruned > 0, f"{pruned} of {len(done.result.entries)}"))


def mobilenet_part(folder: Path, store, time_limit: float) -> None:
    done = run("mobilenet_v3_small", OptimizeConfig("mobilenet_v3_small", max_drop=2.0, eval_size=64,
                                                    time_limit_s=time_limit), folder, store)
    if done is None:
        return
    entries = {(e.candidate.runtime, e.candidate.variant, e.candidate.threads): e for e in done.result.entries}
    ort_int8 = entries.get(("ort-cpu", "int8-ort", None))
    if ort_int8 is not None and ort_int8.ms:
        print(f"  ORT INT8 (default threads) in the latency pass: "
              f"{speedup(done.result.baseline.quick.per_item_ms, ort_int8.quick.per_item_ms):.2f}x FP32")
    chosen = done.result.winner or done.result.baseline
    not_ort_int8 = not (chosen.candidate.runtime == "ort-cpu" and chosen.candidate.precision == "int8")
    print(check("does not ship ORT INT8", not_ort_int8, chosen.candidate.label))
    print(check("never slower than FP32", gain(done) >= 1.0, f"{gain(done):.2f}x"))
    print(against_best_fp32(done))


def trained_part(name: str, recipe: str, data: str, folder: Path, store, epochs: int | None, time_limit: float) -> None:
    from edgekit.train.base import RECIPES, TrainConfig

    start = time.perf_counter()
    trained = RECIPES.get(recipe)(TrainConfig(data=data, output_dir=folder / recipe, seed=0, epochs=epochs,
                                              progress=False))
    print(f"\n{name}: trained in {time.perf_counter() - start:.0f} s ({trained.epochs_run} epochs)")
    done = run(name, OptimizeConfig(str(trained.onnx), max_drop=1.0, data=data, eval_size=300,
                                    time_limit_s=time_limit), folder, store)
    if done is None:
        return
    chosen = done.result.winner or done.result.baseline
    base = done.result.baseline.quality
    print(f"  FP32 {base.metric} {base.accuracy:.2f}; chosen {chosen.quality.accuracy:.2f}")
    print(check("within budget", chosen.in_budget(1.0), f"drop {chosen.drop:+.2f} pt"))
    print(check("never slower than FP32", gain(done) >= 1.0, f"{gain(done):.2f}x ({chosen.candidate.label})"))
    print(against_best_fp32(done))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--detector-epochs", type=int, default=None, help="shorter detector training")
    parser.add_argument("--time-limit", type=float, default=300.0, help="--time-limit of each search")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(set(parts) - set(PARTS))} (expected {', '.join(PARTS)})")
    with tempfile.TemporaryDirectory() as name, open_store(f"sqlite:///{Path(name) / 'history.db'}") as store:
        folder = Path(name)
        if "resnet18" in parts:
            resnet18_part(folder, store, args.time_limit)
        if "mobilenet" in parts:
            mobilenet_part(folder, store, args.time_limit)
        if "lenet" in parts:
            trained_part("LeNet-5/digits", "lenet5", "digits", folder, store, None, args.time_limit)
        if "detector" in parts:
            trained_part("shapes detector", "detector", "shapes", folder, store, args.detector_epochs,
                         args.time_limit)


if __name__ == "__main__":
    main()
