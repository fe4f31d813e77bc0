"""The user's inputs for bench and quantize: a data loader or a saved .npz, checked against the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import BadInputError
from edgekit.inputs.loader import Feeds, check_feeds, load_batches


def user_batches(model: str | Path, data_loader: str | None, load_inputs: str | Path | None,
                 limit: int | None = None) -> list[Feeds] | None:
    """Batches from ``data_loader`` or ``load_inputs`` (None when neither is given), names checked
    against ``model``'s inputs (read from the file, no runtime opened)."""
    if data_loader is not None and load_inputs is not None:
        raise BadInputError("give either --data-loader or --load-inputs, not both")
    if data_loader is None and load_inputs is None:
        return None
    if data_loader is not None:
        batches, source = load_batches(data_loader, limit), f"data loader {data_loader}"
    else:
        from edgekit.inputs.golden import load_batches_npz

        batches, source = load_batches_npz(load_inputs, "inputs")[:limit], str(load_inputs)
    specs = _input_specs(Path(model))
    return check_feeds(batches, specs, source) if specs else batches


def first_batch(model: str | Path, data_loader: str | None, load_inputs: str | Path | None) -> Feeds | None:
    batches = user_batches(model, data_loader, load_inputs, limit=1)
    return batches[0] if batches else None


def calibration_npz(data_loader: str, limit: int = 1000) -> Path:
    """The loader's batches as a calibration .npz in the cache (inputs by name, samples concatenated);
    the quantizer checks the names and shapes against the model as for any .npz."""
    import hashlib
    import io

    from edgekit.fileio import atomic_path
    from edgekit.paths import cache_dir

    batches = load_batches(data_loader, limit)
    names = list(batches[0])
    if any(list(b) != names for b in batches):
        raise BadInputError(f"data loader {data_loader} yields batches with different input names")
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.concatenate([b[name] for b in batches], axis=0) for name in names})
    data = buffer.getvalue()
    target = cache_dir("calibration") / f"loader-{hashlib.sha256(data).hexdigest()[:16]}.npz"
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    return target


def _input_specs(model: Path) -> dict:
    """Input name → a printable spec, for name checks (ONNX files; other formats are not checked)."""
    if model.suffix.lower() != ".onnx":
        return {}
    try:
        from edgekit.quantize.calibration import model_inputs
        import onnx  # noqa: F401  (a robot without onnx: the runtime checks the names instead)
    except ImportError:
        return {}

    return {spec.name: spec for spec in model_inputs(model)}
