"""Shared CLI plumbing: error handling, termination signals, option checks, console, JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer

from edgekit.errors import BadInputError, EdgekitError, Terminated

F = TypeVar("F", bound=Callable[..., Any])
TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def console():
    from rich.console import Console

    return Console()


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


@dataclass(frozen=True)
class Limit:
    """The accepted range of a numeric option: finite, ``low`` (exclusive if ``open_low``) to ``high``."""

    low: float
    high: float
    open_low: bool = False

    def accepts(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        return math.isfinite(value) and above and value <= self.high

    def describe(self) -> str:
        low = f"more than {_number(self.low)}" if self.open_low else f"at least {_number(self.low)}"
        return f"a number {low} and at most {_number(self.high)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def max_threads() -> int:
    """More threads than 4 per core only thrash (an unbounded value hung a runtime for minutes)."""
    return min(1024, max(16, 4 * (os.cpu_count() or 1)))


# One table for every command's numeric options (flag name without "--", dashes as underscores).
LIMITS: dict[str, Limit] = {
    "batch": Limit(1, 4096), "batch_size": Limit(1, 65536), "threads": Limit(1, max_threads()),
    "warmup": Limit(0, 1_000_000), "runs": Limit(1, 10_000_000), "duration": Limit(0, 86_400, open_low=True),
    "atol": Limit(0, 1e6), "rtol": Limit(0, 1e6), "min_cosine": Limit(-1, 1), "max_drop": Limit(0, 100),
    "eval_size": Limit(1, 10_000_000), "calib_size": Limit(1, 1_000_000), "epochs": Limit(1, 100_000),
    "lr": Limit(0, 100, open_low=True), "per_class": Limit(1, 10_000_000), "patience": Limit(0, 100_000),
    "seed": Limit(0, 2**32 - 1), "opset": Limit(1, 100), "rounds": Limit(1, 1000),
    "time_limit": Limit(0, 30 * 86_400, open_low=True), "allow_batch": Limit(2, 4096),
}


def check_numbers(**values: float | None) -> None:
    """Refuse NaN, infinities and out-of-range values of numeric options in one line (None: not given)."""
    for name, value in values.items():
        if value is None or isinstance(value, bool):
            continue
        limit = LIMITS[name]
        if not isinstance(value, (int, float)) or not limit.accepts(value):
            raise BadInputError(f"--{name.replace('_', '-')} must be {limit.describe()}, got {value}")


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` runtime options; values become int/float/bool when they look so."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"runtime option must look like KEY=VALUE, got '{pair}'")
        name, value = key.strip().replace("-", "_"), _coerce(raw.strip())
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInputError(f"option {name} must be a finite number, got {raw.strip()}")
        if name in LIMITS and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not LIMITS[name].accepts(value):
            raise BadInputError(f"option {name} must be {LIMITS[name].describe()}, got {value}")
        options[name] = value
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
