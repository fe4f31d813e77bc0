"""Training utilities every recipe shares: seeding, optimizers, LR schedule, early stopping,
and a fit loop that reports each epoch to an optional callback (the CLI draws the bar; workstation tier:
torch imported inside functions).

A recipe supplies three callables — ``batches(epoch)`` yielding batches, ``loss(model, batch)``
returning a scalar tensor, ``validate(model, epoch)`` returning the validation metric (a number,
a dict of metrics holding ``settings.metric``, or None for an epoch it skips) — so a classifier
and a detector use the same loop.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from edgekit.errors import BadInputError
from edgekit.train.base import TrainConfig

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "onecycle", "constant")
TRANSFER_MODES = ("features", "finetune")


def check_config(config: TrainConfig, allowed_options: Iterable[str] = (),
                 kinds: dict[str, tuple[type, float]] | None = None) -> None:
    """Reject values no recipe can use, options this recipe does not know, and option values of the
    wrong type or below their minimum (``kinds``: name → (int | float | bool, minimum)), in one line."""
    if config.epochs is not None and config.epochs < 1:
        raise BadInputError(f"epochs must be at least 1, got {config.epochs}")
    if config.batch_size is not None and config.batch_size < 1:
        raise BadInputError(f"batch size must be at least 1, got {config.batch_size}")
    if config.lr is not None and not config.lr > 0:
        raise BadInputError(f"learning rate must be positive, got {config.lr}")
    if config.optimizer is not None and config.optimizer not in OPTIMIZERS:
        raise BadInputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{config.optimizer}'")
    if config.mode is not None and config.mode not in TRANSFER_MODES:
        raise BadInputError(f"mode must be one of {', '.join(TRANSFER_MODES)}, got '{config.mode}'")
    if config.mode is not None and config.transfer_from is None:
        raise BadInputError("--mode needs --transfer-from (the checkpoint to start from)")
    unknown = sorted(set(config.options) - set(allowed_options))
    if unknown:
        valid = ", ".join(sorted(allowed_options)) or "none"
        raise BadInputError(f"unknown option {', '.join(unknown)} for this recipe (valid: {valid})")
    for key, (kind, minimum) in (kinds or {}).items():
        if config.options.get(key) is not None and not _fits(config.options[key], kind, minimum):
            expected = {bool: "true or false", int: f"an integer ≥ {minimum:g}"}.get(kind, f"a number ≥ {minimum:g}")
            raise BadInputError(f"option {key} must be {expected}, got {config.options[key]!r}")


def _fits(value: Any, kind: type, minimum: float) -> bool:
    if kind is bool:
        return isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0", "yes", "no")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return (kind is not int or float(value).is_integer()) and value >= minimum


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed torch and numpy, use deterministic kernels and a sensible number of CPU threads."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads or default_threads())


def default_threads() -> int:
    """Physical-ish cores: small models gain nothing from hyper-threads, and lose to oversubscription."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, available))


@dataclass(frozen=True)
class FitSettings:
    """How the loop optimizes: epochs, optimizer, schedule, early stopping."""

    epochs: int
    lr: float
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "onecycle"
    patience: int | None = None  # epochs without a better val metric before stopping
    metric: str = "val_top1"
    higher_is_better: bool = True
    warmup_fraction: float = 0.2  # one-cycle: share of the steps spent warming up
    keep_best: bool = True  # restore the best validated weights at the end (else keep the last)
    time_limit_s: float | None = None  # stop after the epoch that passes this many seconds


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_metric: float
    epochs_run: int
    seconds: float
    history: tuple[dict[str, float], ...]


def make_optimizer(name: str, parameters, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    import torch

    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    raise BadInputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{name}'")


def make_schedule(name: str, optimizer, lr: float, epochs: int, steps_per_epoch: int, warmup: float = 0.2):
    """A per-step LR scheduler: one-cycle (warm-up then anneal), cosine, or constant.

    Parameter groups with their own ``lr`` (e.g. a backbone slower than its head) keep their ratio.
    """
    import torch

    total = max(1, epochs * steps_per_epoch)
    if name == "onecycle" and total >= 10:  # shorter runs have no room for a warm-up phase: cosine
        peaks = [group.get("lr", lr) for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=warmup)
    if name in ("cosine", "onecycle"):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise BadInputError(f"schedule must be one of {', '.join(SCHEDULES)}, got '{name}'")


class EarlyStopping:
    """Remembers the best weights by a validation metric; says when to stop."""

    def __init__(self, patience: int | None, higher_is_better: bool = True) -> None:
        self.patience = patience
        self.sign = 1.0 if higher_is_better else -1.0
        self.best = float("-inf")
        self.best_epoch = 0
        self.best_state: dict[str, Any] | None = None

    def update(self, epoch: int, metric: float, model) -> bool:
        """Record this epoch; True when training should stop."""
        # ties go to the later epoch: small validation sets tie often, and later weights have trained longer
        if self.sign * metric >= self.best:
            self.best, self.best_epoch = self.sign * metric, epoch
            self.best_state = copy.deepcopy(model.state_dict())
        return self.patience is not None and epoch - self.best_epoch >= self.patience

    def restore(self, model) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    @property
    def best_metric(self) -> float:
        return self.sign * self.best


EpochCallback = Callable[[int, int, float, str, "float | None", float], None]


def fit(
    model, parameters, batches: Callable[[int], Iterable[Any]], steps_per_epoch: int,
    loss: Callable[[Any, Any], Any], validate: Callable[[Any, int], Any], settings: FitSettings,
    progress: EpochCallback | bool | None = None,
) -> FitResult:
    """Train ``parameters`` of ``model``; keep the weights of the best validation epoch (``keep_best``).
    ``progress(epoch, epochs, loss, metric name, metric, best)`` is told each epoch (a bool: nothing)."""
    optimizer = make_optimizer(settings.optimizer, parameters, settings.lr, settings.weight_decay, settings.momentum)
    scheduler = make_schedule(settings.schedule, optimizer, settings.lr, settings.epochs, steps_per_epoch,
                              settings.warmup_fraction)
    stopper = EarlyStopping(settings.patience, settings.higher_is_better)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    report = progress if callable(progress) else (lambda *args: None)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        total = count = 0.0
        for batch in batches(epoch):
            optimizer.zero_grad(set_to_none=True)
            value = loss(model, batch)
            value.backward()
            optimizer.step()
            scheduler.step()
            total, count = total + float(value.detach()), count + 1
        model.eval()
        record = {"epoch": epoch, "loss": total / max(count, 1),
                  **_metrics(validate(model, epoch), settings.metric)}
        history.append(record)
        metric = record.get(settings.metric)
        stop = metric is not None and stopper.update(epoch, metric, model)
        report(epoch, settings.epochs, record["loss"], settings.metric, metric, stopper.best_metric)
        if stop or (settings.time_limit_s and time.perf_counter() - start > settings.time_limit_s):
            break
    if settings.keep_best:
        stopper.restore(model)
    model.eval()
    best_epoch = stopper.best_epoch if settings.keep_best else len(history)
    return FitResult(best_epoch, stopper.best_metric, len(history), time.perf_counter() - start, tuple(history))


def _metrics(value: Any, name: str) -> dict[str, float]:
    """What ``validate`` returned as a dict of metrics (empty when it skipped the epoch)."""
    if value is None:
        return {}
    return {key: float(v) for key, v in value.items()} if isinstance(value, dict) else {name: float(value)}


class output_dir:
    """Create the output folder; if training fails and we created it, remove it again (if empty)."""

    def __init__(self, path) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.created = False

    def __enter__(self):
        from edgekit.fileio import probe_folder

        if self.path.exists() and not self.path.is_dir():
            raise BadInputError(f"output path {self.path} exists and is not a folder")
        if not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise BadInputError(f"cannot create output folder {self.path}: {exc.strerror}") from None
            self.created = True
        probe_folder(self.path)  # an unwritable folder fails now, not after the training
        return self.path

    def __exit__(self, kind, *exc: object) -> None:
        if kind is not None and self.created and not any(self.path.iterdir()):
            self.path.rmdir()
