"""The `edgekit` command: a thin typer app; each verb group lives in its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="edgekit",
    help="Export, run, benchmark and evaluate CNNs on edge runtimes through ONNX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines register(app); heavy imports stay inside the command bodies.
COMMAND_MODULES = ("models", "runtimes", "export", "bench", "inspect", "compare", "quantize", "train", "eval",
                   "report", "optimize")

for _module in COMMAND_MODULES:
    importlib.import_module(f"edgekit.cli.{_module}").register(app)


def main() -> None:
    app()
