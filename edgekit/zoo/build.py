"""Build zoo models in torch (workstation tier: imports torch lazily)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.zoo.catalog import ZooEntry, get_entry


def build_model(name: str | ZooEntry, weights: str | Path | None = None, seed: int = 0):
    """Instantiate a zoo model in eval mode: random weights (seeded) or a state_dict file."""
    import torch

    entry = get_entry(name) if isinstance(name, str) else name
    torch.manual_seed(seed)
    model = _construct(entry)
    if weights is not None:
        load_state_dict(model, weights)
    return model.eval()


def _construct(entry: ZooEntry):
    module_name, _, attribute = entry.builder.partition(":")
    builder = getattr(importlib.import_module(module_name), attribute)
    kwargs: dict[str, Any] = dict(entry.kwargs)
    if module_name.startswith("torchvision"):
        kwargs["weights"] = None  # never download
    return builder(**kwargs)


def load_state_dict(model, path: str | Path) -> None:
    """Load a checkpoint (a state_dict, or a dict holding one under 'state_dict'/'model')."""
    from edgekit.exporters.checkpoint import torch_load

    state = torch_load(path)
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    load_weights(model, state, f"weights {path}")


def load_weights(model, state: Any, source: str) -> None:
    """Load ``state`` strictly; a mismatch is one line listing the first missing, unexpected and
    wrongly shaped entries (torch's own error is a multi-line traceback)."""
    import torch

    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise BadInputError(f"{source} does not hold a state_dict")
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [f"{key} {_shape(state[key])} (model: {tuple(own[key].shape)})" for key in own
              if key in state and (not isinstance(state[key], torch.Tensor) or state[key].shape != own[key].shape)]
    problems = [f"{label} [{', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}]"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if keys]
    if problems:
        raise BadInputError(f"{source} do not fit this model: {'; '.join(problems)}")
    model.load_state_dict(state)


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if hasattr(value, "shape") else f"a {type(value).__name__}"


def torch_bytes(value: Any) -> bytes:
    """``torch.save`` into memory: written with Python's file API, a full disk is an OSError (one
    line through ``fileio.atomic_path``), not torch's "enforce fail at inline_container.cc"."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def count_parameters(name: str | ZooEntry) -> int:
    """Parameter count, computed on torch's meta device (no memory, no init cost)."""
    import torch

    entry = get_entry(name) if isinstance(name, str) else name
    with torch.device("meta"):
        model = _construct(entry)
    return sum(p.numel() for p in model.parameters())


def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet class names torchvision ships (no download)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


def default_labels(entry: ZooEntry) -> tuple[str, ...]:
    if entry.num_classes == 1000:
        return imagenet_labels()
    if entry.name == "lenet5":
        return tuple(str(d) for d in range(10))
    return ()
