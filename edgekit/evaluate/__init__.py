"""Accuracy evaluation on datasets, through any runtime."""

from edgekit.evaluate.runner import EvalRecord, evaluate, predict_split

__all__ = ["EvalRecord", "evaluate", "predict_split"]
