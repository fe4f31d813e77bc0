"""`edgekit optimize` against its targets (issue 12), one run. The search times FP32 (ONNX Runtime CPU,
its default threads) and the finalists one after the other; then this script times FP32, the fastest
FP32 setting and the chosen candidate (and, for mobilenet, ORT INT8) side by side in --rounds rounds,
FP32 first in each. The speedups checked are the medians of those rounds' paired ratios (FP32 = 1.0x);
the search's own figure is printed beside them.

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
        [--time-limit 300] [--rounds 3] [--seconds 1] [--no-results]

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgekit.errors import CheckFailedError  # noqa: E402
from edgekit.optimize import OptimizeConfig, optimize  # noqa: E402
from edgekit.optimize.report import summary_lines  # noqa: E402
from edgekit.optimize.select import speedup  # noqa: E402
from edgekit.store import open_store  # noqa: E402
from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402

PARTS = ("resnet18", "mobilenet", "lenet", "detector")
#: the side-by-side re-timing after each search (set from --rounds, --seconds)
SIDE = {"rounds": 3, "seconds": 1.0}


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


def search_gain(done) -> float:
    """The search's own speedup of the chosen candidate (FP32 and it timed one after the other, once)."""
    result = done.result
    chosen = result.winner or result.baseline
    return speedup(result.baseline.ms, chosen.ms) or 0.0


def side_by_side(done, name: str, results: Results, others: tuple = ()) -> float:
    """Re-time ORT FP32, the fastest FP32 setting of the latency pass, the chosen candidate and ``others``
    in interleaved rounds (FP32 first); print each one's paired median over FP32 (and the chosen one's over
    the fastest FP32 setting: on a loaded machine ORT's default threads can be far slower than one thread,
    which flatters the main ratio). Returns the chosen candidate's paired speedup over ORT FP32."""
    from edgekit.matrix.cells import Timing
    from edgekit.matrix.variants import Variant
    from edgekit.optimize.measure import time_variant

    result = done.result
    chosen = result.winner or result.baseline
    fp32 = [e for e in result.entries if e.candidate.precision == "fp32" and e.quick is not None]
    best = min(fp32, key=lambda e: e.quick.per_item_ms)
    entries: list = []
    others = tuple(e for e in others if e.variant_path)
    for entry in (result.baseline, best, chosen, *others):  # each once (entries are not hashable)
        if all(entry is not e for e in entries):
            entries.append(entry)
    missing = [e.candidate.label for e in entries if not e.variant_path]
    if missing:
        print(f"  side by side: skipped ({', '.join(missing)} has no variant file)")
        return search_gain(done)
    timing = Timing(warmup=10, min_runs=20, min_duration_s=SIDE["seconds"], rounds=1)
    columns: list[list[float]] = [[] for _ in entries]
    for _ in range(SIDE["rounds"]):
        for entry, column in zip(entries, columns):
            variant = Variant(Path(entry.variant_path), dict(entry.variant_options or {}))
            column.append(time_variant(entry.candidate, variant, result.meta, timing).per_item_ms)
    basis = result.baseline.candidate.label
    print(f"  side by side, {SIDE['rounds']} rounds: median of the rounds' FP32 / candidate ms per item "
          f"({basis} = 1.0x)")
    gain = 1.0
    for entry, column in zip(entries[1:], columns[1:]):
        ratio, ratios = results.ratio(f"{name}: FP32 / {entry.candidate.label}", columns[0], column, basis)
        gain = ratio if entry is chosen else gain
        print(f"    {entry.candidate.label}: {ratio:.2f}x  (rounds {rounds_text(ratios, 2)})")
    if best is not result.baseline and best is not chosen and chosen is not result.baseline:
        column_of = {id(e): c for e, c in zip(entries, columns)}
        ratio, ratios = results.ratio(f"{name}: fastest FP32 / chosen", column_of[id(best)], column_of[id(chosen)],
                                      best.candidate.label)
        print(f"    chosen vs the fastest FP32 setting ({best.candidate.label} = 1.0x): {ratio:.2f}x"
              f"  (rounds {rounds_text(ratios, 2)})")
    return gain


def resnet18_part(folder: Path, store, time_limit: float, results: Results) -> None:
    data = image_folder(folder / "images")
    start = time.perf_counter()
    done = run("resnet18", OptimizeConfig("resnet18", max_drop=2.0, data=str(data), eval_size=64,
                                          time_limit_s=time_limit), folder, store)
    seconds = time.perf_counter() - start
    if done is None:
        return
    chosen = done.result.winner or done.result.baseline
    gain = side_by_side(done, "resnet18", results)
    pruned = sum(done.result.pruned.values())
    report(results, "resnet18",
           check("chosen >= 3x faster than ORT FP32", gain >= 3.0,
                 f"{gain:.2f}x side by side, {search_gain(done):.2f}x in the search ({chosen.candidate.label})"),
           check("within budget", chosen.in_budget(2.0), f"drop {chosen.drop:+.2f} pt (top-1 disagreement %)"),
           check("search <= 5 minutes", seconds <= 300, f"{seconds:.0f} s"),
           check("candidates pruned", pruned > 0, f"{pruned} of {len(done.result.entries)}"))


def report(results: Results, name: str, *lines: str) -> None:
    for line in lines:
        print(line)
        results.note(f"{name}:{line}")


def mobilenet_part(folder: Path, store, time_limit: float, results: Results) -> None:
    done = run("mobilenet_v3_small", OptimizeConfig("mobilenet_v3_small", max_drop=2.0, eval_size=64,
                                                    time_limit_s=time_limit), folder, store)
    if done is None:
        return
    entries = {(e.candidate.runtime, e.candidate.variant, e.candidate.threads): e for e in done.result.entries}
    ort_int8 = entries.get(("ort-cpu", "int8-ort", None))  # ORT INT8, default threads: beside FP32 too
    chosen = done.result.winner or done.result.baseline
    gain = side_by_side(done, "mobilenet_v3_small", results, (ort_int8,) if ort_int8 and ort_int8.ms else ())
    not_ort_int8 = not (chosen.candidate.runtime == "ort-cpu" and chosen.candidate.precision == "int8")
    report(results, "mobilenet_v3_small", check("does not ship ORT INT8", not_ort_int8, chosen.candidate.label),
           check("never slower than FP32", gain >= 1.0, f"{gain:.2f}x side by side, {search_gain(done):.2f}x in "
                 "the search"))


def trained_part(name: str, recipe: str, data: str, folder: Path, store, epochs: int | None, time_limit: float,
                 results: Results) -> None:
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
    gain = side_by_side(done, name, results)
    report(results, name, f"  FP32 {base.metric} {base.accuracy:.2f}; chosen {chosen.quality.accuracy:.2f}",
           check("within budget", chosen.in_budget(1.0), f"drop {chosen.drop:+.2f} pt"),
           check("never slower than FP32", gain >= 1.0, f"{gain:.2f}x side by side, {search_gain(done):.2f}x in the "
                 f"search ({chosen.candidate.label})"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--detector-epochs", type=int, default=None, help="shorter detector training")
    parser.add_argument("--time-limit", type=float, default=300.0, help="--time-limit of each search")
    parser.add_argument("--rounds", type=int, default=3, help="side-by-side rounds after each search")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per candidate and side-by-side round")
    add_results_flag(parser)
    args = parser.parse_args()
    SIDE.update(rounds=args.rounds, seconds=args.seconds)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(set(parts) - set(PARTS))} (expected {', '.join(PARTS)})")
    results = Results("optimize", enabled=not args.no_results)
    with tempfile.TemporaryDirectory() as name, open_store(f"sqlite:///{Path(name) / 'history.db'}") as store:
        folder = Path(name)
        if "resnet18" in parts:
            resnet18_part(folder, store, args.time_limit, results)
        if "mobilenet" in parts:
            mobilenet_part(folder, store, args.time_limit, results)
        if "lenet" in parts:
            trained_part("LeNet-5/digits", "lenet5", "digits", folder, store, None, args.time_limit, results)
        if "detector" in parts:
            trained_part("shapes detector", "detector", "shapes", folder, store, args.detector_epochs,
                         args.time_limit, results)
    results.write()


if __name__ == "__main__":
    main()
