"""INT8 / FP16 vs FP32, side by side in one run, on ONNX Runtime CPU and OpenVINO (issue 5).

Parts (each can be run alone, see the flags):
- speed (``--models``, default resnet18,mobilenet_v3_small; random weights, 224, batch 1): INT8
  static (u8s8 and S8S8), dynamic, FP16 and the NNCF IR vs FP32. Targets: resnet18 INT8 static
  >= 2.5x on ort-cpu and >= 3x on openvino.
- lenet: LeNet-5 trained on digits (seed 0, the recipe's defaults), INT8 static calibrated on the
  digits train split, top-1 on the test split (270 images: one image = 0.37 pt) on ort-cpu and
  openvino. Target: top-1 drop <= 0.5 pt.
- detector: the shapes detector (the recipe's defaults, or --detector-epochs for a shorter run),
  INT8 static calibrated on shapes train, COCO mAP on shapes test. Targets: drop <= 1 pt mAP@0.5
  and <= 1.5 pt mAP@0.5:0.95, >= 1.5x faster than FP32 on ort-cpu at batch 1.

Each of --rounds rounds measures every row of a model one after another (FP32 first); a speedup
is the median of the rounds' FP32 p50 / row p50 on the same runtime (FP32 = 1.0x). Accuracy is
measured in the first round only; the table shown is that round's. Slower variants are shown as they are.

    python benchmarks/quantization.py [--parts speed,lenet,detector] [--skip-speed] [--skip-lenet]
        [--skip-detector] [--models resnet18] [--threads 2] [--seconds 2] [--calib-size 32]
        [--detector-epochs N] [--rounds 3] [--no-results]

The whole run takes ~12 min on 2 cores, ~6 of them training the detector (15 epochs, the
recipe's default); LeNet-5 trains in ~10 s. The default INT8 recipes (U8 activations, S8
per-channel weights, MinMax on 128 calibration images, nothing excluded; NNCF's PERFORMANCE
preset) met every accuracy target, so no layer is excluded and no other calibration is used.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's edgekit
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402

from edgekit.cli.quantize_table import render  # noqa: E402
from edgekit.matrix.cells import Timing  # noqa: E402
from edgekit.quantize.base import QuantizeConfig  # noqa: E402
from edgekit.quantize.report import MeasureConfig, PrecisionReport, measure  # noqa: E402
from edgekit.quantize.select import build_variants  # noqa: E402
from edgekit.runtimes import RUNTIMES  # noqa: E402

PARTS = ("speed", "lenet", "detector")
RUNTIME_NAMES = tuple(r for r in ("ort-cpu", "openvino") if r in RUNTIMES)
HAS_NNCF = importlib.util.find_spec("nncf") is not None


def photo_like(count: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size // 16 + 1, size // 16 + 1, 3))
    return coarse.repeat(16, axis=1).repeat(16, axis=2)[:, :size, :size].astype(np.uint8)


def speed_configs(calib: Path, size: int) -> list[QuantizeConfig]:
    base = dict(calib=str(calib), calib_size=size)
    chosen = [QuantizeConfig(**base), QuantizeConfig(**base, activations="s8"),
              QuantizeConfig(mode="int8-dynamic"), QuantizeConfig(mode="fp16")]
    if HAS_NNCF:
        chosen.append(QuantizeConfig(**base, backend="nncf"))
    return chosen


def int8_configs(calib: str, size: int) -> list[QuantizeConfig]:
    """The default static INT8 recipe of each backend (what `edgekit quantize --calib` makes)."""
    chosen = [QuantizeConfig(calib=calib, calib_size=size)]
    if HAS_NNCF:
        chosen.append(QuantizeConfig(calib=calib, calib_size=size, backend="nncf"))
    return chosen


def show(report: PrecisionReport) -> None:
    from rich.console import Console

    Console(width=160).print(render(report))


def measure_rounds(variants, meta, config: MeasureConfig, split, parity, rounds: int) -> list[PrecisionReport]:
    """One report per round: the first with accuracy and parity, the others speed only."""
    first = measure(variants, meta, config, split, parity)
    return [first] + [measure(variants, meta, config) for _ in range(rounds - 1)]


def paired_speedups(reports: list[PrecisionReport], label: str, results: Results) -> dict[tuple, float]:
    """Every non-FP32 row's speedup: the median of the rounds' FP32 p50 / row p50, same runtime; printed."""
    print(f"{label}: speedup = median over {len(reports)} rounds of FP32 p50 / row p50 (FP32 on that runtime = 1.0x;"
          " the table above is round 1 alone)")
    speedups = {}
    for row in reports[0].rows:
        pairs = [(report.row("fp32", row.runtime), report.row(row.variant, row.runtime)) for report in reports]
        if row.variant == "fp32" or any(base is None or other is None for base, other in pairs):
            continue
        median, ratios = results.ratio(f"{label}: {row.variant} on {row.runtime}, FP32 p50 / row p50",
                                       [base.p50_ms for base, _ in pairs], [other.p50_ms for _, other in pairs],
                                       f"fp32 on {row.runtime}")
        speedups[(row.variant, row.runtime)] = median
        print(f"  {row.variant:24s} {row.runtime:9s} {median:5.2f}x  (rounds {rounds_text(ratios, 2)})")
    return speedups


def check(label: str, value: float | None, target: float, higher_is_better: bool, unit: str) -> str:
    if value is None:
        return f"  {label}: not measured"
    value = round(value, 2) + 0.0  # no "-0.00"
    met = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return f"  {label}: {value:.2f}{unit} (target {sign} {target:g}{unit}) {'MET' if met else 'MISSED'}"


def speed_part(name: str, size: int, threads: int, plan: Timing, calib_size: int, folder: Path, rounds: int,
               results: Results) -> None:
    from edgekit.meta import read_meta
    from edgekit.quantize.calibration import calibration_batches
    from edgekit.sources import resolve_model

    source = resolve_model(name, input_size=(size, size))
    calib = folder / f"{name}-calib.npz"
    np.savez(calib, images=photo_like(calib_size, size + 32))
    variants = build_variants(source, speed_configs(calib, calib_size))
    meta = read_meta(source)
    parity = calibration_batches(str(calib), source, meta, 16, seed=1)
    config = MeasureConfig(runtimes=RUNTIME_NAMES, threads=threads, timing=plan)
    reports = measure_rounds(variants, meta, config, None, parity, rounds)
    report = reports[0]
    show(report)
    speedups = paired_speedups(reports, name, results)
    print(f"{name} {size}x{size}, batch 1, {threads} threads (random weights: accuracy is output agreement):")
    largest = _largest_output(source, parity)
    if largest < 1e-6:
        print(f"  note: with random weights its FP32 outputs are ~0 (max |y| = {largest:.1e}); INT8 rounds them to 0, "
              "so cosine/top-1 agreement say nothing for this model, only its speed counts")
    targets = {"resnet18": {"ort-cpu": 2.5, "openvino": 3.0}}.get(name, {})
    for runtime, variant in (("ort-cpu", "ort-int8-static"), ("openvino", "ort-int8-static"),
                             ("openvino", "nncf-int8-static")):
        speedup = speedups.get((variant, runtime))
        if speedup is None:
            continue
        label = f"{variant} on {runtime} speedup"
        line = (check(label, speedup, targets[runtime], True, "x") if runtime in targets
                else f"  {label}: {speedup:.2f}x (no target for this model)")
        print(line)
        results.note(f"{name}:{line}")


def _largest_output(model: Path, feeds) -> float:
    from edgekit.runtimes import open_runtime

    with open_runtime("ort-cpu", model) as session:
        return max(float(np.abs(v).max()) for feed in feeds for v in session.run(feed).values())


def lenet_part(threads: int, plan: Timing, calib_size: int, folder: Path, rounds: int, results: Results) -> None:
    from edgekit.datasets import load_split
    from edgekit.train.base import RECIPES, TrainConfig

    start = time.perf_counter()
    trained = RECIPES.get("lenet5")(TrainConfig(data="digits", output_dir=folder / "lenet", seed=0, progress=False))
    print(f"\nLeNet-5 on digits: trained in {time.perf_counter() - start:.0f} s ({trained.epochs_run} epochs), "
          f"torch test top-1 {trained.metrics['test_top1']:.2f}")
    reports = _accuracy_reports(trained.onnx, "digits", load_split("digits", split="test", seed=0), calib_size,
                                threads, plan, folder, rounds)
    report, speedups = reports[0], paired_speedups(reports, "LeNet-5/digits", results)
    print("LeNet-5/digits INT8 static top-1 drop vs FP32 on the same runtime (test split, 270 images):")
    for runtime, variant in (("ort-cpu", "ort-int8-static"), ("openvino", "nncf-int8-static"),
                             ("openvino", "ort-int8-static")):
        row = report.row(variant, runtime)
        if row is not None:
            line = (check(f"{variant} on {runtime} top-1 drop", row.accuracy_drop, 0.5, False, " pt")
                    + f"  [{row.accuracy:.2f} vs FP32; speedup {speedups[(variant, runtime)]:.2f}x]")
            print(line)
            results.note(f"LeNet-5/digits:{line}")


def detector_part(threads: int, plan: Timing, calib_size: int, epochs: int | None, folder: Path, rounds: int,
                  results: Results) -> None:
    if importlib.util.find_spec("edgekit.train.detector") is None:
        print("\nskipped the detector: edgekit.train.detector is not in this checkout")
        return
    from edgekit.datasets import load_split
    from edgekit.meta import read_meta
    from edgekit.train.base import RECIPES, TrainConfig

    start = time.perf_counter()
    trained = RECIPES.get("detector")(TrainConfig(data="shapes", output_dir=folder / "detector", seed=0,
                                                  epochs=epochs, progress=False))
    print(f"\nshapes detector: trained in {time.perf_counter() - start:.0f} s ({trained.epochs_run} epochs"
          f"{', the recipe default' if epochs is None else ', shortened by --detector-epochs'}), "
          f"torch test metrics {({k: round(v, 2) for k, v in trained.metrics.items()})}")
    source = read_meta(trained.onnx).extra.get("source") or {}
    split = load_split("shapes", split="test", seed=0, **(source.get("dataset_options") or {}))
    reports = _accuracy_reports(trained.onnx, "shapes", split, calib_size, threads, plan, folder, rounds)
    report, speedups = reports[0], paired_speedups(reports, "shapes detector", results)
    print(f"shapes detector INT8 static vs FP32 on the same runtime (test split, {len(split)} images):")
    for runtime, variant in (("ort-cpu", "ort-int8-static"), ("openvino", "nncf-int8-static"),
                             ("openvino", "ort-int8-static")):
        row, base = report.row(variant, runtime), report.row("fp32", runtime)
        if row is None or base is None:
            continue
        label = f"{variant} on {runtime} speedup (batch 1)"
        speedup = speedups[(variant, runtime)]
        for line in (check(f"{variant} on {runtime} mAP@0.5 drop", base.metrics["map50"] - row.metrics["map50"], 1.0,
                           False, " pt"),
                     check(f"{variant} on {runtime} mAP@0.5:0.95 drop", row.accuracy_drop, 1.5, False, " pt"),
                     check(label, speedup, 1.5, True, "x") if runtime == "ort-cpu"
                     else f"  {label}: {speedup:.2f}x (no target on this runtime)"):
            print(line)
            results.note(f"shapes detector:{line}")


def _accuracy_reports(onnx: Path, calib: str, split, calib_size: int, threads: int, plan: Timing,
                      folder: Path, rounds: int) -> list[PrecisionReport]:
    from edgekit.meta import read_meta
    from edgekit.quantize.calibration import calibration_batches

    variants = build_variants(onnx, int8_configs(calib, calib_size))
    meta = read_meta(onnx)
    parity = calibration_batches(calib, onnx, meta, 64, seed=0, split="test")
    config = MeasureConfig(runtimes=RUNTIME_NAMES, threads=threads, timing=plan)
    reports = measure_rounds(variants, meta, config, split, parity, rounds)
    show(reports[0])
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--skip-speed", "--skip-resnet", action="store_true", help="leave out the speed part")
    parser.add_argument("--skip-lenet", action="store_true")
    parser.add_argument("--skip-detector", action="store_true")
    parser.add_argument("--models", default="resnet18,mobilenet_v3_small", help="models of the speed part")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per row")
    parser.add_argument("--calib-size", type=int, default=32, help="calibration images of the speed part")
    parser.add_argument("--accuracy-calib-size", type=int, default=128,
                        help="calibration images of LeNet and the detector (the CLI's default)")
    parser.add_argument("--detector-epochs", type=int, default=None,
                        help="shorter detector training [default: the recipe's]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row's timing, one after another")
    add_results_flag(parser)
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)} (expected {', '.join(PARTS)})")
    skipped = {"speed": args.skip_speed, "lenet": args.skip_lenet, "detector": args.skip_detector}
    parts = [p for p in parts if not skipped[p]]
    plan = Timing(warmup=10, min_runs=20, min_duration_s=args.seconds, rounds=1)
    results = Results("quantization", enabled=not args.no_results)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if "speed" in parts:
            for model in args.models.split(","):
                speed_part(model.strip(), args.size, args.threads, plan, args.calib_size, folder, args.rounds,
                           results)
        if "lenet" in parts:
            lenet_part(args.threads, plan, args.accuracy_calib_size, folder, args.rounds, results)
        if "detector" in parts:
            detector_part(args.threads, plan, args.accuracy_calib_size, args.detector_epochs, folder, args.rounds,
                          results)
    results.write()


if __name__ == "__main__":
    main()
