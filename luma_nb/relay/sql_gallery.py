"""The class gallery's side of the SQL store: visibility and one class-wide change sequence.

Every change a live gallery must see (a task finishing, a student's share choice, the teacher
hiding a video) takes the next number of the sequence in ``counters``, in the same
transaction as the change.
"""

from __future__ import annotations

import json
from typing import Any

from ..contract.models import Task
from .sql_base import SQLBase, _Cursor
from .store import GalleryItem, Student

__all__ = ("GallerySQL",)


class GallerySQL(SQLBase):
    """``set_shared``, ``set_hidden``, ``gallery`` and ``may_extend`` of the store, written
    once."""

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

    def may_extend(self, task_id: str, student: Student) -> bool:
        with self._read() as db:
            row = db.execute(
                "SELECT student_id, published, terminal, shared, hidden, body FROM tasks "
                "WHERE task_id = ?",
                (task_id,),
            ).fetchone()
        if row is None:
            return False
        if row["published"] or row["student_id"] == student.id:
            return True
        if row["student_id"] is None or not row["terminal"] or not row["shared"]:
            return False
        return not row["hidden"] and Task.from_json(json.loads(row["body"])).is_finished

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
