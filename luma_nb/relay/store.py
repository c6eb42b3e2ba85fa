"""What the relay keeps: students, submits, tasks and the credit ledger, behind one interface.

:class:`RelayStore` is the whole surface the relay needs from its database, so another backend
(PostgreSQL for a JupyterHub deployment) can be added beside :mod:`luma_nb.relay.sqlite`
without touching the server. Every method is atomic on its own; :meth:`RelayStore.reserve`
checks the budgets and holds the credits in one transaction.

The ledger is append-only: ``reserve`` holds credits for a submit, ``charge`` records that the
upstream accepted it, ``release`` gives the credits back for a submit the upstream refused, and
``refund`` for a task that failed upstream. Spent = reserved - released - refunded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = (
    "Budgets",
    "LedgerEntry",
    "Refusal",
    "RelayStore",
    "Student",
    "SubmitRecord",
)


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
    """``reserved`` (on its way), ``forwarded``, ``uncertain`` (answer lost) or ``refused``."""
    task_id: str | None = None
    """The upstream task id, once known."""
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


class RelayStore(Protocol):
    """The relay's database. Implementations must be safe to call from several threads."""

    # -- class and students ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A class-wide setting (``class_name``), or None."""
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

    def recover(self, reason: str) -> int:
        """Mark submits left ``reserved`` by a crash as uncertain; returns how many."""
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
        """Give up every lease ``holder`` has."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...
