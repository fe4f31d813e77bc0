"""Shared CLI plumbing: error handling, console, option parsing, JSON output."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from edgekit.errors import BadInputError, EdgekitError

F = TypeVar("F", bound=Callable[..., Any])


def console():
    from rich.console import Console

    return Console()


def handle_errors(function: F) -> F:
    """Turn EdgekitError into one line on stderr and its exit code (EDGEKIT_DEBUG=1: traceback)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except EdgekitError as exc:
            if os.environ.get("EDGEKIT_DEBUG") == "1":
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` runtime options; values become int/float/bool when they look so."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"runtime option must look like KEY=VALUE, got '{pair}'")
        options[key.strip().replace("-", "_")] = _coerce(raw.strip())
    return options


def _coerce(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def check_outputs(*paths: Path | None) -> None:
    """Refuse unwritable output paths before any work is done (the user should not wait for it)."""
    from edgekit.fileio import check_output_path

    for path in paths:
        if path is not None:
            check_output_path(path)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from edgekit.fileio import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def fmt_count(value: float) -> str:
    """12345678 → '12.35 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"
