"""What the relay checks before any credit is held: bodies (with the package's own validation)
and each student's submit rate."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..contract import validation as check
from ..contract.errors import ValidationError

__all__ = ("FETCH_MANY_LIMITS", "SUBMIT_FIELDS", "RateLimiter", "fetch_ids", "submit_body")

#: The fields each submit endpoint accepts. Webhooks are not forwarded: the relay watches the
#: tasks itself, and a student's URL would make the upstream post to anywhere.
SUBMIT_FIELDS: dict[str, frozenset[str]] = {
    "/luma-extend": frozenset(
        {"parent_task_id", "prompt", "image_url", "end_image_url", "enhance_prompt", "aspect_ratio"}
    ),
    "/luma-imagine": frozenset(
        {"prompt", "image_url", "end_image_url", "enhance_prompt", "aspect_ratio", "loop"}
    ),
}
#: The documented bounds of ``task_ids`` in ``/fetch-many``.
FETCH_MANY_LIMITS = (2, 20)


def submit_body(path: str, payload: Any) -> dict[str, Any]:
    """The validated body to forward for a submit to ``path``; raises ValidationError."""
    if not isinstance(payload, Mapping):
        raise ValidationError("Request body must be a JSON object")
    fields = {k: v for k, v in payload.items() if v is not None}  # null = left out
    if "webhook_url" in fields or "webhook_secret" in fields:
        raise ValidationError(
            "The class relay does not forward webhooks; it watches your task for you "
            "(leave webhook_url empty).",
            field="webhook_url",
        )
    unknown = sorted(set(fields) - SUBMIT_FIELDS[path])
    if unknown:
        raise ValidationError(f"Unknown field(s) {', '.join(unknown)} for {path}")
    body: dict[str, Any] = {}
    if path == "/luma-extend":
        body["parent_task_id"] = check.task_id(fields.get("parent_task_id"), "parent_task_id")
    body["prompt"] = check.prompt(fields.get("prompt"))
    for name in ("image_url", "end_image_url"):
        url = check.http_url(fields.get(name), name)
        if url is not None:
            body[name] = url
    body["enhance_prompt"] = check.flag(fields.get("enhance_prompt", False), "enhance_prompt")
    body["aspect_ratio"] = check.aspect_ratio(fields.get("aspect_ratio", "1:1"))
    if path == "/luma-imagine" and check.optional_flag(fields.get("loop"), "loop") is not None:
        body["loop"] = fields["loop"]
    return body


def fetch_ids(path: str, payload: Any) -> list[str]:
    """The task ids of a ``/fetch`` (one) or ``/fetch-many`` body; raises ValidationError."""
    if not isinstance(payload, Mapping):
        raise ValidationError("Request body must be a JSON object")
    if path == "/fetch":
        return [check.task_id(payload.get("task_id"))]
    ids = check.task_ids(payload.get("task_ids"))
    low, high = FETCH_MANY_LIMITS
    if not low <= len(ids) <= high:
        raise ValidationError(f"task_ids must hold between {low} and {high} ids")
    return ids


class RateLimiter:
    """At most ``per_minute`` submits per student in any 60 seconds (a sliding window)."""

    def __init__(self, per_minute: float | None, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, student_id: int) -> float | None:
        """Count one submit; None when allowed, else the seconds until one is allowed again."""
        if self.per_minute is None:
            return None
        now = self._clock()
        with self._lock:
            window = self._seen.setdefault(student_id, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.per_minute:
                return max(0.1, window[0] + 60.0 - now)
            window.append(now)
            return None

    def give_back(self, student_id: int) -> None:
        """Uncount the latest submit (it was refused before reaching the upstream)."""
        with self._lock:
            window = self._seen.get(student_id)
            if window:
                window.pop()
