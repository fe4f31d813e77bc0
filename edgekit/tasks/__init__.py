"""Tasks by name (the ``task`` field of ModelMeta). Listing names imports nothing."""

from __future__ import annotations

from edgekit.registry import Registry
from edgekit.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task", entry_point_group="edgekit.tasks")
TASKS.add("classification", "edgekit.tasks.classification:ClassificationTask")
TASKS.add("detection", "edgekit.tasks.detection:DetectionTask")


def get_task(name: str) -> Task:
    """An instance of the task registered as ``name``."""
    return TASKS.get(name)()


__all__ = ["TASKS", "Task", "get_task"]
