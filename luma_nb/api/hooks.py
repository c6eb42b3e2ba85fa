"""The client's events and the services it borrows from the layers above it.

**Events.** Whoever needs to observe a client subscribes a :class:`ClientObserver` with
:meth:`LumaClient.subscribe <luma_nb.api.client.LumaClient.subscribe>`. For every submit the
client calls ``about_to_submit`` (before the request leaves), then exactly one of
``submitted`` (the service answered with a task id), ``answer_lost`` (it may or may not have
created a task) or ``refused`` (it certainly did not). ``task_seen`` follows every snapshot
fetched. The journal is such an observer; the client never imports it.

**Borrowed services** (slots, filled when ``luma_nb`` is imported): the jobs layer makes the
:class:`~luma_nb.Job` a submit returns, sets up a new client (its journal) and resumes its
jobs; the launcher on top makes the default client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..contract.slots import Slot

if TYPE_CHECKING:
    from ..contract.errors import SubmitUncertainError
    from ..contract.models import Task
    from .client import LumaClient

__all__ = (
    "ClientObserver",
    "Submission",
    "default_client",
    "demo_parents",
    "demo_ratios",
    "make_job",
    "resume_jobs",
    "setup_client",
)

log = logging.getLogger("luma_nb.api")


@dataclass
class Submission:
    """One submit attempt, as observers see it."""

    path: str
    """``/luma-extend`` or ``/luma-imagine``."""
    request: dict[str, Any]
    """The body sent, without its secrets."""
    task_id: str | None = None
    """The task id, once the service answered."""
    notes: dict[int, Any] = field(default_factory=dict)
    """Observers' own notes on this attempt (the journal keeps its entry id), by observer id."""


class ClientObserver:
    """Receives a client's events; every method does nothing unless overridden.

    Observers are called in the thread that made the request; an exception they raise is logged
    and never stops a submit.
    """

    def about_to_submit(self, client: LumaClient, submission: Submission) -> None:
        """A paid submit is about to be sent."""

    def submitted(self, client: LumaClient, submission: Submission) -> None:
        """The service answered with ``submission.task_id``."""

    def answer_lost(
        self,
        client: LumaClient,
        submission: Submission,
        reason: str,
        error: SubmitUncertainError | None,
    ) -> None:
        """The submit may have created a task, but no usable answer came (or it was interrupted)."""

    def refused(self, client: LumaClient, submission: Submission, reason: str) -> None:
        """The submit was refused, or failed before it could reach the service."""

    def task_seen(self, client: LumaClient, task: Task) -> None:
        """A snapshot of a task was fetched (or pushed by a webhook)."""


def emit(client: LumaClient, observers: list[ClientObserver], event: str, *args: Any) -> None:
    """Call ``event`` on every observer; log, and never raise, what they raise."""
    for observer in list(observers):
        try:
            getattr(observer, event)(client, *args)
        except Exception:
            log.exception("a luma_nb client observer failed on %s", event)


_JOBS = "the jobs layer (luma_nb.jobs)"
#: ``make_job(client, task_id, task=, request=, fresh=)``: the handle a submit returns.
make_job: Slot[Callable[..., Any]] = Slot("LumaClient.extend()/job()", _JOBS)
#: ``setup_client(client, journal)``: what a new client gets (its journal as an observer).
setup_client: Slot[Callable[[Any, Any], None]] = Slot("LumaClient(journal=...)", _JOBS)
#: ``resume_jobs(client)``: jobs for the client's unfinished journal entries.
resume_jobs: Slot[Callable[[Any], list[Any]]] = Slot("LumaClient.resume()", _JOBS)

_LAUNCHER = "the demo-mode launcher (luma_nb.defaults)"
#: ``default_client()``: the real API with a key, else the shared offline sandbox.
default_client: Slot[Callable[[], Any]] = Slot("default_client()", _LAUNCHER)
#: ``demo_parents(client)``: ``(task_id, prompt)`` of the sandbox's ready-made parents.
demo_parents: Slot[Callable[[Any], tuple[tuple[str, str], ...]]] = Slot(
    "the demo parents", _LAUNCHER
)
#: ``demo_ratios(client)``: ``task_id -> aspect ratio`` of those parents.
demo_ratios: Slot[Callable[[Any], dict[str, str]]] = Slot("the demo parents", _LAUNCHER)
