"""The matrix's vocabulary: what to measure (a spec), one measurement (a cell) and its record.

A cell is model × runtime × precision × batch × threads × scenario (+ runtime options) and gives
exactly one ``CellRecord``. The runner, the history store, the report, the regression gate and a
future search (``edgekit optimize``) all pass these same values around.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
SCENARIOS = ("single-stream", "multi-stream", "offline")
STATUSES = ("ok", "unsupported", "failed")


@dataclass(frozen=True)
class Timing:
    """How long each cell is measured. ``rounds`` repeats the timed loop so the run-to-run noise
    of a cell is known (the regression gate needs it); the first round alone is warmed up."""

    warmup: int = 10
    min_runs: int = 10
    min_duration_s: float = 2.0
    max_runs: int | None = None
    rounds: int = 3


@dataclass(frozen=True)
class Evaluation:
    """Which data each task is judged on, and how much of it. ``data`` maps a task to a dataset
    (digits, shapes, an image folder, a COCO .json); a model whose labels that data does not carry
    is judged by agreement with its FP32 version on generated images instead."""

    data: dict[str, str] = field(default_factory=lambda: {"classification": "digits", "detection": "shapes"})
    samples: int = 64
    calib_samples: int = 32
    agreement_samples: int = 16
    seed: int = 0


@dataclass(frozen=True)
class Cell:
    """One measurement to make; ``threads`` None means the runtime's default."""

    model: str
    runtime: str
    precision: str = "fp32"
    batch: int = 1
    threads: int | None = None
    scenario: str = "single-stream"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        threads = f" t{self.threads}" if self.threads else ""
        return f"{self.model} · {self.runtime} · {self.precision} · b{self.batch}{threads} · {self.scenario}"

    def key(self, timing: Timing, evaluation: Evaluation) -> str:
        """Identity of the cell with how it is measured: a resumed run skips a cell with this key."""
        payload = {"cell": dataclasses.asdict(self), "timing": dataclasses.asdict(timing),
                   "evaluation": dataclasses.asdict(evaluation)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class MatrixSpec:
    """A whole matrix: the product of its lists, in this order (models outermost)."""

    models: tuple[str, ...]
    runtimes: tuple[str, ...] = ("ort-cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    threads: tuple[int | None, ...] = (None,)
    scenarios: tuple[str, ...] = ("single-stream",)
    options: tuple[tuple[str, Any], ...] = ()
    input_size: tuple[int, int] | None = None     # for zoo models exported on the way
    timing: Timing = Timing()
    evaluation: Evaluation = Evaluation()
    name: str = ""                                 # the suite's name ('' for a command-line matrix)

    def cells(self) -> list[Cell]:
        product = itertools.product(self.models, self.runtimes, self.precisions, self.batches, self.threads,
                                    self.scenarios)
        return [Cell(m, r, p, b, t, s, self.options) for m, r, p, b, t, s in product]

    @property
    def key(self) -> str:
        """Identity of the matrix: a re-run with the same key resumes the latest run that had it."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CellRecord:
    """What one cell gave. Times in ms. ``round_ms`` holds one figure per timing round — the p50
    latency (single-/multi-stream) or the time per item (offline) — which is what the regression
    gate compares. ``percentiles_ms`` (p5, p10, …, p95 of all timed queries) draws distributions."""

    cell: Cell
    key: str
    status: str
    reason: str = ""
    model_name: str = ""
    model_sha256: str = ""
    size_mb: float | None = None
    latency_count: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    percentiles_ms: tuple[float, ...] = ()
    round_ms: tuple[float, ...] = ()
    throughput_items_s: float | None = None
    cold_start_ms: float | None = None
    metric: str = ""
    accuracy: float | None = None                  # primary metric in percentage points
    metrics: dict[str, float] = field(default_factory=dict)
    agreement_top1_pct: float | None = None
    cosine: float | None = None
    config: dict[str, Any] = field(default_factory=dict)   # runtime description, variant recipe, data
    seconds: float = 0.0

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    @property
    def fps(self) -> float | None:
        return self.throughput_items_s

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(data.pop("cell"))
        data["options"] = dict(self.cell.options)
        return data


def unsupported(cell: Cell, key: str, reason: str, **extra: Any) -> CellRecord:
    return CellRecord(cell, key, "unsupported", reason, **extra)
