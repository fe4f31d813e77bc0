"""`edgekit quantize`: INT8 static/dynamic and FP16 variants, their cost in accuracy and gain in speed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options
from edgekit.fileio import check_distinct, is_special, same_output


def register(app: typer.Typer) -> None:
    app.command("quantize")(handle_errors(quantize))


def quantize(
    model: str = typer.Argument(..., help="An FP32 .onnx file, a zoo name or a torch source (exported first)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.onnx; .xml for nncf; .engine for trt)."),
    mode: Optional[list[str]] = typer.Option(None, "--mode", "-m",
                                             help="int8-static | int8-dynamic | fp16 (repeatable) "
                                             "\\[default: int8-static]."),
    backend: Optional[list[str]] = typer.Option(None, help="ort (ONNX Runtime) | nncf (OpenVINO) | trt (TensorRT "
                                                "engine), repeatable \\[default: ort]."),
    calib: Optional[str] = typer.Option(None, help="Calibration data: dataset name (digits, shapes), "
                                        "image folder or .npz."),
    calib_size: Optional[int] = typer.Option(None, help="Calibration samples \\[default: 128]."),
    method: Optional[str] = typer.Option(None, help="Calibration: minmax | entropy | percentile \\[default: minmax]."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per output channel."),
    activations: str = typer.Option("u8", help="Activation type of static INT8: u8 (fast with s8 weights) | s8."),
    exclude: Optional[list[str]] = typer.Option(None, help="Node to keep in float: a name, @first or @last "
                                                "(repeatable)."),
    report: bool = typer.Option(False, "--report", help="Measure FP32 and the variants: "
                                "size, latency, accuracy, agreement."),
    runtime: Optional[list[str]] = typer.Option(None, "--runtime", "-r",
                                                help="Runtimes for the report (repeatable) "
                                                "\\[default: ort-cpu, openvino]."),
    eval_data: Optional[str] = typer.Option(None, "--eval", help="Dataset for accuracy "
                                            "\\[default: the calibration dataset]."),
    eval_size: int = typer.Option(500, help="Evaluation samples."),
    max_drop: Optional[float] = typer.Option(None, help="Keep the fastest variant within this accuracy drop "
                                             "(points: top-1 %, mAP, mIoU or AUC x 100)."),
    threads: Optional[int] = typer.Option(None, help="Inference threads in the report."),
    duration: float = typer.Option(1.0, help="Seconds of timing per row of the report."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    seed: int = typer.Option(0, help="Seed for calibration and evaluation sampling."),
    input_spec: Optional[list[str]] = INPUTS,
    weights: Optional[Path] = WEIGHTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
    data_loader: Optional[str] = typer.Option(None, "--data-loader", help="Calibration from file.py:function "
                                              "yielding dicts of input name → array."),
    overwrite_input: bool = typer.Option(False, "--overwrite-input", help="Allow OUTPUT to replace the source model."),
) -> None:
    """Quantize MODEL. With several --mode, --report or --max-drop: build every variant, measure
    them side by side, and (with --max-drop) write the fastest one within budget to OUTPUT."""
    check_numbers(calib_size=calib_size, eval_size=eval_size, max_drop=max_drop, threads=threads, duration=duration,
                  seed=seed)
    check_outputs(output, inputs=[calib, weights, meta_file] if overwrite_input else [model, calib, weights, meta_file],
                  special_ok=False, flag="--overwrite-input")
    check_distinct([("-o", output), ("--json", json_out)])
    check_outputs(json_out, inputs=[model, calib, weights, meta_file])
    from edgekit.errors import BadInputError
    from edgekit.quantize.base import quantize as run_quantize
    from edgekit.quantize.sweep import SweepConfig, check_calibration_used, make_configs, sweep

    given = source_options(weights, input_spec, meta_pair, meta_file)
    if data_loader is not None:
        from edgekit.inputs.user_feeds import calibration_npz

        if calib is not None:
            raise BadInputError("give either --calib or --data-loader, not both")
        calib = str(calibration_npz(data_loader))
    configs = make_configs(mode, backend, calib=calib, calib_size=calib_size or 128, method=method or "minmax",
                           per_channel=per_channel, activations=activations, exclude=tuple(exclude or ()), seed=seed)
    check_calibration_used(configs, calib, calib_size, method, report or max_drop is not None)
    check_written(written_files(output, configs, report or max_drop is not None, max_drop is not None), json_out,
                  inputs=[model, calib, weights, meta_file])
    options = SweepConfig(runtimes=tuple(runtime or ()), eval_data=eval_data, eval_size=eval_size,
                          max_drop=max_drop, threads=threads, duration=duration, seed=seed)
    if not output.parent.is_dir():
        raise BadInputError(f"output directory {output.parent} does not exist")
    source = given.resolve(model)
    out = _wide_console()
    if len(configs) == 1 and not report and max_drop is None:
        _print_result(out, run_quantize(source, output, configs[0]))
        return
    result = sweep(source, output, configs, options)
    _print_sweep(out, result)
    if json_out:
        write_json(json_out, result.report.to_dict())


def check_written(written: list[Path], json_out: Path | None, inputs: list) -> None:
    """The files beside ``-o`` (``written[0]``) are no input, and ``--json`` is none of them: before any work."""
    from edgekit.errors import BadInputError

    check_outputs(*written[1:], inputs=inputs, special_ok=False)
    if json_out is not None and not is_special(json_out) and any(same_output(path, json_out) for path in written):
        raise BadInputError(f"--json {json_out} is one of the files quantize writes for -o {written[0]}")


def written_files(output: Path, configs, measured: bool, selected: bool) -> list[Path]:
    """``output`` first, then every other file the run may write: the variants of a sweep
    (``<stem>.<variant><suffix>``), the kept variant's suffix with --max-drop, an IR's .bin, an engine's .json."""
    from edgekit.quantize.base import kind_of

    suffixes = [kind_of(config.backend).suffix for config in configs]
    if selected:
        paths = [output.with_suffix(suffix) for suffix in dict.fromkeys([".onnx", *suffixes])]
    elif measured and len(configs) > 1:
        paths = [output.with_name(f"{output.stem}.{config.variant}{suffix}")
                 for config, suffix in zip(configs, suffixes)]
    else:
        paths = []
    paths = [output, *(path for path in paths if path != output)]
    beside = [path.with_suffix(".bin") for path in paths if path.suffix.lower() == ".xml"]
    beside += [path.with_suffix(path.suffix + ".json") for path in paths if path.suffix.lower() == ".engine"]
    return [*paths, *beside]


def _wide_console():
    """The report has ten columns: when not on a terminal, do not squeeze it into 80."""
    import sys

    from rich.console import Console

    return console() if sys.stdout.isatty() else Console(width=150, soft_wrap=True)


def _print_result(out, result) -> None:
    check = (result.meta.recipe or {}).get("check") or {}
    kernels = ", ".join(f"{op} {n}" for op, n in list(result.node_types.items())[:6])
    agreement = ""
    if check:
        source = f" ({check['data']})" if check.get("data") else ""
        figures = [f"cosine {check['cosine']:.4f}"] if check.get("cosine") is not None else []
        if check.get("miou") is not None:
            figures.append(f"{check['top1_agreement_pct']:.1f}% of mask pixels agree, mask mIoU {check['miou']:.4f}")
        elif check.get("top1_agreement_pct") is not None:
            figures.append(f"top-1 agreement {check['top1_agreement_pct']:.1f}%")
        agreement = f"; vs FP32 on {check['samples']} samples{source}: {', '.join(figures)}"
    out.print(f"wrote {result.path} ({result.config.variant}, {result.meta.precision}){agreement}",
              markup=False, highlight=False)
    if kernels:
        out.print(f"nodes: {kernels}", markup=False, highlight=False)


def _print_sweep(out, result) -> None:
    from edgekit.cli.quantize_table import render

    out.print(render(result.report, result.kept))
    if result.selection is None:
        for path in result.written:
            out.print(f"wrote {path}", markup=False, highlight=False)
        return
    for variant, runtime, verdict in result.selection.reasons:
        out.print(f"  {variant} on {runtime}: {verdict}", markup=False, highlight=False)
    out.print(f"{result.selection.summary} → {result.written[0]}", markup=False, highlight=False)
