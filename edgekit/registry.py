"""Name → import-string registries with aliases, entry points and "did you mean" errors.

Listing names imports nothing; resolving a name imports exactly one module.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from edgekit.errors import BadInputError

T = TypeVar("T")


def suggest(name: str, choices: list[str]) -> str:
    """Return a ' — did you mean ...?' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" — did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects, given directly or as lazy ``"package.module:attribute"`` strings."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._targets: dict[str, object] = {}
        self._aliases: dict[str, str] = {}
        self._entry_point_group = entry_point_group
        self._entry_points_loaded = entry_point_group is None

    def add(self, name: str, target: T | str, aliases: tuple[str, ...] = ()) -> None:
        """Register ``target`` (an object, or an import string) under ``name`` and its aliases."""
        self._targets[name] = target
        for alias in aliases:
            self._aliases[alias] = name

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self._entry_point_group):
            self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Registered canonical names, in registration order."""
        self._load_entry_points()
        return list(self._targets)

    def canonical(self, name: str) -> str:
        """Resolve an alias to its canonical name, or raise with a suggestion."""
        self._load_entry_points()
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key not in self._targets:
            known = self.names() + list(self._aliases)
            raise BadInputError(
                f"unknown {self.kind} '{name}'{suggest(key, known)} (known: {', '.join(self.names())})"
            )
        return key

    def get(self, name: str) -> T:
        """Import and return the object registered under ``name``."""
        target = self._targets[self.canonical(name)]
        if not isinstance(target, str):
            return target  # type: ignore[return-value]
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
        except BadInputError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
