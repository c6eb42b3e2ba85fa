"""The journal as a subscriber of the client: what ``LumaClient(journal=...)`` sets up.

The client emits events (:mod:`luma_nb.api.hooks`); :class:`JournalRecorder` writes them to
the client's journal: the intent before a submit leaves, then its task id, its lost answer or its
refusal, and every snapshot seen. The journal is looked up on the client at each event, so
``client.journal = None`` stops recording.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..api.hooks import ClientObserver, Submission
from ..contract.errors import SubmitUncertainError, ValidationError
from ..contract.priors import DurationPrior
from .journal import Journal
from .resume import jobs_for, service_of

if TYPE_CHECKING:
    from ..api.client import LumaClient
    from ..contract.models import Task
    from .job import Job

__all__ = ("JournalRecorder", "attach", "feed_prior", "resume_jobs", "setup_client")

#: What a custom journal object must offer to be used as it is.
_JOURNAL_METHODS = ("intent", "submitted", "uncertain", "rejected", "observe")


class JournalRecorder(ClientObserver):
    """Writes a client's submits and snapshots to ``client.journal`` (never raises)."""

    def _entry(self, submission: Submission) -> int | None:
        entry: int | None = submission.notes.get(id(self))
        return entry

    def about_to_submit(self, client: LumaClient, submission: Submission) -> None:
        journal = client.journal
        if isinstance(journal, Journal):
            entry = journal.intent(submission.path, submission.request, service=service_of(client))
            submission.notes[id(self)] = entry
        elif journal is not None:
            submission.notes[id(self)] = journal.intent(submission.path, submission.request)

    def submitted(self, client: LumaClient, submission: Submission) -> None:
        entry = self._entry(submission)
        journal = client.journal
        if isinstance(journal, Journal) and entry is not None and submission.task_id:
            # The answer may have told who the service is: the entry is filed under it.
            journal.submitted(entry, submission.task_id, service=service_of(client))
        elif journal is not None and entry is not None:
            journal.submitted(entry, submission.task_id)

    def answer_lost(
        self,
        client: LumaClient,
        submission: Submission,
        reason: str,
        error: SubmitUncertainError | None,
    ) -> None:
        entry = self._entry(submission)
        if client.journal is None or entry is None:
            return
        if error is not None:
            error.journal_id = entry if entry >= 0 else None
        client.journal.uncertain(entry, reason)

    def refused(self, client: LumaClient, submission: Submission, reason: str) -> None:
        entry = self._entry(submission)
        if client.journal is not None and entry is not None:
            client.journal.rejected(entry, reason)

    def task_seen(self, client: LumaClient, task: Task) -> None:
        if client.journal is not None:
            client.journal.observe(task)


#: One recorder serves every client (it keeps no state of its own).
RECORDER = JournalRecorder()


def attach(journal: Any, client: LumaClient) -> Any:
    """What ``LumaClient(journal=...)`` stores: a :class:`Journal` bound to the client's service.

    ``...`` (the default) is the default journal, ``None`` disables journaling, a path opens that
    file, and any other object with the client's journal methods is used as it is.
    """
    if journal is None:
        return None
    service = service_of(client)
    if journal is ...:
        return Journal(service=service)
    if isinstance(journal, Journal):
        return journal.bind(service)
    if isinstance(journal, (str, os.PathLike)):
        return Journal(journal, service=service)
    if all(callable(getattr(journal, name, None)) for name in _JOURNAL_METHODS):
        return journal
    raise ValidationError(
        "journal must be a luma_nb.Journal, a file path, or None to record nothing.",
        field="journal",
    )


def setup_client(client: LumaClient, journal: Any) -> None:
    """Give a new client its journal and subscribe the recorder (see :mod:`luma_nb.api.hooks`)."""
    client.journal = attach(journal, client)
    client.subscribe(RECORDER)
    feed_prior(client)


def feed_prior(client: LumaClient) -> int:
    """Give the client's polling policy the durations its journal has seen (once per journal
    file and policy); returns how many. Policies without a :class:`DurationPrior` get none."""
    journal = client.journal
    prior = getattr(client.poll, "prior", None)
    if not isinstance(journal, Journal) or not isinstance(prior, DurationPrior):
        return 0
    key = f"{journal.path}|{service_of(client)}"
    if key in prior.fed:
        return 0
    prior.fed.add(key)
    durations = journal.durations(service_of(client))
    prior.extend(durations, source="journal")
    return len(durations)


def resume_jobs(client: LumaClient) -> list[Job]:
    """Jobs for every unfinished submit of ``client``'s service (see :meth:`LumaClient.resume`)."""
    journal = client.journal
    if not isinstance(journal, Journal):
        raise ValidationError(
            "this client records no journal (journal=None), so there is nothing to resume.",
            field="journal",
        )
    return jobs_for(client, journal.unfinished(service_of(client)))
