"""Relay stores on every backend, for the store tests: SQLite (a file) and PostgreSQL (a real
server the suite starts, tests/pg_support.py).

A test module imports the fixtures it uses; ``make(clock=None)`` opens a store on one fresh
database of the backend (a second call is a second store on the same database, as a second
relay process or a ``luma-nb class`` command), and closes them all at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from luma_nb.relay.postgres import PostgresStore
from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.relay.store import RelayStore

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def where(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The ``db`` of a fresh database of the backend."""
    if backend == "sqlite":
        return str(tmp_path / "class.sqlite")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def make(backend: str, where: str) -> Iterator[Callable[..., RelayStore]]:
    opened: list[RelayStore] = []

    def make_store(clock: Callable[[], float] | None = None) -> RelayStore:
        kind = SQLiteStore if backend == "sqlite" else PostgresStore
        store: RelayStore = kind(where, clock=clock) if clock else kind(where)
        opened.append(store)
        return store

    yield make_store
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()
