"""Atomic file writing: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import BadInputError, first_line


def check_output_path(target: str | Path) -> Path:
    """Fail early, before any work, if ``target`` cannot be written: a directory, or no parent."""
    target = Path(target)
    if target.is_dir():
        raise BadInputError(f"output path {target} is a directory")
    if not target.parent.is_dir():
        raise BadInputError(f"output directory {target.parent} does not exist")
    return target


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path (same suffix); on success it replaces ``target``, on error it is removed."""
    target = check_output_path(target)
    parent = target.parent
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=parent)
    os.close(fd)
    temporary = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    temporary.chmod(0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_npz(path: str | Path, kind: str) -> dict:
    """All arrays of an .npz file; ``kind`` names it in errors ('inputs', 'calibration')."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{kind} file not found: {path}")
    with path.open("rb") as stream:
        if stream.read(4) != b"PK\x03\x04":  # .npz files are zip archives
            raise BadInputError(f"{kind} file {path} is not an .npz archive (numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read {kind} file {path} as .npz: {first_line(exc)}") from None


def model_size_mb(path: str | Path) -> float:
    """Size of a model on disk in MiB, an OpenVINO IR's .bin weights included."""
    path = Path(path)
    size = path.stat().st_size
    weights = path.with_suffix(".bin")
    if path.suffix.lower() == ".xml" and weights.is_file():
        size += weights.stat().st_size
    return size / 2**20
