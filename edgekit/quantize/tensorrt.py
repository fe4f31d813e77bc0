"""TensorRT FP16 and INT8 engines, built by the one engine builder (runtimes/tensorrt_build.py).

The precision is put into the ONNX before TensorRT sees it, which works on every TensorRT from
10.0 to 11 (11 removed the FP16/INT8 builder flags; strong typing is always on):

- INT8: explicit quantization. ONNX Runtime calibrates a Q/DQ model with *symmetric* signed
  ranges (TensorRT accepts only zero-point-free Q/DQ) and biases left in float
  (``QuantizeBias=False``: TensorRT's parser refuses INT32 biases behind a DequantizeLinear).
- FP16: on TensorRT >= 10.12 the FP32 model is converted to an FP16 ONNX (inputs and outputs
  kept float32) and built strongly typed; older 10.x builds the FP32 model with the FP16 flag.

Only the precision asked for is enabled, on every version: an INT8 engine below 10.12 (JetPack 6's
10.3) gets the INT8 flag alone, so its unquantized layers stay FP32 as strong typing keeps them on
10.12+ (INT8 + FP16 used to make the same model compute differently on a Jetson). TF32 is off.

The built engine is run once against FP32 (ONNX Runtime on the CPU) on the check samples and the
agreement goes into the recipe, which is written to a ``.json`` beside the engine (engines hold
no metadata). Needs a GPU; guarded by the ``tensorrt`` test marker.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from edgekit.deps import require
from edgekit.meta import ModelMeta
from edgekit.quantize.base import QuantizeConfig, QuantizeResult, precision_of, recipe

#: the builder's memory limit for quantized builds
WORKSPACE_MB = 1024


def build_fp16(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """An FP16 engine from the FP32 ONNX model."""
    from edgekit.runtimes.tensorrt_build import STRONG_TYPING_SINCE, trt_version

    trt = _tensorrt()
    info = recipe(config, source, "trt")
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as folder:
        onnx_path = source
        if trt_version(trt) >= STRONG_TYPING_SINCE:
            onnx_path = Path(folder) / "fp16.onnx"
            write_fp16_onnx(source, onnx_path, config)
            info["strongly_typed_from"] = "fp16 onnx"
        return _build(trt, onnx_path, output, config, meta, info, source)


def build_int8(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """An INT8 engine from a symmetric Q/DQ model with float biases, calibrated on ``config.calib``."""
    trt = _tensorrt()  # before calibrating: without TensorRT or a GPU nothing else is worth doing
    signed = trt_qdq_config(config)
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as folder:
        qdq = Path(folder) / "qdq.onnx"
        info = write_trt_qdq(source, qdq, signed, meta)
        return _build(trt, qdq, output, signed, meta, info, source)


def _tensorrt():
    """The tensorrt module, or the trt runtime's one-line reason why not (not installed, no GPU)."""
    from edgekit.runtimes import get_runtime

    get_runtime("trt").ensure_available()
    import tensorrt

    return tensorrt


def trt_qdq_config(config: QuantizeConfig) -> QuantizeConfig:
    """TensorRT takes signed activations only."""
    return dataclasses.replace(config, activations="s8", backend="trt")


def write_trt_qdq(source: Path, target: Path, config: QuantizeConfig, meta: ModelMeta) -> dict[str, Any]:
    """The Q/DQ model TensorRT builds an INT8 engine from: symmetric ranges, float biases. Runs on
    ONNX Runtime's CPU too (which is how it is checked here). Returns its recipe."""
    from edgekit.quantize.onnxruntime import write_qdq

    return write_qdq(source, target, trt_qdq_config(config), meta, symmetric=True, runtime_target="trt",
                     quantize_bias=False)


def write_fp16_onnx(source: Path, target: Path, config: QuantizeConfig) -> None:
    """FP16 weights and activations, float32 inputs and outputs (ONNX Runtime's converter)."""
    onnx = require("onnx", "quantize")
    float16 = require("onnxruntime.transformers.float16", "ort")
    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True,
                                             node_block_list=list(config.exclude) or None)
    onnx.save(model, str(target))


def _build(
    trt: Any, onnx_path: Path, output: Path, config: QuantizeConfig, meta: ModelMeta, info: dict[str, Any],
    source: Path,
) -> QuantizeResult:
    from edgekit.fileio import atomic_path
    from edgekit.paths import cache_dir
    from edgekit.quantize.onnxruntime import recorded_check
    from edgekit.runtimes import cuda
    from edgekit.runtimes.tensorrt_build import BuildSpec, build_engine, slug

    names = cuda.gpu_names()
    timing = cache_dir("tensorrt") / f"timing-{trt.__version__}-{slug(names[0] if names else 'gpu')}.cache"
    spec = BuildSpec(precision=precision_of(config.mode), workspace_mb=WORKSPACE_MB)
    engine = build_engine(trt, onnx_path, spec, timing)
    info["tensorrt"] = trt.__version__
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as folder:
        scratch = Path(folder) / "check.engine"
        scratch.write_bytes(engine)
        info["check"] = recorded_check(source, scratch, meta, config, runtime="trt")
    new_meta = meta.with_(precision=precision_of(config.mode), recipe=info)
    from edgekit.exporters.metadata import write_engine_metadata

    with atomic_path(output) as temporary:
        temporary.write_bytes(engine)
        write_engine_metadata(output, new_meta)
    return QuantizeResult(output, config, new_meta, {})
