"""LumaClient: the one place that speaks HTTP to the APIFRAME Luma API."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import requests

from .._version import __version__
from ..contract import validation as check
from ..contract.errors import (
    BadRequestError,
    MissingAPIKeyError,
    ServerError,
    TransportError,
    ValidationError,
)
from ..contract.gallery import GalleryUpdate
from ..contract.models import Account, Task
from ..contract.polling import DefaultPolicy, PollPolicy
from ..contract.redact import redact
from ..contract.service import SERVICES, class_name, service_from_headers
from ..contract.waiting import Waiter
from . import hooks, waiting
from .deadline import Deadline, DeadlinePassed, TooLarge, guarded_session, read_capped
from .hooks import ClientObserver
from .submits import Submits
from .transport import describe_transport, exchange, parse_answer

if TYPE_CHECKING:
    from ..jobs.job import Job
    from .gallery import GalleryStream

__all__ = ("DEFAULT_BASE_URL", "LumaClient")

DEFAULT_BASE_URL = "https://api.apiframe.pro"
#: The documented maximum of ids per ``/fetch-many`` call.
FETCH_MANY_MAX = 20
_SUBMIT_PATHS = frozenset({"/luma-extend", "/luma-imagine"})


class LumaClient(Submits):
    """A client for the APIFRAME Luma API (or the offline sandbox, which speaks the same API).

    Parameters:
        api_key: the APIFRAME key; else ``APIFRAME_API_KEY``. Checked at the first call needing it.
        base_url: else ``APIFRAME_BASE_URL``, else ``https://api.apiframe.pro``.
        timeout: seconds for one HTTP request.
        session: a ``requests.Session`` to use (proxies, certificates, adapters).
        poll: the polling policy used by waits (default :class:`~luma_nb.DefaultPolicy`).
        clock, sleep: injectable for tests (default ``time.monotonic`` / ``time.sleep``).
        service: what the launcher knows it started (``"sandbox"``); else learned from answers.
        journal: where submits are recorded (see :mod:`luma_nb.jobs.journal`): by default the
            journal under ``LUMA_NB_HOME`` (opened on first use); a :class:`~luma_nb.Journal` or
            a file path; None records nothing. The journal is an observer of the client's
            events (:mod:`luma_nb.api.hooks`), subscribed by the jobs layer.
    """

    #: The largest API answer read (bytes); larger ones are refused with :class:`ServerError`.
    MAX_ANSWER_BYTES = 8 * 1024 * 1024

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        poll: PollPolicy | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        journal: Any = ...,
        service: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("APIFRAME_API_KEY")
        self.__api_key = key.strip() if isinstance(key, str) and key.strip() else None
        url = base_url or os.environ.get("APIFRAME_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = check.http_url(url, "base_url") or DEFAULT_BASE_URL
        self.base_url = self.base_url.rstrip("/")
        if service is not None and service not in SERVICES:
            raise ValidationError(
                f"service must be one of {', '.join(SERVICES)}, got {service!r}.", field="service"
            )
        #: Which service answers: ``"api"``, ``"sandbox"``, ``"relay"`` or ``"unknown"``; learned
        #: from the answers' ``X-Luma-NB-Service`` header (see :mod:`luma_nb.contract.service`).
        self.service: str = service or ("api" if self.base_url == DEFAULT_BASE_URL else "unknown")
        #: The class a relay announced (``X-Luma-NB-Class``), else None.
        self.class_name: str | None = None
        self.timeout = check.seconds(timeout, "timeout", maximum=check.MAX_REQUEST_SECONDS)
        self._session = session or guarded_session()
        self.poll: PollPolicy = poll or DefaultPolicy()
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._observers: list[ClientObserver] = []
        #: The journal recording this client's submits (set up by the jobs layer), or None.
        self.journal: Any = None
        if hooks.setup_client.filled:
            hooks.setup_client(self, journal)

    # -- identity ---------------------------------------------------------------------------

    @property
    def has_key(self) -> bool:
        """True when an API key is configured (its value is never shown)."""
        return self.__api_key is not None

    @property
    def is_sandbox(self) -> bool:
        """True when the service said it is the offline sandbox (never guessed from the URL)."""
        return self.service == "sandbox"

    def __repr__(self) -> str:
        key = "set" if self.has_key else "missing"
        return f"LumaClient(base_url={self.base_url!r}, api_key=<{key}>)"

    __str__ = __repr__

    def subscribe(self, observer: ClientObserver) -> None:
        """Tell ``observer`` of every submit and every task seen (see :mod:`luma_nb.api.hooks`)."""
        if observer not in self._observers:
            self._observers.append(observer)

    def unsubscribe(self, observer: ClientObserver) -> None:
        """Stop telling ``observer``."""
        if observer in self._observers:
            self._observers.remove(observer)

    def _emit(self, event: str, *args: Any) -> None:
        hooks.emit(self, self._observers, event, *args)

    @property
    def session(self) -> requests.Session:
        """The HTTP session of this client (downloads from the same service reuse it)."""
        return self._session

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> LumaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the transport choke point ---------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return its parsed JSON body; every failure becomes a LumaError."""
        if self.__api_key is None:
            raise MissingAPIKeyError()
        submit = path in _SUBMIT_PATHS
        headers = {
            "Authorization": self.__api_key,
            "Accept": "application/json",
            "User-Agent": f"luma_nb/{__version__}",
        }
        data = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(payload).encode("utf-8")
        response, raw = exchange(
            self._session,
            method,
            self.base_url + path,
            data=data,
            headers=headers,
            seconds=timeout or self.timeout,
            cap=self.MAX_ANSWER_BYTES,
            path=path,
            submitted=payload if submit else None,
        )
        body_text = raw.decode(response.encoding or "utf-8", errors="replace")
        # An answer may quote the request: never keep our own key or secret from it.
        body_text = redact(body_text, self.__api_key, (payload or {}).get("webhook_secret"))
        self._learn_service(response.headers)
        return parse_answer(response, body_text, path, payload if submit else None)

    def _stream(
        self, path: str, *, headers: Mapping[str, str], read_timeout: float
    ) -> requests.Response:
        """Open a streamed GET (server-sent events): its headers within the client's deadline,
        then each read of the body within ``read_timeout`` seconds (the caller reads it). Error
        statuses raise as :meth:`_request` does."""
        if self.__api_key is None:
            raise MissingAPIKeyError()
        sent = {
            "Authorization": self.__api_key,
            "User-Agent": f"luma_nb/{__version__}",
            **headers,
        }
        try:
            with Deadline(self.timeout) as deadline:
                response = self._session.get(
                    self.base_url + path,
                    headers=sent,
                    timeout=(max(0.05, min(self.timeout, deadline.remaining())), read_timeout),
                    allow_redirects=False,
                    stream=True,
                )
                self._learn_service(response.headers)
                if not 200 <= response.status_code < 300:
                    raw = read_capped(response, deadline, 64 * 1024)
                    text = redact(raw.decode("utf-8", errors="replace"), self.__api_key)
                    parse_answer(response, text, path, None)
        except (requests.RequestException, DeadlinePassed, TooLarge) as error:
            reason = (
                describe_transport(error)
                if isinstance(error, requests.RequestException)
                else f"no answer within the {self.timeout:g} s deadline"
            )
            raise TransportError(f"GET {path} failed: {reason}", endpoint=path) from None
        return response

    def _learn_service(self, headers: Mapping[str, str]) -> None:
        announced = service_from_headers(headers)
        if announced is not None:
            self.service = announced
            if announced == "relay":
                self.class_name = class_name(headers)

    # -- reads ------------------------------------------------------------------------------

    def fetch(self, task_id: str, *, timeout: float | None = None) -> Task:
        """The current state of one task (``POST /fetch``); ``timeout`` overrides the client's."""
        tid = check.task_id(task_id)
        if timeout is not None:
            timeout = check.seconds(timeout, "timeout", maximum=check.MAX_REQUEST_SECONDS)
        body = self._request("POST", "/fetch", {"task_id": tid}, timeout=timeout)
        if not isinstance(body, Mapping):
            raise ServerError(200, ["the fetch answer was not a JSON object"], endpoint="/fetch")
        task = Task.from_json(body, task_id=tid)
        self._record(task)
        return task

    def fetch_many(self, task_ids: Iterable[str], *, timeout: float | None = None) -> list[Task]:
        """The state of many tasks: chunks of up to 20 on ``/fetch-many``, a lone id on ``/fetch``.

        Ids the service does not know are left out of the result, as the service does.
        """
        ids = check.task_ids(task_ids)
        if timeout is not None:
            timeout = check.seconds(timeout, "timeout", maximum=check.MAX_REQUEST_SECONDS)
        tasks: list[Task] = []
        for start in range(0, len(ids), FETCH_MANY_MAX):
            chunk = ids[start : start + FETCH_MANY_MAX]
            if len(chunk) == 1:
                try:
                    tasks.append(self.fetch(chunk[0], timeout=timeout))
                except BadRequestError:
                    continue  # unknown id: left out, as /fetch-many would do
                continue
            body = self._request("POST", "/fetch-many", {"task_ids": chunk}, timeout=timeout)
            items = body.get("tasks") if isinstance(body, Mapping) else None
            if not isinstance(items, list):
                raise ServerError(
                    200, ["the fetch-many answer had no 'tasks' list"], endpoint="/fetch-many"
                )
            for item in items:
                if isinstance(item, Mapping):
                    task = Task.from_json(item)
                    if task.task_id:
                        self._record(task)
                        tasks.append(task)
        return tasks

    def account(self) -> Account:
        """Credits and plan of the account (``GET /account``)."""
        body = self._request("GET", "/account")
        if not isinstance(body, Mapping):
            raise ServerError(
                200, ["the account answer was not a JSON object"], endpoint="/account"
            )
        return Account.from_json(body)

    # -- the class gallery (a classroom relay only) -----------------------------------------

    def class_gallery(self, after: int = 0, *, wait: float = 0) -> GalleryUpdate:
        """The class gallery's changes after sequence number ``after`` (0: all of it), waiting
        up to ``wait`` seconds (at most 30) for news. Raises :class:`ClassOnlyError` when this
        client does not talk to a classroom relay."""
        from .gallery import class_gallery

        return class_gallery(self, after, wait=wait)

    def gallery_events(self, after: int = 0, **options: Any) -> GalleryStream:
        """The class gallery, live (server-sent events, reconnecting after a drop): iterate it
        for updates, ``close()`` it from any thread (see :class:`~.gallery.GalleryStream`)."""
        from .gallery import GalleryStream

        return GalleryStream(self, after, **options)

    def share(self, task_id: str, shared: bool = True) -> None:
        """Show (``shared=True``, the default of every task) or stop showing one of your own
        tasks in the class gallery. Raises :class:`ClassOnlyError` outside a class."""
        from .gallery import share

        share(self, task_id, shared)

    def _record(self, task: Task) -> None:
        self._emit("task_seen", task)

    # -- jobs and waiting -------------------------------------------------------------------

    def job(self, task_id: str) -> Job:
        """Re-attach to an existing task (nothing is sent until you refresh or wait)."""
        job: Job = hooks.make_job(
            self, check.task_id(task_id), task=None, request=None, fresh=False
        )
        return job

    def resume(self) -> list[Job]:
        """Re-attach to every unfinished job of this client's service recorded in the journal.

        Nothing is sent: the jobs start from their last recorded state (wait on them, or use
        :func:`luma_nb.resume` to watch them). Raises :class:`ValidationError` when this client
        records no journal.
        """
        jobs: list[Job] = hooks.resume_jobs(self)
        return jobs

    def _waiter(
        self,
        task_id: str,
        timeout: float,
        on_progress: Callable[[Task], Any] | None,
        *,
        fresh: bool = False,
        last: Task | None = None,
        poll: PollPolicy | None = None,
    ) -> Waiter:
        return waiting.make_waiter(
            self, task_id, timeout, on_progress, fresh=fresh, last=last, poll=poll
        )

    def _drive(self, waiter: Waiter) -> Task:
        return waiting.drive(self, waiter)

    async def _drive_async(self, waiter: Waiter) -> Task:
        return await waiting.drive_async(self, waiter)

    def wait(
        self,
        task_id: str,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """Block until the task finishes; return it.

        ``on_progress(task)`` is called on every observed change. Transient errors are retried
        within the deadline. Raises :class:`TaskFailedError` or :class:`WaitTimeout`.
        """
        return self._drive(self._waiter(task_id, timeout, on_progress, poll=poll))

    async def wait_async(
        self,
        task_id: str,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """Like :meth:`wait`, for ``await``: HTTP runs off the event loop, which stays free."""
        return await self._drive_async(self._waiter(task_id, timeout, on_progress, poll=poll))
