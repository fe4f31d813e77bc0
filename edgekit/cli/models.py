"""`edgekit models`: the model zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, fmt_count, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("models")(handle_errors(models))


def models(json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the list as JSON.")) -> None:
    """List the zoo: architectures, parameter counts and default input sizes (data: nothing is built)."""
    check_outputs(json_out)
    from rich.table import Table

    from edgekit.zoo.catalog import entries

    rows = [{"name": entry.name, "family": entry.family, "task": entry.task, "parameters": entry.parameters,
             "input_size": list(entry.input_size), "color": entry.color, "classes": entry.num_classes}
            for entry in entries()]
    table = Table(title="edgekit model zoo (random weights unless --weights is given)")
    for column in ("model", "family", "params", "input", "classes"):
        table.add_column(column, justify="right" if column in ("params", "classes") else "left")
    for row in rows:
        size = f"{row['color'].lower()} {row['input_size'][0]}x{row['input_size'][1]}"
        params = fmt_count(row["parameters"])
        table.add_row(row["name"], row["family"], params, size, str(row["classes"]))
    console().print(table)
    if json_out:
        write_json(json_out, rows)

