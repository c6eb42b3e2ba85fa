"""The teacher's controls in the store: each student's pause and own budget, the class's
tasks for the teacher's table, and submits held for approval under a relay-made task id
(which maps to the upstream task once the teacher approves it; see :mod:`luma_nb.relay.sql`
for the approval, rejection and resolution that settle the money)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..contract.models import Task
from .sql_base import SQLBase
from .store import ClassTask, Controls, Student

__all__ = ("TeacherSQL",)


class TeacherSQL(SQLBase):
    """``controls``, ``controls_of``, ``set_paused``, ``set_budget``, ``class_tasks``, ``hold``
    and ``upstream_of``, written once."""

    def controls(self) -> dict[str, Controls]:
        with self._read() as db:
            rows = db.execute(
                "SELECT st.name, c.paused, c.budget FROM students st "
                "LEFT JOIN controls c ON c.student_id = st.id ORDER BY st.id"
            ).fetchall()
        return {
            str(r["name"]): Controls(
                bool(r["paused"]), None if r["budget"] is None else float(r["budget"])
            )
            for r in rows
        }

    def controls_of(self, student: Student) -> Controls:
        with self._read() as db:
            row = db.execute(
                "SELECT paused, budget FROM controls WHERE student_id = ?", (student.id,)
            ).fetchone()
        if row is None:
            return Controls()
        return Controls(
            bool(row["paused"]), None if row["budget"] is None else float(row["budget"])
        )

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
        with self._read() as db:
            rows = db.execute(
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
            row = db.execute("SELECT student_id FROM submits WHERE id = ?", (submit_id,)).fetchone()
            if row is None:
                raise KeyError(submit_id)
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

    def upstream_of(self, task_id: str) -> str | None:
        with self._read() as db:
            row = db.execute(
                "SELECT relayed, upstream_id FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        if row is None or not row["relayed"]:
            return task_id
        return None if row["upstream_id"] is None else str(row["upstream_id"])
