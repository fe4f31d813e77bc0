"""Shared CLI plumbing: error handling, termination signals, option parsing, console, JSON output.

The numeric limits (``check_numbers``, ``LIMITS``, the thread rule) are edgekit.limits', shared by every
door; they are re-exported here for the commands that import them from this module."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer

from edgekit.errors import BadInputError, EdgekitError, Terminated
from edgekit.limits import LIMITS, Limit, check_numbers, check_option, max_threads  # noqa: F401 (re-exported)

F = TypeVar("F", bound=Callable[..., Any])
TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def console():
    """Rich output; piped or redirected, lines are not wrapped (a path or a command stays on one line
    for grep and scripts)."""
    import sys

    from rich.console import Console

    return Console(soft_wrap=not sys.stdout.isatty())


def handle_errors(function: F) -> F:
    """Run a command: EdgekitError → one line on stderr and its exit code; SIGTERM/SIGHUP unwind
    like Ctrl-C so partial files are removed, and each (Ctrl-C too) is one line. EDGEKIT_DEBUG=1
    adds the traceback, same exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with termination_unwinds() as received:
                try:
                    return function(*args, **kwargs)
                except Exception:  # C code (an extension's init, a backend) can turn Terminated into its own error
                    if received:
                        raise Terminated(received[0]) from None
                    raise
        except EdgekitError as exc:
            _fail(f"error: {exc}", exc.exit_code)
        except Terminated as exc:
            _fail(f"error: stopped by {exc}; partial outputs were removed", exc.exit_code)
        except RecursionError:  # a backstop: readers bound nesting (edgekit.limits), this names none
            _fail("error: the input nests too deeply to be read", 2)
        except KeyboardInterrupt:  # Ctrl-C, or a user's factory raising it: say so, exit as shells expect
            # (no word on outputs: a video being saved is kept, a second Ctrl-C can cut a clean-up short)
            _fail("error: interrupted (Ctrl-C)", 128 + 2)

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int) -> None:
    if os.environ.get("EDGEKIT_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    typer.echo(message, err=True)
    raise typer.Exit(code) from None


@contextlib.contextmanager
def termination_unwinds() -> Iterator[list[int]]:
    """While the block runs, SIGTERM and SIGHUP raise ``Terminated`` (once; a second signal during
    the clean-up is ignored, SIGKILL still works); yields the list the signal number is added to.
    Outside the main thread: no change."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        for number in TERMINATION_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        received.append(signum)
        raise Terminated(signum)

    previous = {number: signal.signal(number, handler) for number in TERMINATION_SIGNALS}
    try:
        yield received
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` runtime options; values become int/float/bool when they look so (an
    integer only when written as one: 0123 stays text, so a list of characters keeps its leading 0)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"runtime option must look like KEY=VALUE, got '{pair}'")
        name, value = key.strip().replace("-", "_"), _coerce(raw.strip())
        check_option(name, value)
        options[name] = value
    return options


def _coerce(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", raw):
        return int(raw)
    if re.fullmatch(r"[+-]?[0-9]*", raw):  # 0123, +5: text that int() would change
        return raw
    try:
        return float(raw)
    except ValueError:
        return raw


def check_outputs(*paths: Path | None, inputs: Iterable[Any] = (), special_ok: bool = True, flag: str = "") -> None:
    """Refuse unwritable output paths, and outputs that are one of ``inputs``, before any work is done.

    ``special_ok``: a device or FIFO is a valid output (JSON written in place); False for model files.
    ``flag``: the option that lets the user replace an input, named in the error."""
    from edgekit.fileio import check_not_input, check_output_path

    sources = [Path(source) for source in inputs if source is not None]
    for path in paths:
        if path is not None:
            check_output_path(path, special_ok=special_ok)
            check_not_input(path, sources, flag)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON: atomically to a file, in place to a device or FIFO."""
    from edgekit.fileio import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def fmt_count(value: float) -> str:
    """12345678 → '12.35 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"
