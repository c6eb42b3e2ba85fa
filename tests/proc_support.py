"""The process table (Linux ``/proc``): a process's descendants, and whether one still lives.

A process is named by its pid *and* its start time (``/proc/<pid>/stat``, field 22), so a pid
reused by an unrelated process later never counts as the one recorded. A zombie (exited, not yet
reaped: an orphan's new parent may take its time) counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = (
    "Proc",
    "Recorder",
    "alive",
    "descendants",
    "kill_all",
    "parent",
    "proc",
    "still_alive",
    "wait_gone",
)

_PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One process: its pid, its start time (clock ticks after boot), and what it ran."""

    pid: int
    start: int
    command: str = field(default="", compare=False)  # may change (exec) while it runs

    def __str__(self) -> str:
        return f"{self.pid} ({self.command[:120]})"


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of ``pid``, or None when there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0], int(fields[19])


def _command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def parent(pid: int) -> int | None:
    """The parent pid of ``pid``, or None when there is no such process."""
    found = _stat(pid)
    return None if found is None else found[0]


def proc(pid: int) -> Proc | None:
    """The live process ``pid``, or None."""
    found = _stat(pid)
    if found is None or found[1] in "ZX":
        return None
    return Proc(pid, found[2], _command(pid))


def descendants(pid: int) -> set[Proc]:
    """Every live process below ``pid`` (children, their children...), at this moment."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        found = _stat(int(entry.name))
        if found is None or found[1] in "ZX":
            continue
        parents.setdefault(found[0], []).append(int(entry.name))
        starts[int(entry.name)] = found[2]
    below: set[Proc] = set()
    todo = list(parents.get(pid, ()))
    while todo:
        child = todo.pop()
        below.add(Proc(child, starts[child], _command(child)))
        todo.extend(parents.get(child, ()))
    return below


def alive(process: Proc) -> bool:
    """True while the recorded process runs (not a zombie, not a newer process on its pid)."""
    found = _stat(process.pid)
    return found is not None and found[1] not in "ZX" and found[2] == process.start


def still_alive(processes: Iterable[Proc]) -> set[Proc]:
    """The recorded processes that still run."""
    return {p for p in processes if alive(p)}


def wait_gone(processes: Iterable[Proc], timeout: float) -> set[Proc]:
    """Wait up to ``timeout`` seconds for the processes to end; returns those still running."""
    left = still_alive(processes)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = still_alive(left)
    return left


def kill_all(processes: Iterable[Proc], sig: int = 9) -> None:
    """Send ``sig`` to each recorded process that still runs (cleanup after a failed check)."""
    for process in still_alive(processes):
        with contextlib.suppress(OSError):
            os.kill(process.pid, sig)


class Recorder:
    """Every process seen below ``pid`` while it runs: the table is read every ``every`` seconds
    from a daemon thread (and at :meth:`snapshot` / :meth:`stop`), and what was seen is kept,
    so a process reparented later (to init, when its parent dies) is still known."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.seen: set[Proc] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.snapshot()

    def snapshot(self) -> set[Proc]:
        """Read the table now; returns everything seen so far."""
        found = descendants(self.pid)
        with self._lock:
            self.seen |= found
            return set(self.seen)

    def stop(self) -> set[Proc]:
        """A last reading, then no more; returns everything seen."""
        self._stop.set()
        self._thread.join()
        return self.snapshot()
