"""`edgekit meta show|set`: read or change the edgekit metadata a model file carries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import console, handle_errors

meta_app = typer.Typer(help="Show or set a model's edgekit metadata (task, labels, preprocessing, decoder).",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    meta_app.command("show")(handle_errors(show))
    meta_app.command("set")(handle_errors(set_meta))
    app.add_typer(meta_app, name="meta")


def show(
    model: Path = typer.Argument(..., help="An .onnx file (or OpenVINO .xml, TensorRT engine)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Print the metadata edgekit reads from MODEL."""
    from edgekit.meta import read_meta

    meta = read_meta(model)
    if as_json:
        typer.echo(json.dumps({k: json.loads(v) for k, v in meta.to_props().items()}, indent=2))
        return
    _print(meta, str(model))


def set_meta(
    model: Path = typer.Argument(..., help="The .onnx file to change (rewritten atomically)."),
    pairs: Optional[list[str]] = typer.Argument(None, help="KEY=VALUE: task, labels (a,b or @labels.txt), mean, std, "
                                                "color, resize, input_size, input_name, decoder (name or JSON), "
                                                "any other key (kept in extra); RECORD.KEY=VALUE (decoder.type=yolo, "
                                                "embedding.threshold=0.7) changes one field of a record."),
    from_file: Optional[Path] = typer.Option(None, "--file", "-f", help="A YAML mapping of the same keys."),
    delete: Optional[list[str]] = typer.Option(None, "--delete", help="Remove this key, edgekit's or another "
                                               "tool's (repeatable)."),
) -> None:
    """Change MODEL's metadata so edgekit's Predictor, eval and compare treat it like a zoo export."""
    from edgekit.cli.user_model import meta_changes
    from edgekit.errors import BadInputError
    from edgekit.exporters.metadata import update_file

    changes = meta_changes(pairs, from_file)
    if not changes and not delete:
        raise BadInputError("nothing to set: give KEY=VALUE pairs, --file meta.yaml or --delete KEY")
    _print(update_file(model, changes, delete=tuple(delete or ())), str(model))


def _print(meta, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    table.add_column("key")
    table.add_column("value")
    for key, value in meta.to_props().items():
        if key == "labels" and len(meta.labels) > 8:
            value = f"{len(meta.labels)} labels: {', '.join(meta.labels[:5])}, …"
        table.add_row(key, escape(value))
    console().print(table)
