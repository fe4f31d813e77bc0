"""The runtime protocol: one small class per inference backend.

Public methods check state and inputs; subclasses implement only the ``_``
methods. Constructors do no I/O; ``open()``/``close()`` (or ``with``) hold the
resources. The backend's package is imported inside ``_open``/``probe`` only.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, EdgekitError, RuntimeUnavailableError

Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of a model input or output (str/None = symbolic)."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class Availability:
    """Whether a runtime can be used here, and if not why and how to fix it."""

    name: str
    available: bool
    version: str = ""
    devices: tuple[str, ...] = ()
    reason: str = ""
    install: str = ""


@dataclass(frozen=True)
class RuntimeOptions:
    """Options every runtime accepts; backends subclass this to add their own.

    Values are checked against the field annotations, so ``-O threads=abc`` is a one-line
    error and not a traceback from deep inside a backend.
    """

    threads: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            allowed = typing.get_args(hints[option.name]) or (hints[option.name],)
            if not any(_is_instance(value, kind) for kind in allowed):
                names = " or ".join("none" if kind is type(None) else kind.__name__ for kind in allowed)
                raise BadInputError(f"option {option.name} must be {names}, got {value!r}")
        if self.threads is not None and self.threads < 1:
            raise BadInputError(f"option threads must be a positive integer, got {self.threads}")


def _is_instance(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


class Runtime(ABC):
    """An inference backend bound to one model file."""

    name: ClassVar[str]
    extra: ClassVar[str]
    Options: ClassVar[type[RuntimeOptions]] = RuntimeOptions
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)

    def __init__(self, model: str | Path, **options: Any) -> None:
        self.model_path = Path(model)
        self.options = self.make_options(**options)
        self._inputs: dict[str, TensorSpec] | None = None
        self._outputs: dict[str, TensorSpec] | None = None

    @classmethod
    def make_options(cls, **options: Any) -> RuntimeOptions:
        """Build this runtime's options; unknown names raise a BadInputError listing valid ones."""
        valid = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise BadInputError(
                f"runtime '{cls.name}' has no option {', '.join(unknown)} (valid: {', '.join(sorted(valid))})"
            )
        return cls.Options(**{k: v for k, v in options.items() if v is not None})

    # ---- lifecycle -------------------------------------------------------
    def open(self) -> Runtime:
        """Load the model; raises RuntimeUnavailableError or BadInputError."""
        if self.is_open:
            return self
        if not self.model_path.is_file():
            raise BadInputError(f"model file not found: {self.model_path}")
        if self.model_path.suffix.lower() not in self.suffixes:
            raise BadInputError(
                f"runtime '{self.name}' cannot load '{self.model_path.name}' "
                f"(expected {' or '.join(self.suffixes)})"
            )
        self.ensure_available()
        self._inputs, self._outputs = self._open()
        return self

    def close(self) -> None:
        """Release the model; safe to call twice."""
        if self.is_open:
            self._close()
        self._inputs = self._outputs = None

    def __enter__(self) -> Runtime:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._inputs is not None

    # ---- description -----------------------------------------------------
    @property
    def inputs(self) -> Mapping[str, TensorSpec]:
        return self._require_open()[0]

    @property
    def outputs(self) -> Mapping[str, TensorSpec]:
        return self._require_open()[1]

    def _require_open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        if self._inputs is None or self._outputs is None:
            raise EdgekitError(f"runtime '{self.name}' is not open: call open() or use 'with'")
        return self._inputs, self._outputs

    def describe(self) -> dict[str, Any]:
        """Provider/device details for records (after open)."""
        return {"runtime": self.name, **dataclasses.asdict(self.options)}

    # ---- inference -------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate ``feeds`` against the declared inputs, run, return outputs by name."""
        self.check_feeds(feeds)
        return self._run(feeds)

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """Validate once and return the cheapest call that runs one finished inference.

        Used by the benchmark's timed loop; the returned call must include any
        device synchronization so that timing it measures completed work.
        """
        self.check_feeds(feeds)
        return self._prepare(dict(feeds))

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        run = self._run
        return lambda: run(feeds)

    def timing_breakdown(self, feeds: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Extra per-call timings in ms (GPU runtimes: host↔device copies); none by default."""
        return {}

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        inputs = self._require_open()[0]
        expected = "; ".join(str(spec) for spec in inputs.values())
        if set(feeds) != set(inputs):
            raise BadInputError(f"model expects inputs {expected}, got {sorted(feeds)}")
        for name, spec in inputs.items():
            array = feeds[name]
            problem = _mismatch(spec, array)
            if problem:
                raise BadInputError(f"input '{name}' {problem}; model expects {expected}")

    @classmethod
    def ensure_available(cls) -> Availability:
        """The probe's answer, or a RuntimeUnavailableError saying why and what to install."""
        availability = cls.probe()
        if not availability.available:
            raise RuntimeUnavailableError(unavailable_message(availability))
        return availability

    # ---- for subclasses ----------------------------------------------------
    @classmethod
    @abstractmethod
    def probe(cls) -> Availability:
        """Is the backend installed and usable here? Never raises."""

    @abstractmethod
    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]: ...

    @abstractmethod
    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _close(self) -> None:
        """Free backend resources (default: nothing to free)."""


def _mismatch(spec: TensorSpec, array: np.ndarray) -> str:
    if not isinstance(array, np.ndarray):
        return f"is a {type(array).__name__}, not a numpy array"
    if array.dtype.name != spec.dtype:
        return f"has dtype {array.dtype.name}"
    if array.ndim != len(spec.shape):
        return f"has shape {tuple(array.shape)}"
    for size, dim in zip(array.shape, spec.shape):
        if isinstance(dim, int) and dim != size:
            return f"has shape {tuple(array.shape)}"
    return ""


def unavailable_message(availability: Availability) -> str:
    """One line saying why a runtime cannot be used and what to install."""
    message = f"runtime '{availability.name}' is not available: {availability.reason}"
    if availability.install:
        message += f" — {availability.install}"
    return message


def import_failure(name: str, package: str, extra: str, exc: Exception) -> Availability:
    """Availability for a backend whose Python package failed to import."""
    reason = f"{package} is not installed" if isinstance(exc, ModuleNotFoundError) else f"{package} failed to import ({exc})"
    return Availability(name, False, reason=reason, install=f"pip install 'edgekit[{extra}]'")
