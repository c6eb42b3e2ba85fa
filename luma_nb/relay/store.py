"""What the relay keeps: students, submits, tasks and the credit ledger, behind one interface.

:class:`RelayStore` is the whole surface the relay needs from its database, so another backend
(PostgreSQL for a JupyterHub deployment) can be added beside :mod:`luma_nb.relay.sqlite`
without touching the server. Every method is atomic on its own; :meth:`RelayStore.reserve`
checks the budgets and holds the credits in one transaction.

The ledger is append-only: ``reserve`` holds credits for a submit, ``charge`` records that the
upstream accepted it, ``release`` gives the credits back for a submit the upstream refused, and
``refund`` for a task that failed upstream. Spent = reserved - released - refunded.

The teacher's controls live here too: each student's pause and own budget
(:class:`Controls`), class-wide settings as ``meta`` keys (see :mod:`luma_nb.relay.settings`),
submits *held* for the teacher's approval under a relay-made task id, and the resolution of
uncertain submits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = (
    "NAME_ONLY",
    "Budgets",
    "ClassTask",
    "Controls",
    "GalleryItem",
    "LedgerEntry",
    "Refusal",
    "RelayStore",
    "Student",
    "SubmitRecord",
    "TaskUpdate",
)

#: What a store keeps as the token hash of a student enrolled by name (a JupyterHub user, who
#: has no class token): this prefix and the name. No hex SHA-256 can equal it (it has a colon),
#: so no class token ever matches such a student.
NAME_ONLY = "name:"


@dataclass(frozen=True)
class Student:
    """A member of the class, as the relay knows them (never with their token)."""

    id: int
    """Row id."""
    name: str
    """Display name (unique in the class)."""
    revoked: bool = False
    """True once the token was revoked: every request with it is refused."""


@dataclass(frozen=True)
class Budgets:
    """Credit limits; None is no limit."""

    class_budget: float | None = None
    """Credits the whole class may spend."""
    student_budget: float | None = None
    """Credits each student may spend."""


@dataclass(frozen=True)
class Controls:
    """The teacher's controls of one student."""

    paused: bool = False
    """True while the teacher paused this student's submits (fetches keep working)."""
    budget: float | None = None
    """This student's own budget, replacing the per-student one (None: the class's rule)."""


@dataclass(frozen=True)
class ClassTask:
    """One task of a student, as the teacher's table counts it."""

    task_id: str
    """The id the student holds (relay-made for a submit held for approval)."""
    student: str
    """The student's name."""
    status: str
    """The task's last known status (``pending`` while held for approval)."""
    error: str | None = None
    """The failure's reason, for a failed task."""
    updated: float = 0.0
    """Wall-clock time of the last change."""


@dataclass(frozen=True)
class Refusal:
    """Why a submit was not reserved (the relay answers 402 with ``message``)."""

    message: str
    """What to tell the student."""


@dataclass(frozen=True)
class SubmitRecord:
    """One submit a student made through the relay."""

    id: int
    """Row id."""
    student: str
    """The student's name."""
    endpoint: str
    """``/luma-extend`` or ``/luma-imagine``."""
    request: Mapping[str, Any]
    """The validated body that was (or was to be) forwarded."""
    cost: float
    """Credits held for it."""
    state: str
    """``reserved`` (on its way), ``held`` (waiting for the teacher's approval), ``queued``
    (waiting in the class's queue at the relay), ``forwarded``, ``uncertain`` (answer lost) or
    ``refused``."""
    task_id: str | None = None
    """The task id the student holds, once known (relay-made for a held submit)."""
    note: str | None = None
    """Why it is uncertain or refused."""
    created: float = 0.0
    """Wall-clock time of the submit."""


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the append-only credit ledger."""

    id: int
    """Row id (the order of events)."""
    at: float
    """Wall-clock time."""
    student: str | None
    """The student's name."""
    submit_id: int | None
    """The submit it is about."""
    kind: str
    """``reserve``, ``charge``, ``release`` or ``refund``."""
    credits: float
    """Credits moved."""
    reason: str = ""
    """Why (the upstream's message for a release or refund)."""
    task_id: str | None = field(default=None)
    """The task it is about, when there is one."""


@dataclass(frozen=True)
class GalleryItem:
    """A student's task as the class gallery sees it.

    A task is *visible* in the gallery when it finished with a video, its student shares it
    (the default) and the teacher has not hidden it. Every change to one of these (a task
    finishing, a student's choice, the teacher's) takes the next number of one class-wide
    sequence, so a live gallery asks "what changed after ``seq``?" and gets both the videos
    to add and those to take away.
    """

    task_id: str
    """The upstream task id."""
    student: str
    """The student's name."""
    seq: int
    """The number of the last change to this item (class-wide, increasing)."""
    finished: bool
    """True when the task finished with a video."""
    shared: bool
    """The student's choice (default True)."""
    hidden: bool
    """True when the teacher hid it."""
    video_url: str | None = None
    """The video, once finished."""
    prompt: str = ""
    """The prompt the student sent."""
    updated: float = 0.0
    """Wall-clock time of the last change."""

    @property
    def visible(self) -> bool:
        """Shown to the class: finished, shared and not hidden."""
        return self.finished and self.shared and not self.hidden


@dataclass(frozen=True)
class TaskUpdate:
    """What the upstream said about one task, for :meth:`RelayStore.update_tasks`."""

    task_id: str
    """The task."""
    body: Mapping[str, Any]
    """Its fetch body."""
    terminal: bool
    """True once it finished or failed."""
    failure: str | None = None
    """Why it failed (a first failure refunds its credits)."""


class RelayStore(Protocol):
    """The relay's database. Implementations must be safe to call from several threads."""

    # -- class and students ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A class-wide setting (``class_name``), or None."""
        ...

    def meta(self) -> dict[str, str]:
        """Every class-wide setting, by key, in one read."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Store a class-wide setting."""
        ...

    def add_student(self, name: str, token_hash: str) -> Student:
        """Add a student with the hash of their token; raises ValueError if the name is taken."""
        ...

    def student_by_hash(self, token_hash: str) -> Student | None:
        """The student whose token hashes to ``token_hash``, if not revoked."""
        ...

    def revoke(self, name: str) -> bool:
        """Revoke a student's token at once; False when there is no such student."""
        ...

    def enroll(self, name: str) -> Student | None:
        """The student called ``name``, added without a token when new (a JupyterHub user,
        enrolled on first use); None when that student was revoked."""
        ...

    def students(self) -> list[Student]:
        """Every student, in the order they were added."""
        ...

    # -- money -------------------------------------------------------------------------------

    def reserve(
        self,
        student: Student,
        endpoint: str,
        request: Mapping[str, Any],
        cost: float,
        budgets: Budgets,
    ) -> int | Refusal:
        """Atomically check both budgets and hold ``cost``; the new submit's id, or a Refusal."""
        ...

    def forwarded(self, submit_id: int, task_id: str, task_type: str) -> None:
        """The upstream accepted the submit: record its task and charge the held credits."""
        ...

    def uncertain(self, submit_id: int, reason: str) -> None:
        """The upstream answer was lost: the credits stay held, the teacher sees it."""
        ...

    def release(self, submit_id: int, reason: str) -> None:
        """The upstream refused the submit: give the held credits back."""
        ...

    def recover(self, reason: str, before: float | None = None) -> int:
        """Mark submits left ``reserved`` by a crash as uncertain; returns how many.

        With ``before`` (wall-clock), only those last changed before it: a relay sharing the
        database with live ones recovers only reservations too old to be on their way.
        """
        ...

    def spent(self, student: Student | None = None) -> float:
        """Credits spent (held, charged, minus given back) by a student or the whole class."""
        ...

    def submits(self, state: str | None = None) -> list[SubmitRecord]:
        """Every submit (in a ``state``, if given), oldest first."""
        ...

    def ledger(self) -> list[LedgerEntry]:
        """The whole ledger, oldest first."""
        ...

    # -- tasks -------------------------------------------------------------------------------

    def task_body(self, task_id: str, student: Student) -> dict[str, Any] | None:
        """The last fetch body of a task the student may see (own or published), else None."""
        ...

    def task_count(self, student: Student) -> int:
        """How many tasks the student made."""
        ...

    def update_task(
        self, task_id: str, body: Mapping[str, Any], *, terminal: bool, failure: str | None
    ) -> None:
        """Store what the upstream said; a first ``failure`` refunds the task's credits."""
        ...

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> None:
        """:meth:`update_task` for many tasks at once (a poll tick's answers)."""
        ...

    def open_tasks(self) -> list[str]:
        """Ids of the tasks not finished or failed yet, oldest first."""
        ...

    def publish(self, task_id: str, body: Mapping[str, Any] | None = None) -> None:
        """Let every student of the class fetch this task (adding it when unknown)."""
        ...

    # -- leases (several relay processes on one database) -------------------------------------

    def claim(self, task_ids: Sequence[str], holder: str, seconds: float) -> list[str]:
        """Take or renew the polling lease of each task for ``seconds``; the ids now held."""
        ...

    def leases(self) -> dict[str, tuple[str, float]]:
        """Every polling lease: task id -> (holder, wall-clock expiry)."""
        ...

    def drop_leases(self, holder: str) -> None:
        """Give up every lease ``holder`` has, and its heartbeat."""
        ...

    def heartbeat(self, holder: str, seconds: float) -> None:
        """Say that relay ``holder`` is alive for the next ``seconds``."""
        ...

    def live_relays(self) -> list[str]:
        """The relays whose heartbeat has not expired."""
        ...

    # -- the class gallery -------------------------------------------------------------------

    def set_shared(self, task_id: str, student: Student, shared: bool) -> bool:
        """A student's choice to show their task in the class gallery; False when the task is
        not theirs."""
        ...

    def set_hidden(self, task_id: str, hidden: bool) -> bool:
        """The teacher hides (or shows again) a task in the gallery; False for an unknown task."""
        ...

    def may_extend(self, task_id: str, student: Student) -> bool:
        """True when ``student`` may extend the task the relay knows as ``task_id``: their
        own, one the teacher published, or a classmate's video shown in the class gallery."""
        ...

    def gallery(self, after: int = 0) -> tuple[int, list[GalleryItem]]:
        """Students' tasks changed after sequence number ``after`` (all of them for 0), in the
        order of their changes, and the class's latest sequence number."""
        ...

    # -- the teacher's controls --------------------------------------------------------------

    def controls(self) -> dict[str, Controls]:
        """Every student's controls, by name (students never touched get the defaults)."""
        ...

    def controls_of(self, student: Student) -> Controls:
        """One student's controls (the defaults for a student never touched): what each of
        their submits is checked against."""
        ...

    def set_paused(self, name: str, paused: bool) -> bool:
        """Pause (or resume) one student's submits; False when there is no such student."""
        ...

    def set_budget(self, name: str, budget: float | None) -> bool:
        """Give one student their own budget (None: back to the class's rule); False when
        there is no such student."""
        ...

    def class_tasks(self) -> list[ClassTask]:
        """Every student's task, oldest first (for the teacher's table)."""
        ...

    def hold(self, submit_id: int, task_id: str, body: Mapping[str, Any]) -> None:
        """Keep a reserved submit for the teacher's approval under the relay-made ``task_id``,
        whose fetches answer ``body`` (a waiting status) until it is forwarded or rejected."""
        ...

    def take_held(self, submit_id: int) -> SubmitRecord | None:
        """Take a held submit to forward it (held -> reserved, once); None when it is not held
        (approved or rejected already)."""
        ...

    def reject(self, submit_id: int, reason: str) -> bool:
        """A held submit the teacher refused: its task fails with ``reason``, the credits are
        released; False when it is not held."""
        ...

    def resolve(self, submit_id: int, task_id: str | None, reason: str) -> bool:
        """Settle an uncertain submit: ``task_id`` is the upstream task it made (charged, then
        watched), or None for a submit that never ran (credits released). False when the
        submit is not uncertain."""
        ...

    def upstream_of(self, task_id: str) -> str | None:
        """The id to send upstream for a task the student names (a relay-made id maps to its
        upstream task; an id the relay did not make is itself); None while it waits for the
        teacher's approval."""
        ...

    # -- the class's submit queue (see luma_nb.relay.sql_queue) -------------------------------

    def admit(
        self, submit_id: int, max_running: int | None, task_id: str, body: Mapping[str, Any]
    ) -> str | None:
        """Decide for a reserved submit: None when it may go upstream now, else it waits in
        line (behind any queued submit, while ``max_running`` jobs run, or while the upstream's
        Retry-After lasts) and the relay-made task id its student holds (``task_id``, with the
        fetch ``body``, unless it has one already)."""
        ...

    def queue(
        self,
        submit_id: int,
        task_id: str,
        body: Mapping[str, Any],
        retry_at: float | None = None,
    ) -> str | None:
        """A reserved submit the upstream refused with 429 waits in line (keeping its place),
        and no submit goes up before ``retry_at`` (wall clock); the task id its student holds,
        or None when it is not reserved."""
        ...

    def next_queued(self, max_running: int | None) -> SubmitRecord | None:
        """Take the first submit in line to forward it (queued -> reserved, once), when fewer
        than ``max_running`` jobs run and no Retry-After lasts; else None."""
        ...

    def cancel_queued(self, submit_id: int, reason: str) -> bool:
        """The teacher cancels a queued submit: its task fails with ``reason``, its credits are
        released; False when it is not queued."""
        ...

    def running(self) -> int:
        """Submits on their way upstream plus forwarded ones whose task has not ended."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...
