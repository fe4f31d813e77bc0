"""Tasks by name (the ``task`` field of ModelMeta). Listing names imports nothing."""

from __future__ import annotations

from typing import Any

from edgekit.errors import BadInputError
from edgekit.registry import Registry
from edgekit.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task", entry_point_group="edgekit.tasks")
TASKS.add("classification", "edgekit.tasks.classification:ClassificationTask")
TASKS.add("detection", "edgekit.tasks.detection:DetectionTask")
TASKS.add("segmentation", "edgekit.tasks.segmentation:SegmentationTask")
TASKS.add("embedding", "edgekit.tasks.embedding:EmbeddingTask")


def get_task(name: str, **options: Any) -> Task:
    """An instance of the task registered as ``name``, with post-processing ``options`` (those its
    ``options`` names, e.g. a detector's ``score_threshold``); others are a one-line error."""
    task = TASKS.get(name)
    unknown = sorted(set(options) - set(task.options))
    if unknown:
        takes = f"it takes {', '.join(task.options)}" if task.options else "it takes none"
        raise BadInputError(f"{', '.join(unknown)} do(es) not apply to {name} models ({takes})")
    return task(**options)


def default_datasets() -> dict[str, str]:
    """Task → the offline data set its models are judged on by default (each task's ``dataset``); a
    task plugin that does not load, or names none, has none."""
    found = {}
    for name in TASKS.names():
        try:
            dataset = getattr(TASKS.get(name), "dataset", None)
        except Exception:  # noqa: BLE001 - a broken plugin: its own commands say why, not every import
            continue
        if isinstance(dataset, str) and dataset:
            found[name] = dataset
    return found


__all__ = ["TASKS", "Task", "default_datasets", "get_task"]
