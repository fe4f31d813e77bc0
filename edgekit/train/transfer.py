"""Transfer learning: a trained backbone, its classifier cut off, a new head for new classes.

The backbone is an edgekit checkpoint (``edgekit train`` output) or a zoo model with the
user's ``--weights``. Two modes:

- ``features``: the backbone is frozen; features of the (augmented) training images are
  extracted once and a new linear head is fitted on them.
- ``finetune``: the same linear head first (a good start), then the last layers are trained
  together with it at a lower learning rate; earlier layers, BatchNorm statistics included,
  stay frozen.

Backbone and head are exported as one ONNX file carrying the new labels.
"""

from __future__ import annotations

import math
import time
import types
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.train.base import TrainConfig, TrainResult
from edgekit.train.lenet import (
    DEFAULT_THREADS, LENET_OPTIONS, _flag, augment, build_from_checkpoint, load_checkpoint, load_splits,
    recipe_info, save_model, settings_for, test_metrics, to_tensors, train_classifier,
)
from edgekit.train.loop import FitSettings, check_config, fit, output_dir, seed_everything

TRANSFER_OPTIONS = (*LENET_OPTIONS, "weights", "finetune_layers", "augment_copies", "input_size")
FEATURE_COPIES = 8  # augmented views per training image in features mode
FINETUNE_LAYERS = 2  # last parameterized layers trained in finetune mode (LeNet-5: conv2 and the head)


def train_transfer(config: TrainConfig) -> TrainResult:
    """New head (and optionally last layers) on a trained backbone, for the classes of ``config.data``."""
    check_config(config, TRANSFER_OPTIONS)
    if config.transfer_from is None:
        raise BadInputError("transfer needs --transfer-from: a checkpoint from `edgekit train`, or a zoo model with --weights")
    mode = config.mode or "features"
    start = time.perf_counter()
    seed_everything(config.seed, int(config.options.get("threads", DEFAULT_THREADS)))
    model, meta, arch = load_backbone(config)
    splits = load_splits(config)
    labels = splits["train"].labels
    model, head_name, in_features = cut_classifier(model, len(labels))
    arch = {"name": "transfer", "base": arch.get("base") or arch["name"], "num_classes": len(labels),
            "base_classes": arch.get("num_classes"), "head": head_name, "in_features": in_features}
    meta = meta.with_(labels=labels, model_name=f"{meta.model_name}-{mode}")
    with output_dir(config.output_dir) as out:
        result = fit_head(model, head_name, splits, meta, config)
        if mode == "finetune":
            layers = int(config.options.get("finetune_layers", FINETUNE_LAYERS))
            trainable = unfreeze_last(model, layers)
            result = train_classifier(model, trainable, splits, meta, config, settings_for(config, splits))
        metrics = test_metrics(model, splits["test"], meta, result.best_metric)
        extra = {"recipe": "transfer", "transfer_from": str(config.transfer_from), "mode": mode,
                 "arch": f"{arch['base']}+head"}
        checkpoint, onnx = save_model(model, meta, arch, config, recipe_info(config, result, extra),
                                      out / meta.model_name, metrics)
    return TrainResult(meta.model_name, checkpoint, onnx, metrics, time.perf_counter() - start,
                       result.epochs_run, result.history)


def load_backbone(config: TrainConfig):
    """(model, its input metadata, arch record) from an edgekit checkpoint or a zoo name + weights."""
    source = str(config.transfer_from)
    weights = config.options.get("weights")
    if source.endswith(".pt") or Path(source).exists():
        if weights is not None:
            raise BadInputError("--weights goes with a zoo model name; a checkpoint already holds its weights")
        data, meta = load_checkpoint(source)
        return build_from_checkpoint(data), meta, dict(data["arch"])
    from edgekit.zoo.build import build_model
    from edgekit.zoo.catalog import get_entry

    entry = get_entry(source)  # raises "unknown model ... did you mean"
    if weights is None:
        raise BadInputError(f"transfer from zoo model {entry.name} needs --weights (a state_dict file); "
                            "random weights make no backbone")
    size = config.options.get("input_size")
    if size is not None:
        from edgekit.exporters.config import parse_input_size

        size = parse_input_size(str(size))
    model = build_model(entry, weights=weights)
    return model, entry.meta(size), {"name": entry.name, "num_classes": entry.num_classes}


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
        return nn.Sequential(*model[:cut], nn.Linear(linears[0].in_features, num_classes)), str(cut), linears[0].in_features
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


def fit_head(model, head_name: str, splits, meta: ModelMeta, config: TrainConfig):
    """Freeze everything, extract the head's input features once, fit the head on them."""
    import torch
    import torch.nn.functional as F

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head = model.get_submodule(head_name)
    x_train, y_train = to_tensors(splits["train"], meta)
    copies = int(config.options.get("augment_copies", FEATURE_COPIES)) if _flag(config.options.get("augment", True)) else 0
    generator = torch.Generator().manual_seed(config.seed)
    background = -meta.mean[0] / meta.std[0] if meta.color == "GRAY" else 0.0
    views = [x_train] + [augment(x_train, generator, background) for _ in range(copies)]
    f_train = torch.cat([features(model, head, v) for v in views])
    y_all = y_train.repeat(len(views))
    x_val, y_val = to_tensors(splits["val"], meta)
    f_val = features(model, head, x_val)
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    batch = config.batch_size or 64
    steps = math.ceil(len(f_train) / batch)

    def batches(epoch: int):
        order = torch.randperm(len(f_train), generator=generator)
        for begin in range(0, len(order), batch):
            index = order[begin : begin + batch]
            yield f_train[index], y_all[index]

    def validate(_) -> float:
        with torch.no_grad():
            return 100.0 * float((head(f_val).argmax(1) == y_val).float().mean())

    epochs = config.epochs or min(200, max(30, math.ceil(400 / steps)))
    settings = FitSettings(epochs=epochs, lr=config.lr or 1e-2, optimizer=config.optimizer or "adam",
                           weight_decay=float(config.options.get("weight_decay", 1e-3)), patience=None)
    return fit(head, head.parameters(), batches, steps, lambda net, item: F.cross_entropy(net(item[0]), item[1]),
               validate, settings, progress=config.progress)


def features(model, head, x, batch: int = 256):
    """What ``head`` receives for inputs ``x`` (captured with a forward hook)."""
    import torch

    captured = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    try:
        model.eval()
        with torch.no_grad():
            for begin in range(0, len(x), batch):
                model(x[begin : begin + batch])
    finally:
        hook.remove()
    return torch.cat(captured)


def unfreeze_last(model, count: int) -> list:
    """Make the last ``count`` parameterized layers trainable; freeze the rest, BatchNorm kept in eval."""
    from torch import nn

    if count < 1:
        raise BadInputError(f"finetune_layers must be at least 1, got {count}")
    layers = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    trainable = layers[-count:]
    for module in layers:
        train = any(module is t for t in trainable)
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(train)
        if not train and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = types.MethodType(lambda self, mode=True: self, module)  # frozen stats
    return [p for m in trainable for p in m.parameters(recurse=False)]


def build_transfer(arch: dict[str, Any]):
    """Rebuild backbone + new head from a checkpoint's arch record (weights are loaded afterwards)."""
    if arch["base"] == "lenet5":
        from edgekit.zoo.lenet import lenet5

        base = lenet5(num_classes=int(arch.get("base_classes") or 10))
    else:
        from edgekit.zoo.build import build_model

        base = build_model(arch["base"])
    return cut_classifier(base, int(arch["num_classes"]))[0]
