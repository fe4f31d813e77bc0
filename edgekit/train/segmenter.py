"""Training recipe ``segmenter``: a small encoder–decoder for semantic segmentation of the shapes scenes.

Four stride-2 stages down to 1/16, bilinear ×2 upsampling back to 1/2 with a skip connection (concat)
at each scale, 1×1 class scores upsampled to the input (≈ 0.2 M parameters). Per-pixel cross-entropy
plus a soft-Dice term (every class counts, as in mIoU), horizontal flips, AdamW with one-cycle LR.
The ONNX outputs the raw N×C×H×W scores (``logits``); argmax and mapping back to the frame are
numpy (``edgekit.tasks.segmentation``), so the torch figure and every runtime's share them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets import Split, load_split
from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.train.base import TrainConfig, TrainResult

DATASET = "shapes-masks"
INPUT_SIZE = 128
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
OUTPUT_NAME = "logits"
CHECKPOINT_FORMAT = "edgekit-segmenter/1"
DEFAULTS = {"epochs": 6, "batch_size": 32, "lr": 5e-3}
# -O options: data set sizes, model width, seconds before stopping, val images, CPU threads, flips
OPTIONS = {"train_size": 1500, "val_size": None, "test_size": None, "width": 16, "time_limit": None,
           "eval_size": 200, "threads": 1, "augment": True}
KINDS = {"train_size": (int, 1), "val_size": (int, 1), "test_size": (int, 1), "width": (int, 4),
         "time_limit": (float, 0), "eval_size": (int, 1), "threads": (int, 1), "augment": (bool, 0)}


def build_segmenter(num_classes: int, width: int = 16):
    """The encoder–decoder (torch module), outputs N×classes×H×W scores."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Segmenter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.down = nn.ModuleList([nn.Sequential(conv(3, w, 2), conv(w, w)),              # 1/2
                                       nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w)),  # 1/4
                                       nn.Sequential(conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w)),  # 1/8
                                       nn.Sequential(conv(4 * w, 4 * w, 2), conv(4 * w, 4 * w))])  # 1/16
            self.up = nn.ModuleList([conv(8 * w, 4 * w), conv(6 * w, 2 * w), conv(3 * w, w)])  # 1/8, 1/4, 1/2
            self.head = nn.Conv2d(w, num_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for stage in self.down:
                x = stage(x)
                skips.append(x)
            x = skips.pop()
            for block in self.up:
                skip = skips.pop()
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
                x = block(torch.cat([x, skip], 1))
            return F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear", align_corners=False)

    return Segmenter()


def segmenter_meta(labels: tuple[str, ...], source: dict[str, Any]) -> ModelMeta:
    return ModelMeta(task="segmentation", model_name="segmenter", input_size=(INPUT_SIZE, INPUT_SIZE), color="RGB",
                     mean=MEAN, std=STD, resize="letterbox", labels=tuple(labels), extra={"source": source})


def _options(config: TrainConfig) -> dict[str, Any]:
    from edgekit.train.loop import check_config

    check_config(config, OPTIONS, KINDS)
    if config.transfer_from is not None:
        raise BadInputError("the segmenter recipe trains from scratch; it takes no --transfer-from")
    if config.optimizer not in (None, "adam"):
        raise BadInputError(f"the segmenter recipe trains with adam (AdamW), not '{config.optimizer}'")
    if config.data not in ("shapes", DATASET):
        raise BadInputError(f"the segmenter trains on {DATASET} (the shapes scenes with masks), got '{config.data}'")
    return {**OPTIONS, **config.options}


def dataset_options(options: dict[str, Any]) -> dict[str, Any]:
    return {f"{s}_size": int(options[f"{s}_size"]) for s in ("train", "val", "test") if options[f"{s}_size"]}


def load_data(config: TrainConfig, options: dict[str, Any]) -> dict[str, Split]:
    kwargs = dataset_options(options)
    return {s: load_split(DATASET, s, config.seed, **kwargs) for s in ("train", "val", "test")}


def predict_torch(model, images, meta: ModelMeta, batch_size: int = 50) -> list:
    """The torch model's predictions through the numpy task, as on any runtime."""
    from edgekit.torch_runner import predict_with_module

    return predict_with_module(model, meta, images, (OUTPUT_NAME,), batch_size)


def evaluate_torch(model, split: Split, meta: ModelMeta, batch_size: int = 50) -> dict[str, float]:
    from edgekit.torch_runner import module_metrics

    return module_metrics(model, meta, split, (OUTPUT_NAME,), batch_size)


def train_segmenter(config: TrainConfig) -> TrainResult:
    """Train, evaluate on the test split, checkpoint and export the segmenter."""
    import torch

    from edgekit.train.loop import output_dir

    options = _options(config)
    splits = load_data(config, options)
    folder = Path(config.output_dir)
    checkpoint, onnx_path = folder / "segmenter.pt", folder / "segmenter.onnx"
    source = {"recipe": "segmenter", "checkpoint": str(checkpoint.resolve()), "dataset": DATASET,
              "dataset_options": dataset_options(options), "seed": config.seed}
    meta = segmenter_meta(splits["train"].labels, source)
    with output_dir(folder):
        previous = torch.get_num_threads()
        torch.set_num_threads(int(options["threads"]))
        try:
            start = time.perf_counter()
            model, history = fit(config, options, splits, meta)
            seconds = time.perf_counter() - start
            tested = evaluate_torch(model, splits["test"], meta)
        finally:
            torch.set_num_threads(previous)
        metrics = {"test_miou": tested["miou"], "test_pixel_accuracy": tested["pixel_accuracy"],
                   "test_count": tested["count"]}
        recipe = {"recipe": "segmenter", "epochs": config.epochs or DEFAULTS["epochs"], "epochs_run": len(history),
                  "batch_size": config.batch_size or DEFAULTS["batch_size"], "lr": config.lr or DEFAULTS["lr"],
                  "optimizer": "adamw", "options": json.loads(json.dumps(options, default=str)),
                  "train_seconds": round(seconds, 2), "test_metrics": metrics}
        save_model(model, meta.with_(recipe=recipe), checkpoint, onnx_path, config.seed, int(options["width"]))
    return TrainResult("segmenter", checkpoint, onnx_path, metrics, seconds, len(history), tuple(history))


def fit(config: TrainConfig, options: dict[str, Any], splits: dict[str, Split], meta: ModelMeta):
    """Train through the shared loop; returns the model (best val mIoU) and per-epoch history."""
    import torch

    from edgekit.train.loop import FitSettings
    from edgekit.train.loop import fit as fit_loop

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    epochs, batch_size = config.epochs or DEFAULTS["epochs"], config.batch_size or DEFAULTS["batch_size"]
    images = torch.from_numpy(np.ascontiguousarray(splits["train"].images)).permute(0, 3, 1, 2)
    masks = torch.from_numpy(np.asarray(splits["train"].targets)).long()
    model = build_segmenter(len(meta.labels), int(options["width"])).to(memory_format=torch.channels_last)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) * 255 for v in (MEAN, STD))
    steps = (len(images) + batch_size - 1) // batch_size
    val = splits["val"].take(int(options["eval_size"]))

    def batches(epoch: int):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            x, y = images[index].float(), masks[index]
            if options["augment"]:
                flip = torch.rand(len(index), generator=generator) < 0.5
                x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            yield ((x - mean) / std).contiguous(memory_format=torch.channels_last), y

    def loss(net, batch):
        return segmentation_loss(net(batch[0]), batch[1])

    def validate(net, epoch: int):
        metrics = evaluate_torch(net, val, meta)
        return {"val_miou": metrics["miou"], "val_pixel_accuracy": metrics["pixel_accuracy"]}

    limit = float(options["time_limit"]) if options["time_limit"] else None
    settings = FitSettings(epochs=epochs, lr=config.lr or DEFAULTS["lr"], optimizer="adam", weight_decay=1e-4,
                           schedule="onecycle", warmup_fraction=0.15, metric="val_miou", time_limit_s=limit)
    result = fit_loop(model, model.parameters(), batches, steps, loss, validate, settings, config.progress)
    return model.eval(), list(result.history)


def segmentation_loss(logits, target):
    """Per-pixel cross-entropy + (1 − soft Dice averaged over classes)."""
    import torch.nn.functional as F

    probabilities = logits.softmax(1)
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
    overlap = (probabilities * one_hot).sum((0, 2, 3))
    total = probabilities.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    dice = (2 * overlap + 1) / (total + 1)
    return F.cross_entropy(logits, target) + 1 - dice.mean()


def save_model(model, meta: ModelMeta, checkpoint: Path, onnx: Path, seed: int, width: int) -> None:
    """Write the checkpoint (state_dict, labels, width, metadata) and the verified ONNX: both or neither."""
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.fileio import atomic_path
    from edgekit.zoo.build import torch_bytes

    state = {"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(), "labels": list(meta.labels),
             "width": width, "meta": json.dumps(asdict(meta))}
    with atomic_path(checkpoint) as temporary:
        temporary.write_bytes(torch_bytes(state))
        export_module(model.eval(), meta, onnx, ExportConfig(dynamic_batch=True, batch=2, seed=seed),
                      output_names=(OUTPUT_NAME,))


def load_segmenter(checkpoint: str | Path):
    """The torch model saved by ``train_segmenter``."""
    from edgekit.exporters.checkpoint import torch_load
    from edgekit.zoo.build import load_weights

    path = Path(checkpoint)
    state = torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise BadInputError(f"{path} is not an edgekit segmenter checkpoint (made by `edgekit train segmenter`)")
    labels, width = state.get("labels"), state.get("width")
    if not (isinstance(labels, list) and len(labels) > 1 and isinstance(width, int)):
        raise BadInputError(f"checkpoint {path} lacks valid labels or width entries")
    model = build_segmenter(len(labels), width)
    load_weights(model, state.get("state_dict"), f"checkpoint {path}")
    return model.eval()


def evaluate_checkpoint(checkpoint: str | Path, meta: ModelMeta, split: Split, batch_size: int = 50
                        ) -> dict[str, float]:
    """mIoU and pixel accuracy of the torch model in ``checkpoint`` on ``split`` (the reference for runtimes)."""
    return evaluate_torch(load_segmenter(checkpoint), split, meta, batch_size)
