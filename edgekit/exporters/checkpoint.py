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


def torch_load(path: str | Path, kind: str = "weights file", hint: str = "") -> Any:
    """``torch.load(weights_only=True)``: tensors only, no pickled code runs. ``kind`` names the file
    in errors; ``hint`` ends a refusal, which says which global was refused (never how to bypass it)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{kind} not found: {path}")
    try:
        with warnings.catch_warnings():   # torch warns about old pickle protocols on stderr; errors say enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip, EOF and runtime errors of many types
        refused = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
        if refused:
            raise BadInputError(f"{kind} {path} holds more than tensors, refused by the safe loader (it "
                                f"pickles {refused.group(1)}, which is not a tensor type){hint}") from None
        raise BadInputError(f"cannot read {kind} {path}: {load_failure(exc)}") from None


def load_failure(exc: BaseException) -> str:
    """Why torch could not read a file, without its advice to retry with weights_only=False."""
    text = str(exc)
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    if "Weights only load failed" not in text and "WeightsUnpickler" not in text:
        return first_line(exc)
    detail = re.search(r"WeightsUnpickler error:\s*([^.\n]+)", text)
    reason = detail.group(1).strip() if detail and "weights_only" not in detail.group(1) else "not a tensor file"
    return f"not a torch tensor file or a damaged one ({reason})"


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
    state = state_dict_of(torch_load(path, hint="; save model.state_dict() instead"), path)
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
