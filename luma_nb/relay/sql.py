"""The relay's store written once in SQL, run on SQLite or PostgreSQL through a small dialect.

:class:`SQLStore` holds every :class:`~luma_nb.relay.store.RelayStore` method. Its SQL uses
``?`` placeholders and what both databases understand (``INSERT ... ON CONFLICT``,
``RETURNING id``, ``CASE``, ``COALESCE``); a :class:`Dialect` adds what differs: the schema's
types, the append-only triggers of the ledger, how a write transaction starts and how writers
of several processes are serialised (``BEGIN IMMEDIATE`` in SQLite, a transaction-scoped
advisory lock in PostgreSQL), and which errors mean a unique key was taken.

Every write runs in :meth:`SQLStore._tx`, serialised across threads (one connection and a
lock) and across processes (the dialect's lock), so a check-then-write such as
:meth:`SQLStore.reserve` is exact however many relays share the database. Reads run outside a
transaction and see what was committed.

Task leases (:meth:`SQLStore.claim`) let several relay processes share a class: a task is
polled upstream only by the process holding its unexpired lease.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..contract.models import Task
from .store import (
    Budgets,
    GalleryItem,
    LedgerEntry,
    Refusal,
    Student,
    SubmitRecord,
    TaskUpdate,
)

__all__ = ("SCHEMA", "Dialect", "SQLStore")

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
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (terminal);
CREATE INDEX IF NOT EXISTS ledger_student ON ledger (student_id);
"""

# Columns of ``tasks`` added after the first schema (added to older databases on open).
_TASK_COLUMNS = {
    "shared": "INTEGER NOT NULL DEFAULT 1",
    "hidden": "INTEGER NOT NULL DEFAULT 0",
    "seq": "INTEGER NOT NULL DEFAULT 0",
}
#: Task updates per transaction in :meth:`SQLStore.update_tasks`.
_UPDATE_CHUNK = 50
#: Leases claimed per statement (one parameter each, well under SQLite's limit).
_CLAIM_CHUNK = 200
# Credits out of the budget: held by a reservation, minus those given back.
_SPENT = (
    "SELECT COALESCE(SUM(CASE kind WHEN 'reserve' THEN credits "
    "WHEN 'release' THEN -credits WHEN 'refund' THEN -credits ELSE 0 END), 0) FROM ledger"
)


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

    def begin(self, db: Any) -> None:
        """Start a write transaction that no other writer (thread or process) interleaves."""
        db.execute("BEGIN IMMEDIATE")

    def begin_read(self, db: Any) -> None:
        """Start a read-only transaction: its statements see one snapshot, and wait for nobody."""
        db.execute("BEGIN")

    def columns(self, db: Any, table: str) -> set[str]:
        """The column names of ``table`` (``db`` takes ``?`` placeholders)."""
        return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})").fetchall()}


class SQLStore:
    """A :class:`~luma_nb.relay.store.RelayStore` over one DB-API connection and a dialect.

    Subclasses open the connection (:meth:`_connect`) and pick the dialect; every method is
    shared. ``clock`` is the wall clock written into rows and used for lease expiry.
    """

    dialect: Dialect = Dialect()

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._db: Any = self._connect()
        with self._tx() as db:
            for statement in self.dialect.schema(SCHEMA):
                db.execute(statement)
            self._migrate(db)

    # -- plumbing ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        """A new connection in autocommit mode whose rows index by position and by name."""
        raise NotImplementedError

    def _migrate(self, db: Any) -> None:
        """Bring a database made by an older version up to date (inside ``_tx``)."""
        for name, declaration in _TASK_COLUMNS.items():
            self._add_column(db, "tasks", name, declaration)

    def _add_column(self, db: Any, table: str, column: str, declaration: str) -> None:
        """``ALTER TABLE table ADD COLUMN column declaration`` unless it is there already."""
        if column not in self.dialect.columns(db, table):
            kind = self.dialect.types(declaration)
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _conn(self) -> Any:
        """The connection (call with the lock held)."""
        return self._db

    @contextmanager
    def _tx(self) -> Iterator[_Cursor]:
        """A serialised write transaction: committed on success, rolled back on any error."""
        with self._lock:
            db = self._conn()
            self.dialect.begin(db)
            try:
                yield _Cursor(db, self.dialect)
            except BaseException:
                # A lost connection cannot roll back; the error that broke it is the one to see.
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[_Cursor]:
        """Several reads that must agree (one snapshot), without taking the writers' lock."""
        with self._lock:
            db = self._conn()
            self.dialect.begin_read(db)
            try:
                yield _Cursor(db, self.dialect)
            finally:
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")

    @contextmanager
    def _read(self) -> Iterator[_Cursor]:
        """Statements outside a transaction (each sees what was committed)."""
        with self._lock:
            yield _Cursor(self._conn(), self.dialect)

    def _one(self, sql: str, *args: Any) -> Any:
        with self._read() as db:
            row = db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- class and students ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key = ?", key)
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def add_student(self, name: str, token_hash: str) -> Student:
        try:
            with self._tx() as db:
                row = db.execute(
                    "INSERT INTO students (name, token_hash, created) VALUES (?, ?, ?) "
                    "RETURNING id",
                    (name, token_hash, self._clock()),
                ).fetchone()
        except self.dialect.integrity_errors:
            raise ValueError(f"a student named {name!r} is already in the class") from None
        return Student(int(row[0]), name)

    def student_by_hash(self, token_hash: str) -> Student | None:
        with self._read() as db:
            row = db.execute(
                "SELECT id, name FROM students WHERE token_hash = ? AND revoked IS NULL",
                (token_hash,),
            ).fetchone()
        return None if row is None else Student(int(row["id"]), str(row["name"]))

    def revoke(self, name: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE students SET revoked = ? WHERE name = ? AND revoked IS NULL",
                (self._clock(), name),
            )
            known = db.execute("SELECT 1 FROM students WHERE name = ?", (name,)).fetchone()
        return cur.rowcount > 0 or known is not None

    def students(self) -> list[Student]:
        with self._read() as db:
            rows = db.execute("SELECT id, name, revoked FROM students ORDER BY id").fetchall()
        return [Student(int(r["id"]), str(r["name"]), r["revoked"] is not None) for r in rows]

    # -- money -------------------------------------------------------------------------------

    def _entry(
        self,
        db: _Cursor,
        kind: str,
        credits: float,
        *,
        student_id: int | None,
        submit_id: int | None,
        task_id: str | None = None,
        reason: str = "",
    ) -> None:
        db.execute(
            "INSERT INTO ledger (at, student_id, submit_id, task_id, kind, credits, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self._clock(), student_id, submit_id, task_id, kind, credits, reason),
        )

    def reserve(
        self,
        student: Student,
        endpoint: str,
        request: Mapping[str, Any],
        cost: float,
        budgets: Budgets,
    ) -> int | Refusal:
        with self._tx() as db:
            if budgets.student_budget is not None:
                mine = db.execute(_SPENT + " WHERE student_id = ?", (student.id,)).fetchone()[0]
                left = budgets.student_budget - float(mine)
                if cost > left:
                    return Refusal(
                        f"Your budget is used up: {max(left, 0):g} credits left, "
                        f"this submit costs {cost:g}. Ask your teacher for more."
                    )
            if budgets.class_budget is not None:
                left = budgets.class_budget - float(db.execute(_SPENT).fetchone()[0])
                if cost > left:
                    return Refusal(
                        f"The class budget is used up: {max(left, 0):g} credits left for the "
                        f"whole class, this submit costs {cost:g}."
                    )
            now = self._clock()
            row = db.execute(
                "INSERT INTO submits (student_id, endpoint, request, cost, state, created, "
                "updated) VALUES (?, ?, ?, ?, 'reserved', ?, ?) RETURNING id",
                (student.id, endpoint, json.dumps(dict(request)), cost, now, now),
            ).fetchone()
            submit_id = int(row[0])
            self._entry(db, "reserve", cost, student_id=student.id, submit_id=submit_id)
        return submit_id

    def _submit_row(self, db: _Cursor, submit_id: int) -> Any:
        row = db.execute("SELECT * FROM submits WHERE id = ?", (submit_id,)).fetchone()
        if row is None:
            raise KeyError(submit_id)
        return row

    def forwarded(self, submit_id: int, task_id: str, task_type: str) -> None:
        with self._tx() as db:
            row = self._submit_row(db, submit_id)
            now = self._clock()
            db.execute(
                "UPDATE submits SET state = 'forwarded', task_id = ?, updated = ? WHERE id = ?",
                (task_id, now, submit_id),
            )
            body = {"task_id": task_id, "task_type": task_type, "status": "pending"}
            db.execute(
                "INSERT INTO tasks (task_id, student_id, submit_id, body, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
                (task_id, row["student_id"], submit_id, json.dumps(body), now, now),
            )
            self._entry(
                db,
                "charge",
                float(row["cost"]),
                student_id=row["student_id"],
                submit_id=submit_id,
                task_id=task_id,
            )

    def _settle(self, submit_id: int, state: str, reason: str) -> None:
        with self._tx() as db:
            row = self._submit_row(db, submit_id)
            if row["state"] != "reserved":
                return
            db.execute(
                "UPDATE submits SET state = ?, note = ?, updated = ? WHERE id = ?",
                (state, reason, self._clock(), submit_id),
            )
            if state == "refused":
                self._entry(
                    db,
                    "release",
                    float(row["cost"]),
                    student_id=row["student_id"],
                    submit_id=submit_id,
                    reason=reason,
                )

    def uncertain(self, submit_id: int, reason: str) -> None:
        self._settle(submit_id, "uncertain", reason)

    def release(self, submit_id: int, reason: str) -> None:
        self._settle(submit_id, "refused", reason)

    def recover(self, reason: str, before: float | None = None) -> int:
        sql = (
            "UPDATE submits SET state = 'uncertain', note = ?, updated = ? WHERE state = 'reserved'"
        )
        args: tuple[Any, ...] = (reason, self._clock())
        if before is not None:
            sql, args = sql + " AND updated < ?", (*args, before)
        with self._tx() as db:
            cur = db.execute(sql, args)
        return int(cur.rowcount)

    def spent(self, student: Student | None = None) -> float:
        if student is None:
            return float(self._one(_SPENT))
        return float(self._one(_SPENT + " WHERE student_id = ?", student.id))

    def submits(self, state: str | None = None) -> list[SubmitRecord]:
        sql = "SELECT s.*, st.name FROM submits s JOIN students st ON st.id = s.student_id"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql, args = sql + " WHERE s.state = ?", (state,)
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY s.id", args).fetchall()
        return [
            SubmitRecord(
                id=int(r["id"]),
                student=str(r["name"]),
                endpoint=str(r["endpoint"]),
                request=json.loads(r["request"]),
                cost=float(r["cost"]),
                state=str(r["state"]),
                task_id=r["task_id"],
                note=r["note"],
                created=float(r["created"]),
            )
            for r in rows
        ]

    def ledger(self) -> list[LedgerEntry]:
        with self._read() as db:
            rows = db.execute(
                "SELECT l.*, st.name FROM ledger l LEFT JOIN students st ON st.id = l.student_id "
                "ORDER BY l.id"
            ).fetchall()
        return [
            LedgerEntry(
                id=int(r["id"]),
                at=float(r["at"]),
                student=r["name"],
                submit_id=r["submit_id"],
                kind=str(r["kind"]),
                credits=float(r["credits"]),
                reason=str(r["reason"]),
                task_id=r["task_id"],
            )
            for r in rows
        ]

    # -- tasks -------------------------------------------------------------------------------

    def task_body(self, task_id: str, student: Student) -> dict[str, Any] | None:
        with self._read() as db:
            row = db.execute(
                "SELECT body FROM tasks WHERE task_id = ? AND (student_id = ? OR published = 1)",
                (task_id, student.id),
            ).fetchone()
        return None if row is None else dict(json.loads(row["body"]))

    def task_count(self, student: Student) -> int:
        return int(self._one("SELECT COUNT(*) FROM tasks WHERE student_id = ?", student.id))

    def update_task(
        self, task_id: str, body: Mapping[str, Any], *, terminal: bool, failure: str | None
    ) -> None:
        with self._tx() as db:
            self._update_task(db, task_id, body, terminal=terminal, failure=failure)

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> None:
        # A poll tick's answers in a few transactions rather than one each: the writers'
        # lock is taken (and the commit paid) once per chunk, and a submit waits at most
        # one chunk behind the poller.
        for start in range(0, len(updates), _UPDATE_CHUNK):
            with self._tx() as db:
                for update in updates[start : start + _UPDATE_CHUNK]:
                    self._update_task(
                        db,
                        update.task_id,
                        update.body,
                        terminal=update.terminal,
                        failure=update.failure,
                    )

    def _update_task(
        self,
        db: _Cursor,
        task_id: str,
        body: Mapping[str, Any],
        *,
        terminal: bool,
        failure: str | None,
    ) -> None:
        row = db.execute(
            "SELECT t.terminal, t.body, t.submit_id, s.cost, s.student_id FROM tasks t "
            "LEFT JOIN submits s ON s.id = t.submit_id WHERE t.task_id = ?",
            (task_id,),
        ).fetchone()
        if row is None or row["terminal"]:
            return  # unknown, or settled already: a late answer changes nothing
        text = json.dumps(dict(body))
        if not terminal and text == row["body"]:
            return  # nothing new (a task waiting in line): no write
        db.execute(
            "UPDATE tasks SET body = ?, terminal = ?, updated = ? WHERE task_id = ?",
            (text, int(terminal), self._clock(), task_id),
        )
        if terminal:
            db.execute("DELETE FROM leases WHERE task_id = ?", (task_id,))
            self._bump(db, task_id)
        if terminal and failure is not None and row["submit_id"] is not None:
            self._entry(
                db,
                "refund",
                float(row["cost"]),
                student_id=row["student_id"],
                submit_id=row["submit_id"],
                task_id=task_id,
                reason=f"the task failed upstream: {failure}",
            )

    def open_tasks(self) -> list[str]:
        with self._read() as db:
            order = self.dialect.insertion_order  # a constant of the dialect, not input
            rows = db.execute(
                f"SELECT task_id FROM tasks WHERE terminal = 0 ORDER BY created, {order}"  # noqa: S608
            ).fetchall()
        return [str(r[0]) for r in rows]

    def publish(self, task_id: str, body: Mapping[str, Any] | None = None) -> None:
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO tasks (task_id, body, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (task_id) DO NOTHING",
                (task_id, json.dumps(dict(body or {"task_id": task_id})), now, now),
            )
            db.execute("UPDATE tasks SET published = 1 WHERE task_id = ?", (task_id,))

    # -- the class gallery -------------------------------------------------------------------

    def _bump(self, db: _Cursor, task_id: str) -> None:
        """Give the task the next number of the gallery's change sequence."""
        db.execute(
            "INSERT INTO counters (name, value) VALUES ('gallery', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1"
        )
        db.execute(
            "UPDATE tasks SET seq = (SELECT value FROM counters WHERE name = 'gallery') "
            "WHERE task_id = ?",
            (task_id,),
        )

    def set_shared(self, task_id: str, student: Student, shared: bool) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET shared = ?, updated = ? WHERE task_id = ? AND student_id = ?",
                (int(shared), self._clock(), task_id, student.id),
            )
            if cur.rowcount:
                self._bump(db, task_id)
        return bool(cur.rowcount)

    def set_hidden(self, task_id: str, hidden: bool) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET hidden = ?, updated = ? WHERE task_id = ? "
                "AND student_id IS NOT NULL",
                (int(hidden), self._clock(), task_id),
            )
            if cur.rowcount:
                self._bump(db, task_id)
        return bool(cur.rowcount)

    def gallery(self, after: int = 0) -> tuple[int, list[GalleryItem]]:
        with self._snapshot() as db:  # the latest number and the rows agree
            latest = db.execute("SELECT value FROM counters WHERE name = 'gallery'").fetchone()
            rows = db.execute(
                "SELECT t.task_id, t.body, t.terminal, t.shared, t.hidden, t.seq, t.updated, "
                "st.name, s.request FROM tasks t JOIN students st ON st.id = t.student_id "
                "LEFT JOIN submits s ON s.id = t.submit_id "
                "WHERE t.seq > ? ORDER BY t.seq",
                (after,),
            ).fetchall()
        return (int(latest[0]) if latest else 0), [_gallery_item(r) for r in rows]

    # -- leases (several relay processes on one database) -------------------------------------

    def claim(self, task_ids: Sequence[str], holder: str, seconds: float) -> list[str]:
        """Take or renew the polling lease of each task for ``seconds``; the ids ``holder`` holds.

        A task's lease is taken when it has none, when it expired, or when ``holder`` has it
        already (then it is renewed). A task held by another live process is left to it, and
        a task the store does not know or that finished or failed is never leased.
        """
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return []
        now = self._clock()
        held: set[str] = set()
        with self._tx() as db:
            for start in range(0, len(ids), _CLAIM_CHUNK):
                chunk = ids[start : start + _CLAIM_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                found = db.execute(
                    "INSERT INTO leases (task_id, holder, expires) "  # noqa: S608
                    f"SELECT task_id, ?, ? FROM tasks WHERE terminal = 0 AND task_id IN ({marks}) "
                    "ON CONFLICT (task_id) DO UPDATE SET holder = excluded.holder, "
                    "expires = excluded.expires "
                    "WHERE leases.holder = excluded.holder OR leases.expires <= ? "
                    "RETURNING task_id",
                    (holder, now + seconds, *chunk, now),
                ).fetchall()
                held.update(str(r[0]) for r in found)
        return [task_id for task_id in ids if task_id in held]

    def leases(self) -> dict[str, tuple[str, float]]:
        """Every polling lease: task id -> (holder, wall-clock expiry)."""
        with self._read() as db:
            rows = db.execute("SELECT task_id, holder, expires FROM leases").fetchall()
        return {str(r[0]): (str(r[1]), float(r[2])) for r in rows}

    def drop_leases(self, holder: str) -> None:
        """Give up every lease ``holder`` has, and its heartbeat (a relay stopping cleanly)."""
        with self._tx() as db:
            db.execute("DELETE FROM leases WHERE holder = ?", (holder,))
            db.execute("DELETE FROM relays WHERE holder = ?", (holder,))

    def heartbeat(self, holder: str, seconds: float) -> None:
        """Say that relay ``holder`` is alive for the next ``seconds``."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO relays (holder, expires) VALUES (?, ?) "
                "ON CONFLICT (holder) DO UPDATE SET expires = excluded.expires",
                (holder, self._clock() + seconds),
            )

    def live_relays(self) -> list[str]:
        """The relays whose heartbeat has not expired."""
        with self._read() as db:
            rows = db.execute(
                "SELECT holder FROM relays WHERE expires > ? ORDER BY holder", (self._clock(),)
            ).fetchall()
        return [str(r[0]) for r in rows]


def _gallery_item(row: Any) -> GalleryItem:
    task = Task.from_json(json.loads(row["body"]), task_id=str(row["task_id"]))
    request = json.loads(row["request"]) if row["request"] else {}
    prompt = request.get("prompt") if isinstance(request, dict) else None
    return GalleryItem(
        task_id=str(row["task_id"]),
        student=str(row["name"]),
        seq=int(row["seq"]),
        finished=bool(row["terminal"]) and task.is_finished,
        shared=bool(row["shared"]),
        hidden=bool(row["hidden"]),
        video_url=task.video_url,
        prompt=prompt if isinstance(prompt, str) else "",
        updated=float(row["updated"]),
    )


class _Cursor:
    """A connection seen through a dialect: ``execute`` takes ``?`` placeholders."""

    def __init__(self, db: Any, dialect: Dialect) -> None:
        self._db = db
        self._dialect = dialect

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (fetchone, fetchall, rowcount)."""
        return self._db.execute(self._dialect.sql(sql), tuple(args))
