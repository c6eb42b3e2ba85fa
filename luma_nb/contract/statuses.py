"""The provider's task statuses and aspect ratios, and which statuses mean what."""

from __future__ import annotations

__all__ = (
    "ASPECT_RATIOS",
    "KNOWN_STATUSES",
    "TERMINAL_STATUSES",
    "WAITING_STATUSES",
)

#: Aspect ratios accepted by the client (the provider's newer list plus Luma's own 9:21).
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")

#: Task statuses the provider documents (its Statuses page lists both ``retry`` and
#: ``retrying``). Others are shown as they come and polled further.
KNOWN_STATUSES: tuple[str, ...] = (
    "pending",
    "staged",
    "starting",
    "processing",
    "retry",
    "retrying",
    "finished",
    "failed",
)

#: The task will not change any more.
TERMINAL_STATUSES = frozenset({"finished", "failed"})
#: Queued or waiting to be (re)tried: no progress to show yet, polled on like the others.
WAITING_STATUSES = frozenset({"pending", "staged", "retry", "retrying"})
