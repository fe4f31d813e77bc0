"""Turn what the user typed into a model file.

A source is one of: a model file (.onnx, an OpenVINO .xml, a TensorRT engine) used as is; a zoo
name; a Python factory ``path/to/file.py:factory`` or ``package.module:factory`` returning an
``nn.Module``; a TorchScript file (.ts, .pt, .pth, .torchscript); a ``torch.export`` program
(.pt2). Torch sources are exported to the cache (keyed by the source's bytes, the weights, the
input specs, the metadata changes and the opset) and verified against torch like a zoo export.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.inputs.specs import InputSpec
from edgekit.paths import cache_dir
from edgekit.source_kinds import EXPORTED_PROGRAM_SUFFIXES, TORCHSCRIPT_SUFFIXES, ModelSource, parse_source  # noqa: F401


def resolve_model(
    source: str,
    batch: int = 1,
    dynamic_batch: bool = False,
    input_size: tuple[int, int] | None = None,
    opset: int = 17,
    weights: str | Path | None = None,
    inputs: Sequence[InputSpec] = (),
    meta_changes: Mapping[str, Any] | None = None,
) -> Path:
    """Return a model file for ``source``: a file as is, anything else exported to the cache.

    ``meta_changes`` (task, labels, mean/std...) are written into the export's metadata. Exporting
    needs torch; reusing a cached export or a given file does not.
    """
    parsed = parse_source(source)
    if parsed.kind == "file":  # --input then only shapes the random inputs of bench/compare
        if input_size is not None or weights is not None or meta_changes:
            raise BadInputError(f"--input-size, --weights and --meta apply to zoo models and torch sources "
                                f"exported by edgekit, not to the file {source} (edit its metadata with "
                                "`edgekit meta set`)")
        return Path(source)
    if parsed.is_torch:
        return _export_torch_source(parsed, batch, dynamic_batch, input_size, opset, weights, inputs,
                                    meta_changes or {})
    if inputs:
        raise BadInputError("--input applies to user models and model files, not to zoo models "
                            "(use --input-size)")
    from edgekit.zoo.catalog import get_entry

    entry = get_entry(source)  # raises "unknown model ... did you mean"
    size = input_size or entry.input_size
    weights_tag = "random" if weights is None else file_tag(Path(weights))
    batch_tag = "dyn" if dynamic_batch else f"b{batch}"
    meta_tag = f"-meta{changes_tag(meta_changes)}" if meta_changes else ""
    name = f"{entry.name}-{size[0]}x{size[1]}-{batch_tag}-op{opset}-{weights_tag}{meta_tag}-{versions_tag()}.onnx"
    target = cache_dir("models") / name
    if not target.is_file():
        from edgekit.exporters.config import ExportConfig
        from edgekit.exporters.torch_onnx import export_zoo_model
        from edgekit.fileio import atomic_path

        config = ExportConfig(opset=opset, batch=batch, dynamic_batch=dynamic_batch, input_size=size)
        if meta_changes:  # checked before the export; the cached file carries them or does not exist
            from edgekit.exporters.metadata import apply_changes, update_file

            apply_changes(entry.meta(size, ()), meta_changes)
        with atomic_path(target) as temporary:
            export_zoo_model(entry.name, temporary, config, weights=weights)
            if meta_changes:
                update_file(temporary, meta_changes)
    return target


def _export_torch_source(
    source: ModelSource, batch: int, dynamic_batch: bool, input_size: tuple[int, int] | None, opset: int,
    weights: str | Path | None, inputs: Sequence[InputSpec], meta_changes: Mapping[str, Any],
) -> Path:
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.user_module import export_source

    config = ExportConfig(opset=opset, batch=batch, dynamic_batch=dynamic_batch, input_size=input_size)
    key = "|".join([source.kind, source.label, source_tag(source), "random" if weights is None else
                    file_tag(Path(weights)), ";".join(map(str, inputs)), repr(config), changes_tag(meta_changes),
                    versions_tag()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_",
                  Path(source.location).stem + (f"-{source.factory}" if source.factory else ""))
    target = cache_dir("models") / f"user-{stem}-{digest}.onnx"
    if not target.is_file():
        export_source(source, target, config, weights=weights, inputs=inputs, meta_changes=meta_changes)
    return target


@functools.lru_cache(maxsize=1)
def versions_tag() -> str:
    """A short digest of the edgekit, torch, torchvision and onnx versions an export comes from (so an
    upgrade re-exports instead of reusing a cached file made by other code)."""
    from importlib.metadata import PackageNotFoundError, version

    from edgekit import __version__

    parts = [__version__]
    for name in ("torch", "torchvision", "onnx"):
        try:
            parts.append(version(name))
        except PackageNotFoundError:
            parts.append("-")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


def changes_tag(changes: Mapping[str, Any] | None) -> str:
    """A short digest of metadata changes ('' for none), for cache names and matrix cells."""
    if not changes:
        return ""
    return hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()[:12]


def source_tag(source: ModelSource) -> str:
    """A digest of the code or file a torch source is read from (so an edited file re-exports)."""
    if source.kind != "factory" or source.location.endswith(".py"):
        return file_tag(Path(source.location))
    import importlib.util

    try:
        spec = importlib.util.find_spec(source.location)
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    return file_tag(Path(origin)) if origin and Path(origin).is_file() else "module"


def file_tag(path: Path) -> str:
    from edgekit.hashing import file_sha256

    if not path.is_file():
        raise BadInputError(f"weights file not found: {path}")
    return file_sha256(path)[:12]
