"""The log of every request a sandbox received (``sandbox.requests``), for tests and teaching.

It is bounded in bytes, not entries: the oldest records go once the estimated size of what is
kept passes the limit (16 MiB by default), however large the single requests are.
"""

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
    """Request headers; the Authorization value is replaced by ``"<redacted>"``.

    A ``webhook_secret`` in the body is replaced by ``"<redacted>"`` as well."""
    time: float = 0.0
    """``time.monotonic()`` when it arrived."""
    status: int | None = None
    """The status answered (None when the connection was cut without an answer)."""
    client: tuple[str, int] | None = None
    """The client's (address, port): equal ports mean a reused keep-alive connection."""


_OVERHEAD = 400  # bytes a record costs beyond its body and headers (object, dict, floats)


class RequestLog:
    """A thread-safe list of :class:`RequestRecord`, bounded in (estimated) bytes."""

    def __init__(self, limit_bytes: int = 16 * 1024 * 1024) -> None:
        self.limit_bytes = limit_bytes
        self._entries: deque[tuple[RequestRecord, int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        client: tuple[str, int] | None = None,
        *,
        size: int = 0,
    ) -> RequestRecord:
        """Record a request as it arrives; the caller fills in ``status`` once answered.

        ``size`` is the length of the raw body; the decoded one costs about as much.
        """
        entry = RequestRecord(method, path, body, headers, time.monotonic(), client=client)
        cost = _OVERHEAD + 2 * size + len(path) + sum(len(k) + len(v) for k, v in headers.items())
        with self._lock:
            self._entries.append((entry, cost))
            self._bytes += cost
            while self._bytes > self.limit_bytes and len(self._entries) > 1:
                self._bytes -= self._entries.popleft()[1]
        return entry

    @property
    def size_bytes(self) -> int:
        """The estimated bytes the kept records take."""
        with self._lock:
            return self._bytes

    def snapshot(self) -> list[RequestRecord]:
        """The records so far, oldest first."""
        with self._lock:
            return [entry for entry, _ in self._entries]

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests reached ``path`` (with ``method``, if given)."""
        with self._lock:
            return sum(
                1
                for r, _ in self._entries
                if r.path == path and (method is None or r.method == method.upper())
            )

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
