"""Accuracy of a model file on a dataset split, through any runtime (robot tier)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.datasets.base import Split
from edgekit.errors import BadInputError
from edgekit.evaluate.metrics import make_evaluator
from edgekit.meta import read_meta
from edgekit.runtimes import get_runtime
from edgekit.tasks import get_task


@dataclass(frozen=True)
class EvalRecord:
    """Metrics of one model × runtime on one dataset split."""

    model: str
    model_path: str
    runtime: str
    precision: str
    task: str
    dataset: str
    split: str
    count: int
    metrics: dict[str, float]
    primary_metric: str
    seconds: float
    timestamp: str
    reference: dict[str, float] | None = None  # the torch model's metrics, when known
    details: dict[str, Any] = field(default_factory=dict)  # the evaluator's details(): per-class figures

    @property
    def primary(self) -> float:
        return self.metrics[self.primary_metric]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_split(runtime, task, meta, split: Split, batch_size: int) -> list[Any]:
    """Run every image of ``split`` through an open runtime; one prediction per image."""
    from edgekit.tasks.run import predict_images

    return predict_images(runtime, task, meta, split.images, batch_size)


def evaluate(
    model: str | Path, split: Split, runtime: str = "ort-cpu", batch_size: int = 32,
    runtime_options: dict[str, Any] | None = None, dataset: str = "",
) -> EvalRecord:
    """Metrics of ``model`` on ``split`` using the task named in the model's metadata; the record's
    ``details`` hold the evaluator's further figures (classification: per-class recall, confusion matrix)."""
    path = Path(model)
    meta = read_meta(path)
    if meta.task != split.task:
        raise BadInputError(f"model task '{meta.task}' does not match dataset task '{split.task}'")
    task = get_task(meta.task)
    evaluator = make_evaluator(meta)
    start = time.perf_counter()
    with get_runtime(runtime)(path, **(runtime_options or {})) as session:
        predictions = predict_split(session, task, meta, split, batch_size)
    evaluator.update(predictions, list(split.targets))
    metrics = evaluator.compute()
    details = evaluator.details(split.labels)
    return EvalRecord(
        model=meta.model_name or path.stem, model_path=str(path), runtime=get_runtime(runtime).name,
        precision=meta.precision, task=meta.task, dataset=dataset or split.info.get("dataset", ""),
        split=split.name, count=len(split), metrics=metrics, primary_metric=type(evaluator).primary_metric,
        seconds=time.perf_counter() - start, timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        details=details,
    )
