"""The class's settings the teacher changes while the relay runs, kept in the store's ``meta``.

Being in the store, they outlive a restart and are shared by every relay process on the same
class database: a budget raised on the dashboard beats the one the relay was started with
(those are only the defaults, used until the teacher sets one). Also here: the teacher's token
(its hash only) and the secret that signs the dashboard's session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from .store import Budgets, Controls, RelayStore, Student

__all__ = (
    "TEACHER_PREFIX",
    "BudgetView",
    "ClassSettings",
    "budget_view",
    "budgets_for",
    "class_budgets",
    "cookie_secret",
    "issue_teacher_token",
    "read_settings",
    "remember_start_budgets",
    "set_approve",
    "set_class_budget",
    "set_class_paused",
    "set_student_budget",
    "teacher_session",
)

#: A teacher's token starts with this (a student's with ``lnbc_``), so one pasted is
#: recognisable, and never taken for the other.
TEACHER_PREFIX = "lnbt_"

_PAUSED = "paused"
_APPROVE = "approve"
_CLASS_BUDGET = "class_budget"
_STUDENT_BUDGET = "student_budget"
# The budgets the relay was started with (its flags), for views that have no relay at hand.
_START_CLASS_BUDGET = "start_class_budget"
_START_STUDENT_BUDGET = "start_student_budget"
_TEACHER_HASH = "teacher_token_hash"
_COOKIE_SECRET = "cookie_secret"  # noqa: S105 - the name of a stored secret
_NO_LIMIT = "none"


@dataclass(frozen=True)
class ClassSettings:
    """The class-wide switches."""

    paused: bool = False
    """The teacher paused every student's submits (fetches keep working)."""
    approve: bool = False
    """Approve mode: each submit waits for the teacher's approval of its prompt."""


def read_settings(store: RelayStore, meta: Mapping[str, str] | None = None) -> ClassSettings:
    """The class's switches as stored now (or in ``meta``, what ``store.meta()`` read)."""
    found = store.meta() if meta is None else meta
    return ClassSettings(found.get(_PAUSED) == "1", found.get(_APPROVE) == "1")


def set_class_paused(store: RelayStore, paused: bool) -> None:
    """Pause (or resume) the whole class's submits."""
    store.set_meta(_PAUSED, "1" if paused else "0")


def set_approve(store: RelayStore, on: bool) -> None:
    """Turn approve mode on or off (submits already held keep waiting for a decision)."""
    store.set_meta(_APPROVE, "1" if on else "0")


def _budget(meta: Mapping[str, str], key: str, default: float | None) -> float | None:
    value = meta.get(key)
    if value is None:
        return default
    if value == _NO_LIMIT:
        return None
    try:
        return float(value)
    except ValueError:
        return default


def _check(budget: float | None) -> str:
    if budget is None:
        return _NO_LIMIT
    if not budget >= 0 or budget == float("inf"):
        raise ValueError(f"a budget is a number of credits, 0 or more, not {budget!r}")
    return repr(float(budget))


def set_class_budget(store: RelayStore, budget: float | None) -> None:
    """The whole class's budget (None: no limit); beats the relay's start-up setting."""
    store.set_meta(_CLASS_BUDGET, _check(budget))


def set_student_budget(store: RelayStore, budget: float | None) -> None:
    """Each student's budget (None: no limit); a student's own budget beats it."""
    store.set_meta(_STUDENT_BUDGET, _check(budget))


def class_budgets(
    store: RelayStore, defaults: Budgets, meta: Mapping[str, str] | None = None
) -> Budgets:
    """The class and per-student budgets: the stored ones (or those in ``meta``, what
    ``store.meta()`` read), else ``defaults``."""
    found = store.meta() if meta is None else meta
    return Budgets(
        _budget(found, _CLASS_BUDGET, defaults.class_budget),
        _budget(found, _STUDENT_BUDGET, defaults.student_budget),
    )


def remember_start_budgets(store: RelayStore, budgets: Budgets) -> None:
    """Keep the budgets a relay starts with (``--class-budget``/``--student-budget``), so
    ``luma-nb class status`` shows what the running relay enforces."""
    store.set_meta(_START_CLASS_BUDGET, _check(budgets.class_budget))
    store.set_meta(_START_STUDENT_BUDGET, _check(budgets.student_budget))


#: Where a budget the teacher set on the dashboard (or with ``relay.teacher``) came from.
DASHBOARD = "the dashboard"


@dataclass(frozen=True)
class BudgetView:
    """The budgets enforced now, and where each came from."""

    budgets: Budgets
    """The class's and each student's budget (None: no limit)."""
    class_from: str | None
    """``"the dashboard"``, ``"--class-budget"``, or None (no limit was ever set)."""
    student_from: str | None
    """``"the dashboard"``, ``"--student-budget"``, or None."""

    def describe(self) -> str:
        """``class 600 (from --class-budget), each student 30 (set on the dashboard)``."""
        return (
            f"class {_shown(self.budgets.class_budget, self.class_from)}, "
            f"each student {_shown(self.budgets.student_budget, self.student_from)}"
        )


def _shown(value: float | None, origin: str | None) -> str:
    text = "no limit" if value is None else f"{value:g}"
    if origin is None:
        return text
    return f"{text} ({'set on' if origin == DASHBOARD else 'from'} {origin})"


def budget_view(store: RelayStore, defaults: Budgets | None = None) -> BudgetView:
    """The class's budgets and their origin. ``defaults`` are the running relay's start-up
    budgets; without them (``luma-nb class status``), those the last relay started with."""
    meta = store.meta()
    if defaults is None:
        defaults = Budgets(
            _budget(meta, _START_CLASS_BUDGET, None),
            _budget(meta, _START_STUDENT_BUDGET, None),
        )
    budgets = class_budgets(store, defaults, meta)

    def origin(key: str, default: float | None, flag: str) -> str | None:
        if meta.get(key) is not None:
            return DASHBOARD
        return None if default is None else flag

    return BudgetView(
        budgets,
        origin(_CLASS_BUDGET, defaults.class_budget, "--class-budget"),
        origin(_STUDENT_BUDGET, defaults.student_budget, "--student-budget"),
    )


def budgets_for(
    store: RelayStore,
    student: Student,
    defaults: Budgets,
    meta: Mapping[str, str] | None = None,
    own: Controls | None = None,
) -> Budgets:
    """The budgets one submit of ``student`` is checked against (their own budget first);
    ``meta`` and ``own`` (their controls) when read already."""
    budgets = class_budgets(store, defaults, meta)
    mine = (store.controls_of(student) if own is None else own).budget
    return Budgets(budgets.class_budget, mine if mine is not None else budgets.student_budget)


# -- the teacher's login -----------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def issue_teacher_token(store: RelayStore) -> str:
    """A new teacher token (shown once; only its hash is stored). It replaces the previous
    one, and so ends every dashboard session opened with it."""
    token = TEACHER_PREFIX + secrets.token_urlsafe(24)
    store.set_meta(_TEACHER_HASH, _hash(token))
    return token


def teacher_session(store: RelayStore, token: str | None = None) -> str | None:
    """The session value of the current teacher token (None when none was issued); with
    ``token``, None too unless that is the teacher's token."""
    stored = store.get_meta(_TEACHER_HASH)
    if not stored:
        return None
    if token is not None and not hmac.compare_digest(_hash(token), stored):
        return None
    # The cookie carries a digest of the hash, never the hash itself.
    return hashlib.sha256(b"luma-nb teacher session\0" + stored.encode()).hexdigest()[:32]


def cookie_secret(store: RelayStore) -> str:
    """The secret that signs the dashboard's cookies (made once, kept in the class's store)."""
    secret = store.get_meta(_COOKIE_SECRET)
    if not secret:
        secret = secrets.token_urlsafe(32)
        store.set_meta(_COOKIE_SECRET, secret)
    return secret
