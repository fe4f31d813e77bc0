"""Typed records of what ``ModelMeta.extra`` holds, read in one place each (``meta.letterbox_of`` is
the letterbox's). Robot tier: standard library only; works on any object with an ``extra`` mapping.

    source_of(meta).dataset        # "digits", or None for a model that records no training data
    deployment_of(meta).runtime    # "openvino", as `edgekit optimize` chose, or None
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SOURCE_KEY = "source"
DEPLOYMENT_KEY = "deployment"
ASSUMED_KEY = "assumed"


@dataclass(frozen=True)
class ModelSource:
    """What a model was made from (``extra["source"]``): the data set it was trained on with its options
    and split seed (training recipes), the zoo architecture and weights (zoo exports), the recipe and
    checkpoint (trained models), or a user module's kind and label. Empty for a file that records none."""

    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    zoo: str | None = None
    weights: str | None = None
    recipe: str | None = None
    checkpoint: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)   # the record as written (other keys included)

    def split_seed(self, default: int) -> int:
        """The seed of the model's own train/test split, or ``default`` when none is recorded."""
        return self.seed if self.seed is not None else default

    def trained_on(self, spec: str) -> bool:
        """True when ``spec`` names the data set the model was trained on."""
        return self.dataset is not None and self.dataset == spec


def source_of(meta: Any) -> ModelSource:
    """The model's ``extra["source"]`` as a ``ModelSource`` (empty when missing or not a mapping; values
    of the wrong type are left out rather than trusted)."""
    given = getattr(meta, "extra", {}).get(SOURCE_KEY)
    if not isinstance(given, dict):
        return ModelSource()
    options = given.get("dataset_options")
    seed = given.get("seed")
    return ModelSource(
        dataset=_text(given.get("dataset")), dataset_options=dict(options) if isinstance(options, dict) else {},
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        zoo=_text(given.get("zoo")), weights=_text(given.get("weights")), recipe=_text(given.get("recipe")),
        checkpoint=_text(given.get("checkpoint")), raw=dict(given))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Deployment:
    """How `edgekit optimize` said to run the file (``extra["deployment"]``): runtime, precision, the
    runtime options (None values left out) and the whole record as written (its measurements)."""

    runtime: str | None = None
    precision: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def deployment_of(meta: Any) -> Deployment:
    """The model's ``extra["deployment"]`` as a ``Deployment`` (empty when it records none)."""
    given = getattr(meta, "extra", {}).get(DEPLOYMENT_KEY)
    if not isinstance(given, dict):
        return Deployment()
    options = given.get("options")
    options = {str(k): v for k, v in options.items() if v is not None} if isinstance(options, dict) else {}
    return Deployment(_text(given.get("runtime")), _text(given.get("precision")), options, dict(given))


def assumed_of(meta: Any) -> tuple[str, ...]:
    """The metadata keys an export assumed for want of them (``extra["assumed"]``: task, input_size, ...)."""
    given = getattr(meta, "extra", {}).get(ASSUMED_KEY)
    return tuple(str(line) for line in given) if isinstance(given, (list, tuple)) else ()
