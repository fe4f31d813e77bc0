"""Training recipes for edgekit's reference models."""

from edgekit.train.base import RECIPES, TrainConfig, TrainResult

__all__ = ["RECIPES", "TrainConfig", "TrainResult"]
