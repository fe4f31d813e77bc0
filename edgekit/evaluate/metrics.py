"""Evaluators by task: accumulate predictions against targets, then compute metrics.

Evaluation sits above the robot tier: tasks know nothing of metrics, and this registry maps
a task name to its evaluator (``make_evaluator(meta)``), so adding a task's metric is one
file and one line here (or an ``edgekit.evaluators`` entry point).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.registry import Registry


class Evaluator(ABC):
    """Accumulates predictions against targets, then computes metrics."""

    #: the metric that ranks models for this task (used by reports and --max-drop)
    primary_metric: ClassVar[str] = ""
    #: multiply a metric by this to get percentage points (1.0 for percent, 100.0 for fractions)
    points_per_unit: ClassVar[float] = 1.0

    @classmethod
    def for_model(cls, meta: ModelMeta) -> Evaluator:
        """An evaluator set up for the model ``meta`` describes (default: no settings)."""
        return cls()

    @abstractmethod
    def update(self, predictions: Sequence[Any], targets: Sequence[Any]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Metric name → value (e.g. top1, top5; map50, map50_95)."""


class TopKEvaluator(Evaluator):
    """Top-1 and top-5 accuracy in percent."""

    primary_metric: ClassVar[str] = "top1"

    def __init__(self) -> None:
        self._top1 = self._top5 = self._count = 0

    def update(self, predictions: Sequence[Any], targets: Sequence[int]) -> None:
        for prediction, target in zip(predictions, targets, strict=True):
            self._count += 1
            self._top1 += int(prediction.classes[0] == int(target))
            self._top5 += int(int(target) in prediction.classes[:5])

    def compute(self) -> dict[str, float]:
        if not self._count:
            raise BadInputError("no samples were evaluated")
        return {"top1": 100.0 * self._top1 / self._count, "top5": 100.0 * self._top5 / self._count,
                "count": float(self._count)}


class CocoEvaluator(Evaluator):
    """COCO box mAP (pycocotools-compatible): map50_95 (primary), map50, map75, per-size APs.

    Values are fractions in [0, 1], as the COCO tools print them. Targets are dicts with
    ``boxes`` and ``labels`` (optionally ``area``, ``iscrowd``).
    """

    primary_metric: ClassVar[str] = "map50_95"
    points_per_unit: ClassVar[float] = 100.0  # fractions in [0, 1]
    reported: ClassVar[tuple[str, ...]] = ("map50_95", "map50", "map75", "ar100", "count")

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes
        self.predictions: list[Any] = []
        self.targets: list[Mapping[str, Any]] = []

    @classmethod
    def for_model(cls, meta: ModelMeta) -> CocoEvaluator:
        return cls(num_classes=len(meta.labels) or None)

    def update(self, predictions: Sequence[Any], targets: Sequence[Mapping[str, Any]]) -> None:
        if len(predictions) != len(targets):
            raise BadInputError(f"{len(predictions)} predictions for {len(targets)} targets")
        self.predictions.extend(predictions)
        self.targets.extend(targets)

    def compute(self) -> dict[str, float]:
        from edgekit.evaluate.coco_metrics import coco_map

        if not self.targets:
            raise BadInputError("no samples were evaluated")
        metrics = coco_map(self.predictions, self.targets, self.num_classes)
        return {key: metrics[key] for key in self.reported}


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", entry_point_group="edgekit.evaluators")
EVALUATORS.add("classification", TopKEvaluator)
EVALUATORS.add("detection", CocoEvaluator)


def make_evaluator(meta: ModelMeta) -> Evaluator:
    """The evaluator of the task ``meta`` names, set up for that model."""
    return EVALUATORS.get(meta.task).for_model(meta)
