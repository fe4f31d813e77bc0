"""Where edgekit keeps files: a user cache (``$EDGEKIT_CACHE_DIR`` overrides)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A directory under edgekit's cache, created on demand."""
    root = os.environ.get("EDGEKIT_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
