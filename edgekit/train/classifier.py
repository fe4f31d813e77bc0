"""Classifier training shared by the ``lenet5`` and ``transfer`` recipes: data splits, pixel
statistics, tensors, augmentation, the cross-entropy loop, metrics, checkpoints and export, and
rebuilding a trained classifier (LeNet-5, or a backbone with a new head) from its checkpoint.

Images go through the same numpy preprocessing the exported model's metadata prescribes,
so training, torch evaluation and every runtime see identical inputs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets import Split, load_split
from edgekit.errors import BadInputError, first_line
from edgekit.meta import ModelMeta
from edgekit.train.base import TrainConfig
from edgekit.train.loop import FitSettings, fit

CHECKPOINT_FORMAT = "edgekit-checkpoint/1"
CLASSIFIER_OPTIONS = ("classes", "per_class", "patience", "augment", "weight_decay", "schedule", "threads")
CLASSIFIER_KINDS = {"per_class": (int, 1), "patience": (int, 0), "augment": (bool, 0), "weight_decay": (float, 0),
                    "threads": (int, 1)}
# LeNet-5 is too small for intra-op threads to pay; on a busy machine they cost up to 10x.
DEFAULT_THREADS = 1
DEFAULT_LR = {"adam": 3e-3, "sgd": 0.05}
MIN_STEPS = 600  # small datasets get more epochs so that training sees enough batches


def load_splits(config: TrainConfig) -> dict[str, Split]:
    """train/val/test of ``config.data``; ``per_class`` keeps that many train and val images per class."""
    options = dataset_options(config)
    splits = {name: load_split(config.data, name, config.seed, **options) for name in ("train", "val", "test")}
    if splits["train"].task != "classification":
        raise BadInputError(f"dataset {config.data} is a {splits['train'].task} dataset; "
                            "this recipe needs classification")
    per_class = config.options.get("per_class")
    if per_class is not None:
        splits["train"] = take_per_class(splits["train"], int(per_class), config.seed)
        splits["val"] = take_per_class(splits["val"], int(per_class), config.seed + 1)
    for name, split in splits.items():
        if not len(split):
            raise BadInputError(f"the {name} split of {config.data} is empty")
    return splits


def dataset_options(config: TrainConfig) -> dict[str, Any]:
    classes = config.options.get("classes")
    if classes is None:
        return {}
    if config.data != "digits":
        raise BadInputError("--classes selects digits; for an image folder, keep only the class folders you want")
    from edgekit.datasets.digits import parse_classes

    return {"classes": list(parse_classes(str(classes) if isinstance(classes, (int, float)) else classes))}


def take_per_class(split: Split, count: int, seed: int) -> Split:
    """The first ``count`` images of each class after a seeded shuffle (few-shot subsets)."""
    if count < 1:
        raise BadInputError(f"per-class count must be at least 1, got {count}")
    targets = np.asarray(split.targets)
    order = np.random.default_rng(seed).permutation(len(targets))
    keep = np.sort(np.concatenate([order[targets[order] == c][:count] for c in range(len(split.labels))]))
    images = split.images[keep] if isinstance(split.images, np.ndarray) else [split.images[i] for i in keep]
    return Split(split.name, split.task, images, targets[keep], split.labels, {**split.info, "per_class": count})


def pixel_stats(split: Split) -> tuple[float, float]:
    """Mean and std of the training pixels in 0..1 (grayscale, as the model sees them)."""
    meta = ModelMeta(input_size=(32, 32), color="GRAY", mean=(0.0,), std=(1.0,))
    from edgekit.tasks.preprocess import preprocess_images

    batch, _ = preprocess_images(list(split.images), meta)
    mean, std = round(float(batch.mean()), 4), round(float(batch.std()), 4)  # already scaled to 0..1
    if std < 1e-3:  # it would divide every pixel by zero
        raise BadInputError(f"the training images are all one flat grey level ({mean:.3f}): nothing to learn from")
    return mean, std


def settings_for(config: TrainConfig, splits: dict[str, Split], lr_scale: float = 1.0) -> FitSettings:
    """The loop's settings: the user's values, else the recipe's defaults scaled to the data size."""
    optimizer = config.optimizer or "adam"
    batch = config.batch_size or 64
    steps = math.ceil(len(splits["train"]) / batch)
    epochs = config.epochs or min(300, max(40, math.ceil(MIN_STEPS / steps)))
    patience = int(config.options.get("patience", max(10, epochs // 4)))
    return FitSettings(
        epochs=epochs, lr=config.lr or DEFAULT_LR[optimizer] * lr_scale, optimizer=optimizer,
        weight_decay=float(config.options.get("weight_decay", 5e-4)),
        schedule=config.options.get("schedule", "onecycle"),
        patience=patience if patience > 0 else None,
    )


def to_tensors(split: Split, meta: ModelMeta):
    """(inputs, targets) torch tensors, preprocessed exactly as the exported model expects."""
    import torch

    from edgekit.tasks.preprocess import preprocess_images

    batch, _ = preprocess_images(list(split.images), meta)
    return torch.from_numpy(batch), torch.as_tensor(np.asarray(split.targets), dtype=torch.int64)


def augment(x, generator, background: float, degrees: float = 12.0, scale: float = 0.1, shift: float = 0.125):
    """Random rotation, scale and shift (``shift`` in half-widths: 0.125 = 2 px at 32), padding with background."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    uniform = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731
    angle = uniform() * math.radians(degrees)
    zoom = 1 + uniform() * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, uniform() * shift], 1),
                         torch.stack([sin, cos, uniform() * shift], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - background, grid, align_corners=False) + background


def train_classifier(model, parameters, splits: dict[str, Split], meta: ModelMeta, config: TrainConfig,
                     settings: FitSettings):
    """Cross-entropy training with optional augmentation; early stopping on val top-1."""
    import torch
    import torch.nn.functional as F

    x_train, y_train = to_tensors(splits["train"], meta)
    x_val, y_val = to_tensors(splits["val"], meta)
    background = -meta.mean[0] / meta.std[0] if meta.color == "GRAY" else 0.0
    use_augment = flag(config.options.get("augment", True))
    generator = torch.Generator().manual_seed(config.seed)
    batch = config.batch_size or 64

    def batches(epoch: int):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            x = x_train[index]
            yield (augment(x, generator, background) if use_augment else x), y_train[index]

    def loss(net, item):
        return F.cross_entropy(net(item[0]), item[1])

    def validate(net, epoch: int) -> float:
        return accuracy(net, x_val, y_val)

    steps = math.ceil(len(x_train) / batch)
    return fit(model, parameters, batches, steps, loss, validate, settings, progress=config.progress)


def flag(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise BadInputError(f"expected true or false, got '{value}'")
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def accuracy(model, x, y, k: int = 1, batch: int = 512) -> float:
    """Top-k accuracy in percent."""
    import torch

    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = model(x[start : start + batch])
            top = logits.topk(min(k, logits.shape[1]), dim=1).indices
            correct += int((top == y[start : start + batch, None]).any(dim=1).sum())
    return 100.0 * correct / max(1, len(x))


def test_metrics(model, split: Split, meta: ModelMeta, val_top1: float) -> dict[str, float]:
    x, y = to_tensors(split, meta)
    return {"val_top1": val_top1, "test_top1": accuracy(model, x, y), "test_top5": accuracy(model, x, y, k=5),
            "test_count": float(len(split))}


def recipe_info(config: TrainConfig, result, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What was trained and how: recorded in the checkpoint and the ONNX metadata."""
    return {"recipe": "lenet5", "dataset": config.data, "seed": config.seed, "optimizer": config.optimizer or "adam",
            "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "options": dict(config.options),
            "train_seconds": round(result.seconds, 2), **(extra or {})}


def save_model(model, meta: ModelMeta, arch: dict[str, Any], config: TrainConfig, recipe: dict[str, Any],
               stem: Path, metrics: dict[str, float]) -> tuple[Path, Path]:
    """Write ``stem``.pt (state_dict + how to rebuild it) and the verified ``stem``.onnx, both or neither."""
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.fileio import atomic_path
    from edgekit.zoo.build import torch_bytes

    checkpoint, onnx = stem.with_suffix(".pt"), stem.with_suffix(".onnx")
    source = {"recipe": recipe["recipe"], "checkpoint": str(checkpoint.resolve()), "dataset": config.data,
              "dataset_options": dataset_options(config), "seed": config.seed}
    meta = meta.with_(recipe=recipe, extra={**meta.extra, "source": source})
    with atomic_path(checkpoint) as temporary:
        state = {"format": CHECKPOINT_FORMAT, "arch": arch, "state_dict": model.state_dict(),
                 "meta": json.dumps(asdict(meta)), "metrics": dict(metrics)}
        temporary.write_bytes(torch_bytes(state))
        export_module(model, meta, onnx, ExportConfig(batch=2, dynamic_batch=True, seed=config.seed))
    return checkpoint, onnx


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], ModelMeta]:
    """An edgekit training checkpoint and the metadata its model was exported with."""
    from edgekit.exporters.checkpoint import torch_load

    path = Path(path)
    data = torch_load(path, "checkpoint")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise BadInputError(f"{path} is not an edgekit training checkpoint (made by `edgekit train`)")
    try:
        fields = json.loads(data["meta"])
        meta = ModelMeta.from_props({key: json.dumps(value) for key, value in fields.items()})
        arch = data["arch"]
        if not isinstance(arch, dict) or int(arch["num_classes"]) < 1:
            raise ValueError("arch")
    except BadInputError as exc:
        raise BadInputError(f"checkpoint {path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(f"checkpoint {path} has a malformed entry: {first_line(exc)}") from None
    return data, meta


def build_from_checkpoint(data: dict[str, Any]):
    """Rebuild the trained module (LeNet-5, or a backbone with a new head) in eval mode."""
    arch = data["arch"]
    if arch.get("name") == "lenet5":
        from edgekit.zoo.lenet import lenet5

        model = lenet5(num_classes=int(arch["num_classes"]))
    else:
        model = build_transfer(arch)
    from edgekit.zoo.build import load_weights

    load_weights(model, data.get("state_dict"), "checkpoint weights")
    return model.eval()


def evaluate_checkpoint(checkpoint: str | Path, meta: ModelMeta, split: Split,
                        batch_size: int = 64) -> dict[str, float]:
    """Top-1/top-5 of the torch model in ``checkpoint`` on ``split`` (the reference for runtimes)."""
    import torch

    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.tasks.classification import ClassificationTask

    data, _ = load_checkpoint(checkpoint)
    model = build_from_checkpoint(data)
    task = ClassificationTask()
    evaluator = make_evaluator(meta)
    with torch.no_grad():
        for images, targets in split.batches(batch_size):
            feeds, transforms = task.preprocess(images, meta)
            logits = model(torch.from_numpy(feeds[meta.input_name])).numpy()
            evaluator.update(task.postprocess({"output": logits}, meta, transforms), targets)
    return evaluator.compute()


def cut_classifier(model, num_classes: int):
    """(new model, head name, feature size): the classifier cut off, one new Linear head in its place.

    LeNet-5 (a Sequential) keeps its convolutional trunk up to Flatten and loses its three fc
    layers; torchvision models lose their ``fc``/``classifier`` module.
    """
    from torch import nn

    if isinstance(model, nn.Sequential):
        flatten = [i for i, m in enumerate(model) if isinstance(m, nn.Flatten)]
        linears = [m for m in model[flatten[0] + 1 :] if isinstance(m, nn.Linear)] if flatten else []
        if not linears:
            raise BadInputError("the backbone has no Flatten → Linear classifier to cut")
        cut = flatten[0] + 1
        return (nn.Sequential(*model[:cut], nn.Linear(linears[0].in_features, num_classes)), str(cut),
                linears[0].in_features)
    for name in ("fc", "classifier", "head"):
        old = getattr(model, name, None)
        if isinstance(old, nn.Module):
            linears = [m for m in old.modules() if isinstance(m, nn.Linear)]
            if not linears:
                break
            setattr(model, name, nn.Linear(linears[0].in_features, num_classes))
            return model, name, linears[0].in_features
    raise BadInputError(f"{type(model).__name__} has no Linear classifier to replace (e.g. SqueezeNet's is a "
                        "convolution); choose another backbone")


def build_transfer(arch: dict[str, Any]):
    """Rebuild backbone + new head from a checkpoint's arch record (weights are loaded afterwards)."""
    if arch["base"] == "lenet5":
        from edgekit.zoo.lenet import lenet5

        base = lenet5(num_classes=int(arch.get("base_classes") or 10))
    else:
        from edgekit.zoo.build import build_model

        base = build_model(arch["base"])
    return cut_classifier(base, int(arch["num_classes"]))[0]
