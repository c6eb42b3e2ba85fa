"""LumaClient: the one place that speaks HTTP to the APIFRAME Luma API, and its observers.

Every paid submit is written to the client's journal (:mod:`luma_nb.client.journal`) before
the request leaves, then marked submitted (with its task id), uncertain (the answer was lost: it
may or may not have created a task) or refused (it certainly did not). Every snapshot fetched is
recorded too. A submit returns a :class:`~luma_nb.client.job.Job`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import requests

from .._version import __version__
from ..contract import validation as check
from ..contract.bodies import common_fields, extend_bodies, public
from ..contract.class_videos import GalleryUpdate
from ..contract.environment import environment
from ..contract.errors import (
    BadRequestError,
    MissingAPIKeyError,
    ServerError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
)
from ..contract.models import Account, Task
from ..contract.polling import DefaultPolicy, PollPolicy
from ..contract.redact import redact
from ..contract.service import SERVICES, class_name, service_from_headers
from .deadline import Deadline, DeadlinePassed, TooLarge, guarded_session, read_capped
from .job import Job
from .transport import describe_transport, exchange, parse_answer

if TYPE_CHECKING:
    from .class_feed import GalleryStream
    from .journal import Journal

__all__ = ("DEFAULT_BASE_URL", "FETCH_MANY_MAX", "LumaClient")

DEFAULT_BASE_URL = "https://api.apiframe.pro"
#: The documented maximum of ids per ``/fetch-many`` call.
FETCH_MANY_MAX = 20
_SUBMIT_PATHS = frozenset({"/luma-extend", "/luma-imagine"})
log = logging.getLogger("luma_nb.client")
#: The journal not opened yet (see :attr:`LumaClient.journal`).
_UNOPENED: Any = object()
#: What the client asks of a journal: a :class:`~luma_nb.Journal`, or any object with these.
JOURNAL_METHODS = ("intent", "submitted", "uncertain", "rejected", "observe")


class LumaClient:
    """A client for the APIFRAME Luma API (or the offline sandbox, which speaks the same API).

    Parameters:
        api_key: the APIFRAME key; else ``APIFRAME_API_KEY``. Checked at the first call needing it.
        base_url: else ``APIFRAME_BASE_URL``, else ``https://api.apiframe.pro``.
        timeout: seconds for one HTTP request.
        session: a ``requests.Session`` to use (proxies, certificates, adapters).
        poll: the polling policy used by waits (default :class:`~luma_nb.DefaultPolicy`).
        clock, sleep: injectable for tests (default ``time.monotonic`` / ``time.sleep``).
        service: what the launcher knows it started (``"sandbox"``); else learned from answers.
        journal: where submits are recorded (see :mod:`luma_nb.client.journal`): by default
            the journal under ``LUMA_NB_HOME``; a :class:`~luma_nb.Journal` or a file path;
            None records nothing. It is opened on first use (the first submit or fetch), and
            its past durations then teach the polling policy when to look.
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
        env = environment()
        key = api_key if api_key is not None else env.api_key
        self.__api_key = key.strip() if isinstance(key, str) and key.strip() else None
        url = base_url or env.base_url or DEFAULT_BASE_URL
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
        if not (
            journal is None
            or journal is ...
            or isinstance(journal, (str, os.PathLike))
            or all(callable(getattr(journal, name, None)) for name in JOURNAL_METHODS)
        ):
            raise ValidationError(
                "journal must be a luma_nb.Journal, a file path, or None to record nothing.",
                field="journal",
            )
        self._journal_wanted = journal
        self._journal: Any = _UNOPENED

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

    @property
    def journal(self) -> Journal | Any | None:
        """The journal recording this client's submits (opened on first use), or None."""
        if self._journal is _UNOPENED:
            from .journal import open_journal, teach_policy  # sqlite3 loads on first use

            self._journal = open_journal(self._journal_wanted, self)
            teach_policy(self)
        return self._journal

    @journal.setter
    def journal(self, value: Journal | Any | None) -> None:
        self._journal = value

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
        from .class_feed import fetch_gallery

        return fetch_gallery(self, after, wait=wait)

    def gallery_events(self, after: int = 0, **options: Any) -> GalleryStream:
        """The class gallery, live (server-sent events, reconnecting after a drop): iterate it
        for updates, ``close()`` it from any thread (see :class:`~.class_feed.GalleryStream`)."""
        from .class_feed import GalleryStream

        return GalleryStream(self, after, **options)

    def share(self, task_id: str, shared: bool = True) -> None:
        """Show (``shared=True``, the default of every task) or stop showing one of your own
        tasks in the class gallery. Raises :class:`ClassOnlyError` outside a class."""
        from .class_feed import share

        share(self, task_id, shared)

    def _record(self, task: Task) -> None:
        self._note("observe", task)

    def _note(self, method: str, *args: Any) -> Any:
        """Tell the journal (a :class:`~luma_nb.Journal`, or an object with its methods); what
        it raises is logged and never stops a submit or a fetch."""
        journal = self.journal
        if journal is None:
            return None
        from .journal import Journal, service_of

        kwargs: dict[str, Any] = {}
        if isinstance(journal, Journal) and method in ("intent", "submitted"):
            kwargs["service"] = service_of(self)
        try:
            return getattr(journal, method)(*args, **kwargs)
        except Exception:
            log.exception("the luma_nb journal failed to record %s", method)
            return None

    # -- paid submits -----------------------------------------------------------------------

    def extend(
        self,
        parent_task_id: str,
        prompt: str,
        *,
        image_url: str | None = None,
        end_image_url: str | None = None,
        enhance_prompt: bool = False,
        aspect_ratio: str = "1:1",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> Job:
        """Extend the video of task ``parent_task_id`` with ``prompt`` (``POST /luma-extend``).

        Costs credits. Raises :class:`ValidationError` before sending anything for bad input,
        :class:`SubmitUncertainError` if the answer was lost (never resent automatically).
        """
        payload = {"parent_task_id": check.task_id(parent_task_id, "parent_task_id")}
        payload.update(
            common_fields(
                prompt,
                image_url,
                end_image_url,
                enhance_prompt,
                aspect_ratio,
                webhook_url,
                webhook_secret,
            )
        )
        return self._submit("/luma-extend", payload)

    def imagine(
        self,
        prompt: str,
        *,
        image_url: str | None = None,
        end_image_url: str | None = None,
        enhance_prompt: bool = False,
        aspect_ratio: str = "1:1",
        loop: bool | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> Job:
        """Make a new video from ``prompt`` (``POST /luma-imagine``); a parent for extends."""
        payload = common_fields(
            prompt,
            image_url,
            end_image_url,
            enhance_prompt,
            aspect_ratio,
            webhook_url,
            webhook_secret,
        )
        if check.optional_flag(loop, "loop") is not None:
            payload["loop"] = loop
        return self._submit("/luma-imagine", payload)

    def extend_many(self, parent_task_id: str, prompts: Iterable[str], **options: Any) -> list[Job]:
        """Extend one parent with each prompt (one paid job each); for galleries of variations.

        Every prompt is validated before the first submit, so bad input costs nothing. A submit
        that fails stops the batch; the jobs already submitted are on the raised error's
        ``jobs`` attribute (and in the journal).
        """
        bodies = extend_bodies(parent_task_id, prompts, options)
        jobs: list[Job] = []
        for body in bodies:
            try:
                jobs.append(self._submit("/luma-extend", body))
            except Exception as error:
                error.jobs = jobs  # type: ignore[attr-defined]
                raise
        return jobs

    def _submit(self, path: str, payload: dict[str, Any]) -> Job:
        request = public(payload)
        entry = self._note("intent", path, request)
        try:
            body = self._request("POST", path, payload)
            task_id = body.get("task_id") if isinstance(body, Mapping) else None
            if not isinstance(task_id, str) or not task_id.strip():
                raise SubmitUncertainError(
                    path,
                    request,
                    ServerError(200, ["the answer carried no task_id"], endpoint=path),
                )
        except SubmitUncertainError as error:
            if entry is not None:
                error.journal_id = entry if entry >= 0 else None
                self._note("uncertain", entry, str(error.cause or error))
            raise
        except Exception as error:
            # The service answered with a refusal, or nothing was sent (validation, no key).
            if entry is not None:
                self._note("rejected", entry, str(error))
            raise
        except BaseException as error:
            # Interrupted (Ctrl-C, kernel interrupt) while the request may have been on its way.
            if entry is not None:
                reason = f"interrupted while submitting ({type(error).__name__})"
                self._note("uncertain", entry, reason)
            raise
        task_id = task_id.strip()
        if entry is not None:
            self._note("submitted", entry, task_id)
        kind = "luma-ext" if path == "/luma-extend" else "luma"
        task = Task(task_id=task_id, task_type=kind, status="pending", raw={})
        return Job(self, task_id, task=task, request=request, fresh=True)

    # -- jobs and waiting -------------------------------------------------------------------

    def job(self, task_id: str) -> Job:
        """Re-attach to an existing task (nothing is sent until you refresh or wait)."""
        return Job(self, check.task_id(task_id))

    def resume(self, *, watch: bool = True) -> list[Job]:
        """Re-attach to every unfinished job of this client's service recorded in the journal.

        Nothing is sent: the jobs start from their last recorded state. With ``watch`` (the
        default) they are handed to the background watcher, so their views update and
        ``await job.watch()`` ends when they do. Raises :class:`ValidationError` when this client
        records no journal.
        """
        from .journal import unfinished_jobs

        jobs = unfinished_jobs(self)
        if watch:
            for job in jobs:
                job.watch()
        return jobs

    def wait(
        self,
        task_id: str,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """``client.job(task_id).wait(...)``: block until the task finishes (:meth:`Job.wait`)."""
        return self.job(task_id).wait(timeout=timeout, on_progress=on_progress, poll=poll)
