"""The sandbox's durable state: tasks and the account in one SQLite file (WAL journal).

One row per task (its durable fields as JSON) and a few account values. A submit is one small
transaction instead of two JSON files, so holding the store's lock for it costs little; WAL
with ``synchronous=NORMAL`` keeps committed rows across a crash of the process. Task folders
of earlier versions (``tasks/*.json`` and ``account.json``) are read once and imported.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ("StateDB",)

log = logging.getLogger("luma_nb.sandbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, created REAL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS account (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StateDB:
    """A small key-value view of ``sandbox.db`` (thread-safe; one connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._import_json_folder(path.parent)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def tasks(self) -> Iterator[dict[str, Any]]:
        """Every stored task, oldest first (unreadable rows are skipped with a warning)."""
        with self._lock:
            rows = self._conn.execute("SELECT task_id, data FROM tasks ORDER BY created").fetchall()
        for task_id, data in rows:
            try:
                value = json.loads(data)
            except ValueError as exc:
                log.warning("sandbox: skipping unreadable task %s: %s", task_id, exc)
                continue
            if isinstance(value, dict):
                yield value

    def account(self) -> dict[str, Any]:
        """The stored account values (empty for a new file)."""
        with self._lock:
            rows = self._conn.execute("SELECT name, value FROM account").fetchall()
        return {name: json.loads(value) for name, value in rows}

    def save(
        self, task: dict[str, Any] | None = None, account: dict[str, Any] | None = None
    ) -> None:
        """Write a task and/or account values in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                if task is not None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?)",
                        (task["task_id"], task.get("created_wall", 0.0), json.dumps(task)),
                    )
                for name, value in (account or {}).items():
                    self._conn.execute(
                        "INSERT OR REPLACE INTO account VALUES (?, ?)", (name, json.dumps(value))
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _import_json_folder(self, folder: Path) -> None:
        """Take over ``tasks/*.json`` and ``account.json`` written by earlier versions."""
        account_file = folder / "account.json"
        task_files = sorted((folder / "tasks").glob("*.json"))
        if not task_files and not account_file.is_file():
            return
        for path in task_files:
            try:
                self.save(task=json.loads(path.read_text("utf-8")))
                path.rename(path.with_suffix(".json.imported"))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("sandbox: skipping unreadable task file %s: %s", path, exc)
        if account_file.is_file():
            try:
                self.save(account=json.loads(account_file.read_text("utf-8")))
                account_file.rename(account_file.with_suffix(".json.imported"))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("sandbox: skipping unreadable %s: %s", account_file, exc)
