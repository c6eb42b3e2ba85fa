"""The relay's store in one SQLite file (WAL mode), with an append-only ledger.

One connection, serialised by a lock; budget checks and reservations run in ``BEGIN IMMEDIATE``
transactions, so two relays (or the ``luma-nb class`` commands) on the same file stay exact.
Triggers refuse any UPDATE or DELETE on the ledger. Tokens are stored as their SHA-256 only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..contract.models import Task
from .store import (
    Budgets,
    ClassTask,
    Controls,
    GalleryItem,
    LedgerEntry,
    Refusal,
    Student,
    SubmitRecord,
)

__all__ = ("SQLiteStore",)

_SCHEMA = """
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
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS controls (
    student_id INTEGER PRIMARY KEY REFERENCES students(id), paused INTEGER NOT NULL DEFAULT 0,
    budget REAL);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (terminal);
CREATE INDEX IF NOT EXISTS ledger_student ON ledger (student_id);
"""
# Credits out of the budget: held by a reservation, minus those given back.
_SPENT = (
    "SELECT COALESCE(SUM(CASE kind WHEN 'reserve' THEN credits "
    "WHEN 'release' THEN -credits WHEN 'refund' THEN -credits ELSE 0 END), 0) FROM ledger"
)

# Columns added after the first schema (added to older files on open).
_TASK_COLUMNS = {
    "shared": "INTEGER NOT NULL DEFAULT 1",
    "hidden": "INTEGER NOT NULL DEFAULT 0",
    "seq": "INTEGER NOT NULL DEFAULT 0",
    # A relay-made id (a submit held for the teacher's approval) and the upstream task it became.
    "relayed": "INTEGER NOT NULL DEFAULT 0",
    "upstream_id": "TEXT",
}


class SQLiteStore:
    """A :class:`~luma_nb.relay.store.RelayStore` in the SQLite file ``path``."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(tasks)")}
            for name, kind in _TASK_COLUMNS.items():
                if name not in columns:  # a class file made before the column existed
                    self._db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> Any:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
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
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def add_student(self, name: str, token_hash: str) -> Student:
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO students (name, token_hash, created) VALUES (?, ?, ?)",
                    (name, token_hash, self._clock()),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"a student named {name!r} is already in the class") from None
        return Student(int(cur.lastrowid or 0), name)

    def student_by_hash(self, token_hash: str) -> Student | None:
        with self._lock:
            row = self._db.execute(
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
        with self._lock:
            rows = self._db.execute("SELECT id, name, revoked FROM students ORDER BY id").fetchall()
        return [Student(int(r["id"]), str(r["name"]), r["revoked"] is not None) for r in rows]

    # -- money -------------------------------------------------------------------------------

    def _entry(
        self,
        db: sqlite3.Connection,
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
                left = budgets.student_budget - mine
                if cost > left:
                    return Refusal(
                        f"Your budget is used up: {max(left, 0):g} credits left, "
                        f"this submit costs {cost:g}. Ask your teacher for more."
                    )
            if budgets.class_budget is not None:
                left = budgets.class_budget - db.execute(_SPENT).fetchone()[0]
                if cost > left:
                    return Refusal(
                        f"The class budget is used up: {max(left, 0):g} credits left for the "
                        f"whole class, this submit costs {cost:g}."
                    )
            now = self._clock()
            cur = db.execute(
                "INSERT INTO submits (student_id, endpoint, request, cost, state, created, "
                "updated) VALUES (?, ?, ?, ?, 'reserved', ?, ?)",
                (student.id, endpoint, json.dumps(dict(request)), cost, now, now),
            )
            submit_id = int(cur.lastrowid or 0)
            self._entry(db, "reserve", cost, student_id=student.id, submit_id=submit_id)
        return submit_id

    def _submit_row(self, db: sqlite3.Connection, submit_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM submits WHERE id = ?", (submit_id,)).fetchone()
        if row is None:
            raise KeyError(submit_id)
        return row  # type: ignore[no-any-return]

    def forwarded(self, submit_id: int, task_id: str, task_type: str) -> None:
        with self._tx() as db:
            self._forwarded(db, self._submit_row(db, submit_id), task_id, task_type)

    def _forwarded(
        self, db: sqlite3.Connection, row: sqlite3.Row, task_id: str, task_type: str, note: str = ""
    ) -> None:
        """Charge a submit the upstream accepted as ``task_id``; a held submit keeps the id its
        student holds, which maps to ``task_id`` from now on."""
        now, submit_id = self._clock(), int(row["id"])
        mine = self._relayed(db, row)
        if mine is not None:
            body = {"task_id": mine, "task_type": task_type, "status": "pending"}
            db.execute(
                "UPDATE tasks SET upstream_id = ?, body = ?, updated = ? WHERE task_id = ?",
                (task_id, json.dumps(body), now, mine),
            )
            note = note or f"forwarded upstream as {task_id}"
        else:
            body = {"task_id": task_id, "task_type": task_type, "status": "pending"}
            db.execute(
                "INSERT OR IGNORE INTO tasks (task_id, student_id, submit_id, body, created, "
                "updated) VALUES (?, ?, ?, ?, ?, ?)",
                (task_id, row["student_id"], submit_id, json.dumps(body), now, now),
            )
        db.execute(
            "UPDATE submits SET state = 'forwarded', task_id = ?, updated = ? WHERE id = ?",
            (mine or task_id, now, submit_id),
        )
        self._entry(
            db,
            "charge",
            row["cost"],
            student_id=row["student_id"],
            submit_id=submit_id,
            task_id=mine or task_id,
            reason=note,
        )

    @staticmethod
    def _relayed(db: sqlite3.Connection, row: sqlite3.Row) -> str | None:
        """The relay-made task id of a submit that was held for approval, else None."""
        if row["task_id"] is None:
            return None
        found = db.execute(
            "SELECT task_id FROM tasks WHERE task_id = ? AND relayed = 1", (row["task_id"],)
        ).fetchone()
        return None if found is None else str(found[0])

    def _end_relayed(self, db: sqlite3.Connection, row: sqlite3.Row, message: str) -> None:
        """A held submit that will never run: its relay-made task fails with ``message``."""
        mine = self._relayed(db, row)
        if mine is None:
            return
        old = db.execute("SELECT body FROM tasks WHERE task_id = ?", (mine,)).fetchone()
        task_type = json.loads(old["body"]).get("task_type")
        body = {"task_id": mine, "task_type": task_type, "status": "failed", "message": message}
        db.execute(
            "UPDATE tasks SET body = ?, terminal = 1, updated = ? WHERE task_id = ?",
            (json.dumps(body), self._clock(), mine),
        )
        self._bump(db, mine)

    def _settle(self, submit_id: int, state: str, reason: str, *, was: str = "reserved") -> bool:
        with self._tx() as db:
            row = self._submit_row(db, submit_id)
            if row["state"] != was:
                return False
            db.execute(
                "UPDATE submits SET state = ?, note = ?, updated = ? WHERE id = ?",
                (state, reason, self._clock(), submit_id),
            )
            if state == "refused":
                self._entry(
                    db,
                    "release",
                    row["cost"],
                    student_id=row["student_id"],
                    submit_id=submit_id,
                    task_id=self._relayed(db, row),
                    reason=reason,
                )
                self._end_relayed(db, row, reason)
        return True

    def uncertain(self, submit_id: int, reason: str) -> None:
        self._settle(submit_id, "uncertain", reason)
        with self._tx() as db:  # a held submit's student sees why it still waits
            row = self._submit_row(db, submit_id)
            mine = self._relayed(db, row)
            if mine is not None and row["state"] == "uncertain":
                old = json.loads(
                    db.execute("SELECT body FROM tasks WHERE task_id = ?", (mine,)).fetchone()[0]
                )
                old["progress_note"] = "the video service's answer was lost; your teacher checks"
                db.execute(
                    "UPDATE tasks SET body = ?, updated = ? WHERE task_id = ?",
                    (json.dumps(old), self._clock(), mine),
                )

    def release(self, submit_id: int, reason: str) -> None:
        self._settle(submit_id, "refused", reason)

    def recover(self, reason: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE submits SET state = 'uncertain', note = ?, updated = ? "
                "WHERE state = 'reserved'",
                (reason, self._clock()),
            )
        return int(cur.rowcount)

    def spent(self, student: Student | None = None) -> float:
        if student is None:
            return float(self._one(_SPENT))
        return float(self._one(_SPENT + " WHERE student_id = ?", student.id))

    def submits(self, state: str | None = None) -> list[SubmitRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.*, st.name FROM submits s JOIN students st ON st.id = s.student_id "
                "WHERE ? IS NULL OR s.state = ? ORDER BY s.id",
                (state, state),
            ).fetchall()
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
        with self._lock:
            rows = self._db.execute(
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
        with self._lock:
            row = self._db.execute(
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
            row = db.execute(
                "SELECT t.task_id, t.terminal, t.submit_id, s.cost, s.student_id FROM tasks t "
                "LEFT JOIN submits s ON s.id = t.submit_id "
                "WHERE t.task_id = ? OR t.upstream_id = ?",
                (task_id, task_id),
            ).fetchone()
            if row is None or row["terminal"]:
                return  # unknown, or settled already: a late answer changes nothing
            task_id = str(row["task_id"])  # the id the student holds, in every body
            kept = dict(body) | {"task_id": task_id}
            db.execute(
                "UPDATE tasks SET body = ?, terminal = ?, updated = ? WHERE task_id = ?",
                (json.dumps(kept), int(terminal), self._clock(), task_id),
            )
            if terminal:
                self._bump(db, task_id)
            if terminal and failure is not None and row["submit_id"] is not None:
                self._entry(
                    db,
                    "refund",
                    row["cost"],
                    student_id=row["student_id"],
                    submit_id=row["submit_id"],
                    task_id=task_id,
                    reason=f"the task failed upstream: {failure}",
                )

    def open_tasks(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT COALESCE(upstream_id, task_id) FROM tasks WHERE terminal = 0 "
                "AND (relayed = 0 OR upstream_id IS NOT NULL) ORDER BY created, rowid"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def publish(self, task_id: str, body: Mapping[str, Any] | None = None) -> None:
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO tasks (task_id, body, created, updated) VALUES (?, ?, ?, ?)",
                (task_id, json.dumps(dict(body or {"task_id": task_id})), now, now),
            )
            db.execute("UPDATE tasks SET published = 1 WHERE task_id = ?", (task_id,))

    # -- the class gallery -------------------------------------------------------------------

    def _bump(self, db: sqlite3.Connection, task_id: str) -> None:
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
        with self._lock:
            latest = self._db.execute(
                "SELECT value FROM counters WHERE name = 'gallery'"
            ).fetchone()
            rows = self._db.execute(
                "SELECT t.task_id, t.body, t.terminal, t.shared, t.hidden, t.seq, t.updated, "
                "st.name, s.request FROM tasks t JOIN students st ON st.id = t.student_id "
                "LEFT JOIN submits s ON s.id = t.submit_id "
                "WHERE t.seq > ? ORDER BY t.seq",
                (after,),
            ).fetchall()
        return (int(latest[0]) if latest else 0), [_gallery_item(r) for r in rows]

    # -- the teacher's controls --------------------------------------------------------------

    def controls(self) -> dict[str, Controls]:
        with self._lock:
            rows = self._db.execute(
                "SELECT st.name, c.paused, c.budget FROM students st "
                "LEFT JOIN controls c ON c.student_id = st.id ORDER BY st.id"
            ).fetchall()
        return {
            str(r["name"]): Controls(
                bool(r["paused"]), None if r["budget"] is None else float(r["budget"])
            )
            for r in rows
        }

    def _control(self, name: str, column: str, value: Any) -> bool:
        with self._tx() as db:
            found = db.execute("SELECT id FROM students WHERE name = ?", (name,)).fetchone()
            if found is None:
                return False
            db.execute(
                f"INSERT INTO controls (student_id, {column}) VALUES (?, ?) "  # noqa: S608
                f"ON CONFLICT (student_id) DO UPDATE SET {column} = excluded.{column}",
                (found[0], value),
            )
        return True

    def set_paused(self, name: str, paused: bool) -> bool:
        return self._control(name, "paused", int(paused))

    def set_budget(self, name: str, budget: float | None) -> bool:
        return self._control(name, "budget", budget)

    def class_tasks(self) -> list[ClassTask]:
        with self._lock:
            rows = self._db.execute(
                "SELECT t.task_id, t.body, t.updated, st.name FROM tasks t "
                "JOIN students st ON st.id = t.student_id ORDER BY t.created, t.task_id"
            ).fetchall()
        found = []
        for r in rows:
            task = Task.from_json(json.loads(r["body"]), task_id=str(r["task_id"]))
            found.append(
                ClassTask(
                    str(r["task_id"]), str(r["name"]), task.status, task.error, float(r["updated"])
                )
            )
        return found

    def hold(self, submit_id: int, task_id: str, body: Mapping[str, Any]) -> None:
        with self._tx() as db:
            row = self._submit_row(db, submit_id)
            now = self._clock()
            db.execute(
                "UPDATE submits SET state = 'held', task_id = ?, updated = ? "
                "WHERE id = ? AND state = 'reserved'",
                (task_id, now, submit_id),
            )
            db.execute(
                "INSERT INTO tasks (task_id, student_id, submit_id, body, relayed, created, "
                "updated) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (task_id, row["student_id"], submit_id, json.dumps(dict(body)), now, now),
            )

    def take_held(self, submit_id: int) -> SubmitRecord | None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE submits SET state = 'reserved', updated = ? "
                "WHERE id = ? AND state = 'held'",
                (self._clock(), submit_id),
            )
        if not cur.rowcount:
            return None
        return next(r for r in self.submits() if r.id == submit_id)

    def reject(self, submit_id: int, reason: str) -> bool:
        try:
            return self._settle(submit_id, "refused", reason, was="held")
        except KeyError:
            return False

    def resolve(self, submit_id: int, task_id: str | None, reason: str) -> bool:
        if task_id is None:
            try:
                return self._settle(submit_id, "refused", reason, was="uncertain")
            except KeyError:
                return False
        with self._tx() as db:
            row = db.execute("SELECT * FROM submits WHERE id = ?", (submit_id,)).fetchone()
            if row is None or row["state"] != "uncertain":
                return False
            kind = "luma-ext" if row["endpoint"] == "/luma-extend" else "luma"
            self._forwarded(db, row, task_id, kind, note=reason)
        return True

    def upstream_of(self, task_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT relayed, upstream_id FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        if row is None or not row["relayed"]:
            return task_id
        return None if row["upstream_id"] is None else str(row["upstream_id"])


def _gallery_item(row: sqlite3.Row) -> GalleryItem:
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
