"""The class's submit queue in the SQL store: submits that wait at the relay to go upstream.

A submit waits in line (state ``queued``) when the class already has as many jobs running
upstream as the teacher allows, when a submit before it waits, or when the upstream refused it
with 429 (it did not accept the job, so sending it later is safe). It is answered at once under
a relay-made task id, as a submit held for approval is (the same ``relayed`` task row), and its
fetches say its place: ``queued at the class relay: 4th in line``. Arrival order is the submits'
ids. Every change to the line takes the class's lock (:meth:`Dialect.lock_class`), so the
running jobs it counts are those of every relay sharing the database: they share one queue,
and :meth:`QueueSQL.next_queued` takes each submit once (queued -> reserved) and never runs the
class past its limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..contract.text import ordinal
from .sql_base import SQLBase, _Cursor
from .store import SubmitRecord

__all__ = ("QUEUE_RETRY_AT", "QueueSQL", "queue_note")

#: The meta key of the wall-clock time before which the upstream asked not to be sent submits
#: (its last 429's Retry-After), shared by the class's relays.
QUEUE_RETRY_AT = "queue_retry_at"


def queue_note(position: int) -> str:
    """What a queued submit's fetches say beside ``pending``."""
    return f"queued at the class relay: {ordinal(position)} in line"


class QueueSQL(SQLBase):
    """``admit``, ``queue``, ``next_queued``, ``cancel_queued``, ``running`` and the queue's
    positions, written once."""

    # -- reading ----------------------------------------------------------------------------

    @staticmethod
    def _running(db: _Cursor) -> int:
        """Submits on their way upstream, and forwarded ones whose task has not ended (one
        statement: a submit going from one to the other is counted once)."""
        row = db.execute(
            "SELECT (SELECT COUNT(*) FROM submits WHERE state = 'reserved') + "
            "(SELECT COUNT(*) FROM tasks t JOIN submits s ON s.id = t.submit_id "
            "WHERE t.terminal = 0 AND s.state = 'forwarded')"
        ).fetchone()
        return int(row[0])

    def running(self) -> int:
        with self._read() as db:
            return self._running(db)

    def _retry_at(self, db: _Cursor) -> float:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (QUEUE_RETRY_AT,)).fetchone()
        try:
            return float(row[0]) if row is not None else 0.0
        except ValueError:
            return 0.0

    @staticmethod
    def _position(db: _Cursor, submit_id: int) -> int:
        row = db.execute(
            "SELECT COUNT(*) FROM submits WHERE state = 'queued' AND id <= ?", (submit_id,)
        ).fetchone()
        return int(row[0])

    def _queued_body(self, db: _Cursor, body: dict[str, Any], submit_id: int) -> dict[str, Any]:
        """A queued submit's fetch body with its place in line (it changes as the line moves)."""
        return body | {"progress_note": queue_note(self._position(db, submit_id))}

    # -- writing ----------------------------------------------------------------------------

    def _enqueue(self, db: _Cursor, row: Any, task_id: str, body: Mapping[str, Any]) -> str:
        """Put a reserved submit in line; the task id its student holds (a relay-made one it
        has already, from approve mode or an earlier turn in line, else ``task_id``)."""
        now, submit_id = self._clock(), int(row["id"])
        mine = row["task_id"]
        known = None
        if mine is not None:
            known = db.execute(
                "SELECT task_id FROM tasks WHERE task_id = ? AND relayed = 1", (mine,)
            ).fetchone()
        if known is None:
            mine = task_id
            db.execute(
                "INSERT INTO tasks (task_id, student_id, submit_id, body, relayed, created, "
                "updated) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (mine, row["student_id"], submit_id, json.dumps(dict(body)), now, now),
            )
        db.execute(
            "UPDATE submits SET state = 'queued', task_id = ?, updated = ? WHERE id = ?",
            (mine, now, submit_id),
        )
        return str(mine)

    def admit(
        self,
        submit_id: int,
        max_running: int | None,
        task_id: str,
        body: Mapping[str, Any],
    ) -> str | None:
        with self._read() as db:  # the common case (no line, no limit) takes no lock
            found = db.execute("SELECT student_id FROM submits WHERE id = ?", (submit_id,))
            row = found.fetchone()
            if row is None:
                return None
            student_id = int(row[0])
            waiting = db.execute("SELECT id FROM submits WHERE state = 'queued' LIMIT 1")
            idle = waiting.fetchone() is None and self._retry_at(db) <= self._clock()
        if idle:
            if max_running is None:
                return None
            # Room to spare goes without the class's lock: admissions run side by side (each
            # counts its own reservation and those before it), and only the dispatcher, which
            # takes the lock, waits for them, so the class never runs past its limit.
            with self._tx() as db:
                self.dialect.lock_class(db, student_id)
                if self._running(db) <= max_running:
                    return None
        with self._tx() as db:
            self.dialect.lock_class(db)
            row = db.execute("SELECT * FROM submits WHERE id = ?", (submit_id,)).fetchone()
            if row is None or row["state"] != "reserved":
                return None
            ahead = db.execute("SELECT id FROM submits WHERE state = 'queued' LIMIT 1")
            full = max_running is not None and self._running(db) > max_running  # counts it
            if ahead.fetchone() is None and self._retry_at(db) <= self._clock() and not full:
                return None
            return self._enqueue(db, row, task_id, body)

    def queue(
        self,
        submit_id: int,
        task_id: str,
        body: Mapping[str, Any],
        retry_at: float | None = None,
    ) -> str | None:
        with self._tx() as db:
            self.dialect.lock_class(db)
            row = db.execute("SELECT * FROM submits WHERE id = ?", (submit_id,)).fetchone()
            if row is None or row["state"] != "reserved":
                return None
            if retry_at is not None and retry_at > self._retry_at(db):
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (QUEUE_RETRY_AT, repr(retry_at)),
                )
            return self._enqueue(db, row, task_id, body)

    def next_queued(self, max_running: int | None) -> SubmitRecord | None:
        with self._read() as db:  # no lock to take while the line is empty or must wait
            first = db.execute("SELECT MIN(id) FROM submits WHERE state = 'queued'").fetchone()
            if first[0] is None or self._retry_at(db) > self._clock():
                return None
            if max_running is not None and self._running(db) >= max_running:
                return None
        with self._tx() as db:
            self.dialect.lock_class(db)
            if self._retry_at(db) > self._clock():
                return None
            if max_running is not None and self._running(db) >= max_running:
                return None
            # The first in line; one the teacher cancels meanwhile is not taken.
            row = db.execute(
                "UPDATE submits SET state = 'reserved', updated = ? WHERE state = 'queued' "
                "AND id = (SELECT MIN(id) FROM submits WHERE state = 'queued') RETURNING id",
                (self._clock(),),
            ).fetchone()
            if row is None:
                return None
        return self._record(int(row[0]))
