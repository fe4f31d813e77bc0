"""``--data-loader file.py:func`` (Polygraphy-style): the user's function yields feed dicts
(input name → array); edgekit checks each against the model's inputs."""

from __future__ import annotations

import itertools
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, first_line

Feeds = dict[str, np.ndarray]
MAX_BATCHES = 1000


def load_batches(spec: str, limit: int | None = None) -> list[Feeds]:
    """Call the loader named by ``spec`` (``file.py:func`` or ``package.module:func``) and collect
    up to ``limit`` feed dicts; a function returning one dict gives one batch."""
    from edgekit.sources import parse_source

    source = parse_source(spec)
    if source.kind != "factory":
        raise BadInputError(f"--data-loader must look like file.py:function or package.module:function, got '{spec}'")
    from edgekit.exporters.user_module import import_location

    module = import_location(source.location)
    function = getattr(module, source.factory, None)
    if not callable(function):
        raise BadInputError(f"{source.location} has no function '{source.factory}'")
    try:
        produced = function()
        if isinstance(produced, Mapping):
            produced = [produced]
        batches = list(itertools.islice(iter(produced), limit or MAX_BATCHES))
    except BadInputError:
        raise
    except TypeError as exc:
        raise BadInputError(f"data loader {spec} must take no arguments and yield dicts of arrays: "
                            f"{first_line(exc)}") from None
    except Exception as exc:  # the user's loader can raise anything; one line
        raise BadInputError(f"data loader {spec} failed: {type(exc).__name__}: {first_line(exc)}") from None
    if not batches:
        raise BadInputError(f"data loader {spec} yielded nothing")
    return [_as_feeds(batch, index, spec) for index, batch in enumerate(batches)]


def _as_feeds(batch: Any, index: int, spec: str) -> Feeds:
    if not isinstance(batch, Mapping):
        raise BadInputError(f"data loader {spec} yielded a {type(batch).__name__} as batch {index}; "
                            "yield dicts of input name → array")
    feeds = {}
    for name, value in batch.items():
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.dtype == object:
            raise BadInputError(f"data loader {spec}: batch {index} input '{name}' is not a numeric array")
        feeds[str(name)] = array
    return feeds


def check_feeds(batches: list[Feeds], specs: Mapping[str, Any], source: str) -> list[Feeds]:
    """Every batch names exactly the model's inputs (shapes and dtypes are the runtime's to check:
    it refuses what it cannot take, and nothing is cast behind the user's back)."""
    for index, feeds in enumerate(batches):
        if set(feeds) != set(specs):
            expected = "; ".join(str(spec) for spec in specs.values())
            where = f" (batch {index})" if len(batches) > 1 else ""
            raise BadInputError(f"{Path(source).name if source.endswith('.npz') else source}{where} holds arrays "
                                f"{sorted(feeds)}, but the model expects inputs {expected}")
    return batches
