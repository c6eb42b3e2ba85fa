"""The task journal: every paid submit is written down before it is sent, and followed after.

A small SQLite file (``$LUMA_NB_HOME/journal.sqlite3``) records, for each submit: the intent
(kind, prompt, parent, options; written *before* the request leaves), the task id as soon as the
service answers, then status and progress changes, the video URL and the local file it was saved
to. Submits whose answer was lost are recorded as *uncertain*, with their request. Neither the API
key nor the webhook secret is ever written.

A client writes to its journal itself (:class:`~luma_nb.LumaClient`, ``journal=``), opening it
on first use; its past durations then teach the client's polling policy (:func:`teach_policy`).
After a kernel restart, :func:`luma_nb.history` shows past jobs, :meth:`LumaClient.resume`
re-attaches to every unfinished one, and :meth:`Journal.resubmit` sends an uncertain submit
again - only when called.

Failure policy: the journal never stops a submit. When a write fails (disk full, unwritable
folder, a broken file), luma_nb emits a :class:`JournalWarning` and a log record; when what could
not be written is a task id (or an uncertain submit), the warning carries the task id (or the
request) itself, so it is in the notebook output even though it is not on disk.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..contract.errors import JournalError, SubmitUncertainError, ValidationError
from ..contract.models import Task
from ..contract.priors import DurationPrior
from .history import Entry, History, this_host
from .job import Job
from .journal_db import JournalDB, data_home

if TYPE_CHECKING:
    from .client import LumaClient

__all__ = (
    "Entry",
    "History",
    "Journal",
    "JournalWarning",
    "data_home",
    "open_journal",
    "service_of",
    "teach_policy",
    "unfinished_jobs",
)

log = logging.getLogger("luma_nb.journal")
T = TypeVar("T")
#: Request keys that are never written, whoever calls :meth:`Journal.intent`.
_SECRET_KEYS = frozenset({"webhook_secret", "api_key", "authorization", "apikey", "key"})
#: "Not given" for ``webhook_secret`` (None means "the submit had no secret").
UNSET: Any = object()
#: Options an uncertain request carries over to its resubmit (``loop`` only for imagine).
_OPTIONS = ("image_url", "end_image_url", "enhance_prompt", "aspect_ratio", "webhook_url")


class JournalWarning(UserWarning):
    """The journal could not be written; the message says what was not recorded."""


class _Shared:
    """State shared by every handle on one journal file in this process."""

    def __init__(self, path: Path) -> None:
        self.db = JournalDB(path)
        self.lock = threading.Lock()
        #: Intents that could not be written, by their (negative) stand-in ids.
        self.unsaved: dict[int, dict[str, Any]] = {}
        self.next_unsaved = -1
        #: The last state written per task id, so polling writes only changes.
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.observe_broken = False


class Journal:
    """The journal file (default: ``journal.sqlite3`` in :func:`data_home`).

    Opening is lazy: nothing touches the disk before the first write or query. ``service``
    names the API the submits go to; a client binds its own (see :meth:`bind`). The methods
    ``intent``/``submitted``/``uncertain``/``rejected``/``observe``/``saved`` are what the client
    and the media code call; they never raise (see the module's failure policy).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, service: str = "") -> None:
        resolved = Path(path).expanduser() if path is not None else data_home() / "journal.sqlite3"
        self._shared = _Shared(resolved.absolute())
        self.service = service

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._shared.db.path

    def bind(self, service: str) -> Journal:
        """A handle on the same file whose submits are recorded for ``service``."""
        other = Journal.__new__(Journal)
        other._shared = self._shared
        other.service = service
        return other

    def __repr__(self) -> str:
        bound = f", service={self.service!r}" if self.service else ""
        return f"Journal({str(self.path)!r}{bound})"

    # -- failure policy -----------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        log.error("%s", message)
        warnings.warn(message, JournalWarning, stacklevel=4)

    def _try(self, what: str, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except Exception as error:
            self._warn(f"luma_nb journal at {self.path}: could not {what} ({error}).")
            return None

    # -- what the client calls ----------------------------------------------------------------

    def intent(self, path: str, request: Mapping[str, Any], *, service: str | None = None) -> int:
        """Record a submit about to be sent; returns the entry id (negative if not written)."""
        body = {k: v for k, v in request.items() if str(k).lower() not in _SECRET_KEYS}
        now = time.time()
        prompt, parent = body.get("prompt"), body.get("parent_task_id")
        values: dict[str, Any] = {
            "created": now,
            "updated": now,
            "service": service or self.service or "unknown",
            "kind": {"/luma-extend": "extend", "/luma-imagine": "imagine"}.get(path, path),
            "endpoint": path,
            "prompt": prompt if isinstance(prompt, str) else None,
            "parent": parent if isinstance(parent, str) else None,
            # ASCII JSON: escapes keep odd text (lone surrogates) exact and storable.
            "request": json.dumps(body, default=str),
            "state": "sending",
            "pid": os.getpid(),
            "host": this_host(),
        }
        try:
            return self._shared.db.insert(values)
        except Exception as error:
            # Keep the intent in memory: submitted()/uncertain() try again with the outcome.
            self._warn(
                f"luma_nb journal at {self.path} cannot be written ({error}); the submit goes "
                "ahead, and its task id is shown in a warning if it cannot be recorded."
            )
            with self._shared.lock:
                entry_id = self._shared.next_unsaved
                self._shared.next_unsaved -= 1
                self._shared.unsaved[entry_id] = values
            return entry_id

    def _finish(self, entry_id: int, changes: dict[str, Any]) -> None:
        """Apply the outcome of a submit to its entry (writing the whole entry if deferred)."""
        changes["updated"] = time.time()
        if entry_id < 0:
            with self._shared.lock:
                values = self._shared.unsaved.get(entry_id)
            if values is None:
                return
            self._shared.db.insert({**values, **changes})
            with self._shared.lock:
                self._shared.unsaved.pop(entry_id, None)
        else:
            self._shared.db.update(entry_id, changes)

    def submitted(self, entry_id: int, task_id: str, *, service: str | None = None) -> None:
        """The service answered with ``task_id`` (``service``: who answered, when now known)."""
        changes = {"state": "submitted", "task_id": task_id, "status": "pending"}
        if service:
            changes["service"] = service
        try:
            self._finish(entry_id, changes)
        except Exception as error:
            with self._shared.lock:
                self._shared.unsaved.pop(entry_id, None)
            self._warn(
                f"luma_nb could not write task {task_id} to the journal at {self.path} ({error}). "
                f"The job was submitted and may be charged: keep this task id; re-attach later "
                f"with client.job({task_id!r})."
            )

    @overload
    def uncertain(self, entry_id: int, reason: str) -> None: ...

    @overload
    def uncertain(self, *, service: str | None = None) -> list[Entry]: ...

    def uncertain(
        self, entry_id: int | None = None, reason: str | None = None, *, service: str | None = None
    ) -> list[Entry] | None:
        """With an entry id: record that its answer was lost. Without: list uncertain submits.

        The listing holds submits whose answer was lost and submits cut off while being sent
        (still "sending" after :data:`~luma_nb._journal_view.STALE_SENDING` seconds, or at once
        when the process that was sending them is gone), oldest first; ``service``
        narrows it to one service.
        """
        if entry_id is None:
            return self._uncertain_list(service)
        try:
            self._finish(entry_id, {"state": "uncertain", "reason": reason})
        except Exception as error:
            with self._shared.lock:
                request = self._shared.unsaved.pop(entry_id, {}).get("request", "?")
            self._warn(
                f"luma_nb could not record an uncertain submit in the journal at {self.path} "
                f"({error}). It may have created a paid job; the request was: {request}"
            )
        return None

    def rejected(self, entry_id: int, reason: str) -> None:
        """The submit was refused (or failed before it could reach the service)."""
        if entry_id < 0:
            with self._shared.lock:
                self._shared.unsaved.pop(entry_id, None)
            return
        self._try(
            "record a refused submit",
            lambda: self._finish(entry_id, {"state": "rejected", "reason": reason}),
        )

    def observe(self, task: Task) -> None:
        """Record a task's status, progress, video URL or failure reason when it changed."""
        if not task.task_id:
            return
        state = (task.status, task.percentage, task.video_url, task.error)
        shared = self._shared
        with shared.lock:
            if shared.seen.get(task.task_id) == state:
                return
        values = {
            "status": task.status,
            "percentage": task.percentage,
            "video_url": task.video_url,
            "error": task.error,
            "updated": time.time(),
        }
        try:
            # A finished or failed task never goes back to unfinished (a late webhook).
            shared.db.update_task(task.task_id, values, open_only=not task.is_terminal)
        except Exception as error:
            if not shared.observe_broken:  # one warning, not one per poll
                shared.observe_broken = True
                self._warn(f"luma_nb journal at {self.path}: could not record progress ({error}).")
            return
        shared.observe_broken = False
        with shared.lock:
            shared.seen[task.task_id] = state

    def saved(self, task_id: str, path: str | os.PathLike[str]) -> None:
        """Record the local file a task's video was saved to."""
        where = str(Path(path).absolute())
        self._try(
            f"record that task {task_id} was saved to {where}",
            lambda: self._shared.db.update_task(
                task_id, {"local_file": where, "updated": time.time()}
            ),
        )

    # -- queries --------------------------------------------------------------------------------

    def _select(self, where: str, params: list[Any], tail: str) -> list[Entry]:
        try:
            rows = self._shared.db.select(where, params, tail=tail)
        except sqlite3.DatabaseError as error:  # damaged, or not a journal at all
            raise JournalError(str(self.path), error) from None
        return [Entry.from_row(row) for row in rows]

    def entries(self, limit: int = 50, *, service: str | None = None) -> list[Entry]:
        """The newest ``limit`` entries, newest first."""
        where, params = ("service = ?", [service]) if service else ("1", [])
        return self._select(where, params, f"ORDER BY id DESC LIMIT {max(0, int(limit))}")

    def durations(self, service: str | None = None, *, limit: int = 200) -> list[float]:
        """Seconds from submit to the last change of finished tasks, oldest first (for the
        polling policy's duration prior). Tasks saved or followed for over an hour are left out;
        an absent or unreadable journal gives none."""
        if not self.path.exists():
            return []
        where = "state = 'submitted' AND status = 'finished' AND local_file IS NULL"
        params: list[Any] = []
        if service:
            where += " AND service = ?"
            params.append(service)
        try:
            tail = f"ORDER BY id DESC LIMIT {int(limit)}"
            rows = self._shared.db.select(where, params, tail=tail)
        except sqlite3.Error:
            return []
        seconds = [float(r["updated"]) - float(r["created"]) for r in reversed(rows)]
        return [s for s in seconds if 0.0 < s <= 3600.0]

    def entry(self, entry_id: int) -> Entry:
        """One entry; raises :class:`ValidationError` for an unknown id."""
        found = self._select("id = ?", [entry_id], "")
        if not found:
            raise ValidationError(f"no journal entry #{entry_id} in {self.path}.", field="entry_id")
        return found[0]

    def unfinished(self, service: str | None = None) -> list[Entry]:
        """Submitted tasks whose end was not seen yet, oldest first (one entry per task id)."""
        where = (
            "state = 'submitted' AND task_id IS NOT NULL "
            "AND (status IS NULL OR status NOT IN ('finished', 'failed'))"
        )
        params: list[Any] = []
        if service:
            where += " AND service = ?"
            params.append(service)
        where += (
            " AND id IN (SELECT MAX(id) FROM entries WHERE task_id IS NOT NULL GROUP BY task_id)"
        )
        return self._select(where, params, "ORDER BY id")

    def _uncertain_list(self, service: str | None) -> list[Entry]:
        # Every "sending" entry is read: whether its writer was killed is known only here.
        where = "state IN ('uncertain', 'sending')"
        params: list[Any] = []
        if service:
            where += " AND service = ?"
            params.append(service)
        return [e for e in self._select(where, params, "ORDER BY id") if e.is_uncertain]

    def history(
        self, limit: int = 50, *, client: Callable[[], LumaClient] | None = None
    ) -> History:
        """The newest ``limit`` submits as a :class:`History` table; ``client`` makes the client
        its ``resubmit`` uses when none is passed there."""
        return History(self.entries(limit), self, client)

    # -- acting on entries ----------------------------------------------------------------------

    def dismiss(self, entry_id: int) -> None:
        """Stop offering an entry for resume or resubmit (nothing is sent)."""
        self.entry(entry_id)
        self._shared.db.update(entry_id, {"state": "dismissed", "updated": time.time()})

    def resubmit(
        self,
        entry_id: int,
        *,
        client: LumaClient,
        webhook_secret: str | None = UNSET,
    ) -> Job:
        """Send an uncertain submit again - a new, paid job. Only ever done when called.

        ``client`` must use the entry's service.
        The webhook secret was never stored: for a submit that had a ``webhook_url``, pass
        ``webhook_secret=`` again (``None`` if it had none). Raises :class:`ValidationError` when
        the entry is not uncertain (or another kernel resubmitted it first).
        """
        entry = self.entry(entry_id)
        if not entry.is_uncertain:
            raise ValidationError(
                f"journal entry #{entry.id} is {entry.shown_status}; only uncertain submits can "
                "be resubmitted.",
                field="entry_id",
            )
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
        if not self._claim(entry.id, "resubmitted", was=entry.state):
            raise ValidationError(
                f"journal entry #{entry.id} changed meanwhile (resubmitted or dismissed "
                "elsewhere).",
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
            self._claim(entry.id, entry.state, was="resubmitted")
            raise
        self._link(entry.id, job.task_id)
        return job

    def _claim(self, entry_id: int, state: str, *, was: str) -> bool:
        """Move an entry from state ``was`` to ``state``; False when it was not in ``was``."""
        changes = {"state": state, "updated": time.time()}
        return self._shared.db.update(entry_id, changes, only_state=was)

    def _link(self, entry_id: int, task_id: str) -> None:
        """Record the task that replaced an uncertain entry."""
        self._try(
            "link the resubmit", lambda: self._shared.db.update(entry_id, {"follow_up": task_id})
        )


# -- a client's journal -------------------------------------------------------------------------


def service_of(client: LumaClient) -> str:
    """The journal's name for a client's service: ``"sandbox"`` when it said so, else its URL."""
    return "sandbox" if client.is_sandbox else client.base_url


def open_journal(journal: Any, client: LumaClient) -> Any:
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
    return journal  # an object with a journal's methods (the client checked it has them)


def teach_policy(client: LumaClient) -> int:
    """Give the client's polling policy the durations its journal has seen (once per journal
    file and policy); returns how many. Policies without a :class:`DurationPrior` get none."""
    journal = client._journal
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


def unfinished_jobs(client: LumaClient) -> list[Job]:
    """Jobs for every unfinished submit of ``client``'s service (see :meth:`LumaClient.resume`)."""
    journal = client.journal
    if not isinstance(journal, Journal):
        raise ValidationError(
            "this client records no journal (journal=None), so there is nothing to resume.",
            field="journal",
        )
    return jobs_for(client, journal.unfinished(service_of(client)))
