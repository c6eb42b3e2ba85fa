"""Several relay processes on one database: polling leases and relays' heartbeats.

A task is polled upstream only by the relay holding its unexpired lease (``leases``: task,
holder, expiry); a relay's heartbeat (``relays``) tells the others it is alive, so a relay
starting beside it leaves its submits on their way alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sql_base import SQLBase

__all__ = ("LeaseSQL",)

#: Leases claimed per statement (one parameter each, well under SQLite's limit).
_CLAIM_CHUNK = 200


class LeaseSQL(SQLBase):
    """``claim``, ``leases``, ``drop_leases``, ``heartbeat`` and ``live_relays``, written once."""

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
                    # Leased by the upstream id (an approved held submit's maps to it).
                    "SELECT COALESCE(upstream_id, task_id), ?, ? FROM tasks WHERE terminal = 0 "
                    f"AND ((upstream_id IS NULL AND task_id IN ({marks})) "
                    f"OR upstream_id IN ({marks})) "
                    # Rows in one order (two relays claiming alike never wait in a circle).
                    "ORDER BY 1 "
                    "ON CONFLICT (task_id) DO UPDATE SET holder = excluded.holder, "
                    "expires = excluded.expires "
                    "WHERE leases.holder = excluded.holder OR leases.expires <= ? "
                    "RETURNING task_id",
                    (holder, now + seconds, *chunk, *chunk, now),
                ).fetchall()
                taken = [str(r[0]) for r in found]
                if taken:
                    # A statement reads the tasks as they were when it began: a task another
                    # relay settled (terminal, lease deleted) while this claim waited on that
                    # lease row is inserted anyway. The next statement sees the settling:
                    # give such leases back at once, so nobody polls a finished task.
                    marks = ", ".join("?" for _ in taken)
                    settled = db.execute(
                        f"DELETE FROM leases WHERE holder = ? AND task_id IN ({marks}) "  # noqa: S608
                        "AND EXISTS (SELECT 1 FROM tasks WHERE terminal = 1 AND ("
                        "(upstream_id IS NULL AND tasks.task_id = leases.task_id) "
                        "OR upstream_id = leases.task_id)) RETURNING task_id",
                        (holder, *taken),
                    ).fetchall()
                    held.update(set(taken) - {str(r[0]) for r in settled})
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
