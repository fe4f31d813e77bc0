"""The one TensorRT engine builder (the loader half of a Polygraphy-style loader/runner split).

``runtimes/tensorrt.py`` (the runner) and ``quantize/tensorrt.py`` both build through
``build_engine``: ONNX → parsed network → typing plan for this TensorRT → optimization profile
→ timing cache → serialized engine. Only the standard library and numpy are imported here; the
``tensorrt`` module is passed in by the caller, who imported it.

Typing: TensorRT 10.12 deprecated weak typing and TensorRT 11 removed it (``BuilderFlag.FP16``
and ``INT8`` are gone; every network is strongly typed). From 10.12 on, engines are built
strongly typed without precision flags: the ONNX carries its precision (FP16 weights and
activations, or Q/DQ nodes for INT8). Older 10.x builds weakly typed with the flags, and only the
ones asked for, so an engine computes alike on both sides of 10.12 (an INT8 Q/DQ model gets INT8,
not INT8 + FP16: its unquantized layers stay FP32 as strong typing keeps them).

TF32: TensorRT lets FP32 layers use TF32 unless ``BuilderFlag.TF32`` is cleared; it is cleared
unless a build asks for it (``tf32=True``), so FP32 means FP32 (as on ort-cuda).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, EdgekitError

#: first TensorRT that builds strongly typed networks without precision flags here
STRONG_TYPING_SINCE = (10, 12)
#: first TensorRT where strong typing is always on (its creation flag is ignored, the precision flags are gone)
STRONG_TYPING_ONLY = (11, 0)
PRECISIONS = ("fp32", "fp16", "int8")
_RANK = {name: rank for rank, name in enumerate(PRECISIONS)}
_log = logging.getLogger("edgekit.tensorrt")


@dataclass(frozen=True)
class BuildSpec:
    """What to build: ``precision`` the engine should compute in (from 10.12 the ONNX must carry
    it), the dynamic-batch profile (min 1, opt, max), the builder's workspace limit, and whether
    FP32 layers may use TF32."""

    precision: str = "fp32"
    opt_batch: int = 1
    max_batch: int = 16
    workspace_mb: int | None = None
    tf32: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BadInputError(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        check_batches(self.opt_batch, self.max_batch)
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise BadInputError(f"option workspace_mb must be at least 1, got {self.workspace_mb}")

    def key(self) -> dict[str, Any]:
        return {"precision": self.precision, "opt_batch": self.opt_batch, "max_batch": self.max_batch,
                "workspace_mb": self.workspace_mb, "tf32": self.tf32}


def check_batches(opt_batch: int, max_batch: int) -> None:
    if not 1 <= opt_batch <= max_batch:
        raise BadInputError(f"need 1 <= opt_batch <= max_batch, got {opt_batch} and {max_batch}")


@dataclass(frozen=True)
class TypingPlan:
    """How the network is created and configured: strongly typed, or weakly typed with flags."""

    strongly_typed: bool
    builder_flags: tuple[str, ...] = ()


def trt_version(trt: Any) -> tuple[int, int]:
    """(major, minor) of the tensorrt module, e.g. (10, 13) for '10.13.3.9'."""
    numbers = re.findall(r"\d+", str(getattr(trt, "__version__", "")))
    if len(numbers) < 2:
        raise EdgekitError(f"cannot read the TensorRT version '{getattr(trt, '__version__', '')}'")
    return int(numbers[0]), int(numbers[1])


def creation_flags(trt: Any, version: tuple[int, int]) -> int:
    """``create_network`` flags: STRONGLY_TYPED on 10.12–10.x, nothing before (weak typing) or
    from 11 (always strongly typed; the flag is deprecated and ignored there)."""
    if STRONG_TYPING_SINCE <= version < STRONG_TYPING_ONLY:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def typing_plan(version: tuple[int, int], requested: str, carried: str) -> TypingPlan:
    """Flags for an engine asked to compute in ``requested`` from a network that carries ``carried``
    ("int8": Q/DQ nodes; "fp16": half tensors; "fp32"). Strongly typed TensorRT cannot lower a
    network's precision, so asking for more than the ONNX carries is a one-line error there."""
    if version >= STRONG_TYPING_SINCE:
        if _RANK[requested] > _RANK[carried]:
            how = ("convert it first: edgekit quantize MODEL --backend trt --mode fp16 (or --backend ort "
                   "--mode fp16 for an FP16 ONNX)" if requested == "fp16"
                   else "quantize it to a Q/DQ model first: edgekit quantize MODEL --backend trt --mode int8-static")
            raise BadInputError(f"TensorRT {version[0]}.{version[1]} builds strongly typed networks, so a "
                                f"{requested} engine needs a {requested} ONNX and this one is {carried}: {how}")
        return TypingPlan(strongly_typed=True)
    effective = max(requested, carried, key=_RANK.__getitem__)
    flags = ("INT8",) if effective == "int8" else ()
    if "fp16" in (requested, carried):  # FP16 only when asked for or carried, never as INT8's fallback
        flags += ("FP16",)
    return TypingPlan(strongly_typed=False, builder_flags=flags)


def network_precision(trt: Any, network: Any) -> str:
    """What a parsed network carries: "int8" with any Q/DQ layer, "fp16" with any half tensor, else "fp32"."""
    quantize = {getattr(trt.LayerType, name, None) for name in ("QUANTIZE", "DEQUANTIZE")} - {None}
    half = False
    for index in range(network.num_inputs):
        half = half or network.get_input(index).dtype == trt.DataType.HALF
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type in quantize:
            return "int8"
        half = half or any(layer.get_output(i).dtype == trt.DataType.HALF for i in range(layer.num_outputs))
    return "fp16" if half else "fp32"


# ---- the process's one logger (TensorRT keeps one per process, as Polygraphy does) -----------------
class _Errors(threading.local):
    def __init__(self) -> None:
        self.messages: list[str] = []


_LOGGER: tuple[Any, Any] | None = None  # (tensorrt module, logger)
_LOGGER_LOCK = threading.Lock()


def get_logger(trt: Any):
    """The process's TensorRT logger: collects ERROR/INTERNAL_ERROR messages per thread (``clear()``
    before each call, ``summary()`` for a one-line message) and passes the rest to the
    ``edgekit.tensorrt`` logger (warnings at INFO, the rest at DEBUG); it never prints."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None or _LOGGER[0] is not trt:
            _LOGGER = (trt, _make_logger(trt))
        return _LOGGER[1]


def _make_logger(trt: Any):
    severity = trt.ILogger.Severity
    errors = {severity.ERROR, severity.INTERNAL_ERROR}

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self._errors = _Errors()

        def log(self, level, msg) -> None:
            text = str(msg).strip()
            if level in errors:
                self._errors.messages.append(text)
                _log.debug("TensorRT error: %s", text)
            elif level == severity.WARNING:  # INFO: TensorRT warns a lot, and stderr holds the one-line error
                _log.info("TensorRT warning: %s", text)
            else:
                _log.debug("TensorRT: %s", text)

        def clear(self) -> None:
            self._errors.messages = []

        @property
        def errors(self) -> list[str]:
            return list(self._errors.messages)

        def summary(self) -> str:
            """The first error's first line (the cause; later ones are usually consequences)."""
            messages = self._errors.messages
            if not messages:
                return "no error message from TensorRT"
            first = messages[0].splitlines()[0] if messages[0] else "(empty message)"
            return first + (f" (+{len(messages) - 1} more)" if len(messages) > 1 else "")

    return Logger()


# ---- building ---------------------------------------------------------------------------------
def build_engine(trt: Any, onnx_path: Path, spec: BuildSpec, timing_cache: Path | None = None) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine as ``spec`` says; the timing cache file is
    read when present and written back after the build."""
    logger = get_logger(trt)
    logger.clear()
    version = trt_version(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(creation_flags(trt, version))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise BadInputError(f"TensorRT cannot parse {onnx_path.name}: {parser_error(parser, logger)}")
    plan = typing_plan(version, spec.precision, network_precision(trt, network))
    config = builder.create_builder_config()
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    set_tf32(trt, config, spec.tf32)
    if spec.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    profile = optimization_profile(builder, network, spec)
    if profile is not None:
        config.add_optimization_profile(profile)
    if timing_cache is not None:
        attach_timing_cache(config, timing_cache, logger)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgekitError(f"TensorRT could not build a {spec.precision} engine from {onnx_path.name}: "
                           f"{logger.summary()}")
    if timing_cache is not None:
        save_timing_cache(config, timing_cache)
    return bytes(memoryview(serialized))


def set_tf32(trt: Any, config: Any, allowed: bool) -> None:
    """TensorRT sets BuilderFlag.TF32 by default: clear it unless TF32 is allowed."""
    flag = getattr(trt.BuilderFlag, "TF32", None)
    if flag is None:
        return
    if allowed:
        config.set_flag(flag)
    else:
        config.clear_flag(flag)


def optimization_profile(builder: Any, network: Any, spec: BuildSpec):
    """One profile (1, opt_batch, max_batch) when an input's batch is dynamic, else None; other
    dynamic dims are refused."""
    profile = builder.create_optimization_profile()
    dynamic = False
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = list(tensor.shape)
        if any(d < 0 for d in shape[1:]):
            raise BadInputError(f"input '{tensor.name}' has dynamic dims other than the batch {shape}: "
                                "export it with a fixed input size")
        if shape and shape[0] < 0:
            dynamic = True
            rest = shape[1:]
            profile.set_shape(tensor.name, [1, *rest], [spec.opt_batch, *rest], [spec.max_batch, *rest])
    return profile if dynamic else None


def attach_timing_cache(config: Any, path: Path, logger: Any) -> None:
    """Use the timing cache in ``path``; one that TensorRT refuses (another version or GPU, or a
    damaged file) is replaced by a fresh one, with a warning, instead of being ignored silently."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    if data:
        _log.warning("TensorRT refused the timing cache %s; building with a fresh one", path)
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
    raise EdgekitError(f"TensorRT could not set a timing cache: {logger.summary()}")


def save_timing_cache(config: Any, path: Path) -> None:
    from edgekit.fileio import atomic_path

    cache = config.get_timing_cache()
    if cache is None:
        return
    with atomic_path(path) as temporary:
        temporary.write_bytes(memoryview(cache.serialize()))


def parser_error(parser: Any, logger: Any = None) -> str:
    """The ONNX parser's first error as one line: node, operator and description."""
    if parser.num_errors == 0:
        return logger.summary() if logger is not None else "unknown parser error"
    error = parser.get_error(0)
    where = []
    for attribute in ("node_name", "node_operator"):
        getter = getattr(error, attribute, None)
        value = getter() if callable(getter) else None
        if value:
            where.append(str(value))
    prefix = f"node {' '.join(where)}: " if where else ""
    more = f" (+{parser.num_errors - 1} more)" if parser.num_errors > 1 else ""
    description = str(error.desc()).strip().splitlines()
    return f"{prefix}{description[0] if description else 'no description'}{more}"


# ---- cache keys and tensors -------------------------------------------------------------------
def engine_cache_key(model: Path, spec: BuildSpec, trt_version_text: str, gpu_name: str) -> str:
    """Hash of everything that makes an engine: the model with its external-data files, the build
    spec, the TensorRT version and the GPU."""
    import hashlib

    from edgekit.hashing import model_sha256

    payload = {"model": model_sha256(model), "spec": spec.key(), "trt": trt_version_text, "gpu": gpu_name}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "gpu"


def numpy_dtype(trt: Any, trt_dtype: Any, name: str) -> np.dtype:
    """The numpy dtype of an engine tensor; bf16/fp8/fp4/int4 I/O (no numpy type) is a one-line error."""
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except (TypeError, ValueError, KeyError):
        kind = str(getattr(trt_dtype, "name", trt_dtype)).split(".")[-1]
        raise BadInputError(f"engine tensor '{name}' is {kind}, which numpy cannot hold: export the model "
                            "with float32, float16 or integer inputs and outputs") from None
