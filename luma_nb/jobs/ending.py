"""A one-time end that threads can block on and coroutines can await (watches, storyboards)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class Ending:
    """Set once from any thread; ``wait`` blocks (Ctrl-C still works), ``wait_async`` awaits."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        """True once ended."""
        return self._event.is_set()

    def set(self) -> None:
        """End now: wake blocking waiters and every awaiting coroutine on its own loop."""
        self._event.set()
        with self._lock:
            futures, self._futures = self._futures, []
        for loop, future in futures:
            # A closed loop raises RuntimeError: nobody awaits there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ended (True) or ``timeout`` seconds passed (False).

        Waits in short slices so a KeyboardInterrupt reaches the caller promptly.
        """
        limit = None if timeout is None else time.monotonic() + timeout
        while not self._event.wait(0.1):
            if limit is not None and time.monotonic() >= limit:
                return False
        return True

    async def wait_async(self) -> None:
        """Await the end without polling: :meth:`set` wakes this coroutine on its loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            pending = not self._event.is_set()
            if pending:
                self._futures.append((loop, future))
        if pending:
            await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
