"""Recent tasks of this kernel (and of the journal): what the form's parent picker offers."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ...client.defaults import demo_parent_ids, demo_parent_ratios
from ...client.journal import Journal, service_of

if TYPE_CHECKING:
    from ...client.client import LumaClient
    from ...client.job import Job

__all__ = (
    "describe",
    "forget_all",
    "jobs_of",
    "journal_entries",
    "prompt_of",
    "ratio_of",
    "remember",
)

_LIMIT = 50
_lock = threading.Lock()
#: task_id -> (client base URL, the job) - newest last.
_jobs: OrderedDict[str, tuple[str, Job]] = OrderedDict()


def remember(job: Job) -> None:
    """Keep ``job`` among the recent tasks (the newest ``_LIMIT`` of this process)."""
    with _lock:
        _jobs.pop(job.task_id, None)
        _jobs[job.task_id] = (job.client.base_url, job)
        while len(_jobs) > _LIMIT:
            _jobs.popitem(last=False)


def forget_all() -> None:
    """Forget every recent task (for tests)."""
    with _lock:
        _jobs.clear()


def journal_entries(client: LumaClient) -> list[tuple[str, str | None, str | None]]:
    """``(task_id, prompt, status)`` of the journal's newest submits to this client's service.

    Returns nothing when the client keeps no :class:`~luma_nb.Journal` or it cannot be read:
    the journal is a convenience here, never a reason for the form to fail. A sandbox forgets
    its tasks when it stops, so for a sandbox only the tasks of this one (by their video's
    address) count.
    """
    try:
        journal = client.journal
        if not isinstance(journal, Journal):
            return []
        entries = journal.entries(30, service=service_of(client))
    except Exception:
        return []
    here = client.base_url + "/"
    return [
        (e.task_id, e.prompt, e.status)
        for e in entries
        if e.task_id and (not client.is_sandbox or (e.video_url or here).startswith(here))
    ]


def _demo_parents(client: LumaClient) -> list[tuple[str, str]]:
    return list(demo_parent_ids(client))


def jobs_of(client: LumaClient) -> list[Job]:
    """This kernel's recent jobs on ``client``'s service, newest first."""
    with _lock:
        return [job for url, job in reversed(_jobs.values()) if url == client.base_url]


def prompt_of(client: LumaClient, task_id: str) -> str | None:
    """The prompt of a known task (this kernel's, a demo video's, the journal's), or None."""
    with _lock:
        found = _jobs.get(task_id)
    if found is not None:
        return found[1].prompt
    for known_id, demo_prompt in _demo_parents(client):
        if known_id == task_id:
            return demo_prompt
    for known_id, entry_prompt, _status in journal_entries(client):
        if known_id == task_id:
            return entry_prompt
    return None


def describe(client: LumaClient, task_id: str) -> str | None:
    """A short note on a known task (its prompt and status), or None for unknown ids."""
    with _lock:
        found = _jobs.get(task_id)
    if found is not None:
        job = found[1]
        status = job.task.describe() if job.task is not None else "submitted"
        return f"{job.prompt or 'no prompt known'} ({status})"
    for demo_id, demo_prompt in _demo_parents(client):
        if demo_id == task_id:
            return f"{demo_prompt} (sandbox demo video, finished)"
    for entry_id, entry_prompt, entry_status in journal_entries(client):
        if entry_id == task_id:
            return f"{entry_prompt or 'no prompt known'} ({entry_status or 'submitted'})"
    return None


def ratio_of(client: LumaClient, task_id: str, depth: int = 0) -> str | None:
    """The aspect ratio of a known task, or None: an extend has its parent's (the service
    keeps the parent's frame size), an imagine the one it asked for."""
    if depth > 20 or not task_id:
        return None
    with contextlib.suppress(Exception):
        ratio = demo_parent_ratios(client).get(task_id)
        if ratio:
            return str(ratio)
    with _lock:
        found = _jobs.get(task_id)
    request: dict[str, Any] = dict(found[1].request) if found is not None else {}
    if not request:
        request = _journal_request(client, task_id)
    parent = request.get("parent_task_id")
    if isinstance(parent, str) and parent:
        return ratio_of(client, parent, depth + 1)
    ratio = request.get("aspect_ratio")
    return ratio if isinstance(ratio, str) and ratio else None


def _journal_request(client: LumaClient, task_id: str) -> dict[str, Any]:
    try:
        journal = client.journal
        if not isinstance(journal, Journal):
            return {}
        for entry in journal.entries(30, service=service_of(client)):
            if entry.task_id == task_id:
                return dict(entry.request)
    except Exception:
        return {}
    return {}
