"""The class gallery, live: what students may see of it, and waking those who wait for news.

The store numbers every change of the gallery (a task finishing, a student's choice, the
teacher's) with one class-wide sequence. :class:`LiveGallery` tells waiting answers (long-polls
and event streams) when that sequence moved. It learns it two ways: a cheap periodic look at
the store's latest number while anyone waits (changes made by the poller thread, or by another
relay process sharing the database), and :meth:`LiveGallery.poke` from code of this process that
just changed something (a student's share choice, the teacher's dashboard). The upstream is
never asked: the poller already keeps the store's tasks up to date.

What goes to students is only what they may see: for a visible video its task id, student
name, prompt and URL; for anything else that changed, its task id as a removal. Never a token,
a ledger line or a request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..contract.posters import poster_url
from .store import GalleryItem, RelayStore

__all__ = ("HEARTBEAT", "LiveGallery", "poll_body", "stream_batch")

#: Seconds between two keep-alive comments on an idle event stream.
HEARTBEAT = 15.0
#: Seconds between two looks at the store's sequence number while someone waits.
CHECK_EVERY = 0.5
#: Larger than any sequence number: ``gallery(_FAR)`` costs one row read (the latest number).
_FAR = 2**53


class LiveGallery:
    """Wakes the relay's waiting gallery answers when the class gallery changed.

    Lives on the relay's event loop; only :meth:`poke` may be called from other threads.
    """

    def __init__(
        self,
        store: RelayStore,
        blocking: Callable[..., Awaitable[Any]],
        *,
        check_every: float = CHECK_EVERY,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self._store = store
        self._blocking = blocking
        self.check_every = check_every
        self.heartbeat = heartbeat
        """Seconds of silence after which an event stream sends a keep-alive comment."""
        self.latest = 0
        """The latest sequence number seen."""
        self.closed = False
        """True once the relay is stopping: waiters return at once and streams end."""
        self.streams = 0
        """Event streams open now."""
        self.checks = 0
        """Looks at the store made by the periodic check (for tests and benchmarks)."""
        self._changed: asyncio.Future[None] | None = None
        self._checker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0
        self._looks: set[asyncio.Task[None]] = set()

    async def wait(self, after: int, timeout: float) -> bool:
        """Return when the sequence passed ``after`` (True), or after ``timeout`` seconds or when
        the gallery closes (False)."""
        if self.closed:
            return False
        self._loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            await self.check()
            deadline = time.monotonic() + timeout
            while self.latest <= after and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._start_checker()
                changed = self._future()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(changed), left)
            return self.latest > after
        finally:
            self._waiting -= 1

    async def check(self) -> None:
        """Look at the store's sequence number now (off the event loop); wake the waiters if it
        moved."""
        latest, _ = await self._blocking(self._store.gallery, _FAR)
        if latest != self.latest:
            self.latest = latest
            self._wake()

    def poke(self) -> None:
        """Something of this process changed the gallery: look now (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._look()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._look)

    async def drain(self, timeout: float = 2.0) -> None:
        """Close: wake every waiter, then give the open streams ``timeout`` s to end."""
        self.closed = True
        self._wake()
        until = time.monotonic() + timeout
        while self.streams > 0 and time.monotonic() < until:
            await asyncio.sleep(0.02)
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checker

    # -- inside -----------------------------------------------------------------------------

    def _look(self) -> None:
        """Start a look at the store (on the loop; a reference is kept until it ends)."""
        assert self._loop is not None
        task = self._loop.create_task(self._quiet_check())
        self._looks.add(task)
        task.add_done_callback(self._looks.discard)

    async def _quiet_check(self) -> None:
        with contextlib.suppress(Exception):  # a busy database: the next look may do
            await self.check()

    def _future(self) -> asyncio.Future[None]:
        if self._changed is None or self._changed.done():
            assert self._loop is not None
            self._changed = self._loop.create_future()
        return self._changed

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    def _start_checker(self) -> None:
        if self._checker is None or self._checker.done():
            assert self._loop is not None
            self._checker = self._loop.create_task(self._check_loop())

    async def _check_loop(self) -> None:
        while self._waiting > 0 and not self.closed:
            await asyncio.sleep(self.check_every)
            self.checks += 1
            await self._quiet_check()


def _video(item: GalleryItem, service: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "task_id": item.task_id,
        "student": item.student,
        "prompt": item.prompt,
        "video_url": item.video_url,
        "seq": item.seq,
    }
    poster = poster_url(video_url=item.video_url, service=service)
    if poster is not None:
        entry["poster_url"] = poster
    return entry


def _split(
    items: Iterable[GalleryItem], *, initial: bool, service: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    videos: list[dict[str, Any]] = []
    removed: list[str] = []
    for item in items:
        if item.visible and item.video_url:
            videos.append(_video(item, service))
        elif not initial:  # a first look has nothing to take away
            removed.append(item.task_id)
    return videos, removed


def poll_body(
    latest: int,
    items: Iterable[GalleryItem],
    *,
    initial: bool,
    reset: bool = False,
    service: str | None = None,
) -> dict[str, Any]:
    """The long-poll answer: ``{"seq", "videos", "removed"}`` (and ``"reset": true``).

    ``service`` is the upstream's: a video the sandbox made carries its ``poster_url``."""
    videos, removed = _split(items, initial=initial, service=service)
    body: dict[str, Any] = {"seq": latest, "videos": videos, "removed": removed}
    if reset:
        body["reset"] = True
    return body


def stream_batch(
    latest: int, items: Iterable[GalleryItem], *, initial: bool, service: str | None = None
) -> str:
    """Server-sent events for some changes, in their order: one ``video`` or ``removed`` event
    each (its id the change's number), then a ``sync`` event whose id is ``latest``. A client
    that reconnects sends the last id it read as Last-Event-ID and misses nothing."""
    parts = []
    for item in items:
        if item.visible and item.video_url:
            parts.append(_event("video", _video(item, service), item.seq))
        elif not initial:  # a first look has nothing to take away
            parts.append(_event("removed", {"task_id": item.task_id, "seq": item.seq}, item.seq))
    parts.append(_event("sync", {"seq": latest}, latest))
    return "".join(parts)


def _event(name: str, data: dict[str, Any], event_id: int | None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"
