"""TensorRT FP16 and INT8 engines, built from ONNX with the TensorRT Python API.

INT8 uses explicit quantization: the model is first calibrated by ONNX Runtime into a QDQ
graph with *symmetric* signed ranges (TensorRT accepts only zero-point-free Q/DQ), then built
with the INT8 (and FP16, for the layers left in float) builder flags. This is TensorRT 10's
recommended path; it needs no implicit calibrator, no device buffers during calibration and no
calibration cache. The engine's recipe goes to a ``.json`` beside it (engines hold no metadata).

Untested in this project's CI machine (no GPU); guarded by the ``tensorrt`` test marker.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from edgekit.deps import require
from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.quantize.base import QuantizeConfig, QuantizeResult, precision_of, recipe
from edgekit.quantize.calibration import model_inputs

WORKSPACE_BYTES = 1 << 30
MAX_DYNAMIC_BATCH = 8


def build_fp16(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """An FP16 engine from the FP32 ONNX model."""
    info = recipe(config, source, "trt")
    return _build(source, output, config, meta, info, int8=False)


def build_int8(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """An INT8 engine from a symmetric QDQ model calibrated on ``config.calib``."""
    from edgekit.quantize.onnxruntime import write_qdq

    signed = dataclasses.replace(config, activations="s8", backend="trt")
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as folder:
        qdq = Path(folder) / "qdq.onnx"
        info = write_qdq(source, qdq, signed, meta, symmetric=True, runtime_target="trt")
        return _build(qdq, output, signed, meta, info, int8=True, shapes_from=source)


def _build(
    onnx_path: Path, output: Path, config: QuantizeConfig, meta: ModelMeta, info: dict[str, Any],
    int8: bool, shapes_from: Path | None = None,
) -> QuantizeResult:
    trt = require("tensorrt", "tensorrt")
    from edgekit.fileio import atomic_path, write_text_atomic

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BadInputError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    builder_config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        builder_config.set_flag(trt.BuilderFlag.INT8)
    _add_profile(trt, builder, builder_config, shapes_from or onnx_path)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise BadInputError(f"TensorRT could not build a {config.mode} engine from {onnx_path.name}")
    info["tensorrt"] = trt.__version__
    new_meta = meta.with_(precision=precision_of(config.mode), recipe=info)
    with atomic_path(output) as temporary:
        temporary.write_bytes(bytes(serialized))
        write_text_atomic(output.with_suffix(output.suffix + ".json"), json.dumps(new_meta.to_props(), indent=2))
    return QuantizeResult(output, config, new_meta, {})


def _add_profile(trt: Any, builder: Any, builder_config: Any, onnx_path: Path) -> None:
    """Dynamic batch → one optimization profile (1, 1..8); other dims must be static."""
    specs = model_inputs(onnx_path)
    if all(all(isinstance(d, int) and d > 0 for d in spec.shape) for spec in specs):
        return
    profile = builder.create_optimization_profile()
    for spec in specs:
        rest = spec.shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in rest):
            raise BadInputError(f"input '{spec.name}' has symbolic non-batch dims {spec.shape}: export it static")
        profile.set_shape(spec.name, (1, *rest), (1, *rest), (MAX_DYNAMIC_BATCH, *rest))
    builder_config.add_optimization_profile(profile)
