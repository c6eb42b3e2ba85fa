"""Fault injection: scheduled HTTP failures per endpoint and misbehaving tasks.

Everything is off by default. From Python::

    sandbox.faults.add(path="/fetch", kind="500", times=2)
    sandbox.faults.add(path="/luma-extend", kind="drop")
    sandbox.faults.next_task(fail="GPU quota exceeded")
    sandbox.faults.clear()

From the command line, ``--fault SPEC`` (repeatable), see :func:`parse_fault_spec`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

__all__ = (
    "FAULT_KINDS",
    "FAULT_SPEC_HELP",
    "RETRY_STATUSES",
    "Fault",
    "Faults",
    "TaskFault",
    "parse_fault_spec",
)

#: The retry statuses the provider's Statuses page lists (``task:retry`` faults).
RETRY_STATUSES: tuple[str, ...] = ("retry", "retrying")
#: Request fault kinds, see :class:`Fault`.
FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "429", "reset", "drop", "slow", "malformed")

FAULT_SPEC_HELP = """\
Fault SPEC syntax (repeat --fault for several):
  PATH:KIND[:TIMES[:ARG]]   an HTTP fault on PATH ("*" = any path, "/media/*" = a prefix).
      KIND: 500 ({}), 502 (HTML page), 503, 429 (Retry-After: ARG seconds, default 1),
            reset (connection closed before the request is processed),
            drop (request processed - a submit is created and charged - then no answer),
            slow (answer after ARG seconds, default 5), malformed (200 with broken JSON).
      TIMES: how many requests it hits (default 1; "*" = every request).
      e.g. /fetch:500:2   /luma-extend:drop   /fetch:429:3:2   *:slow:*:1.5
  task:fail[:TIMES]=MESSAGE     the next task(s) fail while processing with MESSAGE
  task:stall[:TIMES]            the next task(s) stay processing forever
  task:unknown[:TIMES]=STATUS   the next task(s) report STATUS for a while, then continue
  task:retry[:TIMES][=STATUS]   the next task(s) report "retry" (or STATUS: retry, retrying)
                                for a while, as the provider's Statuses page lists, then go on
  task:retrying[:TIMES]         the same as task:retry=retrying"""


@dataclass(frozen=True)
class Fault:
    """One scheduled HTTP fault: the next ``times`` matching requests misbehave as ``kind``."""

    path: str | None = None
    """Request path it applies to; None or ``"*"`` for any path, a trailing ``*`` for a prefix."""
    kind: str = "500"
    """One of :data:`FAULT_KINDS`."""
    times: int | None = 1
    """How many matching requests it hits; None for every one."""
    method: str | None = None
    """HTTP method it applies to (``"POST"``); None for any."""
    retry_after: float = 1.0
    """The ``Retry-After`` value (seconds) sent with 429 (and 503)."""
    seconds: float = 5.0
    """The delay of a ``slow`` answer."""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose one of {FAULT_KINDS}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to a request with ``method`` and ``path``."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is None or self.path == "*":
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


@dataclass(frozen=True)
class TaskFault:
    """How the next submitted task misbehaves."""

    fail: str | None = None
    """Fail while processing, with this message."""
    stall: bool = False
    """Stay processing at some percentage forever."""
    unknown_status: str | None = None
    """Report this undocumented status for a while before going on."""
    retry: str | None = None
    """Report this documented retry status (``retry`` or ``retrying``) for a while."""

    def __post_init__(self) -> None:
        if self.retry is not None and self.retry not in RETRY_STATUSES:
            raise ValueError(f"retry must be one of {RETRY_STATUSES}, got {self.retry!r}")


@dataclass
class _Scheduled:
    fault: Fault
    remaining: int | None


class Faults:
    """The thread-safe schedule of faults of one sandbox (``sandbox.faults``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[_Scheduled] = []
        self._tasks: deque[TaskFault] = deque()

    def add(
        self,
        path: str | None = None,
        kind: str = "500",
        times: int | None = 1,
        *,
        method: str | None = None,
        retry_after: float = 1.0,
        seconds: float = 5.0,
    ) -> Fault:
        """Schedule an HTTP fault for the next ``times`` requests to ``path`` (see :class:`Fault`).

        Raises ValueError for an unknown kind or a ``times`` below 1.
        """
        fault = Fault(
            path=path,
            kind=kind,
            times=times,
            method=method,
            retry_after=retry_after,
            seconds=seconds,
        )
        return self.add_fault(fault)

    def add_fault(self, fault: Fault) -> Fault:
        """Schedule an already built :class:`Fault`."""
        with self._lock:
            self._http.append(_Scheduled(fault, fault.times))
        return fault

    def next_task(
        self,
        *,
        fail: str | None = None,
        stall: bool = False,
        unknown_status: str | None = None,
        retry: str | None = None,
        times: int = 1,
    ) -> TaskFault:
        """Make the next ``times`` submitted tasks fail, stall, report an unknown status or
        a retry status (``retry="retry"`` or ``"retrying"``) for a while."""
        if fail is None and not stall and unknown_status is None and retry is None:
            raise ValueError("give fail=, stall=True, unknown_status= or retry=")
        fault = TaskFault(fail=fail, stall=stall, unknown_status=unknown_status, retry=retry)
        with self._lock:
            self._tasks.extend([fault] * max(1, times))
        return fault

    def clear(self) -> None:
        """Remove every scheduled fault."""
        with self._lock:
            self._http.clear()
            self._tasks.clear()

    @property
    def pending(self) -> list[Fault | TaskFault]:
        """The faults still scheduled (HTTP first, then task faults), for display."""
        with self._lock:
            return [entry.fault for entry in self._http] + list(self._tasks)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that hits this request, if any, counting it as used."""
        with self._lock:
            for entry in self._http:
                if not entry.fault.matches(method, path):
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._http.remove(entry)
                return entry.fault
        return None

    def take_task(self) -> TaskFault | None:
        """The fault of the task being submitted now, if any."""
        with self._lock:
            return self._tasks.popleft() if self._tasks else None

    def apply_spec(self, spec: str) -> None:
        """Schedule the fault a CLI ``--fault`` SPEC describes (raises ValueError if malformed)."""
        parsed = parse_fault_spec(spec)
        if isinstance(parsed, Fault):
            self.add_fault(parsed)
        else:
            fault, times = parsed
            with self._lock:
                self._tasks.extend([fault] * times)


def _times(text: str) -> int | None:
    if text in ("*", "inf", "always"):
        return None
    value = int(text)
    if value < 1:
        raise ValueError("TIMES must be at least 1")
    return value


def parse_fault_spec(spec: str) -> Fault | tuple[TaskFault, int]:
    """Parse a CLI fault SPEC (:data:`FAULT_SPEC_HELP`) into a Fault or (TaskFault, times).

    Raises ValueError with a readable message when the SPEC is malformed.
    """
    text = spec.strip()
    try:
        if text.startswith("task:"):
            head, eq, value = text.partition("=")
            parts = head.split(":")[1:]
            kind = parts[0] if parts else ""
            count = _times(parts[1]) if len(parts) > 1 else 1
            if count is None or len(parts) > 2:
                raise ValueError("task faults take a finite TIMES")
            if kind == "fail":
                return TaskFault(fail=value if eq and value else "Task failed"), count
            if kind == "stall" and not eq:
                return TaskFault(stall=True), count
            if kind == "unknown" and value:
                return TaskFault(unknown_status=value), count
            if kind == "retry":
                return TaskFault(retry=value if eq else "retry"), count
            if kind == "retrying" and not eq:
                return TaskFault(retry="retrying"), count
            raise ValueError(f"unknown task fault {kind!r}")
        parts = text.split(":")
        if len(parts) < 2 or len(parts) > 4 or not parts[0]:
            raise ValueError("expected PATH:KIND[:TIMES[:ARG]]")
        path, kind = parts[0], parts[1]
        times = _times(parts[2]) if len(parts) > 2 and parts[2] else 1
        arg = float(parts[3]) if len(parts) > 3 else None
        if kind == "429" or kind == "503":
            return Fault(path=path, kind=kind, times=times, retry_after=arg or 1.0)
        if kind == "slow":
            return Fault(path=path, kind=kind, times=times, seconds=5.0 if arg is None else arg)
        return Fault(path=path, kind=kind, times=times)
    except ValueError as exc:
        raise ValueError(f"bad fault spec {spec!r}: {exc}") from None
