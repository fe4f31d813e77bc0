"""What a model argument names, told apart without importing anything heavy: a model file, a zoo name,
a Python factory (``file.py:factory``, ``package.module:factory``), a TorchScript file or a
``torch.export`` program. ``edgekit.sources`` turns one into a model file; the exporters read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import BadInputError

TORCHSCRIPT_SUFFIXES = (".ts", ".pt", ".pth", ".torchscript", ".jit")
EXPORTED_PROGRAM_SUFFIXES = (".pt2",)
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ModelSource:
    """What a model argument names: ``kind`` is file, zoo, factory, torchscript or exported."""

    kind: str
    location: str
    factory: str = ""

    @property
    def is_torch(self) -> bool:
        return self.kind in ("factory", "torchscript", "exported")

    @property
    def label(self) -> str:
        return f"{self.location}:{self.factory}" if self.factory else self.location


def parse_source(text: str) -> ModelSource:
    """Classify ``text`` without importing anything heavy; missing files are errors here."""
    text = str(text)
    location, colon, factory = text.rpartition(":")
    if colon and location and _IDENTIFIER.match(factory) and not Path(text).is_file():
        if location.endswith(".py"):
            if not Path(location).is_file():
                raise BadInputError(f"model factory file not found: {location}")
            return ModelSource("factory", location, factory)
        if _MODULE_PATH.match(location):
            return ModelSource("factory", location, factory)
        raise BadInputError(f"'{text}' is neither a file.py:factory nor a package.module:factory")
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix in TORCHSCRIPT_SUFFIXES + EXPORTED_PROGRAM_SUFFIXES:
        if not path.is_file():
            raise BadInputError(f"model file not found: {text}")
        return ModelSource("exported" if suffix in EXPORTED_PROGRAM_SUFFIXES else "torchscript", text)
    if path.is_file():
        return ModelSource("file", text)
    if path.suffix or "/" in text or path.is_dir():  # zoo names have no suffix
        raise BadInputError(f"model file not found: {text}")
    return ModelSource("zoo", text)
