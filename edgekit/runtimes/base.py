"""The runtime protocol: one small class per inference backend.

Public methods check state and inputs; subclasses implement only the ``_``
methods. Constructors do no I/O; ``open()``/``close()`` (or ``with``) hold the
resources. The backend's package is imported inside ``_open``/``probe`` only.
"""

from __future__ import annotations

import dataclasses
import threading
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, EdgekitError, RuntimeUnavailableError

Dim = int | str | None


#: TensorSpec.kind values: a dense tensor, or ONNX's non-tensor types (passed to the runtime unchecked)
KINDS = ("tensor", "sequence", "optional", "map")
#: TensorSpec.dtype of a string tensor (numpy arrays of kind U, S or O are accepted for it)
STRING = "string"


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape of a model input or output (str/None = symbolic).

    ``dtype`` is a numpy dtype name where numpy has one, ``"string"`` for string tensors, or
    the runtime's own name (``bfloat16``, ``seq(tensor(float))``) for types the wrapper
    cannot check. ``kind`` says whether it is a tensor or a sequence/optional/map value.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    kind: str = "tensor"

    def __str__(self) -> str:
        if self.kind != "tensor":
            return f"{self.name}: {self.dtype}"
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
    error and not a traceback from deep inside a backend; thread and stream counts against the
    thread rule of edgekit.limits (the same for flags, suites, ``Predictor``/``open_runtime`` keywords).
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
        _check_counts(self)


#: options that each start OS threads: bounded by edgekit.limits' one thread rule, whatever the door
COUNTED = ("threads", "streams")


def _check_counts(options: RuntimeOptions) -> None:
    """Refuse thread and stream counts above the thread rule (low values are each backend's to judge)."""
    from edgekit.limits import LIMITS, check_number

    for name in COUNTED:
        value = getattr(options, name, None)
        if _is_instance(value, int) and value > LIMITS[name].high:
            check_number(name, value, f"option {name}")


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
    #: whether ``_run`` may run in several threads at once; if not, ``run`` serializes calls
    #: (a backend with one execution context and fixed buffers, such as TensorRT's)
    concurrent_runs: ClassVar[bool] = False

    def __init__(self, model: str | Path, **options: Any) -> None:
        self.model_path = Path(model)
        self.options = self.make_options(**options)
        self._inputs: dict[str, TensorSpec] | None = None
        self._outputs: dict[str, TensorSpec] | None = None
        self._checks: tuple[_InputCheck, ...] | None = None
        self._run_lock = None if self.concurrent_runs else threading.Lock()

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
        inputs, outputs = self._open()
        self._checks = tuple(_InputCheck.of(spec) for spec in inputs.values())
        self._inputs, self._outputs = inputs, outputs
        return self

    def close(self) -> None:
        """Release the model; safe to call twice."""
        if self.is_open:
            self._close()
        self._inputs = self._outputs = self._checks = None

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
    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate ``feeds`` against the declared inputs, run, return outputs by name.

        Safe to call from several threads at once on one open runtime. The returned arrays
        belong to the caller: a later call never overwrites them.
        """
        self.check_feeds(feeds)
        lock = self._run_lock
        if lock is None:
            return self._run(feeds)
        with lock:
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

    def check_feeds(self, feeds: Mapping[str, Any]) -> None:
        """Raise BadInputError unless ``feeds`` names every input with a value the runtime takes.

        Only what can be checked correctly is: a tensor's dtype (where numpy has it), rank and
        static dims. Sequence, map and optional inputs go to the runtime as they are (an
        optional one may be left out). The checks are built once, at open.
        """
        checks = self._checks
        if checks is None:
            self._require_open()
        found = 0
        for check in checks:
            value = feeds.get(check.name, _MISSING)
            if value is _MISSING:
                if check.kind != "optional":
                    self._refuse(f"got inputs {sorted(feeds)}")
                continue
            found += 1
            problem = check.problem(value)
            if problem:
                self._refuse(f"input '{check.name}' {problem}")
        if found != len(feeds):
            self._refuse(f"got inputs {sorted(feeds)}")

    def _refuse(self, problem: str) -> None:
        expected = "; ".join(str(spec) for spec in self._require_open()[0].values())
        if problem.startswith("got inputs"):
            raise BadInputError(f"model expects inputs {expected}, {problem}")
        raise BadInputError(f"{problem}; model expects {expected}")

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


_MISSING = object()
_STRING_KINDS = frozenset("USO")


@dataclass(frozen=True)
class _InputCheck:
    """What ``check_feeds`` verifies for one input, prepared once so a call costs ~1 µs."""

    name: str
    kind: str
    dtype: np.dtype | str | None  # None: not checkable here; STRING: any string array
    ndim: int | None
    static_dims: tuple[tuple[int, int], ...]  # (axis, size) for every fixed dimension

    @classmethod
    def of(cls, spec: TensorSpec) -> _InputCheck:
        if spec.kind != "tensor":
            return cls(spec.name, spec.kind, None, None, ())
        dtype: np.dtype | str | None = STRING if spec.dtype == STRING else _numpy_dtype(spec.dtype)
        static = tuple((axis, size) for axis, size in enumerate(spec.shape) if isinstance(size, int))
        return cls(spec.name, spec.kind, dtype, len(spec.shape), static)

    def problem(self, value: Any) -> str:
        """Why ``value`` cannot be this input ('' when it can)."""
        if self.kind != "tensor":
            return ""
        if not isinstance(value, np.ndarray):
            return f"is a {type(value).__name__}, not a numpy array"
        dtype = self.dtype
        if dtype is STRING:
            if value.dtype.kind not in _STRING_KINDS:
                return f"has dtype {value.dtype.name}, not strings"
        elif dtype is not None and value.dtype != dtype:
            return f"has dtype {value.dtype.name}"
        shape = value.shape
        if len(shape) != self.ndim:
            return f"has shape {tuple(shape)}"
        for axis, size in self.static_dims:
            if shape[axis] != size:
                return f"has shape {tuple(shape)}"
        return ""


# numpy's own element types; others (bfloat16, float8, int4 — even when a package such as
# ml_dtypes teaches numpy their names) are left for the runtime to judge.
_NUMPY_TYPES = frozenset(("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                          "float16", "float32", "float64", "complex64", "complex128"))


def _numpy_dtype(name: str) -> np.dtype | None:
    """numpy's dtype for a TensorSpec dtype name, or None when numpy has no such built-in type."""
    return np.dtype(name) if name in _NUMPY_TYPES else None


def unavailable_message(availability: Availability) -> str:
    """One line saying why a runtime cannot be used and what to install."""
    message = f"runtime '{availability.name}' is not available: {availability.reason}"
    if availability.install:
        message += f" — {availability.install}"
    return message


def import_failure(name: str, package: str, extra: str, exc: Exception) -> Availability:
    """Availability for a backend whose Python package failed to import."""
    reason = (f"{package} is not installed" if isinstance(exc, ModuleNotFoundError)
              else f"{package} failed to import ({exc})")
    return Availability(name, False, reason=reason, install=f"pip install 'edgekit[{extra}]'")
