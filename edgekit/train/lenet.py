"""The ``lenet5`` recipe: LeNet-5 trained from scratch on a classification dataset (digits by default)."""

from __future__ import annotations

import time

from edgekit.meta import ModelMeta
from edgekit.train.base import TrainConfig, TrainResult
from edgekit.train.classifier import (
    CLASSIFIER_KINDS, CLASSIFIER_OPTIONS, DEFAULT_THREADS, load_splits, pixel_stats, recipe_info, save_model,
    settings_for, test_metrics, train_classifier,
)
from edgekit.train.loop import check_config, output_dir, seed_everything

LENET_OPTIONS = CLASSIFIER_OPTIONS


def train_lenet(config: TrainConfig) -> TrainResult:
    """Train LeNet-5 from scratch (or, with ``transfer_from``, a new head on a trained backbone)."""
    if config.transfer_from is not None:
        from edgekit.train.transfer import train_transfer

        return train_transfer(config)
    check_config(config, LENET_OPTIONS, CLASSIFIER_KINDS)
    start = time.perf_counter()
    splits = load_splits(config)  # first: bad data fails before torch is imported
    seed_everything(config.seed, int(config.options.get("threads", DEFAULT_THREADS)))
    mean, std = pixel_stats(splits["train"])
    meta = ModelMeta(task="classification", model_name="lenet5", input_size=(32, 32), color="GRAY",
                     mean=(mean,), std=(std,), resize="stretch", labels=splits["train"].labels)
    from edgekit.zoo.lenet import lenet5

    model = lenet5(num_classes=len(meta.labels))
    with output_dir(config.output_dir) as out:
        result = train_classifier(model, model.parameters(), splits, meta, config, settings_for(config, splits))
        metrics = test_metrics(model, splits["test"], meta, result.best_metric)
        recipe = recipe_info(config, result, extra={"arch": "lenet5"})
        checkpoint, onnx = save_model(model, meta, {"name": "lenet5", "num_classes": len(meta.labels)},
                                      config, recipe, out / "lenet5", metrics)
    return TrainResult("lenet5", checkpoint, onnx, metrics, time.perf_counter() - start, result.epochs_run,
                       result.history)
