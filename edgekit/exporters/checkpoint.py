"""Checkpoints for user modules: tensors only (``weights_only=True``), and a fit check that names
the first mismatching keys and shapes before torch would raise."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, first_line

SHOWN = 3  # mismatches listed in an error
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def safe_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``; a refusal says which global was refused (never how to bypass it)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"weights file not found: {path}")
    try:
        with warnings.catch_warnings():   # torch warns about old pickle protocols on stderr; errors say enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BadInputError(f"weights file {path} holds more than tensors, refused by the safe loader "
                            f"({refusal_reason(exc)}); save model.state_dict() instead") from None
    except Exception as exc:  # torch raises zip, pickle and runtime errors of many types
        raise BadInputError(f"cannot read weights file {path}: {first_line(exc)}") from None


def refusal_reason(exc: BaseException) -> str:
    """The 'Unsupported global: GLOBAL x.Y' part of torch's refusal, without its advice."""
    text = str(exc)
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if match:
        return f"it pickles {match.group(1)}, which is not a tensor type"
    match = re.search(r"WeightsUnpickler error: ([^.\n]+)", text)
    if match:
        return match.group(1).strip()
    return "it is not a plain tensor file"


def state_dict_of(loaded: Any, path: str | Path) -> dict:
    """The state_dict in a checkpoint: the dict itself, or one nested under a usual key."""
    if isinstance(loaded, dict):
        for key in _STATE_KEYS:
            if isinstance(loaded.get(key), dict):
                return loaded[key]
        if loaded and all(hasattr(value, "shape") for value in loaded.values()):
            return loaded
    raise BadInputError(f"weights file {path} does not hold a state_dict (a dict of tensors, "
                        f"or one under {', '.join(_STATE_KEYS)})")


def load_weights(module, path: str | Path) -> None:
    """Load ``path`` into ``module``; any missing, unexpected or mis-shaped key is a BadInputError."""
    state = state_dict_of(safe_load(path), path)
    expected = module.state_dict()
    if state and not set(state) & set(expected):
        state = _strip_prefix(state, expected)
    problems = fit_problems(expected, state)
    if problems:
        raise BadInputError(f"weights {Path(path).name} do not fit the model: {problems}")
    module.load_state_dict(state, strict=True)


def fit_problems(expected: dict, given: dict) -> str:
    """'' when ``given`` fits ``expected``; else the first mismatches, by kind."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    shapes = [f"{key} {tuple(given[key].shape)} vs {tuple(expected[key].shape)}"
              for key in expected if key in given and tuple(given[key].shape) != tuple(expected[key].shape)]
    parts = [f"{label} {len(items)} [{', '.join(items[:SHOWN])}{', …' if len(items) > SHOWN else ''}]"
             for label, items in (("missing", missing), ("unexpected", unexpected),
                                  ("shape mismatch (checkpoint vs model)", shapes)) if items]
    return "; ".join(parts)


def _strip_prefix(state: dict, expected: dict) -> dict:
    """Checkpoints saved from a wrapper ('module.' from DataParallel, 'model.') still fit."""
    for prefix in ("module.", "model.", "net."):
        stripped = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        if stripped and set(stripped) & set(expected):
            return stripped
    return state
