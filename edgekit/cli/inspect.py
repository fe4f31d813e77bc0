"""`edgekit inspect`: static facts about an ONNX file, per layer, and per runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, fmt_count, handle_errors, parse_options, write_json
from edgekit.cli.source_options import META, META_FILE, WEIGHTS, source_options


def register(app: typer.Typer) -> None:
    app.command("inspect")(handle_errors(inspect))


def inspect(
    model: str = typer.Argument(..., help="An .onnx file, a zoo name, file.py:factory, package.module:factory, "
                                          "TorchScript or .pt2 (exported to the cache first)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON."),
    layers: bool = typer.Option(False, "--layers", help="Per-layer table: shape, kernel, stride, padding, groups, "
                                "activation, parameters, MACs, receptive field and jump."),
    input_spec: Optional[list[str]] = typer.Option(None, "--input", help="Fix an input's dims, name:1x3x224x224 "
                                                   "(repeatable), to resolve dynamic dims."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Show which nodes this runtime cannot run "
                                          "or places elsewhere (ort-cpu, ort-cuda, ort-trt, openvino)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE "
                                               "(with --runtime)."),
    weights: Optional[Path] = WEIGHTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
) -> None:
    """Inputs/outputs, opset, op histogram, parameters, MACs/FLOPs, file size and edgekit metadata."""
    check_outputs(json_out, inputs=[model, weights, meta_file])
    from edgekit.graph.summary import summarize
    from edgekit.inputs.specs import shape_overrides
    from edgekit.sources import parse_source, resolve_model

    given = source_options(weights, input_spec, meta_pair, meta_file)
    path = resolve_model(model, weights=given.weights, inputs=given.specs if parse_source(model).is_torch else (),
                         meta_changes=given.meta_changes)
    shapes = shape_overrides(given.specs)
    if runtime:
        from edgekit.graph.placement import inspect_placement

        report = inspect_placement(path, runtime, **parse_options(option))
        print_placement(report)
        if json_out:
            write_json(json_out, report.to_dict())
        return
    summary = summarize(path, shapes, layers=layers)
    print_summary(summary)
    if layers:
        print_layers(summary)
    if json_out:
        write_json(json_out, summary.to_dict())


def _dims(shape) -> str:
    from rich.markup import escape

    from edgekit.graph.layers import dim_text

    return escape("[" + ", ".join(dim_text(d) for d in shape) + "]") if shape is not None else "?"


def print_summary(summary) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    opsets = ", ".join(f"{domain} {version}" for domain, version in summary.opsets.items())
    out.print(f"[bold]{escape(summary.path)}[/]  {summary.file_size_bytes / 2**20:.2f} MB  "
              f"producer {escape(summary.producer or '?')}  IR {summary.ir_version}  opset {escape(opsets)}")
    macs = (f"MACs {fmt_count(summary.macs)}   FLOPs {fmt_count(summary.flops)}" if summary.macs is not None
            else "MACs ? (need a shape)")
    out.print(f"parameters {fmt_count(summary.parameters)} ({summary.parameters:,})   {macs}   "
              f"nodes {summary.node_count}")
    if summary.macs_note:
        out.print(escape(summary.macs_note))
    io = Table(title="inputs and outputs")
    for column in ("kind", "name", "dtype", "shape"):
        io.add_column(column)
    for kind, tensors in (("input", summary.inputs), ("output", summary.outputs)):
        for tensor in tensors:
            io.add_row(kind, escape(tensor.name), escape(str(tensor.dtype)), _dims(tensor.shape))
    out.print(io)
    ops = Table(title="operators")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, count in summary.op_histogram.items():
        ops.add_row(escape(op), str(count))
    out.print(ops)
    meta = Table(title="edgekit metadata")
    meta.add_column("key")
    meta.add_column("value")
    for key, value in summary.meta.to_props().items():
        if key == "labels" and len(summary.meta.labels) > 8:
            value = f"{len(summary.meta.labels)} labels: {', '.join(summary.meta.labels[:5])}, …"
        meta.add_row(escape(key), escape(value))
    out.print(meta)
    for warning in summary.warnings:
        out.print(f"warning: {warning}", markup=False, highlight=False)


def print_layers(summary) -> None:
    from rich.markup import escape
    from rich.table import Table

    def pair(values) -> str:
        return "-" if not values else "x".join(f"{v:g}" for v in values)

    table = Table(title="layers (receptive field and jump: height x width, in input pixels)")
    for column in ("#", "layer", "type", "output", "kernel", "stride", "pad", "groups", "act", "params", "MACs",
                   "RF", "jump"):
        table.add_column(column, justify="right" if column in ("#", "params", "MACs", "groups") else "left")
    for index, row in enumerate(summary.layers):
        macs = "?" if row.macs is None else (fmt_count(row.macs) if row.macs else "-")
        table.add_row(str(index), escape(row.name), escape(row.op), _dims(row.output_shape), pair(row.kernel),
                      pair(row.stride), escape(row.padding) or "-", "-" if row.groups is None else str(row.groups),
                      escape(row.activation or "-"), f"{row.parameters:,}" if row.parameters else "-", macs,
                      pair(row.receptive_field), pair(row.jump))
    from rich.console import Console

    Console(width=max(console().width, 180)).print(table)  # 13 columns: never squeeze them into 80


def print_placement(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    placed = escape(", ".join(f"{where} {count}" for where, count in report.placement.items()) or "-")
    out.print(f"[bold]{escape(report.runtime)}[/] (target {escape(report.target)}): "
              + (f"{report.node_count} nodes after its optimisations — {placed}" if report.loadable
                 else "[red]cannot load the model[/]"))
    if report.note:
        out.print(escape(report.note))
    if not report.findings:
        out.print(f"every node runs on {report.target}" if report.loadable else "", markup=False)
        return
    table = Table(title="nodes not run on the target")
    for column in ("node", "op", "placed on", "hint"):
        table.add_column(column)
    for finding in report.findings:
        table.add_row(escape(finding.node or "-"), escape(finding.op), escape(finding.placed_on), escape(finding.hint))
    out.print(table)
