"""Synthetic inputs shaped by a model's declared input specs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.runtimes.base import TensorSpec


def resolve_shape(spec: TensorSpec, batch: int, meta: ModelMeta | None = None) -> tuple[int, ...]:
    """Concrete shape for ``spec``: symbolic batch → ``batch``, symbolic H/W from metadata."""
    shape = list(spec.shape)
    if shape and not isinstance(shape[0], int):
        shape[0] = batch
    elif shape and shape[0] != batch:
        raise BadInputError(
            f"model input '{spec.name}' has a fixed batch of {shape[0]}, not {batch}: "
            "export it with --batch or --dynamic-batch"
        )
    if meta is not None and len(shape) == 4 and meta.input_layout == "NCHW":
        fallback = (meta.channels, *meta.input_size)
        shape[1:] = [dim if isinstance(dim, int) else fallback[i] for i, dim in enumerate(shape[1:])]
    unresolved = [str(dim) for dim in shape if not isinstance(dim, int)]
    if unresolved:
        raise BadInputError(f"input '{spec.name}' has symbolic dims {', '.join(unresolved)} edgekit cannot choose")
    return tuple(int(dim) for dim in shape)


def random_feeds(
    specs: Mapping[str, TensorSpec], batch: int = 1, meta: ModelMeta | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Reproducible random inputs: standard normal floats, zeros for integer/bool inputs."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in specs.items():
        shape = resolve_shape(spec, batch, meta)
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:  # tensor(string), sequences, optionals: no meaningful random value
            raise BadInputError(f"cannot make a random input for '{name}' of type {spec.dtype}: only numeric "
                                "inputs can be generated (compare takes --inputs FILE.npz)") from None
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = np.zeros(shape, dtype=dtype)
    return feeds
