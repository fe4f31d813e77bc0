"""Training recipes for edgekit's reference models."""

from edgekit.train.base import RECIPES, REFERENCE_EVALUATORS, TrainConfig, TrainResult

__all__ = ["RECIPES", "REFERENCE_EVALUATORS", "TrainConfig", "TrainResult"]
