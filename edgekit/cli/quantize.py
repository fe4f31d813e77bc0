"""`edgekit quantize`: INT8 static/dynamic and FP16 variants, their cost in accuracy and gain in speed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("quantize")(handle_errors(quantize))


def quantize(
    model: str = typer.Argument(..., help="An FP32 .onnx file (or a zoo name, exported first)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.onnx; .xml for nncf; .engine for trt)."),
    mode: Optional[list[str]] = typer.Option(None, "--mode", "-m",
                                             help="int8-static | int8-dynamic | fp16 (repeatable) [default: int8-static]."),
    backend: Optional[list[str]] = typer.Option(None, help="ort (ONNX Runtime) | nncf (OpenVINO) | trt (TensorRT "
                                                "engine), repeatable [default: ort]."),
    calib: Optional[str] = typer.Option(None, help="Calibration data: dataset name (digits, shapes), image folder or .npz."),
    calib_size: Optional[int] = typer.Option(None, help="Calibration samples [default: 128]."),
    method: Optional[str] = typer.Option(None, help="Calibration: minmax | entropy | percentile [default: minmax]."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per output channel."),
    activations: str = typer.Option("u8", help="Activation type of static INT8: u8 (fast with s8 weights) | s8."),
    exclude: Optional[list[str]] = typer.Option(None, help="Node to keep in float: a name, @first or @last (repeatable)."),
    report: bool = typer.Option(False, "--report", help="Measure FP32 and the variants: size, latency, accuracy, agreement."),
    runtime: Optional[list[str]] = typer.Option(None, "--runtime", "-r",
                                                help="Runtimes for the report (repeatable) [default: ort-cpu, openvino]."),
    eval_data: Optional[str] = typer.Option(None, "--eval", help="Dataset for accuracy [default: the calibration dataset]."),
    eval_size: int = typer.Option(500, help="Evaluation samples."),
    max_drop: Optional[float] = typer.Option(None, help="Keep the fastest variant within this accuracy drop (points: top-1 %, mAP x 100)."),
    threads: Optional[int] = typer.Option(None, help="Inference threads in the report."),
    duration: float = typer.Option(1.0, help="Seconds of timing per row of the report."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    seed: int = typer.Option(0, help="Seed for calibration and evaluation sampling."),
    overwrite_input: bool = typer.Option(False, "--overwrite-input", help="Allow OUTPUT to replace the source model."),
) -> None:
    """Quantize MODEL. With several --mode, --report or --max-drop: build every variant, measure
    them side by side, and (with --max-drop) write the fastest one within budget to OUTPUT."""
    check_numbers(calib_size=calib_size, eval_size=eval_size, max_drop=max_drop, threads=threads, duration=duration,
                  seed=seed)
    check_outputs(output, inputs=[calib] if overwrite_input else [model, calib], special_ok=False, flag="--overwrite-input")
    check_outputs(json_out, inputs=[model, calib, output])
    from edgekit.errors import BadInputError
    from edgekit.quantize.base import QuantizeConfig
    from edgekit.quantize.base import quantize as run_quantize
    from edgekit.sources import resolve_model

    from edgekit.quantize.base import QUANTIZERS

    modes = list(dict.fromkeys(mode or ["int8-static"]))
    backends = list(dict.fromkeys(backend or ["ort"]))
    pairs = [(b, m) for b in backends for m in modes]
    if len(pairs) > 1:  # in a sweep, skip combinations no backend offers (nncf has int8-static only)
        pairs = [(b, m) for b, m in pairs if f"{b}:{m}" in QUANTIZERS] or pairs[:1]
    configs = [QuantizeConfig(mode=m, backend=b, calib=calib, calib_size=calib_size or 128,
                              method=method or "minmax", per_channel=per_channel, activations=activations,
                              exclude=tuple(exclude or ()), seed=seed) for b, m in pairs]
    _check_calibration_used(configs, calib, calib_size, method, report or max_drop is not None)
    if max_drop is not None and max_drop < 0:
        raise BadInputError(f"--max-drop must be 0 or more, got {max_drop}")
    if not output.parent.is_dir():
        raise BadInputError(f"output directory {output.parent} does not exist")
    source = resolve_model(model)
    out = _wide_console()
    if len(configs) == 1 and not report and max_drop is None:
        result = run_quantize(source, output, configs[0])
        _print_result(out, result)
        return
    _sweep(out, source, output, configs, runtime, eval_data or calib, eval_size, max_drop, threads, duration,
           json_out, seed)


def _check_calibration_used(configs, calib, calib_size, method, measured: bool) -> None:
    """Calibration options with no calibrating mode would be silently ignored: refuse them. (With
    --report/--max-drop, --calib is still the default evaluation data, so it alone is accepted.)"""
    from edgekit.errors import BadInputError

    if any(c.mode == "int8-static" for c in configs):
        return
    given = [name for name, value in (("--calib", None if measured else calib), ("--calib-size", calib_size),
                                      ("--method", method)) if value is not None]
    if given:
        modes = ", ".join(dict.fromkeys(c.mode for c in configs))
        raise BadInputError(f"{', '.join(given)}: only int8-static uses calibration, and no selected mode ({modes}) does")


def _wide_console():
    """The report has ten columns: when not on a terminal, do not squeeze it into 80."""
    import sys

    from rich.console import Console

    return console() if sys.stdout.isatty() else Console(width=150)


def _print_result(out, result) -> None:
    check = (result.meta.recipe or {}).get("check") or {}
    kernels = ", ".join(f"{op} {n}" for op, n in list(result.node_types.items())[:6])
    agreement = ""
    if check:
        source = f" ({check['data']})" if check.get("data") else ""
        agreement = f"; vs FP32 on {check['samples']} samples{source}: cosine {check['cosine']:.4f}"
        if check.get("top1_agreement_pct") is not None:
            agreement += f", top-1 agreement {check['top1_agreement_pct']:.1f}%"
    out.print(f"wrote {result.path} ({result.config.variant}, {result.meta.precision}){agreement}")
    if kernels:
        out.print(f"nodes: {kernels}")


def _sweep(out, source, output, configs, runtimes, eval_data, eval_size, max_drop, threads, duration,
           json_out, seed) -> None:
    import tempfile

    from edgekit.bench import LoopPlan
    from edgekit.errors import BadInputError
    from edgekit.meta import read_meta
    from edgekit.quantize.calibration import calibration_batches
    from edgekit.quantize.report import MeasureConfig, Variant, bf16_variant, measure, render
    from edgekit.quantize.select import build_variants, choose
    from edgekit.runtimes import RUNTIMES

    meta = read_meta(source)
    names = runtimes or [name for name in ("ort-cpu", "openvino") if name in RUNTIMES]
    config = MeasureConfig(runtimes=tuple(names), threads=threads,
                           plan=LoopPlan(warmup=5, min_runs=20, min_duration_s=duration))
    split = _eval_split(eval_data, meta, eval_size, seed)
    if max_drop is not None and split is None:
        raise BadInputError("--max-drop needs labelled data to measure accuracy: --eval DATASET (or --calib DATASET)")
    parity = calibration_batches(eval_data, source, meta, 64, seed, split="test") if eval_data else None
    fp32 = Variant("fp32", source, "fp32")
    extra = [v for v in (bf16_variant(fp32),) if v is not None and "openvino" in [RUNTIMES.canonical(n) for n in names]]

    def run(variants):
        return measure(variants, meta, config, split, parity)

    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=output.parent) as folder:
        if max_drop is not None:
            result, selection, kept = choose(source, output, configs, max_drop, RUNTIMES.canonical(names[0]),
                                             Path(folder), run, extra)
            out.print(render(result, (selection.kept.variant, selection.kept.runtime) if selection.kept else None))
            for variant, runtime, verdict in selection.reasons:
                out.print(f"  {variant} on {runtime}: {verdict}")
            out.print(f"{selection.summary} → {kept}")
        else:
            variants = build_variants(source, Path(folder), configs)
            result = run([*variants, *extra])
            out.print(render(result))
            _keep_all(out, variants[1:], output, len(configs) == 1)
    if json_out:
        write_json(json_out, result.to_dict())


def _keep_all(out, variants, output: Path, single: bool) -> None:
    """Move the built variants out of the scratch folder: OUTPUT itself, or OUTPUT.<variant>.<suffix>."""
    import os

    for variant in variants:
        target = output if single else output.with_name(f"{output.stem}.{variant.name}{variant.path.suffix}")
        if variant.path.suffix == ".xml":
            os.replace(variant.path.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(variant.path, target)
        out.print(f"wrote {target}")


def _eval_split(data, meta, size: int, seed: int):
    """The test split of a labelled dataset for accuracy, or None (image folders of unlabelled
    images and .npz inputs carry no labels)."""
    from pathlib import Path as _Path

    from edgekit.datasets import load_split
    from edgekit.errors import BadInputError

    if not data or _Path(data).suffix.lower() == ".npz" or meta.task == "unknown":
        return None
    from edgekit.quantize.calibration import recorded_split

    options, split_seed = recorded_split(meta, data, seed)  # the model's own test split, when it is its dataset
    try:
        split = load_split(data, split="test", seed=split_seed, **options)
    except (ModuleNotFoundError, BadInputError):
        return None
    if split.task != meta.task:
        raise BadInputError(f"model task '{meta.task}' does not match dataset task '{split.task}'")
    return split.take(size)
