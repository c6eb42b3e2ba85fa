"""Webhooks: check the ``x-webhook-secret`` header, and a small local receiver for task updates.

With ``webhook_url`` and ``webhook_secret`` on a submit, the service posts the task's updates
and final result (the same object ``/fetch`` returns) to that URL, with the secret in the
``x-webhook-secret`` header. When the service can reach your machine, :class:`Receiver` takes
those posts and updates the matching jobs. Wait for a tracked job on the background watcher
(watch it first, then track it): each update pushed to it counts as a look, so the watcher
leaves the job alone for a while instead of polling::

    with Receiver(secret) as receiver:
        job = client.extend(parent, "the camera pulls back",
                            webhook_url=receiver.url, webhook_secret=secret)
        watch = job.watch()
        receiver.track(job)
        task = watch.wait()   # in a notebook: task = await watch

The body is untrusted input: it is size-capped, must be a JSON object, and is parsed with the
same tolerant :meth:`Task.from_json` as a fetch result. A terminal update is never replaced by a
late, out-of-order progress update.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ..contract.errors import ValidationError
from ..contract.models import Task

if TYPE_CHECKING:
    from .job import Job

__all__ = ("DEFAULT_MAX_BODY", "HEADER", "Receiver", "verify")

#: The header the service puts the webhook secret in.
HEADER = "x-webhook-secret"
#: Largest webhook body accepted (a task object is a few hundred bytes).
DEFAULT_MAX_BODY = 1024 * 1024
#: Seconds a connection may stay silent while a body is read (slow clients are cut off).
_READ_TIMEOUT = 10.0

log = logging.getLogger("luma_nb.webhooks")

#: What :func:`verify` accepts: a mapping, an ``http.client.HTTPMessage``, or (name, value) pairs.
Headers = Mapping[str, str] | Message | Iterable[tuple[str, str]]
Callback = Callable[[Task], Any]


def _header_values(headers: Any, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive) in a mapping, message or pair list."""
    items = headers.items() if hasattr(headers, "items") else headers
    wanted = name.lower()
    values = []
    for item in items:
        try:
            key, value = item
        except (TypeError, ValueError):
            continue
        if isinstance(key, str) and key.strip().lower() == wanted:
            values.append(value)
    return values


def verify(headers: Headers, secret: str) -> bool:
    """True when ``headers`` carry exactly one ``x-webhook-secret`` equal to ``secret``.

    The header name is matched case-insensitively; the value is compared in constant time
    (:func:`hmac.compare_digest`). An empty ``secret``, a missing header or a repeated header
    never verify.
    """
    if not isinstance(secret, str) or not secret:
        return False
    try:
        values = _header_values(headers, HEADER)
    except Exception:
        return False
    if len(values) != 1 or not isinstance(values[0], str):
        return False
    given = values[0].strip().encode("utf-8", "surrogatepass")
    expected = secret.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, expected)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _READ_TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook receiver: " + format, *args)

    def _answer(self, status: int, body: Mapping[str, Any], *, close: bool = False) -> None:
        data = json.dumps(body).encode("utf-8")
        if close:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        if status == 405:
            self.send_header("Allow", "POST")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        if self.path.split("?", 1)[0] != receiver.path:
            self._answer(404, {"error": "not found"}, close=True)
            return
        # The secret is checked before a byte of the body is read.
        if not verify(self.headers, receiver._secret):
            receiver._count("unauthorized")
            self._answer(401, {"error": "missing or wrong x-webhook-secret"}, close=True)
            return
        if self.headers.get("Transfer-Encoding"):
            self._answer(411, {"error": "send a Content-Length"}, close=True)
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._answer(411, {"error": "send a Content-Length"}, close=True)
            return
        if length < 0:
            self._answer(400, {"error": "bad Content-Length"}, close=True)
            return
        if length > receiver.max_body:
            receiver._count("too_large")
            self._answer(413, {"error": f"body over {receiver.max_body} bytes"}, close=True)
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            receiver._count("rejected")
            self._answer(400, {"error": "the body is not JSON"})
            return
        if not isinstance(body, dict):
            receiver._count("rejected")
            self._answer(400, {"error": "the body is not a JSON object"})
            return
        try:
            task = Task.from_json(body)
        except Exception:
            receiver._count("rejected")
            self._answer(400, {"error": "the body is not a task"})
            return
        receiver._deliver(task)
        self._answer(200, {"ok": True})

    def _refuse(self) -> None:
        self._answer(405, {"error": "only POST"}, close=True)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse


class Receiver:
    """A threaded local HTTP server that takes the service's webhook posts.

    Parameters:
        secret: the ``webhook_secret`` given on the submits; posts without it get 401.
        host, port: where to listen (loopback and a free port by default). Listening on other
            interfaces exposes the receiver to your network; the secret is then all that guards it.
        max_body: largest body accepted, in bytes (larger ones get 413).
        path: the URL path posts must go to.

    Answers: 401 for a missing or wrong secret, 413 for an oversized body, 400 for a body that
    is not a JSON object, 405 for other methods, 200 otherwise. Raises :class:`ValidationError`
    for an empty secret or a bad ``max_body``.
    """

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int = DEFAULT_MAX_BODY,
        path: str = "/luma-webhook",
    ) -> None:
        if not isinstance(secret, str) or not secret.strip():
            raise ValidationError("the receiver needs a non-empty secret.", field="secret")
        if secret != secret.strip():
            # Header values arrive with surrounding whitespace stripped: such a secret could
            # never match, and every post would be refused.
            raise ValidationError(
                "the receiver's secret must not start or end with spaces (HTTP strips them "
                "from the header, so no post could match it).",
                field="secret",
            )
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ValidationError("max_body must be a positive number of bytes.", field="max_body")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValidationError("path must start with '/'.", field="path")
        self._secret = secret
        self.host = host
        self.port = port
        self.max_body = max_body
        self.path = path
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        # Deliveries run one at a time, recorded and applied together: two posts handled by two
        # server threads must not reach jobs and the journal in another order than recorded.
        self._deliver_lock = threading.Lock()
        self._jobs: dict[str, list[Job]] = {}
        self._callbacks: list[Callback] = []
        self._last: dict[str, Task] = {}
        #: Counts of posts by outcome: ``accepted``, ``unauthorized``, ``too_large``, ``rejected``.
        self.counts: dict[str, int] = {}

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<Receiver {where}>"

    # -- life -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL to pass as ``webhook_url`` (raises before :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the receiver is not started; call start() or use it in a with")
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    def start(self) -> Receiver:
        """Bind and serve from a daemon thread; returns self (raises OSError if binding fails)."""
        if self._server is not None:
            return self
        server_class = _Server6 if ":" in self.host else _Server
        server = server_class((self.host, self.port), _Handler)
        server.receiver = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"luma-nb-webhooks-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(10)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- routing ----------------------------------------------------------------------------

    def track(self, job: Job) -> Job:
        """Feed updates for ``job.task_id`` to ``job`` (its snapshot, the journal); returns it."""
        with self._deliver_lock:
            with self._cond:
                jobs = self._jobs.setdefault(job.task_id, [])
                if job not in jobs:
                    jobs.append(job)
                last = self._last.get(job.task_id)
            if last is not None:  # an update that came before track() was called
                self._apply(job, last)
        return job

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(task)`` for every accepted update; returns a function to unsubscribe.

        Callbacks run on the receiver's thread; one that raises is logged and skipped.
        """
        with self._cond:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def last(self, task_id: str) -> Task | None:
        """The latest update received for ``task_id``, if any."""
        with self._cond:
            return self._last.get(task_id)

    def _count(self, outcome: str) -> None:
        with self._cond:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def _deliver(self, task: Task) -> None:
        """Record an accepted update and hand it to the tracked jobs and the subscribers.

        :meth:`last` has it only after the jobs (and their journal) have it.
        """
        with self._deliver_lock:
            with self._cond:
                self.counts["accepted"] = self.counts.get("accepted", 0) + 1
                if not task.task_id:
                    return
                previous = self._last.get(task.task_id)
                if previous is not None and previous.is_terminal and not task.is_terminal:
                    return  # a late progress post must not undo the end
                jobs = list(self._jobs.get(task.task_id, ()))
                callbacks = list(self._callbacks)
            for job in jobs:
                self._apply(job, task)
            for callback in callbacks:
                try:
                    callback(task)
                except Exception:
                    log.exception("a webhook callback failed for task %s", task.task_id)
            with self._cond:
                self._last[task.task_id] = task
                self._cond.notify_all()

    def _apply(self, job: Job, task: Task) -> None:
        """Journal an update, then give it to the job: through its watch when it has one."""
        try:
            # The journal first: whoever the update wakes may read the journal at once.
            job.client._record(task)
            if not _push_to_watcher(job, task):
                job.observe(task)
        except Exception:
            log.exception("updating job %s from a webhook failed", job.task_id)


def _push_to_watcher(job: Job, task: Task) -> bool:
    """Hand the update to the watcher when it watches ``job`` (False otherwise).

    The watcher is the single writer of progress views; going through it keeps that true.
    """
    from .watcher import get_watcher

    return get_watcher().push(job, task)
