"""`edgekit compare`: the same inputs through several runtimes (and torch), per-output differences."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options


def register(app: typer.Typer) -> None:
    app.command("compare")(handle_errors(compare))


def compare(
    model: str = typer.Argument(..., help="An .onnx file, a zoo name or a user torch model (file.py:factory, "
                                          "TorchScript, .pt2): exported first, torch is the reference."),
    runtimes: str = typer.Option("ort-cpu,openvino", "--runtimes", "-r", help="Comma-separated runtime names."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", "--load-inputs",
                                          help=".npz with one array per model input \\[default: random]."),
    seed: int = typer.Option(0, help="Seed of the random inputs."),
    batch: int = typer.Option(1, help="Batch size of the random inputs (and of a zoo export)."),
    input_size: Optional[str] = typer.Option(None, help="Input size when exporting a zoo model."),
    weights: Optional[Path] = WEIGHTS,
    atol: float = typer.Option(1e-4, help="Absolute tolerance."),
    rtol: float = typer.Option(1e-3, help="Relative tolerance."),
    min_cosine: float = typer.Option(0.999, help="Lowest cosine similarity that passes."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O",
                                               help="Runtime option RUNTIME.KEY=VALUE, e.g. openvino.precision=bf16."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the record as JSON."),
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
    data_loader: Optional[str] = typer.Option(None, "--data-loader", help="file.py:function yielding dicts of "
                                              "input name → array (every batch is compared)."),
    save_inputs: Optional[Path] = typer.Option(None, "--save-inputs", help="Save the inputs used (.npz)."),
    save_outputs: Optional[Path] = typer.Option(None, "--save-outputs", help="Save the reference's outputs (.npz) "
                                                "as golden outputs for a later --load-outputs."),
    load_outputs: Optional[Path] = typer.Option(None, "--load-outputs", help="Golden outputs (.npz) to check every "
                                                "runtime against (exit 1 on mismatch)."),
    iou: float = typer.Option(0.5, "--iou", help="Detectors: IoU at which boxes match."),
    score_tol: float = typer.Option(0.02, "--score-tol", help="Detectors: largest score difference of matched boxes."),
) -> None:
    """Run MODEL on each runtime with the same inputs; exit 1 if any output is outside --atol/--rtol.

    Reference: torch for a zoo name, else the first runtime. Per output: max abs and relative
    error, cosine similarity, top-1 agreement for classifier scores.
    """
    from edgekit.compare import compare as run_compare
    from edgekit.errors import CheckFailedError
    from edgekit.exporters.config import parse_input_size

    from edgekit.compare import CompareInputs

    check_numbers(seed=seed, batch=batch, atol=atol, rtol=rtol, min_cosine=min_cosine)
    check_outputs(json_out, save_inputs, save_outputs, inputs=[model, inputs, weights, load_outputs, meta_file])
    given = source_options(weights, input_spec, meta_pair, meta_file)
    names = [name.strip() for name in runtimes.split(",") if name.strip()]
    io = CompareInputs(inputs=inputs, data_loader=data_loader, specs=given.specs,
                       save_inputs=save_inputs, save_outputs=save_outputs, load_outputs=load_outputs)
    record = run_compare(
        model, names, seed=seed, batch=batch,
        input_size=parse_input_size(input_size) if input_size else None, weights=weights,
        atol=atol, rtol=rtol, min_cosine=min_cosine, runtime_options=_split_options(option), io=io,
        iou_threshold=iou, score_tol=score_tol, meta_changes=given.meta_changes,
    )
    print_record(record)
    if json_out:
        write_json(json_out, record.to_dict())
    if not record.passed:
        failing = "; ".join(f"{r.runtime}: {(r.boxes or r.parity).summary()}" for r in record.results if not r.passed)
        raise CheckFailedError(f"compare failed against {record.reference} — {failing}")


def _split_options(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """['openvino.precision=bf16'] → {'openvino': {'precision': 'bf16'}}."""
    from edgekit.errors import BadInputError

    options: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        runtime, dot, rest = pair.partition(".")
        if not dot or "=" not in rest or "=" in runtime:
            raise BadInputError(f"compare options look like RUNTIME.KEY=VALUE, got '{pair}'")
        options.setdefault(runtime.strip(), {}).update(parse_options([rest]))
    return options


def print_record(record) -> None:
    """A rich table: one row per runtime × output."""
    from rich.table import Table

    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in record.inputs.items())
    table = Table(title=f"{record.model}: runtimes vs {record.reference} — inputs {shapes} {record.input_source}")
    for column in ("runtime", "output", "max abs", "max rel", "cosine", "top-1", "result"):
        table.add_column(column, justify="left" if column in ("runtime", "output", "result") else "right")
    for result in record.results:
        for output in result.parity.outputs:
            top1 = "-" if output.top1_agreement is None else f"{output.top1_agreement:.1%}"
            verdict = "[green]pass[/]" if output.passed else "[red]FAIL[/]"
            table.add_row(f"{result.runtime} {result.version}", output.name, f"{output.max_abs:.3g}",
                          f"{output.max_rel:.3g}", f"{output.cosine:.6f}", top1, verdict)
    out = console()
    out.print(table)
    for result in record.results:
        if result.boxes is not None:
            out.print(f"{result.runtime} detections vs {record.reference}: {result.boxes.summary()}")
    out.print(f"tolerance: atol {record.atol:g}, rtol {record.rtol:g}, cosine ≥ {record.min_cosine:g} — "
              + ("[green]all runtimes pass[/]" if record.passed else
                 f"[red]failed: {', '.join(record.failed_runtimes)}[/]"))
