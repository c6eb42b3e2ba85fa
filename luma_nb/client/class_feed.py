"""The class gallery from a classroom relay: one long-poll, the share choice, the live stream,
and :class:`GalleryFollow`, the one daemon thread that keeps a gallery's videos current.

Only a classroom relay has a gallery. Against the API itself or the offline sandbox every call
raises :class:`~luma_nb.contract.errors.ClassOnlyError` (before sending anything when the client
already knows the service, else from the answer).

The live stream (:class:`GalleryStream`) reads the relay's server-sent events: headers within
the client's deadline (:mod:`luma_nb.client.deadline`), then each read within ``read_timeout``
seconds (the relay sends a keep-alive comment every 15 s, so silence means the connection is
gone), and no event larger than :data:`MAX_EVENT_BYTES`. A dropped stream is reopened with a
doubling pause, from the last update it delivered (``Last-Event-ID``), so nothing is missed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import requests

from ..contract import validation as check
from ..contract.class_videos import (
    ClassVideo,
    GalleryUpdate,
    class_video_from_json,
    update_from_json,
)
from ..contract.errors import (
    APIError,
    ClassOnlyError,
    LumaError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)

if TYPE_CHECKING:
    from .client import LumaClient

__all__ = (
    "MAX_EVENT_BYTES",
    "MAX_WAIT",
    "GalleryFollow",
    "GalleryStream",
    "fetch_gallery",
    "require_class",
    "share",
)

#: Longest long-poll wait the relay grants (seconds).
MAX_WAIT = 30.0
#: Largest single event read from the stream (bytes); a larger one ends it with ServerError.
MAX_EVENT_BYTES = 256 * 1024
_CHUNK = 16384
_NOT_A_CLASS = (
    "The class gallery comes from a classroom relay, and this client talks to {what}. Join a "
    "class: set LUMA_NB_CLASS_URL and LUMA_NB_CLASS_TOKEN to what your teacher gave you."
)


def require_class(client: LumaClient) -> None:
    """Raise :class:`ClassOnlyError` when ``client`` is known not to talk to a relay."""
    if client.service in ("api", "sandbox"):
        what = "the offline sandbox" if client.service == "sandbox" else "the API itself"
        raise ClassOnlyError(_NOT_A_CLASS.format(what=what))


def not_a_class(client: LumaClient, error: APIError) -> LumaError:
    """What a refused gallery call means: not a relay (ClassOnlyError), or ``error`` itself."""
    if client.service != "relay" and error.status_code in (404, 405):
        what = "the offline sandbox" if client.service == "sandbox" else "a service without one"
        return ClassOnlyError(_NOT_A_CLASS.format(what=what))
    return error


def fetch_gallery(client: LumaClient, after: int = 0, *, wait: float = 0) -> GalleryUpdate:
    """The class gallery's changes after sequence number ``after`` (all of it for 0), waiting up
    to ``wait`` seconds (at most 30) for news when there is none yet."""
    require_class(client)
    after = _after(after)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:
        raise ValidationError(f"wait must be 0 to {MAX_WAIT:g} seconds", field="wait")
    path = f"/class/gallery?after={after}&wait={wait:g}"
    try:
        body = client._request("GET", path, timeout=client.timeout + wait)
    except APIError as error:
        raise not_a_class(client, error) from None
    update = update_from_json(body, after=after)
    if update is None:
        raise ServerError(200, ["the gallery answer was not a gallery"], endpoint="/class/gallery")
    return update


def share(client: LumaClient, task_id: str, shared: bool = True) -> None:
    """Show (or stop showing) one of your own tasks in the class gallery."""
    require_class(client)
    tid = check.task_id(task_id)
    if not isinstance(shared, bool):
        raise ValidationError("shared must be True or False", field="shared")
    try:
        client._request("POST", "/class/share", {"task_id": tid, "shared": shared})
    except APIError as error:
        raise not_a_class(client, error) from None


def _after(after: Any) -> int:
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationError("after must be a sequence number (0 or more)", field="after")
    return after


class GalleryStream:
    """The class gallery, live: iterate for :class:`~luma_nb.contract.class_videos.GalleryUpdate` s.

    Parameters:
        client: a client of the class relay.
        after: start after this sequence number (0: the whole gallery first).
        read_timeout: seconds of silence after which the connection counts as lost.
        retries: reconnections in a row that may fail before the stream gives up (raising the
            last :class:`TransportError` or :class:`ServerError`).
        backoff, max_backoff: the first pause before reconnecting, doubled after each failure.

    :meth:`close` (from any thread) ends the iteration promptly. ``seq`` is the sequence number
    of the last update delivered; ``reconnects`` how often the stream was reopened.
    """

    def __init__(
        self,
        client: LumaClient,
        after: int = 0,
        *,
        read_timeout: float = 45.0,
        retries: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 15.0,
    ) -> None:
        require_class(client)
        self._client = client
        self.seq = _after(after)
        self.read_timeout = check.seconds(read_timeout, "read_timeout", maximum=3600)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.reconnects = 0
        self.connected = False
        """True while a stream is open and has said something."""
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: requests.Response | None = None

    def close(self) -> None:
        """Stop: the iteration ends (at once if it is waiting for the relay)."""
        self._closed.set()
        with self._lock:
            response = self._response
        if response is not None:
            _shut(response)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    def __enter__(self) -> GalleryStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[GalleryUpdate]:
        failures = 0
        while not self._closed.is_set():
            try:
                response = self._open()
            except (TransportError, ServerError, RateLimitError) as error:
                failures += 1
                if failures > self.retries or self._closed.is_set():
                    if self._closed.is_set():
                        return
                    raise
                self._pause(failures, error)
                continue
            with self._lock:
                self._response = response
            if self._closed.is_set():
                _shut(response)
            try:
                for update in self._updates(response):
                    failures = 0
                    self.seq = update.seq
                    yield update
            except TransportError as error:
                if self._closed.is_set():
                    return
                failures += 1
                if failures > self.retries:
                    raise
                self._pause(failures, error)
            else:  # the relay ended the stream (it is stopping): look again shortly
                if self._closed.is_set():
                    return
                failures += 1
                if failures > self.retries:
                    raise TransportError(
                        "the class gallery's stream kept ending; is the relay running?",
                        endpoint="/class/gallery/events",
                    )
                self._pause(failures, None)
            finally:
                self.connected = False
                with self._lock:
                    self._response = None
                response.close()
            self.reconnects += 1

    # -- inside -----------------------------------------------------------------------------

    def _pause(self, failures: int, error: LumaError | None) -> None:
        delay = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, 60.0))
        self._closed.wait(delay)

    def _open(self) -> requests.Response:
        headers = {"Accept": "text/event-stream"}
        if self.seq:
            headers["Last-Event-ID"] = str(self.seq)
        try:
            return self._client._stream(
                "/class/gallery/events", headers=headers, read_timeout=self.read_timeout
            )
        except APIError as error:
            raise not_a_class(self._client, error) from None

    def _updates(self, response: requests.Response) -> Iterator[GalleryUpdate]:
        videos: list[Any] = []
        removed: list[str] = []
        reset = False
        for name, data in _events(response, self.read_timeout):
            self.connected = True
            if name == "close":
                return
            if name == "reset":
                reset = True
                videos.clear()
                removed.clear()
                continue
            try:
                body = json.loads(data) if data else None
            except ValueError:
                continue  # a malformed event is dropped, the stream goes on
            if name == "video":
                video = class_video_from_json(body)
                if video is not None:
                    videos.append(video)
            elif name == "removed" and isinstance(body, dict):
                task_id = body.get("task_id")
                if isinstance(task_id, str) and task_id:
                    removed.append(task_id)
            elif name == "sync":
                update = update_from_json(
                    {"seq": body.get("seq") if isinstance(body, dict) else None}, after=0
                )
                if update is None:
                    continue
                yield GalleryUpdate(
                    seq=update.seq,
                    videos=tuple(videos),
                    removed=tuple(removed),
                    reset=reset or update.seq < self.seq,
                    raw={"seq": update.seq},
                )
                videos, removed, reset = [], [], False


def _shut(response: requests.Response) -> None:
    """Shut the stream's socket, so a read blocked on it (in another thread) returns at once.

    The socket is the connection's, or, once the server said ``Connection: close``, only the
    reader's (``http.client`` lets go of it in the connection then)."""
    raw = response.raw
    candidates = [
        getattr(getattr(raw, "connection", None), "sock", None),
        getattr(
            getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None
        ),
    ]
    for sock in candidates:
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return


def _events(response: requests.Response, read_timeout: float) -> Iterator[tuple[str, str]]:
    """``(event name, data)`` of each server-sent event, comments and ids left out.

    Raises :class:`TransportError` when the connection drops or stays silent past
    ``read_timeout``, :class:`ServerError` for an event larger than :data:`MAX_EVENT_BYTES`.
    """
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read
    buffer = b""
    name, data = "message", list[str]()
    size = 0
    while True:
        try:
            chunk = read(_CHUNK)
        except Exception as error:  # a socket timeout, a reset, a shut socket
            raise TransportError(
                f"the class gallery's stream was lost ({type(error).__name__})",
                endpoint="/class/gallery/events",
            ) from None
        if not chunk:  # the end, without the relay's "close" event: the connection dropped
            raise TransportError(
                "the class gallery's stream was cut off", endpoint="/class/gallery/events"
            )
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("utf-8", errors="replace")
            if not text:
                if data or name != "message":
                    yield name, "\n".join(data)
                name, data, size = "message", [], 0
                continue
            size += len(line)
            if size > MAX_EVENT_BYTES:
                raise ServerError(
                    200,
                    [f"a gallery event was larger than {MAX_EVENT_BYTES // 1024} KiB"],
                    endpoint="/class/gallery/events",
                )
            if text.startswith(":"):
                continue
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value or "message"
            elif field == "data":
                data.append(value)
        if len(buffer) > MAX_EVENT_BYTES:
            raise ServerError(
                200,
                [f"a gallery event was larger than {MAX_EVENT_BYTES // 1024} KiB"],
                endpoint="/class/gallery/events",
            )


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
        stream_options: passed to :class:`GalleryStream` (timeouts,
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
