"""The relay's store in one SQLite file (WAL mode), with an append-only ledger.

The SQL is :mod:`luma_nb.relay.sql`'s, shared with PostgreSQL. A few connections: one writer of
this process at a time, readers beside it (WAL mode lets them read while a write waits or
runs); writes run in ``BEGIN IMMEDIATE`` transactions, so two relays (or the ``luma-nb class``
commands) on the same file stay exact. Triggers refuse any UPDATE or DELETE on the ledger.
Tokens are stored as their SHA-256 only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .sql import Dialect, SQLStore

__all__ = ("SQLiteStore",)


class _SQLite(Dialect):
    integrity_errors = (sqlite3.IntegrityError,)


class SQLiteStore(SQLStore):
    """A :class:`~luma_nb.relay.store.RelayStore` in the SQLite file ``path``."""

    dialect = _SQLite()
    connections = 4
    one_writer = True

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(clock=clock)

    def _connect(self) -> Any:
        db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def __repr__(self) -> str:
        return f"<SQLiteStore {str(self.path)!r}>"
