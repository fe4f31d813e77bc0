"""The process that measures cells: ``python -m edgekit.matrix.worker``, fed pickled
(spec, cell, key) on stdin, answering pickled CellRecords on its own copy of stdout.

Its fd 1 is pointed at stderr, so a library printing to stdout cannot corrupt the answers.
One worker serves a whole run, keeping its MatrixContext (exports, data, FP32 references).
It ends when its parent dies, however it dies (SIGKILL, the OOM killer): the kernel signals it
(PR_SET_PDEATHSIG on Linux) and a watcher thread checks the parent elsewhere.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

from edgekit.matrix.cells import Cell, CellRecord, MatrixSpec


class Worker:
    """The parent's handle: ``worker(spec, cell, key)`` → the cell's record; a worker that dies
    (a native crash) gives a "failed" record naming the signal, and the next cell a new worker."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def __call__(self, spec: MatrixSpec, cell: Cell, key: str) -> CellRecord:
        if self.process is None:
            path = os.pathsep.join(p for p in sys.path if p)
            env = {**os.environ, "PYTHONPATH": path, PARENT_VARIABLE: str(os.getpid())}
            self.process = subprocess.Popen([sys.executable, "-m", "edgekit.matrix.worker"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, env=env)
        try:
            pickle.dump((spec, cell, key), self.process.stdin)
            self.process.stdin.flush()
            return pickle.load(self.process.stdout)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError):
            code = self.process.wait()
            self.process = None
            return CellRecord(cell, key, "failed", f"the runtime crashed the measuring process ({_describe(code)})",
                              model_name=Path(cell.model).stem)

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait()
            self.process = None


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


PARENT_VARIABLE = "EDGEKIT_WORKER_PARENT"


def end_with_parent() -> None:
    """Die with the parent: the kernel's parent-death signal where there is one, and a thread that
    polls the parent's pid (covers the parent dying before the signal was armed, and other systems)."""
    import threading
    import time

    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="edgekit-parent-watch", daemon=True).start()


def main() -> None:
    from edgekit.matrix.measure import MatrixContext, measure_cell

    end_with_parent()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                 # stray prints (C or Python) go to stderr, not into the answers
    sys.stdout = sys.stderr
    contexts: dict[str, MatrixContext] = {}
    requests = sys.stdin.buffer
    while True:
        try:
            spec, cell, key = pickle.load(requests)
        except EOFError:          # the parent closed the pipe: done (or it died)
            return
        context = contexts.setdefault(spec.key, MatrixContext(spec))
        pickle.dump(measure_cell(cell, key, context), answers)
        answers.flush()


if __name__ == "__main__":
    main()
