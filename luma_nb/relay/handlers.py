"""The relay's HTTP face (Tornado): the provider's API, answered for one student at a time.

Every answer carries ``X-Luma-NB-Service: relay`` and ``X-Luma-NB-Class`` (the class name,
percent-encoded); fetch answers also carry ``X-Luma-NB-Polled-At`` (when the relay last looked
upstream, Unix seconds), so a client knows polling faster than that gains nothing. Errors use
the documented shape ``{"errors": [{"msg": ...}]}``.

Handlers never wait for the database on the event loop: every store call (and every teacher
control that reads the store) goes through :meth:`RelayContext.blocking`, which runs it on the
relay's store threads, so one slow query never holds up every other student's answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import quote

import tornado.iostream
import tornado.web

from ..contract.errors import ValidationError
from .checks import RateLimiter, fetch_ids, submit_body
from .hub import HubUnavailable
from .live_gallery import LiveGallery, poll_body, stream_batch
from .store import RelayStore, Student
from .tokens import TOKEN_PREFIX, hash_token

if TYPE_CHECKING:
    from .teacher import Teacher

__all__ = ("MAX_BODY", "Forwarded", "RelayContext", "make_app")

log = logging.getLogger("luma_nb.relay")

#: What a task id the student may not see gets (404), whether it exists or not.
TASK_NOT_FOUND = "Task not found"
#: Largest request body accepted (bigger ones get 413 in the documented shape).
MAX_BODY = 64 * 1024

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Forwarded:
    """What came back from forwarding a submit: a task id, or a status and message for the
    student (``uncertain`` when the upstream answer was lost)."""

    task_id: str | None = None
    status: int = 200
    message: str = ""
    uncertain: bool = False
    retry_after: float | None = None
    queued: bool = False
    """True when it waits in the class's queue at the relay (``task_id`` is relay-made)."""


@dataclass
class RelayContext:
    """What the handlers need from the relay."""

    store: RelayStore
    class_name: str
    costs: dict[str, float]
    rate: RateLimiter
    forward: Callable[[str, dict[str, Any], int], Awaitable[Forwarded]]
    """Send one submit upstream (once, never retried)."""
    watch: Callable[[str], None]
    """Hand a new task to the poller."""
    last_look: Callable[[], float | None]
    teacher: Teacher
    """The teacher's controls (pause, budgets in the store, approve mode) and dashboard."""
    served: Counter[str] = field(default_factory=Counter)
    """Answers given, by path (what the class asked of the relay)."""
    gallery: LiveGallery = field(init=False)
    """Wakes the live class gallery's waiting answers (see :mod:`luma_nb.relay.live_gallery`)."""
    identify: Callable[[str], Awaitable[str | None]] | None = None
    """JupyterHub mode: the name of the Hub user a token belongs to, else None (may raise
    :class:`~luma_nb.relay.hub.HubUnavailable`)."""
    base_path: str = "/"
    """The path prefix the relay serves under (``/services/luma-class/`` on a Hub)."""
    store_threads: Executor | None = None
    """Where store calls run, off the event loop (None: asyncio's default executor)."""
    upstream_service: Callable[[], str] = lambda: "unknown"
    """Which service makes the videos (``"sandbox"``: each has a poster beside it)."""

    def __post_init__(self) -> None:
        self.gallery = LiveGallery(self.store, self.blocking)

    async def blocking(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)`` (a call that waits for the database) on the store threads;
        the event loop serves other requests meanwhile."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        return await loop.run_in_executor(self.store_threads, call)

    def remaining(self, student: Student) -> float | None:
        """The credits the student may still spend (the smaller of both budgets)."""
        return self.teacher.remaining(student)


def errors(message: str) -> dict[str, Any]:
    """The documented error body."""
    return {"errors": [{"msg": message}]}


class _Base(tornado.web.RequestHandler):
    @property
    def ctx(self) -> RelayContext:
        ctx: RelayContext = self.application.settings["relay"]
        return ctx

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Luma-NB-Service", "relay")
        self.set_header("X-Luma-NB-Class", quote(self.ctx.class_name, safe=""))
        self.set_header("Cache-Control", "no-store")

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.set_status(status)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        messages = {
            404: f"Not found: {self.request.path}",
            405: f"Method {self.request.method} not allowed on {self.request.path}",
        }
        text = messages.get(status_code, self._reason or "Request failed")
        self.finish(json.dumps({} if status_code == 401 else errors(text)))

    @property
    def endpoint(self) -> str:
        """The API path asked for, without the relay's base path (``/fetch``...)."""
        return "/" + self.request.path[len(self.ctx.base_path) :]

    async def known_student(self) -> Student | None:
        """The student making this request; else answers 401 (unknown or revoked token) or
        503 (the Hub could not be asked) and returns None."""
        try:
            student = await self.student()
        except HubUnavailable:
            self.answer(503, errors("The relay could not ask JupyterHub who you are; try again."))
            return None
        if student is None:
            self.answer(401, errors("Unknown or revoked class token"))
        return student

    async def student(self) -> Student | None:
        """The student sending a class token, or (on a Hub) a Hub user's token."""
        token = self.request.headers.get("Authorization", "").strip()
        if not token:
            return None
        found = await self.ctx.blocking(self.ctx.store.student_by_hash, hash_token(token))
        if found is not None or self.ctx.identify is None or token.startswith(TOKEN_PREFIX):
            return found
        name = await self.ctx.identify(token)
        return None if name is None else await self.ctx.blocking(self.ctx.store.enroll, name)

    def payload(self) -> Any:
        """The decoded JSON body; raises ValidationError (400) or answers 413 (returns ...)."""
        raw = self.request.body
        if len(raw) > MAX_BODY:
            raise _TooLarge()
        if not raw.strip():
            raise ValidationError("Request body is missing; send a JSON object")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # nested deeper than Python's parser goes
            raise ValidationError("Request body is not valid JSON") from None


class _TooLarge(Exception):
    pass


class _Api(_Base):
    """One API path: auth, then the body, then the endpoint's work."""

    allowed = "POST"

    def _not_allowed(self) -> None:
        self.answer(
            405,
            errors(f"Method {self.request.method} not allowed on {self.request.path}"),
            {"Allow": self.allowed},
        )

    get = head = put = patch = delete = options = post = _not_allowed

    async def _run(self) -> None:
        student = await self.known_student()
        if student is None:
            return
        try:
            payload = None if self.request.method == "GET" else self.payload()
            await self.serve(student, payload)
        except _TooLarge:
            self.answer(413, errors(f"Request body too large (limit {MAX_BODY} bytes)"))
        except ValidationError as error:
            self.answer(400, errors(str(error)))

    async def serve(self, student: Student, payload: Any) -> None:
        raise NotImplementedError


class SubmitHandler(_Api):
    async def post(self) -> None:  # type: ignore[override]
        await self._run()

    async def serve(self, student: Student, payload: Any) -> None:
        ctx, path, teacher = self.ctx, self.endpoint, self.ctx.teacher
        body = submit_body(path, payload)
        admission = await ctx.blocking(teacher.admission, student)
        if admission.paused is not None:  # before anything is reserved or counted
            self.refuse(403, admission.paused, student)
            return
        parent = body.get("parent_task_id")
        if isinstance(parent, str):
            store = ctx.store
            may, upstream = await ctx.blocking(
                lambda: (store.may_extend(parent, student), store.upstream_of(parent))
            )
            if not may:  # as an unknown id: nothing told
                self.refuse(404, TASK_NOT_FOUND, student)
                return
            if upstream is None:
                self.refuse(
                    400,
                    "That video has not started yet (it waits for your teacher's approval or "
                    "in the class's queue); extend it once it has finished.",
                    student,
                )
                return
            body = body | {"parent_task_id": upstream}
        wait = ctx.rate.take(student.id)
        if wait is not None:
            self.refuse(
                429,
                f"Too many submits: at most {ctx.rate.per_minute:g} per minute",
                student,
                {"Retry-After": f"{wait:.0f}"},
            )
            return
        budgets = admission.budgets
        reserved = await ctx.blocking(
            ctx.store.reserve, student, path, body, ctx.costs[path], budgets
        )
        if not isinstance(reserved, int):
            ctx.rate.give_back(student.id)
            self.refuse(402, reserved.message, student)
            return
        if admission.approve:
            # Answered at once with a relay-made id, so the student's client never hangs;
            # its fetches say it waits for the teacher until it is approved or rejected.
            self.answer(200, {"task_id": await ctx.blocking(teacher.hold, reserved, path)})
            return
        result = await ctx.forward(path, body, reserved)
        if result.task_id is None:
            teacher.refused(student, result.message)
            headers = {}
            if result.retry_after is not None:
                headers["Retry-After"] = f"{result.retry_after:.0f}"
            self.answer(result.status, errors(result.message), headers)
            return
        if not result.queued:  # a queued one is polled once it went upstream
            ctx.watch(result.task_id)
        self.answer(200, {"task_id": result.task_id})

    def refuse(
        self, status: int, message: str, student: Student, headers: dict[str, str] | None = None
    ) -> None:
        """Answer an error in the documented shape; the teacher's table shows the last one."""
        self.ctx.teacher.refused(student, message)
        self.answer(status, errors(message), headers)


class FetchHandler(_Api):
    async def post(self) -> None:  # type: ignore[override]
        await self._run()

    async def serve(self, student: Student, payload: Any) -> None:
        ids = fetch_ids(self.endpoint, payload)
        store = self.ctx.store
        bodies = await self.ctx.blocking(lambda: [store.task_body(i, student) for i in ids])
        looked = self.ctx.last_look()
        headers = {"X-Luma-NB-Polled-At": f"{looked:.3f}"} if looked is not None else {}
        if self.endpoint == "/fetch":
            if bodies[0] is None:
                self.answer(404, errors(TASK_NOT_FOUND), headers)
            else:
                self.answer(200, bodies[0], headers)
            return
        self.answer(200, {"tasks": [b for b in bodies if b is not None]}, headers)


class AccountHandler(_Api):
    allowed = "GET"

    async def get(self) -> None:  # type: ignore[override]
        await self._run()

    async def serve(self, student: Student, payload: Any) -> None:
        ctx = self.ctx
        credits = await ctx.blocking(ctx.remaining, student)
        tasks = await ctx.blocking(ctx.store.task_count, student)
        self.answer(
            200,
            {
                "email": student.name,
                "credits": credits,
                "total_images": tasks,
                "plan": "class",
                "class": ctx.class_name,
            },
        )


# -- the class gallery (students' side) -------------------------------------------------------

#: Longest wait a long-poll may ask for (seconds).
MAX_GALLERY_WAIT = 30.0


def _seq_arg(text: str | None, name: str) -> int:
    """A sequence number from a query argument or Last-Event-ID (ValidationError if not one)."""
    value = (text or "0").strip() or "0"
    if not value.isdigit() or len(value) > 18:
        raise ValidationError(f"{name} must be a sequence number (0 or more), got {value[:40]!r}")
    return int(value)


class GalleryPollHandler(_Api):
    """``GET /class/gallery?after=N&wait=S``: the gallery's changes after N, waiting up to S s
    (at most 30) for one when there is none yet."""

    allowed = "GET"

    async def get(self) -> None:  # type: ignore[override]
        await self._run()

    async def serve(self, student: Student, payload: Any) -> None:
        store, live = self.ctx.store, self.ctx.gallery
        after = _seq_arg(self.get_query_argument("after", "0"), "after")
        text = self.get_query_argument("wait", "0") or "0"
        try:
            wait = float(text)
        except ValueError:
            wait = float("nan")
        if not 0 <= wait <= MAX_GALLERY_WAIT:
            raise ValidationError(f"wait must be 0 to {MAX_GALLERY_WAIT:g} seconds")
        latest, items = await self.ctx.blocking(store.gallery, after)
        reset = after > latest  # the class's gallery started over: send it whole
        if reset:
            after = 0
            latest, items = await self.ctx.blocking(store.gallery, 0)
        if not items and wait > 0 and await live.wait(latest, wait):
            latest, items = await self.ctx.blocking(store.gallery, after)
        service = self.ctx.upstream_service()
        body = poll_body(latest, items, initial=after == 0, reset=reset, service=service)
        self.answer(200, body)


class GalleryEventsHandler(_Base):
    """``GET /class/gallery/events``: the gallery as server-sent events, resumable with
    ``Last-Event-ID`` (or ``?after=N``), a keep-alive comment when idle, ended when the relay
    stops (an ``event: close``) or the token is revoked."""

    _gone = False
    _waiting: asyncio.Future[bool] | None = None

    async def get(self) -> None:
        student = await self.known_student()
        if student is None:
            return
        header = self.request.headers.get("Last-Event-ID")
        try:
            after = _seq_arg(header if header else self.get_query_argument("after", "0"), "after")
        except ValidationError as error:
            self.answer(400, errors(str(error)))
            return
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")  # a proxy in front must not buffer it
        live, store = self.ctx.gallery, self.ctx.store
        live.streams += 1
        try:
            self.write("retry: 3000\n\n")
            latest, items = await self.ctx.blocking(store.gallery, after)
            if after > latest:
                self.write("event: reset\ndata: {}\n\n")
                after = 0
                latest, items = await self.ctx.blocking(store.gallery, 0)
            initial = after == 0
            while True:
                if items or initial:
                    service = self.ctx.upstream_service()
                    self.write(stream_batch(latest, items, initial=initial, service=service))
                else:
                    self.write(": keep-alive\n\n")
                initial, after = False, latest
                await self.flush()
                self._waiting = asyncio.ensure_future(live.wait(after, live.heartbeat))
                try:
                    await self._waiting
                except asyncio.CancelledError:
                    if not self._gone:
                        raise
                if self._gone or live.closed or not await self._still_in_class():
                    break
                latest, items = await self.ctx.blocking(store.gallery, after)
            if live.closed and not self._gone:
                self.write("event: close\ndata: {}\n\n")
            self.finish()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            live.streams -= 1

    async def _still_in_class(self) -> bool:
        """False once the token is revoked (or, on a Hub, cannot be checked: the client
        reconnects and is asked again)."""
        try:
            return await self.student() is not None
        except HubUnavailable:
            return False

    def on_connection_close(self) -> None:
        self._gone = True
        if self._waiting is not None:
            self._waiting.cancel()


class ShareHandler(_Api):
    """``POST /class/share`` ``{"task_id", "shared"}``: a student's choice to show one of their
    own tasks in the class gallery (404 for any other task)."""

    async def post(self) -> None:  # type: ignore[override]
        await self._run()

    async def serve(self, student: Student, payload: Any) -> None:
        if not isinstance(payload, dict):
            raise ValidationError("Send a JSON object with task_id and shared")
        task_id, shared = payload.get("task_id"), payload.get("shared")
        if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > 200:
            raise ValidationError("task_id must be the id of one of your tasks")
        if not isinstance(shared, bool):
            raise ValidationError("shared must be true or false")
        if not await self.ctx.blocking(self.ctx.store.set_shared, task_id.strip(), student, shared):
            self.answer(404, errors("Task not found among your tasks"))
            return
        self.ctx.gallery.poke()
        self.answer(200, {"task_id": task_id.strip(), "shared": shared})


class NotFound(_Base):
    def prepare(self) -> None:
        self.answer(404, errors(f"Not found: {self.request.path}"))


_PATHS = frozenset({"/luma-extend", "/luma-imagine", "/fetch", "/fetch-many", "/account"})
_GALLERY_PATHS = frozenset({"/class/gallery", "/class/gallery/events", "/class/share"})


def make_app(ctx: RelayContext) -> tornado.web.Application:
    """The Tornado application of the relay, under ``ctx.base_path``."""
    base = re.escape(ctx.base_path)
    return tornado.web.Application(
        [
            (base + r"luma-extend", SubmitHandler),
            (base + r"luma-imagine", SubmitHandler),
            (base + r"fetch", FetchHandler),
            (base + r"fetch-many", FetchHandler),
            (base + r"account", AccountHandler),
            (base + r"class/gallery", GalleryPollHandler),
            (base + r"class/gallery/events", GalleryEventsHandler),
            (base + r"class/share", ShareHandler),
        ],
        default_handler_class=NotFound,
        log_function=_log_request,
        relay=ctx,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Method, path, status and time only: never headers (tokens) or bodies.
    request = handler.request
    ctx: RelayContext = handler.application.settings["relay"]
    path = "/" + request.path[len(ctx.base_path) :]
    inside = request.path.startswith(ctx.base_path)
    known = inside and (path in _PATHS or path in _GALLERY_PATHS)
    ctx.served[path if known else "other"] += 1
    log.info(
        "%d %s %s %.1f ms",
        handler.get_status(),
        request.method,
        request.path,
        1000.0 * request.request_time(),
    )
