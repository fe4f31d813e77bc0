"""`edgekit models`: the model zoo and the reference models edgekit trains."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, fmt_count, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("models")(handle_errors(models))


def models(json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the list as JSON.")) -> None:
    """List the zoo (architectures, parameter counts, default input sizes) and the reference models
    `edgekit train` makes, with their task, data and metric (data: nothing is built)."""
    check_outputs(json_out)
    rows = zoo_rows() + reference_rows()
    print_tables(rows)
    if json_out:
        write_json(json_out, rows)


def zoo_rows() -> list[dict]:
    from edgekit.zoo.catalog import entries

    return [{"kind": "zoo", "name": entry.name, "family": entry.family, "task": entry.task,
             "parameters": entry.parameters, "input_size": list(entry.input_size), "color": entry.color,
             "classes": entry.num_classes} for entry in entries()]


def reference_rows() -> list[dict]:
    from edgekit.train.catalog import reference_models

    return [{"kind": "reference", "name": model.recipe, "task": model.task, "data": model.data,
             "architecture": model.architecture, "parameters": model.parameters,
             "input_size": list(model.input_size) if model.input_size else None, "color": model.color,
             "metric": model.metric} for model in reference_models()]


def print_tables(rows: list[dict]) -> None:
    from rich.table import Table

    zoo = Table(title="edgekit model zoo (random weights unless --weights is given)")
    reference = Table(title="reference models, trained here on offline data: edgekit train RECIPE --data DATA")
    for column in ("model", "family", "params", "input", "classes"):
        zoo.add_column(column, justify="right" if column in ("params", "classes") else "left")
    for column in ("recipe", "task", "data", "params", "metric"):  # input size and network: in --json
        reference.add_column(column, justify="right" if column == "params" else "left",
                             no_wrap=column not in ("data", "metric"))
    for row in rows:
        params = fmt_count(row["parameters"]) if row["parameters"] else "—"
        if row["kind"] == "zoo":
            size = f"{row['color'].lower()} {row['input_size'][0]}x{row['input_size'][1]}"
            zoo.add_row(row["name"], row["family"], params, size, str(row["classes"]))
        else:
            reference.add_row(row["name"], row["task"], row["data"], params, row["metric"])
    console().print(zoo)
    console().print(reference)
