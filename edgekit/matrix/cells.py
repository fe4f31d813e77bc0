"""The matrix's vocabulary: what to measure (a spec), one measurement (a cell) and its record.

A cell is model × runtime × precision × batch × threads × scenario (+ runtime options) and gives
exactly one ``CellRecord``. The runner, the history store, the report, the regression gate and a
future search (``edgekit optimize``) all pass these same values around.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
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


def _task_datasets() -> dict[str, str]:
    from edgekit.tasks import default_datasets

    return default_datasets()


@dataclass(frozen=True)
class Evaluation:
    """Which data each task is judged on, and how much of it. ``data`` maps a task to a dataset
    (default: each task's own, e.g. digits, shapes, shapes-masks; an image folder, a COCO .json); a
    model whose labels that data does not carry is judged by agreement with its FP32 version on
    generated images instead."""

    data: dict[str, str] = field(default_factory=_task_datasets)
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

    def key(self, timing: Timing, evaluation: Evaluation, content: str = "") -> str:
        """Identity of the cell with how it is measured and what it measures: ``content`` digests the
        model's bytes (``model_content``), and the library versions are part of it, so a changed file
        or an upgraded runtime is measured again. A resumed run skips a cell with this key."""
        payload = {"cell": dataclasses.asdict(self), "timing": dataclasses.asdict(timing),
                   "evaluation": dataclasses.asdict(evaluation), "content": content,
                   "versions": library_versions()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class TorchModel:
    """A torch source in a matrix with the weights, input specs and metadata its export needs.

    ``tag`` digests the source's code, the weights' bytes, the specs and the metadata, so its
    cells (whose model is ``name``) are new cells when any of them changes.
    """

    source: str                       # /abs/file.py:factory, package.module:factory, a .ts/.pt2 file
    weights: str | None = None
    inputs: tuple[str, ...] = ()      # ``name:1x3x224x224[:dtype]`` specs ('?' for a dynamic batch)
    meta: str = ""                    # metadata changes as sorted JSON ('' for none)
    tag: str = ""

    @classmethod
    def make(cls, source: str, weights: str | None = None, inputs: tuple[str, ...] = (),
             meta: dict[str, Any] | None = None) -> TorchModel:
        """Check the source, specs and metadata (one-line errors) and digest them into ``tag``."""
        from edgekit.inputs.specs import parse_input_specs
        from edgekit.sources import file_tag, parse_source, source_tag

        parsed = parse_source(source)
        if not parsed.is_torch:
            from edgekit.errors import BadInputError

            raise BadInputError(f"{source} is not a torch source (weights, inputs and meta are for torch sources)")
        specs = parse_input_specs(inputs)
        effect = check_meta_changes(meta or {}, specs)   # labels [0, 1] and "0,1" have one effect, one tag
        text = json.dumps(meta, sort_keys=True, default=str) if meta else ""
        parts = [parsed.label, source_tag(parsed), file_tag(Path(weights)) if weights else "random", *inputs,
                 json.dumps(dataclasses.asdict(effect), sort_keys=True, default=str) if meta else ""]
        return cls(source, weights, tuple(inputs), text, hashlib.sha256("|".join(parts).encode()).hexdigest()[:12])

    @property
    def name(self) -> str:
        return f"{self.source}@{self.tag}"

    def meta_changes(self) -> dict[str, Any]:
        return json.loads(self.meta) if self.meta else {}


def check_meta_changes(changes: dict[str, Any], specs):
    """The metadata a user export starts from (grey for one channel) with ``changes`` applied and checked."""
    from edgekit.exporters.metadata import apply_changes
    from edgekit.meta import ModelMeta

    shape = specs[0].sample_shape() if specs else ()
    grey = len(shape) == 4 and shape[1] == 1
    return apply_changes(ModelMeta(color="GRAY", mean=(0.5,), std=(0.5,)) if grey else ModelMeta(), changes)


@dataclass(frozen=True)
class MatrixSpec:
    """A whole matrix: the product of its lists, in this order (models outermost). A model is a zoo
    name, a model file or a ``TorchModel``."""

    models: tuple[str | TorchModel, ...]
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

    def __post_init__(self) -> None:
        """Checked by the flags' limits when made, whichever door built it (flags, a suite, Python), so a
        bad value is refused before any cell runs rather than failing every cell."""
        from edgekit.limits import check_number, check_timing

        for threads in self.threads:
            check_number("threads", threads, "threads")
        for batch in self.batches:
            check_number("batch", batch, "batch")
        for side in self.input_size or ():
            check_number("input_size", side, "input_size")
        check_timing(self.timing, "timing")
        for name, value in (("samples", self.evaluation.samples), ("calib_samples", self.evaluation.calib_samples),
                            ("agreement_samples", self.evaluation.agreement_samples)):
            check_number("eval_size", value, f"evaluation.{name}")
        check_number("seed", self.evaluation.seed, "evaluation.seed")

    def cells(self) -> list[Cell]:
        product = itertools.product(self.models, self.runtimes, self.precisions, self.batches, self.threads,
                                    self.scenarios)
        return [Cell(m.name if isinstance(m, TorchModel) else m, r, p, b, t, s, self.options)
                for m, r, p, b, t, s in product]

    def contents(self) -> dict[str, str]:
        """Each model's content digest by the name its cells carry (see ``model_content``)."""
        return {m.name if isinstance(m, TorchModel) else m: model_content(m) for m in self.models}

    def torch_model(self, name: str) -> TorchModel | None:
        """The torch source behind a cell's model ``name`` (None for a zoo name or a file)."""
        return next((m for m in self.models if isinstance(m, TorchModel) and m.name == name), None)

    @property
    def key(self) -> str:
        """Identity of the matrix and of what its models hold: a re-run with the same key resumes the
        latest run that had it; a changed model file starts a new run."""
        payload = {"spec": dataclasses.asdict(self), "contents": self.contents(), "versions": library_versions()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def model_content(model: str | TorchModel) -> str:
    """What a model's results are keyed by: a file's bytes (external data and an OpenVINO IR's .bin
    included), a torch source's tag (code, weights, specs, metadata), or for a zoo name the edgekit
    and torch versions its seeded export comes from. Never the path alone."""
    if isinstance(model, TorchModel):
        return f"torch:{model.tag}"
    path = Path(model)
    if path.suffix:
        return f"file:{_file_digest(str(path.resolve()))}"
    from edgekit.sources import versions_tag

    return f"zoo:{model}:{versions_tag()}"


def _file_digest(path: str) -> str:
    """The model's SHA-256, remembered per (path, size, modification time) within a process."""
    try:
        stat = Path(path).stat()
    except OSError:
        return "missing"
    return _digest_of(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    from edgekit.hashing import file_sha256, model_sha256

    digest = model_sha256(path)
    weights = Path(path).with_suffix(".bin")
    if Path(path).suffix.lower() == ".xml" and weights.is_file():
        digest = hashlib.sha256((digest + file_sha256(weights)).encode()).hexdigest()
    return digest[:24]


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """edgekit's and the runtimes'/libraries' installed versions (package metadata only, no imports)."""
    from edgekit import __version__
    from edgekit.bench.environment import library_versions as installed

    return {"edgekit": __version__, **installed()}


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


def json_safe(value: Any) -> Any:
    """A JSON-safe copy: mappings with string keys, tuples as lists, anything else not JSON as its text
    (a runtime description holds enums and devices). The one conversion every store write uses."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
