"""INT8 / FP16 vs FP32, side by side in one run, on ONNX Runtime CPU and OpenVINO.

Targets (issue 5): resnet18 (224, batch 1, 2 threads) INT8 static ≥ 2.5x faster than FP32 on
ort-cpu and ≥ 3x on openvino; the shapes detector INT8 ≥ 1.5x on ort-cpu; LeNet-5/digits top-1
drop ≤ 0.5 pt, detector ≤ 1 pt mAP@0.5. S8S8 activations, dynamic quantization and FP16 are
shown as they are (on ORT CPU they can be slower than FP32), and mobilenet_v3_small too.

Rows of one model are measured one after another in this process; the speedup column divides by
the FP32 row of the same runtime. Models use random weights (latency does not depend on them),
so accuracy here is output agreement; accuracy drops need the trained LeNet/detector (skipped
with a message when they are not in this checkout).

When the `openvino` runtime is not registered yet, OpenVINO is timed with a bare compiled
model loop (same LoopPlan) so its ratios are still measured.

    python benchmarks/quantization.py [--models resnet18,mobilenet_v3_small] [--size 224]
        [--threads 2] [--seconds 2] [--calib-size 32]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

from edgekit.bench import LoopPlan
from edgekit.bench.latency import LatencyStats, time_calls
from edgekit.quantize.base import QuantizeConfig
from edgekit.quantize.report import MeasureConfig, measure, render
from edgekit.quantize.select import build_variants
from edgekit.runtimes import RUNTIMES


def photo_like(count: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size // 16 + 1, size // 16 + 1, 3))
    return coarse.repeat(16, axis=1).repeat(16, axis=2)[:, :size, :size].astype(np.uint8)


def configs(calib: Path, size: int, nncf: bool) -> list[QuantizeConfig]:
    base = dict(calib=str(calib), calib_size=size)
    chosen = [QuantizeConfig(**base), QuantizeConfig(**base, activations="s8"),
              QuantizeConfig(mode="int8-dynamic"), QuantizeConfig(mode="fp16")]
    if nncf:
        chosen.append(QuantizeConfig(**base, backend="nncf"))
    return chosen


def openvino_rows(variants, threads: int, plan: LoopPlan) -> list[tuple[str, float, float]]:
    """(variant, p50, p90) on OpenVINO CPU with a bare loop (used only without the openvino runtime)."""
    import openvino as ov

    core = ov.Core()
    rows = []
    for variant in variants:
        if variant.path.suffix not in (".onnx", ".xml") or variant.precision == "fp16":
            continue
        compiled = core.compile_model(str(variant.path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                  "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        shape = [d if d > 0 else 1 for d in compiled.input(0).get_partial_shape().get_min_shape()]
        feed = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        stats = LatencyStats.from_ns(time_calls(lambda: request.infer({0: feed}), plan))
        rows.append((variant.name, stats.p50_ms, stats.p90_ms))
    return rows


def run_model(name: str, size: int, threads: int, plan: LoopPlan, calib_size: int, folder: Path) -> None:
    from rich.console import Console

    from edgekit.meta import read_meta
    from edgekit.quantize.calibration import calibration_batches
    from edgekit.sources import resolve_model

    console = Console(width=160)
    source = resolve_model(name, input_size=(size, size))
    calib = folder / f"{name}-calib.npz"
    np.savez(calib, images=photo_like(calib_size, size + 32))
    has_ov = importlib.util.find_spec("nncf") is not None
    variants = build_variants(source, folder, configs(calib, calib_size, has_ov))
    meta = read_meta(source)
    runtimes = tuple(r for r in ("ort-cpu", "openvino") if r in RUNTIMES)
    parity = calibration_batches(str(calib), source, meta, 16, seed=1)
    report = measure(variants, meta, MeasureConfig(runtimes=runtimes, threads=threads, plan=plan), None, parity)
    console.print(render(report))
    ort = {r.variant: r for r in report.rows if r.runtime == "ort-cpu"}
    print(f"{name} {size}x{size} ort-cpu INT8 static (u8s8) vs FP32: {ort['ort-int8-static'].speedup:.2f}x; "
          f"S8S8 {ort['ort-int8-static-s8s8'].speedup:.2f}x; dynamic {ort['ort-int8-dynamic'].speedup:.2f}x; "
          f"fp16 {ort['ort-fp16'].speedup:.2f}x")
    if "openvino" not in RUNTIMES and has_ov:
        rows = openvino_rows(variants, threads, plan)
        fp32 = next(p50 for v, p50, _ in rows if v == "fp32")
        print(f"{name} on OpenVINO (bare loop; the openvino runtime is not registered in this checkout):")
        for variant, p50, p90 in rows:
            print(f"  {variant:24s} p50 {p50:8.3f} ms  p90 {p90:8.3f} ms  speedup {fp32 / p50:5.2f}x")


def accuracy_targets() -> None:
    """LeNet-5/digits and the shapes detector: accuracy drops need their datasets and trainers."""
    for dataset, module in (("digits", "edgekit.datasets.digits"), ("shapes", "edgekit.datasets.shapes")):
        if importlib.util.find_spec(module) is None:
            print(f"skipped {dataset} accuracy drop: {module} is not in this checkout yet")
        else:
            print(f"{dataset} is available: run `edgekit quantize MODEL --calib {dataset} --report --max-drop 1` "
                  "on its trained model for the accuracy drop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,mobilenet_v3_small")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--calib-size", type=int, default=32)
    args = parser.parse_args()
    plan = LoopPlan(warmup=10, min_runs=20, min_duration_s=args.seconds)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            run_model(name.strip(), args.size, args.threads, plan, args.calib_size, Path(folder))
    accuracy_targets()


if __name__ == "__main__":
    main()
