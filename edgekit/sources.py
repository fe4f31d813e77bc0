"""Turn what the user typed (an .onnx path or a zoo name) into a model file."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.paths import cache_dir


def resolve_model(
    source: str,
    batch: int = 1,
    dynamic_batch: bool = False,
    input_size: tuple[int, int] | None = None,
    opset: int = 17,
    weights: str | Path | None = None,
) -> Path:
    """Return a model file for ``source``: an existing path as is, a zoo name exported to the cache.

    Exporting needs torch; reusing a cached export or a given file does not.
    """
    path = Path(source)
    if path.is_file():
        if input_size is not None or weights is not None:
            raise BadInputError(f"--input-size and --weights apply to zoo models, not to the file {source}")
        return path
    if path.suffix or "/" in source or path.is_dir():  # zoo names have no suffix
        raise BadInputError(f"model file not found: {source}")
    from edgekit.zoo.catalog import get_entry

    entry = get_entry(source)  # raises "unknown model ... did you mean"
    size = input_size or entry.input_size
    weights_tag = "random" if weights is None else _weights_tag(Path(weights))
    batch_tag = "dyn" if dynamic_batch else f"b{batch}"
    target = cache_dir("models") / f"{entry.name}-{size[0]}x{size[1]}-{batch_tag}-op{opset}-{weights_tag}.onnx"
    if not target.is_file():
        from edgekit.exporters.config import ExportConfig
        from edgekit.exporters.torch_onnx import export_zoo_model

        config = ExportConfig(opset=opset, batch=batch, dynamic_batch=dynamic_batch, input_size=size)
        export_zoo_model(entry.name, target, config, weights=weights)
    return target


def _weights_tag(weights: Path) -> str:
    if not weights.is_file():
        raise BadInputError(f"weights file not found: {weights}")
    from edgekit.hashing import file_sha256

    return file_sha256(weights)[:12]
