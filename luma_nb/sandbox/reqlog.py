"""The log of every request a sandbox received (``sandbox.requests``), for tests and teaching."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ("RequestLog", "RequestRecord")


@dataclass
class RequestRecord:
    """One request the sandbox received."""

    method: str
    """HTTP method."""
    path: str
    """Path without the query string."""
    body: Any
    """The decoded JSON body, or None (no body, or not JSON)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Request headers; the Authorization value is replaced by ``"<redacted>"``."""
    time: float = 0.0
    """``time.monotonic()`` when it arrived."""
    status: int | None = None
    """The status answered (None when the connection was cut without an answer)."""
    client: tuple[str, int] | None = None
    """The client's (address, port): equal ports mean a reused keep-alive connection."""


class RequestLog:
    """A thread-safe, bounded list of :class:`RequestRecord`."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: deque[RequestRecord] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        client: tuple[str, int] | None = None,
    ) -> RequestRecord:
        """Record a request as it arrives; the caller fills in ``status`` once answered."""
        entry = RequestRecord(method, path, body, headers, time.monotonic(), client=client)
        with self._lock:
            self._entries.append(entry)
        return entry

    def snapshot(self) -> list[RequestRecord]:
        """The records so far, oldest first."""
        with self._lock:
            return list(self._entries)

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests reached ``path`` (with ``method``, if given)."""
        with self._lock:
            return sum(
                1
                for r in self._entries
                if r.path == path and (method is None or r.method == method.upper())
            )

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._entries.clear()
