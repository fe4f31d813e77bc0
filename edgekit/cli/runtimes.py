"""`edgekit runtimes`: which inference backends work here."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("runtimes")(handle_errors(runtimes))


def runtimes(json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the list as JSON.")) -> None:
    """List every registered runtime: available or missing (why, what to install), version, devices; then
    the GPU stack the GPU runtimes use: driver, libcudart, TensorRT (version, from which site-packages),
    its libraries and onnxruntime's GPU providers, each found or missing."""
    check_outputs(json_out)
    from rich.markup import escape
    from rich.table import Table

    from edgekit.runtimes import probe_all

    found = probe_all()
    table = Table(title="edgekit runtimes")
    for column in ("runtime", "status", "version", "devices / reason"):
        table.add_column(column)
    for item in found:
        if item.available:
            table.add_row(item.name, "[green]available[/]", item.version, escape(", ".join(item.devices)))
        else:
            detail = item.reason + (f" — {item.install}" if item.install else "")
            table.add_row(item.name, "[red]missing[/]", item.version or "-", escape(detail))
    console().print(table)
    console().print(gpu_stack_table())
    if json_out:
        write_json(json_out, [dataclasses.asdict(item) for item in found])


def gpu_stack_table():
    """What the GPU runtimes find here (a Jetson's JetPack included), one row a component."""
    from rich.markup import escape
    from rich.table import Table

    from edgekit.runtimes.gpu_libraries import gpu_stack

    table = Table(title="GPU stack")
    for column in ("component", "status", "found / missing"):
        table.add_column(column)
    for part in gpu_stack():
        table.add_row(part.name, "[green]found[/]" if part.found else "[red]missing[/]", escape(part.detail))
    return table
