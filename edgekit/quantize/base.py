"""Quantizers: a typed config, one function per (backend, mode), and the recipe they record.

A quantizer turns an FP32 ONNX file into a new artifact (ONNX, OpenVINO IR or a TensorRT
engine) and writes into it how it was made. The registry maps ``"backend:mode"`` to an
import string, so listing quantizers imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgekit.errors import BadInputError
from edgekit.hashing import file_sha256
from edgekit.meta import ModelMeta
from edgekit.registry import Registry

MODES = ("int8-static", "int8-dynamic", "fp16")
METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("u8", "s8")


@dataclass(frozen=True)
class QuantizeConfig:
    """How to quantize.

    Defaults were chosen by measurement on this project's VNNI CPU (see benchmarks/quantization.py):
    unsigned 8-bit activations with signed 8-bit weights (``activations="u8"``) run ~3x faster than
    FP32 on ONNX Runtime, while signed activations (S8S8) ran slower than FP32; per-channel weight
    scales cost no speed and keep accuracy on depthwise/first layers; MinMax is the fastest
    calibration and was within budget on every model we measured (entropy/percentile help when
    activations have outliers). On the trained models they cost nothing that matters: LeNet-5/digits
    top-1 drop 0.00 pt, shapes detector mAP@0.5:0.95 drop ~0.7 pt and mAP@0.5 none, so no layer is
    excluded by default (``@first``/``@last`` are the retry of --max-drop).
    """

    mode: str = "int8-static"
    backend: str = "ort"
    calib: str | None = None       # dataset name, image folder or .npz
    calib_size: int = 128
    method: str = "minmax"
    per_channel: bool = True
    activations: str = "u8"
    exclude: tuple[str, ...] = ()  # node names kept in float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadInputError(f"unknown quantization mode '{self.mode}' (expected {', '.join(MODES)})")
        if self.method not in METHODS:
            raise BadInputError(f"unknown calibration method '{self.method}' (expected {', '.join(METHODS)})")
        if self.activations not in ACTIVATION_TYPES:
            raise BadInputError(f"activations must be u8 or s8, got '{self.activations}'")
        if self.calib_size < 1:
            raise BadInputError(f"calib-size must be at least 1, got {self.calib_size}")
        if self.mode == "int8-static" and not self.calib:
            raise BadInputError("int8-static needs calibration data: --calib DATASET|FOLDER|FILE.npz")

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.mode}"

    @property
    def variant(self) -> str:
        """Short name of the artifact this config makes, e.g. ``ort-int8-static``."""
        name = f"{self.backend}-{self.mode}"
        if self.mode == "int8-static" and self.activations == "s8":
            name += "-s8s8"
        if self.exclude:
            name += "-excl"
        return name


@dataclass(frozen=True)
class QuantizeResult:
    """The artifact a quantizer wrote and the recipe recorded in it."""

    path: Path
    config: QuantizeConfig
    meta: ModelMeta
    node_types: dict[str, int] = field(default_factory=dict)


class Quantizer(Protocol):
    """``quantize(source, output, config, meta) -> QuantizeResult``; writes ``output`` atomically."""

    def __call__(self, source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult: ...


@dataclass(frozen=True)
class QuantizerKind:
    """One quantization backend: its modes (mode → import string of the quantizer), the file it
    writes (and other suffixes an output may have), and the runtimes that run its artifacts."""

    backend: str
    functions: dict[str, str]
    suffix: str
    other_suffixes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    mode_runtimes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.functions)

    def runtimes(self, mode: str) -> tuple[str, ...]:
        """Runtimes that run this mode's artifact; () means every runtime that loads the suffix."""
        return self.mode_runtimes.get(mode, ())

    def accepts(self, output: Path) -> bool:
        return output.suffix.lower() in (self.suffix, *self.other_suffixes)


#: FP16 ONNX runs on ONNX Runtime only: OpenVINO computes it in f32 anyway (its own f16/bf16 is the
#: precision hint, the fp32+bf16-hint row), and its compiled model renames the input to the fused
#: Cast's tensor (graph_input_cast_0), so the file's own feeds would not fit.
_ORT_ONLY = ("ort-cpu", "ort-cuda", "ort-trt")
KINDS: dict[str, QuantizerKind] = {kind.backend: kind for kind in (
    QuantizerKind("ort", {"int8-static": "edgekit.quantize.onnxruntime:quantize_static",
                          "int8-dynamic": "edgekit.quantize.onnxruntime:quantize_dynamic",
                          "fp16": "edgekit.quantize.onnxruntime:convert_fp16"}, ".onnx",
                  mode_runtimes={"fp16": _ORT_ONLY}),
    QuantizerKind("nncf", {"int8-static": "edgekit.quantize.openvino:quantize_nncf"}, ".xml", (".onnx",),
                  aliases=("openvino",)),
    QuantizerKind("trt", {"fp16": "edgekit.quantize.tensorrt:build_fp16",
                          "int8-static": "edgekit.quantize.tensorrt:build_int8"}, ".engine", aliases=("tensorrt",)),
)}

QUANTIZERS: Registry[Quantizer] = Registry("quantizer")
for _kind in KINDS.values():
    for _mode, _target in _kind.functions.items():
        QUANTIZERS.add(f"{_kind.backend}:{_mode}", _target, aliases=tuple(f"{a}:{_mode}" for a in _kind.aliases))

#: the file suffix each backend writes (derived from KINDS; kept for callers of the old table)
SUFFIXES = {backend: kind.suffix for backend, kind in KINDS.items()}


def kind_of(backend: str) -> QuantizerKind:
    """The quantizer kind named ``backend`` (or an alias of it)."""
    name = backend.lower()
    for kind in KINDS.values():
        if name == kind.backend or name in kind.aliases:
            return kind
    raise BadInputError(f"unknown quantization backend '{backend}' (expected {', '.join(KINDS)})")


def output_name(source: Path, config: QuantizeConfig) -> str:
    """File name of a variant built in a sweep: ``<stem>.<variant><suffix>``."""
    return f"{source.stem}.{config.variant}{kind_of(config.backend).suffix}"


def quantize(source: str | Path, output: str | Path, config: QuantizeConfig) -> QuantizeResult:
    """Quantize the ONNX model ``source`` into ``output`` as ``config`` says."""
    from edgekit.meta import read_meta

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise BadInputError(f"model file not found: {source}")
    if source.suffix.lower() != ".onnx":
        raise BadInputError(f"quantization starts from an .onnx model, got '{source.name}'")
    kind = kind_of(config.backend)
    quantizer = QUANTIZERS.get(config.key)
    if not kind.accepts(output):
        raise BadInputError(f"{config.key} writes a {kind.suffix} file, got output '{output.name}'")
    meta = read_meta(source)
    if meta.precision != "fp32":
        raise BadInputError(f"{source.name} is already {meta.precision}: quantize the FP32 model")
    check_standard_ops(source)
    return quantizer(source, output, config, meta)


#: operator domains the quantizers and runtimes know (ONNX, ONNX-ML, ONNX Runtime's contrib ops)
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")


def check_standard_ops(source: Path) -> None:
    """Refuse, in one line, a model with an operator from a custom domain (a plugin or a
    framework-specific op): calibration runs the model on ONNX Runtime, which cannot run it."""
    import onnx

    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BadInputError(f"{source.name} is not a readable ONNX model: {str(exc).splitlines()[0]}") from None
    local = {(function.domain, function.name) for function in model.functions}
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local:
            name = f" '{node.name}'" if node.name else ""
            raise BadInputError(f"{source.name}: node{name} is {node.domain}::{node.op_type}, an operator from a "
                                f"custom domain that quantization cannot run (standard ONNX operators only)")


def recipe(config: QuantizeConfig, source: Path, runtime_target: str, **extra: Any) -> dict[str, Any]:
    """What goes into the artifact's ``recipe`` metadata."""
    static = config.mode == "int8-static"
    data = {
        "mode": config.mode,
        "backend": config.backend,
        "runtime_target": runtime_target,
        "method": config.method if static else None,
        "per_channel": config.per_channel if config.mode != "fp16" else None,
        "activations": config.activations if static else None,
        "calib_size": config.calib_size if static else None,
        "calib_data": config.calib if static else None,
        "excluded_nodes": list(config.exclude),
        "source": source.name,
        "source_sha256": file_sha256(source),
    }
    data.update(extra)
    return data


def precision_of(mode: str) -> str:
    return "fp16" if mode == "fp16" else "int8"
