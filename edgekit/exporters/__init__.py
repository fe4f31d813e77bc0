"""Exporters turn a model source into a verified ONNX file with metadata."""

from edgekit.exporters.config import ExportConfig, ExportResult, parse_input_size

__all__ = ["ExportConfig", "ExportResult", "parse_input_size"]
