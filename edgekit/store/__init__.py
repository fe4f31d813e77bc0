"""The results history: runs and their cell records in any SQLAlchemy database (SQLite by default)."""

from edgekit.store.db import Store, default_url, open_store

__all__ = ["Store", "default_url", "open_store"]
