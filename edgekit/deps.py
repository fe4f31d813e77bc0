"""Optional heavy dependencies, imported on demand with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgekit.errors import EdgekitError


class MissingDependencyError(EdgekitError):
    """A workstation feature needs a package that is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise a one-line error naming the edgekit extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(
            f"{module} is needed for this and is not installed — pip install 'edgekit[{extra}]'"
        ) from None
