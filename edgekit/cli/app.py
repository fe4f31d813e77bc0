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
                   "meta", "predict", "fuse", "edit", "report", "optimize", "profile")

for _module in COMMAND_MODULES:
    importlib.import_module(f"edgekit.cli.{_module}").register(app)


def main() -> None:
    """The console entry point: ``app()``, except that a usage error (an unknown option, a value of
    the wrong type) is one 'error:' line with exit 2, like every other bad input."""
    import sys

    from typer.main import get_command

    from edgekit.runtimes.gpu_libraries import QUIET_PROCESS_LOG

    QUIET_PROCESS_LOG["enabled"] = True   # the command's own output, not ONNX Runtime's provider warnings
    quiet_libraries()
    try:
        code = get_command(app).main(prog_name="edgekit", standalone_mode=False)
    except typer.Abort:  # Ctrl-C outside a command (while click parses): as inside one
        typer.echo("error: interrupted (Ctrl-C)", err=True)
        sys.exit(128 + 2)
    except Exception as exc:  # typer's vendored click UsageError has no public name: match its shape
        message = exc.format_message() if hasattr(exc, "format_message") else None
        if getattr(exc, "exit_code", None) != 2 or message is None:
            raise
        if message:  # NoArgsIsHelpError: the help is already shown
            typer.echo(f"error: {message}", err=True)
        sys.exit(2)
    sys.exit(code or 0)


def quiet_libraries() -> None:
    """The CLI owns the process's logging (the library never changes a logger): the libraries it drives
    (NNCF, ONNX Runtime's quantization tools, Ray) log errors only, and OpenCV/FFmpeg (capture) print
    nothing of their own — edgekit reports their failures in one line — unless EDGEKIT_DEBUG=1 (or the
    OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL the user set)."""
    import logging
    import os
    import sys

    if os.environ.get("EDGEKIT_DEBUG") == "1":
        return
    for name in ("", "nncf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # read when OpenCV loads
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    cv2 = sys.modules.get("cv2")   # already loaded (edgekit used as a library before): set it directly
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"] == "OFF" and hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)
