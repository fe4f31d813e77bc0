"""Run the `edgekit` CLI for a test: in this process where a subprocess adds nothing (no torch import
per call), in a subprocess where the test needs one (blocked imports, environment that libraries read
when they load, a Ray cluster). Both give a ``CompletedProcess`` with the exit code and the text the
command wrote — in process too at file-descriptor level, so native libraries' warnings are captured.

EDGEKIT_TEST_SUBPROCESS=1 runs every call in a subprocess; EDGEKIT_TEST_COMMANDS=FILE appends each
call's command name to FILE (which commands a lane covers).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What the CLI sets before OpenCV loads (cli.app.quiet_libraries); FFmpeg reads it once per process, so
# the in-process commands need it before any test loads OpenCV. Subprocess calls still check the CLI's own.
OURS = {key: value for key, value in (("OPENCV_FFMPEG_LOGLEVEL", "-8"), ("OPENCV_LOG_LEVEL", "OFF"))
        if key not in os.environ}
os.environ.update(OURS)
#: environment the in-process runner can honour (edgekit reads these at call time)
IN_PROCESS_ENV = ("EDGEKIT_CACHE_DIR", "EDGEKIT_DATA_DIR", "EDGEKIT_DEBUG", "EDGEKIT_HOME")
#: arguments that need a process of their own (a Ray driver stays connected to its cluster)
SUBPROCESS_ARGS = ("--cluster",)


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None,
            prelude: str = "") -> subprocess.CompletedProcess:
    """Run `edgekit ARGS`; ``prelude`` is Python run first in a subprocess (e.g. to block imports)."""
    if os.environ.get("EDGEKIT_TEST_COMMANDS") and args:
        with open(os.environ["EDGEKIT_TEST_COMMANDS"], "a", encoding="utf-8") as log:
            log.write(f"{args[0]}\n")
    if prelude or os.environ.get("EDGEKIT_TEST_SUBPROCESS") == "1" or any(a in SUBPROCESS_ARGS for a in args) \
            or any(key not in IN_PROCESS_ENV for key in env or {}):
        return run_cli_subprocess(*args, env=env, cwd=cwd, prelude=prelude)
    return run_cli_in_process(*args, env=env, cwd=cwd)


def run_cli_subprocess(*args: str, env: dict | None = None, cwd: Path | None = None,
                       prelude: str = "") -> subprocess.CompletedProcess:
    code = f"{prelude}\nimport sys\nfrom edgekit.cli.app import main\nsys.argv = ['edgekit', *sys.argv[1:]]\nmain()"
    inherited = {key: value for key, value in os.environ.items() if key not in OURS}
    full_env = {**inherited, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=600)


def run_cli_in_process(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``main()`` with stdout/stderr (file descriptors 1 and 2) sent to files; the process state a command
    may change (environment, cwd, loggers, warnings filters, signal handlers, torch threads) is restored."""
    from edgekit.cli.app import main

    with _restored_state(), tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["edgekit", *args]
        with _descriptors_to(out, err):
            code = _call(main)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(["edgekit", *args], code, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def _call(main) -> int:
    try:
        main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - as an uncaught exception ends a process: traceback, exit 1
        traceback.print_exc()
        return 1
    return 0


class _descriptors_to:
    """Point file descriptors 1 and 2 (and sys.stdout/sys.stderr) at two files, and back."""

    def __init__(self, out, err) -> None:
        self.files = (out, err)

    def __enter__(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.saved_fds = (os.dup(1), os.dup(2))
        self.saved_streams = (sys.stdout, sys.stderr)
        os.dup2(self.files[0].fileno(), 1)
        os.dup2(self.files[1].fileno(), 2)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False, buffering=1)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = self.saved_streams
        for fd, saved in zip((1, 2), self.saved_fds):
            os.dup2(saved, fd)
            os.close(saved)


class _restored_state:
    """Save what a command may change in this process and put it back afterwards."""

    LOGGERS = ("", "nncf")
    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __enter__(self) -> None:
        from edgekit.runtimes.gpu_libraries import QUIET_PROCESS_LOG

        self.quiet = dict(QUIET_PROCESS_LOG)
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.argv = list(sys.argv)
        self.levels = {name: logging.getLogger(name).level for name in self.LOGGERS}
        self.filters = list(warnings.filters)
        self.handlers = {number: signal.getsignal(number) for number in self.SIGNALS}
        self.threads = _torch_threads()

    def __exit__(self, *exc) -> None:
        from edgekit.runtimes.gpu_libraries import QUIET_PROCESS_LOG

        QUIET_PROCESS_LOG.update(self.quiet)
        os.environ.clear()
        os.environ.update(self.environ)
        os.chdir(self.cwd)
        sys.argv = self.argv
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        warnings.filters[:] = self.filters
        for number, handler in self.handlers.items():
            signal.signal(number, handler)
        if self.threads is not None:
            sys.modules["torch"].set_num_threads(self.threads)


def _torch_threads() -> int | None:
    """torch's intra-op thread count (imported once here if installed: a command may import it and set it)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()
