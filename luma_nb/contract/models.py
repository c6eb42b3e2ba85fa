"""Typed results of the API, parsed tolerantly from the JSON the provider sends.

The contract has awkward parts that the parsers accept exactly as documented: ``percentage`` is a
string (``"40"``) on the Luma pages and a number elsewhere; the finished Luma payload carries no
``status`` at all, only a ``video_url``; statuses unknown to us are kept as they came.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .statuses import ASPECT_RATIOS, KNOWN_STATUSES, TERMINAL_STATUSES

__all__ = (
    "ASPECT_RATIOS",
    "KNOWN_STATUSES",
    "Account",
    "Task",
)

#: Longest service note shown beside a status.
_NOTE_MAX = 120


def parse_percentage(value: Any) -> float | None:
    """``"40"``, ``"40.5"``, ``40``, ``" 40 % "`` -> float in [0, 100]; anything else -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float: not a percentage
            return None
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    return min(100.0, max(0.0, number))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # an int of more than 4300 digits (Python's int-to-str limit)
            return None
    return None


def _reason(data: Mapping[str, Any]) -> str | None:
    """The reason of a failure: ``message``, then ``error``, then ``errors[].msg``."""
    for key in ("message", "error"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, Mapping):
            inner = value.get("message") or value.get("msg")
            if isinstance(inner, str) and inner.strip():
                return inner.strip()
    errors = data.get("errors")
    if isinstance(errors, list):
        texts = [e.get("msg") for e in errors if isinstance(e, Mapping)]
        joined = "; ".join(t for t in texts if isinstance(t, str) and t)
        if joined:
            return joined
    return None


def _note(value: Any) -> str | None:
    """A service's note on one line, shortened to :data:`_NOTE_MAX`; None when empty."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= _NOTE_MAX else text[: _NOTE_MAX - 1] + "…"


def moved_method(owner: str, name: str) -> AttributeError:
    """The error for a method that moved to a notebook-layer function, saying where it went.

    ``task.video()``, ``job.video()`` and ``job.show()`` became ``luma_nb.video(x)`` and
    ``luma_nb.show(x)``: showing needs IPython, which the model's layer never imports.
    """
    if name in ("video", "show"):
        variable = owner.lower()
        return AttributeError(
            f"{owner}.{name}() is now luma_nb.{name}({variable}) "
            f"(showing lives in the notebook layer)"
        )
    return AttributeError(f"{owner!r} object has no attribute {name!r}")


@dataclass(frozen=True)
class Task:
    """One snapshot of a task, as ``/fetch`` (or a webhook) returned it."""

    task_id: str
    """The task's id (a UUID for the real service)."""
    task_type: str | None = None
    """``"luma"`` for imagine, ``"luma-ext"`` for extend; None when the service did not say."""
    status: str = "unknown"
    """Lower-case status. ``"finished"`` when a ``video_url`` is present even without a status."""
    percentage: float | None = None
    """Progress 0-100 when the service reported one (it sends strings such as ``"40"``)."""
    video_url: str | None = None
    """URL of the MP4 once finished."""
    error: str | None = None
    """The reason of a failed task (its ``message`` or ``error`` field)."""
    note: str | None = None
    """What the task waits for, when the service says (``progress_note``: the offline sandbox
    sends "waiting for a renderer (3rd in line)", a class relay "waiting for your teacher's
    approval"); None once it ended. Part of the snapshot, so a new note is progress."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The JSON object exactly as received."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, task_id: str | None = None) -> Task:
        """Parse a fetch result or webhook body; ``task_id`` fills in when the body lacks one."""
        tid = _text(data.get("task_id")) or _text(data.get("id")) or task_id or ""
        video_url = _text(data.get("video_url")) or None
        raw_status = _text(data.get("status"))
        status = raw_status.strip().lower() if raw_status and raw_status.strip() else ""
        error = _reason(data)
        if not status:
            if video_url:
                status = "finished"
            elif error:
                status = "failed"
            else:
                status = "unknown"
        # A finished task that reports a URL is at 100 % even if no percentage was sent.
        percentage = parse_percentage(data.get("percentage"))
        if status == "finished" and video_url:
            percentage = 100.0
        return cls(
            task_id=tid,
            task_type=_text(data.get("task_type")),
            status=status,
            percentage=percentage,
            video_url=video_url,
            error=error if status == "failed" else None,
            note=None if status in TERMINAL_STATUSES else _note(data.get("progress_note")),
            raw=dict(data),
        )

    @property
    def is_finished(self) -> bool:
        """True when the task finished with a video."""
        return self.status == "finished"

    @property
    def is_failed(self) -> bool:
        """True when the task ended in failure."""
        return self.status == "failed"

    @property
    def is_terminal(self) -> bool:
        """True when the task will not change any more (finished or failed)."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_known_status(self) -> bool:
        """False for statuses the provider does not document (shown as they came)."""
        return self.status in KNOWN_STATUSES

    def describe(self) -> str:
        """A short human text: ``processing 40%``, ``finished``, ``failed: reason``.

        A service's note on what the task waits for follows: ``processing 90% (waiting for a
        renderer, 3rd in line)``.
        """
        note = self.note
        if note is not None:
            return f"{self._describe()} ({note})"
        return self._describe()

    def _describe(self) -> str:
        if self.status == "processing" and self.percentage is not None:
            return f"processing {self.percentage:g}%"
        if self.status == "failed" and self.error:
            return f"failed: {self.error}"
        return self.status

    def __getattr__(self, name: str) -> Any:
        raise moved_method("Task", name)

    def _repr_html_(self) -> str:
        """HTML of this snapshot (the player once finished); ``luma_nb.video(task)`` for more."""
        from .html import task_html  # a module of the same layer, loaded when first shown

        return task_html(self)


@dataclass(frozen=True)
class Account:
    """The account behind the API key, from ``GET /account``."""

    email: str | None = None
    """The account's e-mail address."""
    credits: float | None = None
    """Credits left."""
    total_images: int | None = None
    """Images generated so far, as the provider counts them."""
    plan: str | None = None
    """The plan's name."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The JSON object exactly as received."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Account:
        """Parse the account body, tolerating missing or oddly typed fields."""
        credits = data.get("credits")
        total = data.get("total_images")
        try:
            credits_value = None if credits is None else float(credits)
        except (TypeError, ValueError, OverflowError):
            credits_value = None
        try:
            total_value = None if total is None else int(total)
        except (TypeError, ValueError, OverflowError):
            total_value = None
        return cls(
            email=_text(data.get("email")),
            credits=credits_value if math.isfinite(credits_value or 0.0) else None,
            total_images=total_value,
            plan=_text(data.get("plan")),
            raw=dict(data),
        )
