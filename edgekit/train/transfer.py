"""Transfer learning: a trained backbone, its classifier cut off, a new head for new classes.

The backbone is an edgekit checkpoint (``edgekit train`` output) or a zoo model with the
user's ``--weights``. Two modes:

- ``features``: the backbone is frozen; features of the training images and of augmented
  views of them are extracted once and a new linear head (L2-regularised logistic
  regression) is fitted on them to convergence.
- ``finetune``: that fitted head first (a good start), then the last layers are trained
  together with it, the backbone layers at a tenth of the head's learning rate, with the
  from-scratch recipe's augmentation, budget and early stopping; earlier layers, BatchNorm
  statistics included, stay frozen.

Backbone and head are exported as one ONNX file carrying the new labels.
"""

from __future__ import annotations

import time
import types
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.fileio import check_not_input
from edgekit.meta import ModelMeta
from edgekit.train.base import TrainConfig, TrainResult
from edgekit.train.classifier import (
    CLASSIFIER_KINDS, CLASSIFIER_OPTIONS, DEFAULT_THREADS, augment, build_from_checkpoint, cut_classifier, flag,
    load_checkpoint, load_splits, recipe_info, save_model, settings_for, test_metrics, to_tensors, train_classifier,
)
from edgekit.train.loop import FitResult, check_config, output_dir, seed_everything

TRANSFER_OPTIONS = (*CLASSIFIER_OPTIONS, "weights", "finetune_layers", "augment_copies",
                    "input_size", "backbone_lr_scale")
FEATURE_COPIES = 16  # augmented views per training image for the features head
FINETUNE_LAYERS = 2  # last parameterized layers trained in finetune mode (LeNet-5: conv2 and the head)
FINETUNE_LR_SCALE = 0.3  # fine-tuning starts from a fitted head: a third of the from-scratch LR
BACKBONE_LR_SCALE = 0.1  # the unfrozen backbone layers learn 10x slower than the head
TRANSFER_KINDS = {**CLASSIFIER_KINDS, "finetune_layers": (int, 1), "augment_copies": (int, 0),
                  "backbone_lr_scale": (float, 0)}


def train_transfer(config: TrainConfig) -> TrainResult:
    """New head (and optionally last layers) on a trained backbone, for the classes of ``config.data``."""
    check_config(config, TRANSFER_OPTIONS, TRANSFER_KINDS)
    if config.transfer_from is None:
        raise BadInputError("transfer needs --transfer-from: "
                            "a checkpoint from `edgekit train`, or a zoo model with --weights")
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
    stem = Path(config.output_dir) / meta.model_name
    for output in (stem.with_suffix(".pt"), stem.with_suffix(".onnx")):
        check_not_input(output, [config.transfer_from, config.options.get("weights")])
    with output_dir(config.output_dir) as out:
        result = fit_head(model, head_name, splits, meta, config)
        if mode == "finetune":
            layers = int(config.options.get("finetune_layers", FINETUNE_LAYERS))
            trainable = unfreeze_last(model, layers)
            settings = settings_for(config, splits, lr_scale=FINETUNE_LR_SCALE)
            groups = finetune_groups(model.get_submodule(head_name), trainable, settings.lr,
                                     float(config.options.get("backbone_lr_scale", BACKBONE_LR_SCALE)))
            result = train_classifier(model, groups, splits, meta, config, settings)
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


def fit_head(model, head_name: str, splits, meta: ModelMeta, config: TrainConfig) -> FitResult:
    """Freeze everything, extract the head's input features once, fit the head on them.

    The head is a multinomial logistic regression fitted to convergence (full-batch L-BFGS) on
    the features of the training images and ``augment_copies`` augmented views of each, with an
    L2 penalty ½·λ‖W‖²: λ is the ``weight_decay`` option, by default 1/(number of feature
    vectors), scikit-learn's ``C=1``. Deterministic, and no epochs or validation to tune.
    """
    import torch

    start = time.perf_counter()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head = model.get_submodule(head_name)
    x_train, y_train = to_tensors(splits["train"], meta)
    copies = (int(config.options.get("augment_copies", FEATURE_COPIES)) if flag(config.options.get("augment", True))
              else 0)
    generator = torch.Generator().manual_seed(config.seed)
    background = -meta.mean[0] / meta.std[0] if meta.color == "GRAY" else 0.0
    views = [x_train] + [augment(x_train, generator, background) for _ in range(copies)]
    f_train = torch.cat([features(model, head, v) for v in views])
    y_all = y_train.repeat(len(views))
    penalty = float(config.options.get("weight_decay", 1.0 / len(f_train)))
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    loss = fit_logistic(head, f_train, y_all, penalty)
    x_val, y_val = to_tensors(splits["val"], meta)
    with torch.no_grad():
        val = 100.0 * float((head(features(model, head, x_val)).argmax(1) == y_val).float().mean())
    head.requires_grad_(False)
    return FitResult(1, val, 1, time.perf_counter() - start, ({"epoch": 1, "loss": loss, "val_top1": val},))


def fit_logistic(head, x, y, penalty: float, iterations: int = 500) -> float:
    """Minimise mean cross-entropy + ½·penalty·‖weight‖² over ``head`` (a Linear) with L-BFGS."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=iterations, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad(set_to_none=True)
        value = F.cross_entropy(head(x), y) + 0.5 * penalty * head.weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        return float(F.cross_entropy(head(x), y))


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


def finetune_groups(head, trainable: list, lr: float, backbone_scale: float) -> list[dict]:
    """Optimizer parameter groups: the head at ``lr``, the unfrozen backbone layers slower."""
    if not backbone_scale > 0:
        raise BadInputError(f"backbone_lr_scale must be positive, got {backbone_scale}")
    own = {id(p) for p in head.parameters()}
    backbone = [p for p in trainable if id(p) not in own]
    groups = [{"params": [p for p in trainable if id(p) in own], "lr": lr}]
    return groups + ([{"params": backbone, "lr": lr * backbone_scale}] if backbone else [])


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
