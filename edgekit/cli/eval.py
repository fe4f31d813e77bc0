"""`edgekit eval`: accuracy of an ONNX model on a dataset, on one or every runtime, beside torch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options


def register(app: typer.Typer) -> None:
    app.command("eval")(handle_errors(eval_command))


def eval_command(
    model: str = typer.Argument(..., help="An .onnx model with edgekit metadata (task, preprocessing, labels), a zoo "
                                          "name, file.py:factory, package.module:factory, TorchScript or .pt2 "
                                          "(exported to the cache; give what it lacks with --meta)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="digits, shapes, an image folder or a COCO .json "
                                       "\\[default: the model's training dataset]."),
    runtime: str = typer.Option("ort-cpu", "--runtime", "-r", help="A runtime, a comma list, "
                                "or 'all' (every available FP32 runtime)."),
    split: str = typer.Option("test", help="train, val or test."),
    seed: Optional[int] = typer.Option(None, help="Split seed "
                                       "\\[default: the one the model was trained with, else 0]."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per inference call "
                                   "(fixed-batch models use theirs)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE (repeatable)."),
    torch_reference: Optional[bool] = typer.Option(
        None, "--torch/--no-torch",
        help="Also evaluate the source torch checkpoint \\[default: when it is known and torch is installed; "
             "--torch: required, an error if it cannot be]."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the records as JSON."),
    weights: Optional[Path] = WEIGHTS,
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
) -> None:
    """Top-1/top-5 (classification) or mAP (detection) of MODEL on each runtime, on the same split.

    A torch source is exported first (dynamic batch) and its own module gives the torch figure.
    """
    check_numbers(seed=seed, batch_size=batch_size)
    check_outputs(json_out, inputs=[model, data, weights, meta_file])
    given = source_options(weights, input_spec, meta_pair, meta_file)
    from edgekit.evaluate.across_runtimes import compare_runtimes

    result = compare_runtimes(model, runtime, data, split, seed, batch_size, parse_options(option), torch_reference,
                              weights=given.weights, inputs=given.specs, meta_changes=given.meta_changes)
    show(result)
    if json_out:
        write_json(json_out, result.to_dict())


def show(result) -> None:
    from rich.table import Table

    first = result.records[0]
    names = [k for k in first.metrics if k != "count"]
    table = Table(title=f"{result.model} on {result.dataset} ({result.split} split, seed {result.seed}, "
                        f"{first.count} images)")
    table.add_column("runtime")
    for name in names:
        table.add_column(name, justify="right")
    primary = first.primary_metric
    if result.reference:
        table.add_column(f"Δ{primary} vs torch", justify="right")
    table.add_column("seconds", justify="right")
    for record in result.records:
        delta = [f"{record.metrics[primary] - result.reference[primary]:+.2f}"] if result.reference else []
        table.add_row(f"{record.runtime} ({record.precision})", *(f"{record.metrics[n]:.2f}" for n in names),
                      *delta, f"{record.seconds:.2f}")
    if result.reference:
        figures = (f"{result.reference.get(n, float('nan')):.2f}" for n in names)
        table.add_row(f"torch ({result.reference_kind})", *figures, "", "")
    out = console()
    out.print(table)
    if not result.reference:
        out.print(f"torch reference: none ({result.reference_note})")
    for name, reason in result.skipped.items():
        out.print(f"skipped {name}: {reason}")
