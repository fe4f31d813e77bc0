"""Run a matrix: every cell in turn, each record stored as it finishes, with a progress bar.

Cells are measured in a child process (one for the whole run, so its caches stay warm; see
``worker.py``): a runtime that crashes in native code (OpenVINO 2026.4 segfaults compiling
densenet121's INT8 QDQ model) costs that cell a "failed" record, not the run. Re-running the same
matrix resumes its latest run and skips the cells it already holds; ``force`` starts a new run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edgekit.matrix.cells import Cell, CellRecord, MatrixSpec, json_safe
from edgekit.matrix.measure import MatrixContext, measure_cell


@dataclass(frozen=True)
class MatrixRun:
    run_id: int
    records: tuple[CellRecord, ...]     # every cell of the matrix, resumed ones included
    measured: int                       # cells measured by this call
    resumed: bool


def check_runtimes(spec: MatrixSpec) -> None:
    """Resolve every runtime name (a typo is a BadInputError before anything runs)."""
    from edgekit.runtimes import get_runtime

    for name in spec.runtimes:
        get_runtime(name)


class Progress(Protocol):
    """What a caller may watch a run with (the CLI draws a bar; the library draws nothing)."""

    def start(self, total: int, completed: int) -> None: ...

    def advance(self, cell: Cell, record: CellRecord | None) -> None: ...   # None: the cell starts

    def stop(self) -> None: ...


def run_matrix(spec: MatrixSpec, store, force: bool = False, progress: Progress | None = None,
               on_record: Callable[[CellRecord], None] | None = None, isolate: bool = True) -> MatrixRun:
    """Measure every cell of ``spec`` not already in its latest run in ``store`` (all with ``force``),
    telling ``progress`` as it goes. ``isolate=False`` measures in this process (a native crash then
    ends the run)."""
    from edgekit.store.db import record_from_row

    cells, keys, run_id, todo, done = start_or_resume(spec, store, force)
    measure = _Isolated(spec) if isolate else _InProcess(spec)
    progress = progress or _Silent()
    progress.start(len(cells), len(cells) - len(todo))
    try:
        for cell in todo:
            progress.advance(cell, None)
            record = measure(cell, keys[cell])
            store.add(run_id, record)
            progress.advance(cell, record)
            if on_record:
                on_record(record)
    finally:
        progress.stop()
        measure.close()
    store.finish_run(run_id)
    stored = {row["cell_key"]: record_from_row(row) for row in store.records(run_ids=[run_id])}
    records = tuple(stored[keys[cell]] for cell in cells if keys[cell] in stored)
    return MatrixRun(run_id, records, len(todo), bool(done))


class _Silent:
    def start(self, total: int, completed: int) -> None:
        pass

    def advance(self, cell: Cell, record: CellRecord | None) -> None:
        pass

    def stop(self) -> None:
        pass


class _InProcess:
    def __init__(self, spec: MatrixSpec) -> None:
        self.context = MatrixContext(spec)

    def __call__(self, cell: Cell, key: str) -> CellRecord:
        return measure_cell(cell, key, self.context)

    def close(self) -> None:
        pass


class _Isolated:
    def __init__(self, spec: MatrixSpec) -> None:
        from edgekit.matrix.worker import Worker

        self.spec, self.worker = spec, Worker()

    def __call__(self, cell: Cell, key: str) -> CellRecord:
        return self.worker(self.spec, cell, key)

    def close(self) -> None:
        self.worker.close()


def start_or_resume(spec: MatrixSpec, store, force: bool, details: dict | None = None):
    """(cells, their keys, the run id, the cells still to measure, the finished keys): the latest
    run of ``spec`` resumed, or a new run (always with ``force``); ``details`` go into the run's spec."""
    from edgekit.bench.environment import manifest

    check_runtimes(spec)
    cells = spec.cells()
    contents = spec.contents()
    keys = {cell: cell.key(spec.timing, spec.evaluation, contents[cell.model]) for cell in cells}
    run_id = None if force else store.latest_run(spec.key)
    done = store.done_keys(run_id) if run_id is not None else set()
    if run_id is None:
        run_id = store.start_run(spec.name, spec.key, {**spec_json(spec), **(details or {})}, manifest())
    return cells, keys, run_id, [cell for cell in cells if keys[cell] not in done], done


def spec_json(spec: MatrixSpec) -> dict:
    return json_safe(dataclasses.asdict(spec))
