"""Evaluators by task: accumulate predictions against targets, then compute metrics.

Evaluation sits above the robot tier: tasks know nothing of metrics, and this registry maps
a task name to its evaluator (``make_evaluator(meta)``), so adding a task's metric is one
file and one line here (or an ``edgekit.evaluators`` entry point).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
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

    def details(self, labels: Sequence[str] = ()) -> dict[str, Any]:
        """Figures beyond the metrics, for records and reports (e.g. per class); ``labels`` name the
        classes the model's own metadata does not. Default: none."""
        return {}


class TopKEvaluator(Evaluator):
    """Top-1 accuracy in percent, and top-5 when the model has more than 5 classes (top-5 of 5 or
    fewer classes is 100 % by construction); ``details()``: per-class recall and the confusion matrix."""

    primary_metric: ClassVar[str] = "top1"
    top_k: ClassVar[int] = 5

    def __init__(self, labels: Sequence[str] = ()) -> None:
        self.labels = tuple(labels)
        self._top1 = self._top5 = self._count = 0
        self._classes = len(self.labels)  # the model's class count: its labels, or the largest index seen
        self._pairs: Counter[tuple[int, int]] = Counter()  # (true class, top-1 class) → images

    @classmethod
    def for_model(cls, meta: ModelMeta) -> TopKEvaluator:
        return cls(labels=meta.labels)

    def update(self, predictions: Sequence[Any], targets: Sequence[int]) -> None:
        for prediction, target in zip(predictions, targets, strict=True):
            target, classes = int(target), [int(c) for c in prediction.classes]
            self._count += 1
            self._top1 += int(classes[0] == target)
            self._top5 += int(target in classes[: self.top_k])
            self._pairs[target, classes[0]] += 1
            self._classes = max(self._classes, len(classes), target + 1, max(classes) + 1)

    def compute(self) -> dict[str, float]:
        if not self._count:
            raise BadInputError("no samples were evaluated")
        metrics = {"top1": 100.0 * self._top1 / self._count}
        if self.top_k < self._classes:
            metrics[f"top{self.top_k}"] = 100.0 * self._top5 / self._count
        return {**metrics, "count": float(self._count)}

    def details(self, labels: Sequence[str] = ()) -> dict[str, Any]:
        """``per_class``: images, correct and recall (percent; None without images) of each class;
        ``confusion``: its labels and matrix, rows the true class, columns the top-1 class."""
        names = self.labels or tuple(labels)
        seen = {index for pair in self._pairs for index in pair}
        classes = sorted(set(range(len(names))) | seen)
        position = {c: i for i, c in enumerate(classes)}
        matrix = [[0] * len(classes) for _ in classes]
        for (target, predicted), images in self._pairs.items():
            matrix[position[target]][position[predicted]] += images
        shown = [names[c] if c < len(names) else str(c) for c in classes]
        per_class = [{"label": shown[i], "index": c, "images": sum(row), "correct": row[i],
                      "recall": 100.0 * row[i] / sum(row) if sum(row) else None}
                     for i, (c, row) in enumerate(zip(classes, matrix))]
        return {"per_class": per_class, "confusion": {"labels": shown, "matrix": matrix}}


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
        if metrics["map50_95"] < 0:   # COCOeval's "undefined", which a table would show as -100 points
            raise BadInputError(f"the {len(self.targets)} evaluated images hold no ground-truth box: mAP is "
                                "undefined (evaluate on images with annotated objects)")
        return {key: metrics[key] for key in self.reported}


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", entry_point_group="edgekit.evaluators")
EVALUATORS.add("classification", TopKEvaluator)
EVALUATORS.add("detection", CocoEvaluator)
EVALUATORS.add("segmentation", "edgekit.evaluate.dense_metrics:SegmentationEvaluator")
EVALUATORS.add("embedding", "edgekit.evaluate.dense_metrics:VerificationEvaluator")


def make_evaluator(meta: ModelMeta) -> Evaluator:
    """The evaluator of the task ``meta`` names, set up for that model."""
    return EVALUATORS.get(meta.task).for_model(meta)
