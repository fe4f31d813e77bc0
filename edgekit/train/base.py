"""Training recipes for the reference models (workstation tier: torch).

A recipe is a function ``train(config: TrainConfig) -> TrainResult`` registered by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.registry import Registry


@dataclass(frozen=True)
class TrainConfig:
    """What the user asked for; None means the recipe's own default."""

    data: str
    output_dir: Path
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    transfer_from: Path | None = None
    mode: str | None = None  # transfer: "features" | "finetune"
    options: dict[str, Any] = field(default_factory=dict)  # recipe-specific, validated by the recipe
    progress: Callable[[int, int, float, str, float | None, float], None] | bool | None = None  # per epoch


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoint and the exported model went, and how well it did."""

    model: str
    checkpoint: Path
    onnx: Path
    metrics: dict[str, float]
    seconds: float
    epochs_run: int
    history: tuple[dict[str, float], ...] = ()


RECIPES: Registry = Registry("training recipe")
RECIPES.add("lenet5", "edgekit.train.lenet:train_lenet")
RECIPES.add("detector", "edgekit.train.detector:train_detector")
RECIPES.add("transfer", "edgekit.train.transfer:train_transfer")  # needs --transfer-from (checkpoint or zoo name)
RECIPES.add("segmenter", "edgekit.train.segmenter:train_segmenter")  # on shapes-masks
RECIPES.add("embedder", "edgekit.train.embedder:train_embedder")  # on glyph- or digits-identities

# recipe name → "module:function(checkpoint, meta, split, batch_size) -> metrics dict": the torch
# model's figure that `edgekit eval` shows beside the runtimes' (ONNX metadata: extra.source.recipe)
REFERENCE_EVALUATORS: Registry = Registry("reference evaluator")
REFERENCE_EVALUATORS.add("lenet5", "edgekit.train.classifier:evaluate_checkpoint")
REFERENCE_EVALUATORS.add("transfer", "edgekit.train.classifier:evaluate_checkpoint")
REFERENCE_EVALUATORS.add("detector", "edgekit.train.detector:evaluate_checkpoint")
REFERENCE_EVALUATORS.add("segmenter", "edgekit.train.segmenter:evaluate_checkpoint")
REFERENCE_EVALUATORS.add("embedder", "edgekit.train.embedder:evaluate_checkpoint")
