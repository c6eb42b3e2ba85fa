"""Acting on journal entries: re-attaching jobs, watching them, and the explicit resubmit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..api import hooks
from ..contract.errors import SubmitUncertainError, ValidationError
from ..contract.models import Task
from .job import Job

if TYPE_CHECKING:
    from ..api.client import LumaClient
    from .journal import Journal
    from .journal_view import Entry

__all__ = ("UNSET", "default_client", "jobs_for", "resubmit_entry", "service_of", "watch_jobs")

#: "Not given" for ``webhook_secret`` (None means "the submit had no secret").
UNSET: Any = object()
#: Options an uncertain request carries over to its resubmit (``loop`` only for imagine).
_OPTIONS = ("image_url", "end_image_url", "enhance_prompt", "aspect_ratio", "webhook_url")


def service_of(client: LumaClient) -> str:
    """The journal's name for a client's service: ``"sandbox"`` when it said so, else its URL."""
    return "sandbox" if client.is_sandbox else client.base_url


def default_client() -> LumaClient:
    """:func:`luma_nb.default_client`, as the launcher on top provides it (may start a sandbox)."""
    client: LumaClient = hooks.default_client()
    return client


def jobs_for(client: LumaClient, entries: Iterable[Entry]) -> list[Job]:
    """Jobs of ``client`` for journal entries, starting from their last recorded state."""
    jobs = []
    for entry in entries:
        if not entry.task_id:
            continue
        last = Task(
            task_id=entry.task_id,
            task_type="luma-ext" if entry.kind == "extend" else "luma",
            status=entry.status or "pending",
            percentage=entry.percentage,
            raw={},
        )
        jobs.append(Job(client, entry.task_id, task=last, request=entry.request, fresh=False))
    return jobs


def watch_jobs(jobs: Iterable[Job]) -> None:
    """Hand jobs to the background watcher (:func:`luma_nb.jobs.watcher.watch`)."""
    from .watcher import watch

    for job in jobs:
        watch(job)


def resubmit_entry(
    journal: Journal, entry: Entry, client: LumaClient | None, webhook_secret: Any
) -> Job:
    """Send an uncertain entry's request again (see :meth:`Journal.resubmit`)."""
    if not entry.is_uncertain:
        raise ValidationError(
            f"journal entry #{entry.id} is {entry.shown_status}; only uncertain submits can "
            "be resubmitted.",
            field="entry_id",
        )
    if client is None:
        client = default_client()
    if service_of(client) != entry.service:
        raise ValidationError(
            f"entry #{entry.id} was sent to {entry.service}; this client talks to "
            f"{service_of(client)}.",
            field="client",
        )
    options = {k: entry.request[k] for k in _OPTIONS if k in entry.request}
    if "webhook_url" in options:
        if webhook_secret is UNSET:
            raise ValidationError(
                "this submit had a webhook_url, and luma_nb never stores webhook secrets: "
                "pass webhook_secret='...' again (or webhook_secret=None if it had none).",
                field="webhook_secret",
            )
        options["webhook_secret"] = webhook_secret
    if entry.kind == "imagine" and "loop" in entry.request:
        options["loop"] = entry.request["loop"]
    # Compare-and-set: of two kernels resubmitting the same entry, one wins.
    if not journal._claim(entry.id, "resubmitted", was=entry.state):
        raise ValidationError(
            f"journal entry #{entry.id} changed meanwhile (resubmitted or dismissed elsewhere).",
            field="entry_id",
        )
    try:
        if entry.kind == "extend":
            job = client.extend(str(entry.parent), str(entry.prompt), **options)
        else:
            job = client.imagine(str(entry.prompt), **options)
    except SubmitUncertainError:
        raise  # sent again and uncertain again: that attempt has its own uncertain entry
    except BaseException:
        # Refused before or by the service: the entry stays on offer as uncertain.
        journal._claim(entry.id, entry.state, was="resubmitted")
        raise
    journal._link(entry.id, job.task_id)
    return job
