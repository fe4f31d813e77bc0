"""`edgekit edit`: the model surgery a foreign .onnx needs before it deploys (dims, weights listed as
inputs, the output that holds the scores), written to a new file verified against the original."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, handle_errors


def register(app: typer.Typer) -> None:
    app.command("edit")(handle_errors(edit))


def edit(
    model: Path = typer.Argument(..., help="An .onnx model."),
    output: Path = typer.Option(..., "-o", "--output", help="The edited .onnx (never the input)."),
    input_dims: Optional[list[str]] = typer.Option(None, "--input", help="NAME:DIMS, fixed or dynamic dims, e.g. "
                                                   "images:1x3x640x640 or images:Nx3xHxW (repeatable)."),
    weights_to_initializers: bool = typer.Option(False, "--weights-to-initializers", help="Drop weights listed as "
                                                 "graph inputs (runtimes treat them as inputs: slower)."),
    keep_output: Optional[str] = typer.Option(None, "--output-name", help="Keep only this output (e.g. the class "
                                              "scores of a multi-output classifier) and the nodes it needs."),
) -> None:
    """Write MODEL with the changes asked for to -o; kept only when it computes the same outputs as MODEL
    on the same input (exit 1 otherwise, nothing written)."""
    from edgekit.errors import BadInputError
    from edgekit.exporters.surgery import Edits, edit_model, parse_dims

    if output.suffix.lower() != ".onnx":
        raise BadInputError(f"output must be an .onnx file, got '{output}'")
    if not model.is_file():
        raise BadInputError(f"model file not found: {model}")
    check_outputs(output, inputs=[model], special_ok=False)
    dims = dict(parse_dims(text) for text in input_dims or ())
    result = edit_model(model, output, Edits(dims, weights_to_initializers, keep_output))
    out = console()
    for change in result.changes:
        out.print(f"{change}", markup=False, highlight=False)
    out.print(f"wrote {result.path}: outputs equal to the original's on the same input "
              f"(max abs diff {result.max_abs_diff:.3g})", markup=False, highlight=False)
