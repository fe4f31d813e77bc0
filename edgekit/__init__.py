"""edgekit: take a CNN from PyTorch to an edge device through ONNX.

Importing this package is cheap and torch-free; heavy dependencies are imported
inside the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import edgekit` stays cheap.
    if name == "Predictor":
        from edgekit.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
