"""edgekit: take a CNN from PyTorch to an edge device through ONNX.

Importing this package is cheap and torch-free; heavy dependencies are imported
inside the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
