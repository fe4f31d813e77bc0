"""Build zoo models in torch (workstation tier: imports torch lazily)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, first_line
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
    state = torch_load(path, "weights file")
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise BadInputError(f"{path} does not hold a state_dict")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:3])
        unexpected = ", ".join(result.unexpected_keys[:3])
        raise BadInputError(
            f"weights {path} do not fit this model: missing [{missing}{'…' if len(result.missing_keys) > 3 else ''}]"
            f" unexpected [{unexpected}{'…' if len(result.unexpected_keys) > 3 else ''}]"
        )


def torch_load(path: str | Path, kind: str) -> Any:
    """``torch.load`` of tensors only (no pickled code); ``kind`` names the file in errors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{kind} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip errors of many types
        raise BadInputError(f"cannot read {kind} {path}: {first_line(exc)}") from None


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
