"""The relay's store written once in SQL, run on SQLite or PostgreSQL through a small dialect.

:class:`SQLStore` holds every :class:`~luma_nb.relay.store.RelayStore` method: students, money
and tasks here, the class gallery in :mod:`~luma_nb.relay.sql_gallery`, leases in
:mod:`~luma_nb.relay.sql_leases`, the submit queue in :mod:`~luma_nb.relay.sql_queue`, the
plumbing in :mod:`~luma_nb.relay.sql_base`. Its SQL uses ``?`` placeholders and what both
databases understand (``INSERT ... ON CONFLICT``, ``RETURNING id``, ``CASE``, ``COALESCE``); a
:class:`~luma_nb.relay.sql_base.Dialect` adds what differs: column types, the append-only
triggers of the ledger, how a write transaction starts and how writers of several processes
are serialised, and which errors mean a unique key was taken. Every write is one transaction;
a write that reads a row to change it locks it first, and :meth:`SQLStore.reserve` (check the
budgets, then hold the credits) takes the class's lock, so it is exact however many relays
share the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .sql_base import SCHEMA, SUBMIT_ROWS, Dialect, _Cursor, submit_record
from .sql_gallery import GallerySQL
from .sql_leases import LeaseSQL
from .sql_queue import QueueSQL
from .sql_teacher import TeacherSQL
from .store import (
    NAME_ONLY,
    Budgets,
    LedgerEntry,
    Refusal,
    Student,
    SubmitRecord,
    TaskUpdate,
)

__all__ = ("SCHEMA", "Dialect", "SQLStore")

#: Task updates per transaction in :meth:`SQLStore.update_tasks`.
_UPDATE_CHUNK = 50
# Credits out of the budget: held by a reservation, minus those given back.
_SPENT = (
    "SELECT COALESCE(SUM(CASE kind WHEN 'reserve' THEN credits "
    "WHEN 'release' THEN -credits WHEN 'refund' THEN -credits ELSE 0 END), 0) FROM ledger"
)


class SQLStore(LeaseSQL, GallerySQL, TeacherSQL, QueueSQL):
    """A :class:`~luma_nb.relay.store.RelayStore` over one DB-API connection and a dialect.

    Subclasses open the connection (``_connect``) and pick the dialect; every method is shared.
    """

    # -- class and students ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key = ?", key)
        return None if value is None else str(value)

    def meta(self) -> dict[str, str]:
        with self._read() as db:
            rows = db.execute("SELECT key, value FROM meta").fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

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

    def enroll(self, name: str) -> Student | None:
        # Asked on every request of a Hub user: a read first, a write only for a newcomer.
        with self._read() as db:
            row = db.execute("SELECT id, revoked FROM students WHERE name = ?", (name,)).fetchone()
        if row is None:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO students (name, token_hash, created) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (name, NAME_ONLY + name, self._clock()),
                )
                row = db.execute(
                    "SELECT id, revoked FROM students WHERE name = ?", (name,)
                ).fetchone()
        if row is None or row["revoked"] is not None:
            return None
        return Student(int(row["id"]), name)

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
        # The budget checks are the insert's own condition, so the reservation is one
        # statement whichever database runs it, and the class's lock is held for it alone.
        now = self._clock()
        checks: list[str] = []
        args: list[Any] = [student.id, endpoint, json.dumps(dict(request)), cost, now, now]
        if budgets.student_budget is not None:
            checks.append(f"? - ({_SPENT} WHERE student_id = ?) >= ?")
            args += [budgets.student_budget, student.id, cost]
        if budgets.class_budget is not None:
            checks.append(f"? - ({_SPENT}) >= ?")
            args += [budgets.class_budget, cost]
        insert = (
            "INSERT INTO submits (student_id, endpoint, request, cost, state, created, updated) "
            "SELECT ?, ?, ?, ?, 'reserved', ?, ?"
            + (" WHERE " + " AND ".join(checks) if checks else "")
        )
        # A class budget is checked against every student's spending: the class's other
        # reservations wait. Otherwise only this student's do.
        lock = None if budgets.class_budget is not None else student.id
        submit_id = self._reserve(insert, args, student_id=student.id, cost=cost, lock=lock)
        if submit_id is not None:
            return submit_id
        return self._refusal(student, cost, budgets)

    def _reserve(
        self, insert: str, args: Sequence[Any], *, student_id: int, cost: float, lock: int | None
    ) -> int | None:
        """Run ``insert`` (a submit, if the budgets allow it) and the ledger's ``reserve`` line
        in one transaction under the class's lock (``lock``: see :meth:`Dialect.lock_class`);
        the new submit's id, or None when a budget refused it."""
        with self._tx() as db:
            self.dialect.lock_class(db, lock)
            row = db.execute(insert + " RETURNING id", args).fetchone()
            if row is None:
                return None
            submit_id = int(row[0])
            self._entry(db, "reserve", cost, student_id=student_id, submit_id=submit_id)
        return submit_id

    def _refusal(self, student: Student, cost: float, budgets: Budgets) -> Refusal:
        """What to tell a student whose submit a budget refused (read after the refusal: the
        figures are what is left now)."""
        if budgets.student_budget is not None:
            left = budgets.student_budget - self.spent(student)
            if cost > left or budgets.class_budget is None:
                return Refusal(
                    f"Your budget is used up: {max(left, 0):g} credits left, "
                    f"this submit costs {cost:g}. Ask your teacher for more."
                )
        left = (budgets.class_budget or 0.0) - self.spent()
        return Refusal(
            f"The class budget is used up: {max(left, 0):g} credits left for the "
            f"whole class, this submit costs {cost:g}."
        )

    def _submit_row(self, db: _Cursor, submit_id: int) -> Any:
        lock = self.dialect.row_lock.format(table="submits")  # a constant of the dialect
        row = db.execute(
            "SELECT * FROM submits WHERE id = ?" + lock,  # noqa: S608
            (submit_id,),
        ).fetchone()
        if row is None:
            raise KeyError(submit_id)
        return row

    def forwarded(self, submit_id: int, task_id: str, task_type: str) -> None:
        with self._tx(batched=True) as db:  # on every accepted submit: its writes together
            self._forwarded(db, self._submit_row(db, submit_id), task_id, task_type)

    def _forwarded(
        self, db: _Cursor, row: Any, task_id: str, task_type: str, note: str = ""
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
                "INSERT INTO tasks (task_id, student_id, submit_id, body, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
                (task_id, row["student_id"], submit_id, json.dumps(body), now, now),
            )
        db.execute(
            "UPDATE submits SET state = 'forwarded', task_id = ?, updated = ? WHERE id = ?",
            (mine or task_id, now, submit_id),
        )
        self._entry(
            db,
            "charge",
            float(row["cost"]),
            student_id=row["student_id"],
            submit_id=submit_id,
            task_id=mine or task_id,
            reason=note,
        )

    @staticmethod
    def _relayed(db: _Cursor, row: Any) -> str | None:
        """The relay-made task id of a submit that was held for approval, else None."""
        if row["task_id"] is None:
            return None
        found = db.execute(
            "SELECT task_id FROM tasks WHERE task_id = ? AND relayed = 1", (row["task_id"],)
        ).fetchone()
        return None if found is None else str(found[0])

    def _end_relayed(self, db: _Cursor, row: Any, message: str) -> None:
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
                    float(row["cost"]),
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
                old = db.execute("SELECT body FROM tasks WHERE task_id = ?", (mine,)).fetchone()
                body = json.loads(old["body"])
                body["progress_note"] = "the video service's answer was lost; your teacher checks"
                db.execute(
                    "UPDATE tasks SET body = ?, updated = ? WHERE task_id = ?",
                    (json.dumps(body), self._clock(), mine),
                )

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
        sql = SUBMIT_ROWS
        args: tuple[Any, ...] = ()
        if state is not None:
            sql, args = sql + " WHERE s.state = ?", (state,)
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY s.id", args).fetchall()
        return [submit_record(r) for r in rows]

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
                "SELECT t.body, t.relayed, t.submit_id, s.state FROM tasks t "
                "LEFT JOIN submits s ON s.id = t.submit_id "
                "WHERE t.task_id = ? AND (t.student_id = ? OR t.published = 1)",
                (task_id, student.id),
            ).fetchone()
            if row is None:
                return None
            body = dict(json.loads(row["body"]))
            if row["relayed"] and row["state"] == "queued":
                body = self._queued_body(db, body, int(row["submit_id"]))
        return body

    def task_count(self, student: Student) -> int:
        return int(self._one("SELECT COUNT(*) FROM tasks WHERE student_id = ?", student.id))

    def update_task(
        self, task_id: str, body: Mapping[str, Any], *, terminal: bool, failure: str | None
    ) -> None:
        self.update_tasks([TaskUpdate(task_id, body, terminal, failure)])

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> None:
        # A poll tick's answers in a few transactions (one per chunk): the chunk's rows read
        # in one statement, only what changed written. Every writer locks tasks in one order
        # (by id), and the gallery's counter last, so two relays' transactions never wait for
        # each other in a circle.
        ordered = sorted(updates, key=lambda update: update.task_id)
        for start in range(0, len(ordered), _UPDATE_CHUNK):
            chunk = ordered[start : start + _UPDATE_CHUNK]
            with self._tx(batched=True) as db:
                rows = self._task_rows(db, [update.task_id for update in chunk])
                news = [self._update_task(db, rows.get(update.task_id), update) for update in chunk]
                for task_id in news:
                    if task_id is not None:
                        self._bump(db, task_id)

    def _task_rows(self, db: _Cursor, ids: Sequence[str]) -> dict[str, Any]:
        """The rows of the tasks the upstream calls ``ids`` (a relay-made task by its upstream
        id), locked until the transaction ends, by those ids."""
        marks = ", ".join("?" for _ in ids)
        lock = self.dialect.row_lock.format(table="t")  # a constant of the dialect
        rows = db.execute(
            "SELECT t.task_id, t.upstream_id, t.terminal, t.body, t.submit_id, s.cost, "  # noqa: S608
            "s.student_id FROM tasks t LEFT JOIN submits s ON s.id = t.submit_id "
            f"WHERE t.task_id IN ({marks}) OR t.upstream_id IN ({marks}) ORDER BY t.task_id" + lock,
            (*ids, *ids),
        ).fetchall()
        wanted = set(ids)
        found: dict[str, Any] = {}
        for row in rows:
            for key in (row["upstream_id"], row["task_id"]):
                if key in wanted:
                    found.setdefault(str(key), row)
        return found

    def _update_task(self, db: _Cursor, row: Any, update: TaskUpdate) -> str | None:
        """Store one task's news (``row``: the task as stored, None when unknown); the task id
        when it is news for the class gallery."""
        if row is None or row["terminal"]:
            return None  # unknown, or settled already: a late answer changes nothing
        terminal, failure = update.terminal, update.failure
        task_id = str(row["task_id"])  # the student's id, in every body
        text = json.dumps(dict(update.body) | {"task_id": task_id})
        if not terminal and text == row["body"]:
            return None  # nothing new (a task waiting in line): no write
        db.execute(
            "UPDATE tasks SET body = ?, terminal = ?, updated = ? WHERE task_id = ?",
            (text, int(terminal), self._clock(), task_id),
        )
        if terminal:
            db.execute("DELETE FROM leases WHERE task_id = ?", (update.task_id,))
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
        # A student's task that finished or failed: news for the class gallery.
        return task_id if terminal and row["student_id"] is not None else None

    def open_tasks(self) -> list[str]:
        with self._read() as db:
            order = self.dialect.insertion_order  # a constant of the dialect, not input
            rows = db.execute(
                "SELECT COALESCE(upstream_id, task_id) FROM tasks WHERE terminal = 0 "  # noqa: S608
                f"AND (relayed = 0 OR upstream_id IS NOT NULL) ORDER BY created, {order}"
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

    # -- the teacher's decisions (the rest of the controls: sql_teacher) -------------------------

    def take_held(self, submit_id: int) -> SubmitRecord | None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE submits SET state = 'reserved', updated = ? "
                "WHERE id = ? AND state = 'held'",
                (self._clock(), submit_id),
            )
        if not cur.rowcount:
            return None
        return self._record(submit_id)

    def reject(self, submit_id: int, reason: str) -> bool:
        try:
            return self._settle(submit_id, "refused", reason, was="held")
        except KeyError:
            return False

    def cancel_queued(self, submit_id: int, reason: str) -> bool:
        try:
            return self._settle(submit_id, "refused", reason, was="queued")
        except KeyError:
            return False

    def resolve(self, submit_id: int, task_id: str | None, reason: str) -> bool:
        if task_id is None:
            try:
                return self._settle(submit_id, "refused", reason, was="uncertain")
            except KeyError:
                return False
        with self._tx() as db:
            try:
                row = self._submit_row(db, submit_id)
            except KeyError:
                return False
            if row["state"] != "uncertain":
                return False
            kind = "luma-ext" if row["endpoint"] == "/luma-extend" else "luma"
            self._forwarded(db, row, task_id, kind, note=reason)
        return True
