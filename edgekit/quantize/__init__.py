"""Quantization: INT8 static/dynamic and FP16 per backend (ONNX Runtime, NNCF/OpenVINO, TensorRT),
the precision table and accuracy-aware selection; ``edgekit.quantize.sweep`` runs a whole sweep and
returns a record. Heavy packages are imported inside the backends."""

from edgekit.quantize.base import KINDS, QUANTIZERS, QuantizeConfig, QuantizeResult, QuantizerKind, quantize

__all__ = ["KINDS", "QUANTIZERS", "QuantizeConfig", "QuantizeResult", "QuantizerKind", "quantize"]
