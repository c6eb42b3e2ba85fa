"""Which store a ``db`` setting means: a ``postgresql://`` URL or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from .postgres import PostgresStore, is_dsn, redact
from .sqlite import SQLiteStore
from .store import RelayStore

__all__ = ("describe", "open_store")


def open_store(db: str | Path) -> RelayStore:
    """The store at ``db``: PostgreSQL for a ``postgresql://`` URL, else a SQLite file path.

    :raises ConnectionError: when the PostgreSQL server cannot be reached.
    :raises ImportError: for PostgreSQL without psycopg (the ``postgres`` extra).
    """
    if is_dsn(db):
        return PostgresStore(str(db))
    return SQLiteStore(db)


def describe(db: str | Path) -> str:
    """``db`` as it may be shown: a PostgreSQL URL without its password, or the path."""
    return redact(str(db)) if is_dsn(db) else str(db)
