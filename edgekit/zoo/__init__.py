"""Model zoo: architectures by name. ``catalog`` is torch-free; ``build`` needs torch."""

from edgekit.zoo.catalog import ZOO, ZooEntry, entries, get_entry

__all__ = ["ZOO", "ZooEntry", "entries", "get_entry"]
