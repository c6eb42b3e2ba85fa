"""One HTTP exchange with a total deadline and a size cap (used by :class:`~luma_nb.LumaClient`).

``requests`` bounds each socket read, not the request: a server that sends one byte now and then
keeps a call alive for ever, and an answer without end is read into memory whole. Here every
exchange gets a :class:`Deadline`:

- the body is read in small pieces (``read1``), checking the deadline between them, and no more
  than ``cap`` bytes are kept (a larger declared ``Content-Length`` is refused before reading);
- on sessions made by the client, a connection pool hook hands each connection to the deadline,
  and one reaper thread shuts the socket when the deadline passes, which also ends a server that
  drips its *headers*. A session passed in by the user keeps its own adapters; its body is still
  bounded by the read loop, its headers by the per-read timeout.

Nothing here knows the API; the client turns :class:`DeadlinePassed` and :class:`TooLarge` into
its documented errors.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ("Deadline", "DeadlinePassed", "TooLarge", "guarded_session", "read_capped")

_CHUNK = 65536


class DeadlinePassed(Exception):
    """The exchange did not complete before its deadline."""


class TooLarge(Exception):
    """The answer is larger than the cap (``size`` is what was declared or read so far)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class Deadline:
    """The moment an exchange must be over; use as ``with Deadline(seconds) as d:``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.at = clock() + seconds
        self._clock = clock
        self.fired = False
        self._done = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - self._clock()

    def check(self) -> None:
        """Raise :class:`DeadlinePassed` once the deadline has passed."""
        if self.fired or self.remaining() <= 0:
            self.fired = True
            raise DeadlinePassed()

    def guard(self, connection: Any) -> None:
        """Shut ``connection``'s socket if the deadline passes while this exchange uses it."""
        with self._lock:
            if not self._done:
                self._connections.append(connection)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        _current.deadline = self
        _reaper.add(self, self.at + _grace(self.seconds))
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
            self._connections.clear()
        _current.deadline = None


def _grace(seconds: float) -> float:
    """How long after the deadline the reaper shuts the socket: a socket timeout that is due at
    the deadline itself gets to say so first (it names the cause better)."""
    return min(1.0, 0.05 + 0.1 * seconds)


class _Current(threading.local):
    deadline: Deadline | None = None


_current = _Current()


class _Reaper:
    """One daemon thread that fires deadlines in time order (started on first use)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline, at: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._count), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="luma-nb-deadlines")
                self._thread.daemon = True
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2]._done:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._cond.wait(60.0)
                    continue
                at, _, deadline = self._heap[0]
                wait = at - deadline._clock()
                if wait > 0:
                    self._cond.wait(min(wait, 60.0))
                    continue
                heapq.heappop(self._heap)
            deadline._fire()


_reaper = _Reaper()


def _guarded(pool_class: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    class Guarded(pool_class):  # type: ignore[valid-type, misc]
        def _get_conn(self, timeout: float | None = None) -> Any:
            connection = super()._get_conn(timeout)
            deadline = _current.deadline
            if deadline is not None:
                deadline.guard(connection)
            return connection

    Guarded.__name__ = f"Guarded{pool_class.__name__}"
    return Guarded


_POOLS = {"http": _guarded(HTTPConnectionPool), "https": _guarded(HTTPSConnectionPool)}


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose connections can be shut by the current thread's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)


def guarded_session() -> requests.Session:
    """A ``requests.Session`` whose exchanges honour :class:`Deadline` from the first byte."""
    session = requests.Session()
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _as_requests_error(error: Exception) -> requests.RequestException:
    """The ``requests`` exception that a plain ``response.content`` would have raised."""
    if isinstance(error, requests.RequestException):
        return error
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return requests.exceptions.ReadTimeout(str(error))
    if isinstance(error, urllib3.exceptions.DecodeError):
        return requests.exceptions.ContentDecodingError(str(error))
    if isinstance(error, (urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead)):
        return requests.exceptions.ChunkedEncodingError(str(error))
    return requests.exceptions.ConnectionError(str(error))


def read_capped(response: requests.Response, deadline: Deadline, cap: int) -> bytes:
    """The decoded body of a streamed ``response``: at most ``cap`` bytes, before ``deadline``.

    Raises :class:`TooLarge` (declared or read past the cap) or :class:`DeadlinePassed`; the
    response is closed in both cases, so its connection is not reused.
    """
    try:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > cap:
            raise TooLarge(int(declared))
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read
        parts: list[bytes] = []
        size = 0
        while True:
            deadline.check()
            try:
                chunk = read(_CHUNK, decode_content=True)
            except Exception as error:
                if deadline.fired or deadline.remaining() <= 0:
                    raise DeadlinePassed() from None
                raise _as_requests_error(error) from None
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise TooLarge(size)
            parts.append(chunk)
        deadline.check()
        return b"".join(parts)
    except BaseException:
        response.close()
        raise
