"""LumaClient: the one place that speaks HTTP to the APIFRAME Luma API."""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import requests

from . import _validate as check
from ._redact import redact
from ._transport import Deadline, DeadlinePassed, TooLarge, guarded_session, read_capped
from ._version import __version__
from ._wait import Waiter
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    MissingAPIKeyError,
    RateLimitError,
    ServerError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
)
from .models import Account, Task
from .polling import DefaultPolicy, PollPolicy

if TYPE_CHECKING:
    from .jobs import Job

__all__ = ("DEFAULT_BASE_URL", "LumaClient")

DEFAULT_BASE_URL = "https://api.apiframe.pro"
#: The documented maximum of ids per ``/fetch-many`` call.
FETCH_MANY_MAX = 20
MIB = 1024 * 1024
#: Gateways answer these when the upstream may or may not have processed the request.
_GATEWAY_STATUSES = frozenset({502, 504})
_SUBMIT_PATHS = frozenset({"/luma-extend", "/luma-imagine"})
_EXTEND_OPTIONS = frozenset(
    {
        "image_url",
        "end_image_url",
        "enhance_prompt",
        "aspect_ratio",
        "webhook_url",
        "webhook_secret",
    }
)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from either delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:  # "inf", "nan" and negative numbers are no advice at all
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _messages(body: Any) -> list[str]:
    """The human texts of an error body: ``errors[].msg``, else ``message`` / ``error``."""
    if not isinstance(body, Mapping):
        return []
    texts: list[str] = []
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, Mapping):
                msg = item.get("msg") or item.get("message")
                if isinstance(msg, str) and msg.strip():
                    texts.append(msg.strip())
            elif isinstance(item, str) and item.strip():
                texts.append(item.strip())
    for key in ("message", "error"):
        value = body.get(key)
        if not texts and isinstance(value, str) and value.strip():
            texts.append(value.strip())
    return texts


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (no connection was made)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        text = repr(error)
        return any(
            marker in text
            for marker in ("NewConnectionError", "NameResolutionError", "Connection refused")
        )
    return isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema))


class LumaClient:
    """A client for the APIFRAME Luma API (or the offline sandbox, which speaks the same API).

    Parameters:
        api_key: the APIFRAME key; else ``APIFRAME_API_KEY``. Checked at the first call needing it.
        base_url: else ``APIFRAME_BASE_URL``, else ``https://api.apiframe.pro``.
        timeout: seconds for one HTTP request.
        session: a ``requests.Session`` to use (proxies, certificates, adapters).
        poll: the polling policy used by waits (default :class:`~luma_nb.polling.DefaultPolicy`).
        clock, sleep: injectable for tests (default ``time.monotonic`` / ``time.sleep``).
        journal: where submits are recorded (see :mod:`luma_nb.journal`): by default the
            journal under ``LUMA_NB_HOME`` (opened on first use); a :class:`~luma_nb.Journal` or
            a file path; None records nothing.
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
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("APIFRAME_API_KEY")
        self.__api_key = key.strip() if isinstance(key, str) and key.strip() else None
        url = base_url or os.environ.get("APIFRAME_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = check.http_url(url, "base_url") or DEFAULT_BASE_URL
        self.base_url = self.base_url.rstrip("/")
        self.timeout = check.seconds(timeout, "timeout", maximum=check.MAX_REQUEST_SECONDS)
        self._session = session or guarded_session()
        self.poll: PollPolicy = poll or DefaultPolicy()
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        from .journal import attach

        self.journal: Any = attach(journal, self)

    # -- identity ---------------------------------------------------------------------------

    @property
    def has_key(self) -> bool:
        """True when an API key is configured (its value is never shown)."""
        return self.__api_key is not None

    @property
    def is_sandbox(self) -> bool:
        """True when the base URL is on this machine (the offline sandbox)."""
        host = self.base_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost", "[::1]") or host.startswith("127.")

    def __repr__(self) -> str:
        key = "set" if self.has_key else "missing"
        return f"LumaClient(base_url={self.base_url!r}, api_key=<{key}>)"

    __str__ = __repr__

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
        seconds = timeout or self.timeout
        try:
            with Deadline(seconds) as deadline:
                response = self._session.request(
                    method,
                    self.base_url + path,
                    data=data,
                    headers=headers,
                    timeout=max(0.05, min(seconds, deadline.remaining())),
                    allow_redirects=False,
                    stream=True,
                )
                raw = read_capped(response, deadline, self.MAX_ANSWER_BYTES)
        except TooLarge as error:
            cause = ServerError(
                response.status_code,
                [
                    f"the answer is larger than {self.MAX_ANSWER_BYTES // MIB} MiB "
                    f"({error.size / MIB:.1f} MiB or more), more than any API answer needs"
                ],
                endpoint=path,
            )
            if submit:
                raise SubmitUncertainError(path, _public(payload), cause) from None
            raise cause from None
        except (requests.RequestException, DeadlinePassed) as error:
            timed_out = isinstance(error, requests.exceptions.Timeout)
            if isinstance(error, DeadlinePassed) or (deadline.fired and not timed_out):
                reason = f"no complete answer within the {seconds:g} s deadline"
                sent = True
            else:
                reason = _describe_transport(error)
                sent = not _never_sent(error)
            if submit and sent:
                raise SubmitUncertainError(path, _public(payload), TransportError(reason)) from None
            raise TransportError(f"{method} {path} failed: {reason}", endpoint=path) from None
        body_text = raw.decode(response.encoding or "utf-8", errors="replace")
        # An answer may quote the request: never keep our own key or secret from it.
        body_text = redact(body_text, self.__api_key, (payload or {}).get("webhook_secret"))
        return self._parse(response, body_text, path, payload if submit else None)

    def _parse(
        self,
        response: requests.Response,
        text: str,
        path: str,
        submitted: Mapping[str, Any] | None,
    ) -> Any:
        status = response.status_code
        try:
            body: Any = json.loads(text) if text.strip() else None
            is_json = True
        except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
            body, is_json = None, False
        snippet = " ".join(text.split())[:200] or None
        if 200 <= status < 300:
            if not is_json or body is None:
                error = ServerError(
                    status,
                    ["the answer was not the JSON the API promises"],
                    endpoint=path,
                    body=snippet,
                )
                if submitted is not None:
                    raise SubmitUncertainError(path, _public(submitted), error)
                raise error
            return body
        messages = _messages(body)
        if not is_json and snippet:
            kind = "an HTML page" if "<" in snippet else "text"
            messages.append(f"the answer was {kind}, not JSON")
        if status == 400:
            raise BadRequestError(status, messages, endpoint=path, body=snippet)
        if status == 401:
            raise AuthenticationError(status, messages, endpoint=path)
        if status == 402:
            raise InsufficientCreditsError(status, messages, endpoint=path, body=snippet)
        if status == 429:
            raise RateLimitError(
                status,
                messages,
                endpoint=path,
                body=snippet,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            error = ServerError(status, messages, endpoint=path, body=snippet)
            if submitted is not None and status in _GATEWAY_STATUSES:
                raise SubmitUncertainError(path, _public(submitted), error)
            raise error
        raise APIError(status, messages, endpoint=path, body=snippet)

    # -- submits ----------------------------------------------------------------------------

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
            _common_fields(
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
        payload = _common_fields(
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
        from .jobs import Job

        public = _public(payload)
        entry = self.journal.intent(path, public) if self.journal is not None else None
        try:
            body = self._request("POST", path, payload)
            task_id = body.get("task_id") if isinstance(body, Mapping) else None
            if not isinstance(task_id, str) or not task_id.strip():
                raise SubmitUncertainError(
                    path, public, ServerError(200, ["the answer carried no task_id"], endpoint=path)
                )
        except SubmitUncertainError as error:
            if self.journal is not None and entry is not None:
                error.journal_id = entry if entry >= 0 else None
                self.journal.uncertain(entry, str(error.cause or error))
            raise
        except Exception as error:
            # The service answered with a refusal, or nothing was sent (validation, no key).
            if self.journal is not None and entry is not None:
                self.journal.rejected(entry, str(error))
            raise
        except BaseException as error:
            # Interrupted (Ctrl-C, kernel interrupt) while the request may have been on its way.
            if self.journal is not None and entry is not None:
                reason = f"interrupted while submitting ({type(error).__name__})"
                self.journal.uncertain(entry, reason)
            raise
        task_id = task_id.strip()
        if self.journal is not None and entry is not None:
            self.journal.submitted(entry, task_id)
        kind = "luma-ext" if path == "/luma-extend" else "luma"
        task = Task(task_id=task_id, task_type=kind, status="pending", raw={})
        return Job(self, task_id, task=task, request=public, fresh=True)

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

    def _record(self, task: Task) -> None:
        if self.journal is not None:
            self.journal.observe(task)

    # -- jobs and waiting -------------------------------------------------------------------

    def job(self, task_id: str) -> Job:
        """Re-attach to an existing task (nothing is sent until you refresh or wait)."""
        from .jobs import Job

        return Job(self, check.task_id(task_id), fresh=False)

    def resume(self) -> list[Job]:
        """Re-attach to every unfinished job of this client's service recorded in the journal.

        Nothing is sent: the jobs start from their last recorded state (wait on them, or use
        :func:`luma_nb.resume` to watch them). Raises :class:`ValidationError` when this client
        records no journal.
        """
        from .journal import resume_jobs

        return resume_jobs(self)

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
        check.callback(on_progress, "on_progress")
        if poll is not None and not callable(getattr(poll, "schedule", None)):
            raise ValidationError(
                f"poll must be a polling policy such as FixedPolicy(3.0), got {poll!r}.",
                field="poll",
            )
        policy = poll or self.poll
        return Waiter(
            check.task_id(task_id),
            timeout,
            policy.schedule(self._clock(), fresh=fresh),
            self._clock,
            request_timeout=self.timeout,
            on_progress=on_progress,
            last=last,
        )

    def _drive(self, waiter: Waiter) -> Task:
        while True:
            self._sleep(waiter.next_delay())
            try:
                task = self.fetch(waiter.task_id, timeout=waiter.request_timeout())
            except Exception as error:
                waiter.on_error(error)
                continue
            if waiter.on_task(task):
                return task

    async def _drive_async(self, waiter: Waiter) -> Task:
        import asyncio  # here, not at the top: it costs ~40 ms of every `import luma_nb`

        while True:
            await asyncio.sleep(waiter.next_delay())
            try:
                # The HTTP call runs in a worker thread: the event loop (the kernel) stays free.
                task = await asyncio.to_thread(
                    self.fetch, waiter.task_id, timeout=waiter.request_timeout()
                )
            except Exception as error:
                waiter.on_error(error)
                continue
            if waiter.on_task(task):
                return task

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


def extend_bodies(
    parent_task_id: Any, prompts: Any, options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The validated ``/luma-extend`` body for each prompt, all checked before any is sent.

    Raises :class:`ValidationError` for a bad parent, prompt or option (including unknown ones).
    """
    unknown = set(options) - _EXTEND_OPTIONS
    if unknown:
        raise ValidationError(
            f"unknown option(s) {', '.join(sorted(unknown))} for extend.", field="options"
        )
    parent = check.task_id(parent_task_id, "parent_task_id")
    return [
        {
            "parent_task_id": parent,
            **_common_fields(
                text,
                options.get("image_url"),
                options.get("end_image_url"),
                options.get("enhance_prompt", False),
                options.get("aspect_ratio", "1:1"),
                options.get("webhook_url"),
                options.get("webhook_secret"),
            ),
        }
        for text in check.prompts(prompts)
    ]


def _common_fields(
    prompt: Any,
    image_url: Any,
    end_image_url: Any,
    enhance_prompt: Any,
    aspect_ratio: Any,
    webhook_url: Any,
    webhook_secret: Any,
) -> dict[str, Any]:
    """The validated body fields shared by extend and imagine; unset options are left out."""
    payload: dict[str, Any] = {"prompt": check.prompt(prompt)}
    urls = {
        "image_url": check.http_url(image_url, "image_url"),
        "end_image_url": check.http_url(end_image_url, "end_image_url"),
    }
    payload.update({name: url for name, url in urls.items() if url is not None})
    payload["enhance_prompt"] = check.flag(enhance_prompt, "enhance_prompt")
    payload["aspect_ratio"] = check.aspect_ratio(aspect_ratio)
    hook = check.http_url(webhook_url, "webhook_url")
    secret = check.secret(webhook_secret)
    if secret is not None and hook is None:
        raise ValidationError(
            "webhook_secret was given without webhook_url; give both or neither.",
            field="webhook_secret",
        )
    if hook is not None:
        payload["webhook_url"] = hook
    if secret is not None:
        payload["webhook_secret"] = secret
    return payload


def _public(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request body without its secrets, safe to show, log and journal."""
    if payload is None:
        return {}
    return {k: v for k, v in payload.items() if k != "webhook_secret"}


def _describe_transport(error: requests.RequestException) -> str:
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "could not connect in time"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "no answer in time (read timeout)"
    if isinstance(error, requests.exceptions.ConnectionError):
        if _never_sent(error):
            return "could not connect (is the service or sandbox running?)"
        return "the connection was closed before an answer came"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    return type(error).__name__
