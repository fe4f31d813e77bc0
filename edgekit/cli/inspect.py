"""`edgekit inspect`: static facts about an ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, fmt_count, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("inspect")(handle_errors(inspect))


def inspect(
    model: str = typer.Argument(..., help="An .onnx file, or a zoo name (exported to the cache first)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON."),
) -> None:
    """Inputs/outputs, opset, op histogram, parameters, MACs/FLOPs, file size and edgekit metadata."""
    check_outputs(json_out, inputs=[model])
    from rich.markup import escape
    from rich.table import Table

    from edgekit.graph.summary import summarize

    from edgekit.sources import resolve_model

    summary = summarize(resolve_model(model))
    out = console()
    opsets = ", ".join(f"{domain} {version}" for domain, version in summary.opsets.items())
    out.print(f"[bold]{escape(summary.path)}[/]  {summary.file_size_bytes / 2**20:.2f} MB  "
              f"producer {summary.producer or '?'}  IR {summary.ir_version}  opset {opsets}")
    out.print(f"parameters {fmt_count(summary.parameters)} ({summary.parameters:,})   "
              f"MACs {fmt_count(summary.macs)}   FLOPs {fmt_count(summary.flops)}   nodes {summary.node_count}")
    io = Table(title="inputs and outputs")
    for column in ("kind", "name", "dtype", "shape"):
        io.add_column(column)
    for kind, tensors in (("input", summary.inputs), ("output", summary.outputs)):
        for tensor in tensors:
            io.add_row(kind, tensor.name, tensor.dtype, "[" + ", ".join(str(d) for d in tensor.shape) + "]")
    out.print(io)
    ops = Table(title="operators")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, count in summary.op_histogram.items():
        ops.add_row(op, str(count))
    out.print(ops)
    meta = Table(title="edgekit metadata")
    meta.add_column("key")
    meta.add_column("value")
    for key, value in summary.meta.to_props().items():
        if key == "labels" and len(summary.meta.labels) > 8:
            value = f"{len(summary.meta.labels)} labels: {', '.join(summary.meta.labels[:5])}, …"
        meta.add_row(key, escape(value))
    out.print(meta)
    if json_out:
        write_json(json_out, summary.to_dict())
