"""``--input name:1x3x224x224:float32`` specs (stdlib only).

A dim is an integer, ``?`` or a name (symbolic), optionally with the size to trace it at:
``batch=2`` or ``?=320``. The dtype defaults to float32.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgekit.errors import BadInputError

DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_DIM = re.compile(r"^(?:(\d+)|(\?|[A-Za-z_][A-Za-z0-9_]*)(?:=(\d+))?)$")
Dim = int | str


@dataclass(frozen=True)
class InputSpec:
    """One model input: name, dims (int or symbolic name) and the concrete sizes to trace symbolic ones at."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    sample: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}:{'x'.join(str(d) for d in self.shape)}:{self.dtype}"

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def sample_shape(self) -> tuple[int, ...]:
        """The concrete shape a tracing or random input uses."""
        return self.sample or tuple(d if isinstance(d, int) else 1 for d in self.shape)


def parse_input_spec(text: str) -> InputSpec:
    """Parse ``name:dims[:dtype]``; dims separated by ``x`` or ``,``."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise BadInputError(f"input spec must look like name:1x3x224x224[:float32], got '{text}'")
    name, dims_text = parts[0].strip(), parts[1].strip()
    dtype = parts[2].strip().lower() if len(parts) == 3 else "float32"
    if not _NAME.match(name):
        raise BadInputError(f"input spec '{text}': '{name}' is not a tensor name")
    if dtype not in DTYPES:
        raise BadInputError(f"input spec '{text}': unknown dtype '{dtype}' (one of {', '.join(DTYPES)})")
    shape: list[Dim] = []
    sample: list[int] = []
    for index, token in enumerate(dims_text.replace(",", "x").split("x")):
        match = _DIM.match(token.strip())
        if not match:
            raise BadInputError(f"input spec '{text}': dim '{token}' is not an integer, '?' or a name")
        fixed, symbol, size = match.groups()
        if fixed is not None:
            if int(fixed) < 1 or int(fixed) > 1 << 20:
                raise BadInputError(f"input spec '{text}': dim {fixed} must be between 1 and {1 << 20}")
            shape.append(int(fixed))
            sample.append(int(fixed))
        else:
            shape.append(symbol if symbol != "?" else f"{name}_dim{index}")
            sample.append(_sample_size(size, index, text))
    return InputSpec(name, tuple(shape), dtype, tuple(sample))


def _sample_size(size: str | None, index: int, text: str) -> int:
    if size is None:
        return 1 if index == 0 else 224  # batch 1; other symbolic dims traced at 224 unless given
    if not 1 <= int(size) <= 1 << 20:
        raise BadInputError(f"input spec '{text}': sample size {size} must be between 1 and {1 << 20}")
    return int(size)


def parse_input_specs(texts: Iterable[str] | None) -> tuple[InputSpec, ...]:
    """Parse repeated ``--input`` values; a name given twice is an error."""
    specs = tuple(parse_input_spec(text) for text in texts or ())
    names = [spec.name for spec in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BadInputError(f"input {', '.join(twice)} given twice")
    return specs


def shape_overrides(specs: Sequence[InputSpec]) -> dict[str, tuple[Dim, ...]]:
    """Input name → dims, for resolving a model's dynamic dims."""
    return {spec.name: spec.shape for spec in specs}


def sample_feeds(specs: Sequence[InputSpec], seed: int = 0) -> dict:
    """Seeded inputs at each spec's sample shape: normal floats, small integers, False."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        shape = spec.sample_shape()
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = np.zeros(shape, dtype)
        else:
            feeds[spec.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds
