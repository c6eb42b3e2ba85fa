"""Following the class gallery: one daemon thread keeps the class's published videos current.

:class:`GalleryFollow` reads the relay's live stream (server-sent events) or, with
``transport="poll"``, long-polls it. Only that thread changes its state and calls its
listener, so a widget listening to it has a single writer (the kernel's thread stays free).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contract.errors import LumaError, RateLimitError, ServerError, TransportError
from ..contract.gallery import ClassVideo, GalleryUpdate

if TYPE_CHECKING:
    from ..api.client import LumaClient
    from ..api.gallery import GalleryStream

__all__ = ("GalleryFollow",)

#: Seconds each long-poll waits for news (the relay grants at most 30).
POLL_WAIT = 25.0


class GalleryFollow:
    """The class gallery, kept current by a daemon thread.

    Parameters:
        client: a client of the classroom relay.
        listener: called as ``listener(follow)`` (from the thread) after every change of
            ``videos`` or ``state``.
        transport: ``"events"`` (server-sent events, the default) or ``"poll"`` (long-poll).
        poll_wait: seconds each long-poll waits for news.
        stream_options: passed to :class:`~luma_nb.api.gallery.GalleryStream` (timeouts,
            retries, backoff).

    ``state`` is ``"new"``, ``"connecting"``, ``"live"``, ``"stopped"`` or ``"error"`` (then
    ``error`` says why); ``videos`` the shown videos by task id, oldest first.
    """

    def __init__(
        self,
        client: LumaClient,
        *,
        listener: Callable[[GalleryFollow], Any] | None = None,
        transport: str = "events",
        poll_wait: float = POLL_WAIT,
        stream_options: dict[str, Any] | None = None,
    ) -> None:
        if transport not in ("events", "poll"):
            raise ValueError(f"transport must be 'events' or 'poll', got {transport!r}")
        self.client = client
        self.transport = transport
        self.poll_wait = poll_wait
        self.videos: dict[str, ClassVideo] = {}
        self.state = "new"
        self.error: LumaError | None = None
        self.seq = 0
        self.updates = 0
        """Updates applied (each a batch of changes from the relay)."""
        self._listener = listener
        self._stream_options = dict(stream_options or {})
        self._stream: GalleryStream | None = None
        self._stopping = threading.Event()
        # Re-entrant: the listener runs holding it (and may read ``value``), so a waiter wakes
        # only once the listener has shown the change.
        self._cond = threading.Condition(threading.RLock())
        self._thread: threading.Thread | None = None

    @property
    def value(self) -> list[ClassVideo]:
        """The videos shown now, oldest first."""
        with self._cond:
            return list(self.videos.values())

    def start(self) -> GalleryFollow:
        """Start the thread (once); returns self."""
        if self._thread is None:
            self._set_state("connecting")
            self._thread = threading.Thread(
                target=self._run, name="luma-nb-class-gallery", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following (idempotent). With events, waits up to ``timeout`` s for the thread to
        end (it ends at once); with long-polls, a poll in flight is abandoned, not waited for."""
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A long-poll in flight cannot be cut short: it is abandoned (its answer dropped).
            thread.join(timeout if self.transport == "events" else min(timeout, 0.5))
        if self.state not in ("error", "stopped"):
            self._set_state("stopped")

    @property
    def running(self) -> bool:
        """True while the thread follows the gallery."""
        return self._thread is not None and self._thread.is_alive()

    def wait_until(self, predicate: Callable[[GalleryFollow], bool], timeout: float = 60.0) -> bool:
        """Block until ``predicate(self)`` holds (checked after every change, once the listener
        has seen it) or ``timeout`` s passed; True if it holds."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.transport == "events":
                self._follow_events()
            else:
                self._follow_polls()
        except LumaError as error:
            if not self._stopping.is_set():
                self.error = error
                self._set_state("error")
                return
        except Exception as error:  # shown in the widget, never lost in a thread
            self.error = LumaError(f"the class gallery stopped: {type(error).__name__}: {error}")
            self._set_state("error")
            return
        self._set_state("stopped")

    def _follow_events(self) -> None:
        self._stream = self.client.gallery_events(self.seq, **self._stream_options)
        if self._stopping.is_set():
            return
        for update in self._stream:
            if self._stopping.is_set():
                return
            self._apply(update)

    def _follow_polls(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                update = self.client.class_gallery(self.seq, wait=self.poll_wait)
            except (TransportError, ServerError, RateLimitError):
                failures += 1
                if failures > 6:
                    raise
                self._stopping.wait(min(15.0, 0.5 * 2 ** (failures - 1)))
                continue
            failures = 0
            if not self._stopping.is_set():
                self._apply(update)

    def _apply(self, update: GalleryUpdate) -> None:
        with self._cond:
            if update.reset:
                self.videos.clear()
            for task_id in update.removed:
                self.videos.pop(task_id, None)
            for video in update.videos:
                self.videos[video.task_id] = video
            self.seq = update.seq
            self.updates += 1
            self.state = "live"
            self._tell()
            self._cond.notify_all()

    def _set_state(self, state: str) -> None:
        with self._cond:
            if self.state == state:
                return
            self.state = state
            self._tell()
            self._cond.notify_all()

    def _tell(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # a listener's failure must not end it
                self._listener(self)

    def __repr__(self) -> str:
        return f"<GalleryFollow {self.state} {len(self.videos)} videos>"
