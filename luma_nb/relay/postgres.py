"""The relay's store in PostgreSQL (psycopg 3), for several relay processes sharing one class.

The SQL is :mod:`luma_nb.relay.sql`'s, shared with SQLite. Each store keeps a few connections,
so one thread's read never waits behind another's write. A write locks the rows it reads to
change (``SELECT ... FOR UPDATE``), so two relays settling the same submit or task one after the
other see each other's change. Only a reservation (check the budgets, then hold the credits)
needs the ledger to stand still: it takes the class's transaction-scoped advisory lock
(``pg_advisory_xact_lock``; advisory locks belong to one database, so to one class), alone when
a class budget is checked, shared with a lock of its student's otherwise, so reservations of
the class are serialised exactly where a budget check needs them and every other write (the
poller's updates, charges, leases) runs beside them. Reads take no lock. Triggers refuse any
UPDATE, DELETE or TRUNCATE on the ledger.

Needs the ``postgres`` extra (``pip install 'luma_nb[postgres]'``). The DSN's password is never
shown: :func:`redact` is what errors and ``repr`` print.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from .sql import Dialect, SQLStore
from .sql_base import _Cursor

__all__ = ("PostgresStore", "is_dsn", "redact")

#: The advisory lock key of the class's ledger ("luma" in ASCII); a student's lock is the pair
#: (this key, the student's id), in the two-key space of advisory locks.
_LOCK_KEY = 0x6C756D61
#: Connections each store keeps open at most (the relay's store threads, its poller and its
#: submits' threads share them).
_CONNECTIONS = 8


def is_dsn(db: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) connection URL."""
    return isinstance(db, str) and db.split("://", 1)[0].lower() in ("postgresql", "postgres")


def redact(dsn: str) -> str:
    """The DSN with its password (in the URL or as ``password=``) replaced by ``***``."""
    text = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", dsn)
    return re.sub(r"(password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)


class _Row(tuple):  # type: ignore[type-arg]
    """A row indexed by position (``row[0]``) or by column name (``row["id"]``)."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._names)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    names: dict[str, int] = {}
    for index, column in enumerate(cursor.description or ()):
        names.setdefault(column.name, index)  # a repeated name (``s.*, st.name``): the first

    class Row(_Row):
        _names = names

    def make(values: Sequence[Any]) -> _Row:
        return Row(values)

    return make


class _Postgres(Dialect):
    name = "postgresql"
    insertion_order = "arrival"

    def __init__(self) -> None:
        import psycopg

        self.integrity_errors = (psycopg.IntegrityError,)

    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def types(self, text: str) -> str:
        # A row id SQLite assigns itself (an ``id INTEGER PRIMARY KEY``) is a sequence here.
        text = re.sub(r"\bid INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY", text)
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)  # PostgreSQL's REAL is 4 bytes

    def schema(self, text: str) -> list[str]:
        # ``tasks`` keeps the order rows came in (SQLite's rowid) in ``arrival``.
        return [
            *super().schema(text),
            "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS arrival BIGSERIAL",
        ]

    def ledger_triggers(self) -> list[str]:
        return [
            "CREATE OR REPLACE FUNCTION luma_ledger_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$",
            "CREATE OR REPLACE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger "
            "FOR EACH ROW EXECUTE FUNCTION luma_ledger_append_only()",
            "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION luma_ledger_append_only()",
        ]

    row_lock = " FOR UPDATE OF {table}"
    ddl_waits = True

    def begin(self, db: Any) -> None:
        db.execute("BEGIN")

    def batch(self, db: Any) -> contextlib.AbstractContextManager[Any]:
        return db.pipeline()  # type: ignore[no-any-return]

    def lock_class(self, db: Any, student_id: int | None = None) -> None:
        if student_id is None:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            return
        db.execute("SELECT pg_advisory_xact_lock_shared(?)", (_LOCK_KEY,))
        db.execute("SELECT pg_advisory_xact_lock(?, ?)", (_LOCK_KEY, student_id))

    def begin_read(self, db: Any) -> None:
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def columns(self, db: Any, table: str) -> set[str]:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        ).fetchall()
        return {str(row[0]) for row in rows}


class PostgresStore(SQLStore):
    """A :class:`~luma_nb.relay.store.RelayStore` in the PostgreSQL database at ``dsn``.

    :raises ConnectionError: when the database cannot be reached (the message shows the DSN
        without its password).
    :raises ImportError: without psycopg (``pip install 'luma_nb[postgres]'``).
    """

    def __init__(self, dsn: str, *, clock: Callable[[], float] = time.time) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "a postgresql:// class database needs psycopg: pip install 'luma_nb[postgres]'"
            ) from error
        self.dsn = dsn
        self.dialect = _Postgres()
        self.connections = _CONNECTIONS
        super().__init__(clock=clock)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.dsn, autocommit=True, row_factory=_rows)
        except psycopg.Error as error:
            message = str(error).replace(self._password() or "\0", "***") if str(error) else ""
            raise ConnectionError(
                f"cannot open the class database {redact(self.dsn)}: {message.strip()}"
            ) from None

    def _password(self) -> str | None:
        from psycopg.conninfo import conninfo_to_dict

        try:
            value = conninfo_to_dict(self.dsn).get("password")
        except Exception:
            return None
        return None if value is None else str(value)

    def _reserve(
        self, insert: str, args: Sequence[Any], *, student_id: int, cost: float, lock: int | None
    ) -> int | None:
        # One round trip (a pipeline): the transaction, the class's lock, the submit with its
        # ledger line (one statement) and the commit go together, so the lock is held only
        # while the server runs them, never while this process waits for its turn on a core.
        statement = (
            f"WITH s AS ({insert} RETURNING id, student_id, cost, created) "  # noqa: S608
            "INSERT INTO ledger (at, student_id, submit_id, task_id, kind, credits, reason) "
            "SELECT created, student_id, id, NULL, 'reserve', cost, '' FROM s "
            "RETURNING submit_id"
        )
        with self._connection() as db:
            try:
                with db.pipeline():
                    db.execute("BEGIN")
                    self.dialect.lock_class(_Cursor(db, self.dialect), lock)
                    found = db.execute(self.dialect.sql(statement), tuple(args))
                    db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")
                raise
            row = found.fetchone()
        return None if row is None else int(row[0])

    def _usable(self, db: Any) -> Any:
        # A connection the server dropped (a restart, an idle timeout) is replaced, so the
        # relay goes on once the database is back; the statement that hit it still failed.
        if db.closed or db.broken:
            with contextlib.suppress(Exception):
                db.close()
            return self._connect()
        return db

    def __repr__(self) -> str:
        return f"<PostgresStore {redact(self.dsn)}>"
