"""Quantization: INT8 static/dynamic and FP16 per backend (ONNX Runtime, NNCF/OpenVINO, TensorRT),
the precision table and accuracy-aware selection. Heavy packages are imported inside the backends."""

from edgekit.quantize.base import QUANTIZERS, QuantizeConfig, QuantizeResult, quantize

__all__ = ["QUANTIZERS", "QuantizeConfig", "QuantizeResult", "quantize"]
