"""The plumbing of the relay's SQL store: the schema, the dialects' differences, transactions.

:class:`SQLBase` opens the connection (a subclass's :meth:`SQLBase._connect`), makes the schema
and runs statements through a :class:`Dialect`, on a few connections lent to one thread at a
time (one for SQLite, several for PostgreSQL, so a read never queues behind a write that waits).
Every write runs in :meth:`SQLBase._tx`. SQLite's ``BEGIN IMMEDIATE`` serialises every writer;
on PostgreSQL a write locks the rows it reads to change (``FOR UPDATE``) and only what must see
the whole ledger unchanged (a budget check and its reservation) takes the class's lock
(:meth:`Dialect.lock_class`), so a check-then-write is exact however many relays share the
database. Reads run outside a transaction and see what was committed; :meth:`SQLBase._snapshot`
gives several reads one snapshot.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .store import SubmitRecord

__all__ = ("SCHEMA", "SUBMIT_ROWS", "Dialect", "SQLBase", "submit_record")

#: The tables, in the SQL both databases read; :meth:`Dialect.schema` adapts the types.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS students (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, revoked REAL);
CREATE TABLE IF NOT EXISTS submits (
    id INTEGER PRIMARY KEY, student_id INTEGER NOT NULL REFERENCES students(id),
    endpoint TEXT NOT NULL, request TEXT NOT NULL, cost REAL NOT NULL, state TEXT NOT NULL,
    task_id TEXT, note TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, student_id INTEGER REFERENCES students(id), submit_id INTEGER,
    body TEXT NOT NULL, terminal INTEGER NOT NULL DEFAULT 0, published INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, student_id INTEGER, submit_id INTEGER,
    task_id TEXT, kind TEXT NOT NULL, credits REAL NOT NULL, reason TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS leases (
    task_id TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS relays (holder TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS controls (
    student_id INTEGER PRIMARY KEY REFERENCES students(id), paused INTEGER NOT NULL DEFAULT 0,
    budget REAL);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (terminal);
CREATE INDEX IF NOT EXISTS ledger_student ON ledger (student_id);
"""

#: Submits with their student's name, for :func:`submit_record` (add a WHERE and an ORDER).
SUBMIT_ROWS = "SELECT s.*, st.name FROM submits s JOIN students st ON st.id = s.student_id"


def submit_record(row: Any) -> SubmitRecord:
    """A row of :data:`SUBMIT_ROWS` as a :class:`~luma_nb.relay.store.SubmitRecord`."""
    return SubmitRecord(
        id=int(row["id"]),
        student=str(row["name"]),
        endpoint=str(row["endpoint"]),
        request=json.loads(row["request"]),
        cost=float(row["cost"]),
        state=str(row["state"]),
        task_id=row["task_id"],
        note=row["note"],
        created=float(row["created"]),
    )


#: The shape of the tables this version makes (``SCHEMA``, ``_TASK_COLUMNS``, the indexes and
#: the dialects' statements); change it with any of them, so databases made before are migrated.
SCHEMA_VERSION = "2"
_VERSION_KEY = "schema_version"

# Columns of ``tasks`` added after the first schema (added to older databases on open).
_TASK_COLUMNS = {
    "shared": "INTEGER NOT NULL DEFAULT 1",
    "hidden": "INTEGER NOT NULL DEFAULT 0",
    "seq": "INTEGER NOT NULL DEFAULT 0",
    # A relay-made id (a submit held for the teacher's approval) and the upstream task it became.
    "relayed": "INTEGER NOT NULL DEFAULT 0",
    "upstream_id": "TEXT",
}


class Dialect:
    """What differs between the databases; the base class is SQLite's."""

    name = "sqlite"
    #: Errors raised when a UNIQUE or PRIMARY KEY constraint refuses a row.
    integrity_errors: tuple[type[BaseException], ...] = ()
    #: The column that orders rows of ``tasks`` as they were added.
    insertion_order = "rowid"

    def sql(self, text: str) -> str:
        """A statement written with ``?`` placeholders, in this database's form."""
        return text

    def types(self, text: str) -> str:
        """Column declarations written for SQLite (``INTEGER PRIMARY KEY``, ``REAL``) in this
        database's types."""
        return text

    def schema(self, text: str) -> list[str]:
        """The statements that create ``text``'s tables (types adapted) and the triggers."""
        statements = [s.strip() for s in self.types(text).split(";") if s.strip()]
        return statements + self.ledger_triggers()

    def ledger_triggers(self) -> list[str]:
        """Statements that make the ledger refuse UPDATE and DELETE."""
        return [
            "CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger "
            "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END",
            "CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger "
            "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END",
        ]

    #: True when schema statements lock tables against other writers even when there is nothing
    #: to change (PostgreSQL): a database of this version is then opened without any.
    ddl_waits = False
    #: What a SELECT ends with to lock the rows it reads until the transaction ends (SQLite
    #: needs nothing: its writers never overlap). ``{table}`` names the table to lock.
    row_lock = ""

    def begin(self, db: Any) -> None:
        """Start a write transaction (in SQLite, one no other writer interleaves)."""
        db.execute("BEGIN IMMEDIATE")

    def batch(self, db: Any) -> contextlib.AbstractContextManager[Any]:
        """Around a transaction whose statements may travel together: sent without waiting
        for each answer until one is read (PostgreSQL's pipeline mode), so its writes and the
        commit cost one round trip. Nothing in SQLite (no round trips)."""
        return contextlib.nullcontext()

    def lock_class(self, db: Any, student_id: int | None = None) -> None:
        """Inside a write transaction (``db`` takes ``?`` placeholders): wait until no other
        reservation of the class runs (``student_id`` given: none of that student's, nor one
        checking the class budget). Nothing to do in SQLite, whose writers are serialised
        already."""

    def begin_read(self, db: Any) -> None:
        """Start a read-only transaction: its statements see one snapshot, and wait for nobody."""
        db.execute("BEGIN")

    def columns(self, db: Any, table: str) -> set[str]:
        """The column names of ``table`` (``db`` takes ``?`` placeholders)."""
        return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})").fetchall()}


class SQLBase:
    """A connection, a lock and a dialect; :class:`~luma_nb.relay.sql.SQLStore` adds the methods.

    ``clock`` is the wall clock written into rows and used for lease expiry.
    """

    dialect: Dialect = Dialect()
    #: Connections open at most; a thread wanting one while all are lent waits for one.
    connections = 1
    #: True when this process's writers take turns before their database sees them (SQLite,
    #: whose writers would otherwise wait for each other in its busy handler's sleeps);
    #: readers go on beside them on the other connections.
    one_writer = False

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._free = threading.Condition()
        self._idle: list[Any] = []
        self._mine = threading.local()
        self._writer = threading.RLock()
        self._closed = False
        self._db: Any = self._connect()
        """The first connection (SQLite's only one)."""
        self._idle.append(self._db)
        self._open = 1
        if self.dialect.ddl_waits and self._schema_current():
            return  # no DDL: it would lock tables the class's writers are using
        with self._tx() as db:
            self.dialect.lock_class(db)  # relays opening one new database take turns
            for statement in self.dialect.schema(SCHEMA):
                db.execute(statement)
            self._migrate(db)
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_VERSION_KEY, SCHEMA_VERSION),
            )

    def _schema_current(self) -> bool:
        """True when the database has this version's tables, columns and triggers already."""
        with self._read() as db:
            if "value" not in self.dialect.columns(db, "meta"):
                return False
            row = db.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
        return row is not None and str(row[0]) == SCHEMA_VERSION

    # -- plumbing ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        """A new connection in autocommit mode whose rows index by position and by name."""
        raise NotImplementedError

    def _migrate(self, db: Any) -> None:
        """Bring a database made by an older version up to date (inside ``_tx``)."""
        for name, declaration in _TASK_COLUMNS.items():
            self._add_column(db, "tasks", name, declaration)
        db.execute("CREATE INDEX IF NOT EXISTS tasks_upstream ON tasks (upstream_id)")
        # A live gallery asks "what changed after N?" twice a second while anyone listens.
        db.execute("CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq)")
        # The class's queue looks for its first submit while anything waits in it.
        db.execute("CREATE INDEX IF NOT EXISTS submits_state ON submits (state)")

    def _add_column(self, db: Any, table: str, column: str, declaration: str) -> None:
        """``ALTER TABLE table ADD COLUMN column declaration`` unless it is there already."""
        if column not in self.dialect.columns(db, table):
            kind = self.dialect.types(declaration)
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _usable(self, db: Any) -> Any:
        """``db``, or a new connection in its place when the server dropped it."""
        return db

    def _take(self) -> Any:
        with self._free:
            while True:
                if self._closed:
                    raise RuntimeError("the class store is closed")
                if self._idle:
                    db = self._idle.pop()
                    break
                if self._open < self.connections:
                    self._open += 1
                    db = None
                    break
                self._free.wait()
        try:
            return self._connect() if db is None else self._usable(db)
        except BaseException:
            with self._free:
                self._open -= 1
                self._free.notify()
            raise

    def _give(self, db: Any) -> None:
        with self._free:
            if self._closed:
                self._open -= 1
                with contextlib.suppress(Exception):
                    db.close()
            else:
                self._idle.append(db)
            self._free.notify()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection lent to this thread (the same one to a call made inside another)."""
        held = getattr(self._mine, "db", None)
        if held is not None:
            yield held
            return
        db = self._take()
        self._mine.db = db
        try:
            yield db
        finally:
            self._mine.db = None
            self._give(db)

    @contextmanager
    def _tx(self, *, batched: bool = False) -> Iterator[_Cursor]:
        """A write transaction: committed on success, rolled back on any error.

        ``batched``: its statements go to the server in batches (:meth:`Dialect.batch`), so
        a statement's result is there only once read (``fetchone``/``fetchall``): never for
        a transaction that looks at ``rowcount`` before it ends."""
        turn = self._writer if self.one_writer else contextlib.nullcontext()
        with turn, self._connection() as db:
            try:
                with self.dialect.batch(db) if batched else contextlib.nullcontext():
                    self.dialect.begin(db)
                    yield _Cursor(db, self.dialect)
                    db.execute("COMMIT")
            except BaseException:
                # A lost connection cannot roll back; the error that broke it is the one to see.
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _snapshot(self) -> Iterator[_Cursor]:
        """Several reads that must agree (one snapshot), without taking the writers' lock."""
        with self._connection() as db:
            self.dialect.begin_read(db)
            try:
                yield _Cursor(db, self.dialect)
            finally:
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")

    @contextmanager
    def _read(self) -> Iterator[_Cursor]:
        """Statements outside a transaction (each sees what was committed)."""
        with self._connection() as db:
            yield _Cursor(db, self.dialect)

    def _one(self, sql: str, *args: Any) -> Any:
        with self._read() as db:
            row = db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def _record(self, submit_id: int) -> SubmitRecord:
        """One submit as a record (it must exist)."""
        with self._read() as db:
            row = db.execute(SUBMIT_ROWS + " WHERE s.id = ?", (submit_id,)).fetchone()
        return submit_record(row)

    def close(self) -> None:
        with self._free:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for db in idle:
            with contextlib.suppress(Exception):
                db.close()


class _Cursor:
    """A connection seen through a dialect: ``execute`` takes ``?`` placeholders."""

    def __init__(self, db: Any, dialect: Dialect) -> None:
        self._db = db
        self._dialect = dialect

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (fetchone, fetchall, rowcount)."""
        return self._db.execute(self._dialect.sql(sql), tuple(args))
