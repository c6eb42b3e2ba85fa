"""The exceptions luma_nb raises: one root, then validation, HTTP and task errors.

Every message is written to read well at the bottom of a notebook traceback and carries the
useful part (the provider's ``msg`` texts, the failed task's reason, the task id and last status
of a timeout). No message ever contains the API key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Task

__all__ = (
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ClassOnlyError",
    "InsufficientCreditsError",
    "LumaError",
    "MissingAPIKeyError",
    "RateLimitError",
    "ServerError",
    "SubmitUncertainError",
    "TaskFailedError",
    "TransportError",
    "ValidationError",
    "WaitTimeout",
)


class LumaError(Exception):
    """Root of every error luma_nb raises on purpose."""


class ValidationError(LumaError, ValueError):
    """Input was rejected before anything was sent (and before any credit was spent).

    ``field`` names the offending argument; the message says how to fix it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MissingAPIKeyError(LumaError):
    """No API key was given and ``APIFRAME_API_KEY`` is not set."""

    def __init__(self) -> None:
        super().__init__(
            "No API key: set the APIFRAME_API_KEY environment variable or pass "
            "LumaClient(api_key=...). To try luma_nb without a key, use the offline sandbox: "
            "luma_nb.default_client() starts it for you."
        )


class TransportError(LumaError):
    """The service could not be reached or its answer was lost (connection error, timeout).

    ``endpoint`` is the path that was called; ``cause`` a short description of what failed.
    """

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ClassOnlyError(LumaError):
    """The call needs a classroom relay (``LUMA_NB_CLASS_URL``), and this client talks to
    something else (the API itself, or the offline sandbox)."""


class APIError(LumaError):
    """The service answered with an error status.

    ``status_code`` is the HTTP status, ``messages`` the ``errors[].msg`` texts of the body (may be
    empty: the provider documents ``{}`` for 401 and 500), ``endpoint`` the path that was called.
    """

    def __init__(
        self,
        status_code: int,
        messages: Sequence[str] = (),
        *,
        endpoint: str | None = None,
        body: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.messages: tuple[str, ...] = tuple(messages)
        self.endpoint = endpoint
        #: The start of the raw body, for debugging (never contains the key: the key is only sent).
        self.body = body
        super().__init__(self._describe())

    #: What to tell the user for this class when the body carries no message.
    hint = "The service rejected the request."

    def _describe(self) -> str:
        where = f" from {self.endpoint}" if self.endpoint else ""
        head = f"HTTP {self.status_code}{where}"
        if self.messages:
            return f"{head}: " + "; ".join(self.messages)
        return f"{head}: {self.hint}"


class BadRequestError(APIError):
    """400: the service found the request invalid; ``messages`` says why."""

    hint = "The service found the request invalid."


class AuthenticationError(APIError):
    """401: the API key is missing or not valid."""

    hint = (
        "The API key was refused. Check APIFRAME_API_KEY (the raw key, no 'Bearer' prefix), "
        "or use the offline sandbox."
    )


class InsufficientCreditsError(APIError):
    """402: the account has too few credits for this job."""

    hint = "Not enough credits on the account for this job."


class RateLimitError(APIError):
    """429: too many requests. ``retry_after`` is the server's advice in seconds, if it gave one."""

    hint = "Too many requests; slow down."

    def __init__(
        self,
        status_code: int = 429,
        messages: Sequence[str] = (),
        *,
        endpoint: str | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status_code, messages, endpoint=endpoint, body=body)

    def _describe(self) -> str:
        text = super()._describe()
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g} s)"
        return text


class ServerError(APIError):
    """5xx, or any answer whose body is not the JSON the contract promises (an HTML 502 page)."""

    hint = "The service had an internal error; this is usually temporary."


class SubmitUncertainError(LumaError):
    """A submit was sent but its answer was lost: the job may exist and may have been paid for.

    luma_nb never resends a submit on its own. ``request`` is what was sent, without secrets;
    ``endpoint`` the path; ``cause`` the underlying error. Check your task list (or the journal)
    before submitting again.
    """

    def __init__(
        self,
        endpoint: str,
        request: Mapping[str, Any],
        cause: BaseException | None = None,
        *,
        journal_id: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.request = dict(request)
        self.cause = cause
        self.journal_id = journal_id
        why = f" ({cause})" if cause is not None else ""
        super().__init__(
            f"The submit to {endpoint} was sent but its answer was lost{why}. The job may exist "
            "and may have been charged; luma_nb did not send it again. Look for it in "
            "luma_nb.history() before resubmitting."
        )


class JournalError(LumaError):
    """The journal file cannot be read (damaged, or not a journal). ``path`` names it.

    Submits keep working (they warn instead of recording); moving the file aside starts a new
    journal and loses nothing else.
    """

    def __init__(self, path: str, cause: BaseException) -> None:
        self.path = path
        self.cause = cause
        super().__init__(
            f"The luma_nb journal at {path} cannot be read ({cause}). Move it aside (for "
            f"example: mv '{path}' '{path}.damaged'); luma_nb then starts a new journal. Your "
            "tasks at the service and your saved videos are not affected."
        )


class TaskFailedError(LumaError):
    """The task ended in ``failed``; ``task`` is its last snapshot and ``task.error`` the reason."""

    def __init__(self, task: Task) -> None:
        self.task = task
        reason = task.error or "no reason given"
        super().__init__(f"Task {task.task_id} failed: {reason}")


class WaitTimeout(LumaError, TimeoutError):
    """The deadline passed before the task finished. The task itself goes on at the service.

    ``task_id`` and ``last_status`` say where it was; ``task`` is the last snapshot, if any.
    """

    def __init__(self, task_id: str, timeout: float, task: Task | None = None) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.task = task
        self.last_status = task.status if task is not None else None
        seen = "no answer yet" if task is None else task.describe()
        super().__init__(
            f"Task {task_id} did not finish within {timeout:g} s (last seen: {seen}). It keeps "
            f"running at the service: wait again with client.job({task_id!r}).wait()."
        )
