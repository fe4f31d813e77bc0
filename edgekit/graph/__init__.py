"""Static analysis of ONNX graphs (workstation tier: needs the onnx package)."""
