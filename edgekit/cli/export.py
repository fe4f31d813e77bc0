"""`edgekit export`: zoo model → verified ONNX file with metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors


def register(app: typer.Typer) -> None:
    app.command("export")(handle_errors(export))


def export(
    model: str = typer.Argument(..., help="Zoo model name (see `edgekit models`)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .onnx file [default: MODEL.onnx]."),
    opset: int = typer.Option(17, help="ONNX opset version."),
    batch: int = typer.Option(1, help="Fixed batch size of the exported graph."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch dimension symbolic."),
    input_size: Optional[str] = typer.Option(None, help="Input size, e.g. 224 or 160x128 [default: the model's]."),
    weights: Optional[Path] = typer.Option(None, help="A state_dict checkpoint (.pt) to load; random weights otherwise."),
    atol: float = typer.Option(1e-4, help="Absolute tolerance of the torch-vs-ONNX Runtime check."),
    rtol: float = typer.Option(1e-3, help="Relative tolerance of the torch-vs-ONNX Runtime check."),
    seed: int = typer.Option(0, help="Seed for random weights and the check's input."),
) -> None:
    """Export a zoo model to ONNX, then check it on ONNX Runtime against torch (exit 1 if they differ)."""
    check_numbers(opset=opset, batch=batch, atol=atol, rtol=rtol, seed=seed)
    from edgekit.exporters.config import ExportConfig, parse_input_size
    from edgekit.exporters.torch_onnx import export_zoo_model
    from edgekit.zoo.catalog import get_entry
    from rich.markup import escape

    entry = get_entry(model)
    output = output or Path(f"{entry.name}.onnx")
    if output.suffix.lower() != ".onnx":
        from edgekit.errors import BadInputError

        raise BadInputError(f"output must be an .onnx file, got '{output}'")
    check_outputs(output, inputs=[weights], special_ok=False)
    size = parse_input_size(input_size) if input_size else None
    config = ExportConfig(opset=opset, batch=batch, dynamic_batch=dynamic_batch, input_size=size,
                          atol=atol, rtol=rtol, seed=seed)
    result = export_zoo_model(entry.name, output, config, weights=weights)
    size_mb = result.path.stat().st_size / 2**20
    out = console()
    h, w = result.meta.input_size
    batch_text = "dynamic" if dynamic_batch else str(batch)
    out.print(f"exported [bold]{entry.name}[/] → {escape(str(result.path))} ({size_mb:.1f} MB, opset {opset}, "
              f"input {result.meta.channels}x{h}x{w}, batch {batch_text})")
    out.print(f"verified on ONNX Runtime vs torch: {result.parity.summary()}")
