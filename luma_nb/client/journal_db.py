"""The SQLite side of the task journal: schema, connections and short write transactions.

Every operation opens its own connection and closes it again. That costs a fraction of a
millisecond and buys a lot: no connection is shared between threads (the watcher polls from its
own thread), none survives a fork, no file handle leaks, and two kernels (two processes) can use
the same file at once. WAL mode lets readers and one writer work side by side; writes take the
write lock up front (``BEGIN IMMEDIATE``) so two writers queue on the busy timeout instead of
failing with a deadlock.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..contract.environment import environment

__all__ = ("COLUMNS", "JournalDB", "data_home", "storable")

#: Bumped when the schema changes; stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 2
#: Seconds a write waits for another process holding the write lock.
BUSY_TIMEOUT = 15.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     REAL NOT NULL,      -- Unix time the intent was written (before sending)
    updated     REAL NOT NULL,      -- Unix time of the last change
    service     TEXT NOT NULL,      -- the base URL, or "sandbox" for a loopback sandbox
    kind        TEXT NOT NULL,      -- "extend" or "imagine"
    endpoint    TEXT NOT NULL,      -- "/luma-extend" or "/luma-imagine"
    prompt      TEXT,
    parent      TEXT,               -- parent_task_id of an extend
    request     TEXT NOT NULL,      -- the JSON body sent, without webhook_secret
    state       TEXT NOT NULL,      -- sending submitted uncertain rejected resubmitted dismissed
    reason      TEXT,               -- why a submit is uncertain or was rejected
    task_id     TEXT,
    status      TEXT,               -- the last task status seen, as it came
    percentage  REAL,
    video_url   TEXT,
    error       TEXT,               -- the reason of a failed task
    local_file  TEXT,               -- where the video was saved
    pid         INTEGER,            -- the process that submitted
    follow_up   TEXT,               -- task id of the resubmit that replaced this entry
    host        TEXT                -- the machine of that process (pids are per machine)
);
CREATE INDEX IF NOT EXISTS entries_task ON entries (task_id);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, service);
"""

#: Column names of ``entries`` in table order (what :meth:`JournalDB.select` returns).
COLUMNS: tuple[str, ...] = (
    "id",
    "created",
    "updated",
    "service",
    "kind",
    "endpoint",
    "prompt",
    "parent",
    "request",
    "state",
    "reason",
    "task_id",
    "status",
    "percentage",
    "video_url",
    "error",
    "local_file",
    "pid",
    "follow_up",
    "host",
)
#: Columns added after the first schema: (name, SQL type), added to older files on open.
_ADDED = (("host", "TEXT"),)


def data_home() -> Path:
    """Where luma_nb keeps its files: ``$LUMA_NB_HOME``, else the platform's user data folder.

    Linux and others: ``$XDG_DATA_HOME/luma_nb`` (default ``~/.local/share/luma_nb``); macOS:
    ``~/Library/Application Support/luma_nb``; Windows: ``%LOCALAPPDATA%\\luma_nb``.
    """
    env = environment()
    if env.home:
        return Path(env.home).expanduser()
    if sys.platform == "win32":
        base = env.local_app_data
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "luma_nb"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "luma_nb"
    xdg = env.xdg_data_home
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return root / "luma_nb"


def storable(value: Any) -> Any:
    """``value`` as SQLite can store it: text with lone surrogates gets U+FFFD in their place.

    Text from a JSON body may hold lone surrogates (``"\\ud800"`` decodes to one), which
    cannot be encoded as UTF-8; one such character must not cost the whole record.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


class JournalDB:
    """One journal file. Thread-safe; safe for several processes using the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT,
            isolation_level=None,  # explicit BEGIN/COMMIT below: transactions stay short
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")  # a paid task id survives a power cut too
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self) -> None:
        """Create the folder, the file (private to the user) and the schema, once per process."""
        with self._lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Prompts are private: the file, and the WAL/SHM files SQLite derives from it,
                # are readable by the user only.
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
            deadline = time.monotonic() + BUSY_TIMEOUT
            while True:
                try:
                    self._create_schema()
                    break
                except sqlite3.OperationalError as error:
                    # Switching to WAL needs a moment alone with the file; when another process
                    # is creating it too, SQLite answers "locked" at once instead of waiting.
                    text = str(error).lower()
                    if ("locked" not in text and "busy" not in text) or (
                        time.monotonic() > deadline
                    ):
                        raise
                    time.sleep(0.02)
            self._ready = True

    def _create_schema(self) -> None:
        conn = self._open()
        try:
            # A file system without shared memory (some network mounts) refuses WAL and stays
            # in the default rollback mode: slower with two writers, still correct.
            if conn.execute("PRAGMA journal_mode").fetchone() != ("wal",):
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                have = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
                for name, kind in _ADDED:
                    if name not in have:  # a journal written by an earlier version
                        conn.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection to the prepared file, closed afterwards."""
        self._prepare()
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction that holds the write lock from its start."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def insert(self, values: dict[str, Any]) -> int:
        """Insert one entry; returns its id."""
        names = [name for name in values if name in COLUMNS and name != "id"]
        sql = (
            f"INSERT INTO entries ({', '.join(names)}) "  # noqa: S608 - names come from COLUMNS
            f"VALUES ({', '.join('?' for _ in names)})"
        )
        with self.write() as conn:
            cursor = conn.execute(sql, [storable(values[name]) for name in names])
            row_id = cursor.lastrowid
        if row_id is None:
            raise sqlite3.DatabaseError("the journal did not return the new entry's id")
        return int(row_id)

    def update(
        self, entry_id: int, values: dict[str, Any], *, only_state: str | None = None
    ) -> bool:
        """Change fields of one entry (optionally only while it is in ``only_state``).

        Returns True when a row changed: the compare-and-set that stops two kernels from
        resubmitting the same uncertain entry twice.
        """
        names = [name for name in values if name in COLUMNS and name != "id"]
        sql = f"UPDATE entries SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"  # noqa: S608
        params: list[Any] = [storable(values[name]) for name in names] + [entry_id]
        if only_state is not None:
            sql += " AND state = ?"
            params.append(only_state)
        with self.write() as conn:
            return conn.execute(sql, params).rowcount > 0

    def update_task(self, task_id: str, values: dict[str, Any], *, open_only: bool = False) -> bool:
        """Change fields of the newest entry of ``task_id``; False when no entry has it.

        ``open_only``: leave the entry alone once it recorded a finished or failed task.
        """
        names = [name for name in values if name in COLUMNS and name != "id"]
        sql = (
            f"UPDATE entries SET {', '.join(f'{n} = ?' for n in names)} "  # noqa: S608
            "WHERE id = (SELECT MAX(id) FROM entries WHERE task_id = ?)"
        )
        if open_only:
            sql += " AND (status IS NULL OR status NOT IN ('finished', 'failed'))"
        with self.write() as conn:
            params = [storable(values[name]) for name in names] + [storable(task_id)]
            cursor = conn.execute(sql, params)
            return cursor.rowcount > 0

    def select(
        self, where: str = "1", params: Sequence[Any] = (), *, tail: str = ""
    ) -> list[dict[str, Any]]:
        """Entries matching a SQL condition (written here, never from user text), as dicts."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM entries WHERE {where} {tail}"  # noqa: S608
        with self.connect() as conn:
            rows = conn.execute(sql, list(params)).fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
