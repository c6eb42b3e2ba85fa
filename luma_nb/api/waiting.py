"""Waiting by polling ``/fetch``: one loop, driven by blocking code or by asyncio."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contract import validation as check
from ..contract.errors import ValidationError
from ..contract.models import Task
from ..contract.polling import PollPolicy
from ..contract.waiting import Waiter

if TYPE_CHECKING:
    from .client import LumaClient

__all__ = ("drive", "drive_async", "make_waiter")


def make_waiter(
    client: LumaClient,
    task_id: str,
    timeout: float,
    on_progress: Callable[[Task], Any] | None,
    *,
    fresh: bool = False,
    last: Task | None = None,
    poll: PollPolicy | None = None,
) -> Waiter:
    """A :class:`Waiter` for ``task_id`` on ``client``'s clock and polling policy."""
    check.callback(on_progress, "on_progress")
    if poll is not None and not callable(getattr(poll, "schedule", None)):
        raise ValidationError(
            f"poll must be a polling policy such as FixedPolicy(3.0), got {poll!r}.",
            field="poll",
        )
    policy = poll or client.poll
    return Waiter(
        check.task_id(task_id),
        timeout,
        policy.schedule(client._clock(), fresh=fresh),
        client._clock,
        request_timeout=client.timeout,
        on_progress=on_progress,
        last=last,
    )


def drive(client: LumaClient, waiter: Waiter) -> Task:
    """Poll until ``waiter`` says the task is done, sleeping with the client's ``sleep``."""
    while True:
        client._sleep(waiter.next_delay())
        try:
            task = client.fetch(waiter.task_id, timeout=waiter.request_timeout())
        except Exception as error:
            waiter.on_error(error)
            continue
        if waiter.on_task(task):
            return task


async def drive_async(client: LumaClient, waiter: Waiter) -> Task:
    """Like :func:`drive`, awaiting; every HTTP call runs in a worker thread."""
    import asyncio  # here, not at the top: it costs ~40 ms of every `import luma_nb`

    while True:
        await asyncio.sleep(waiter.next_delay())
        try:
            # The HTTP call runs in a worker thread: the event loop (the kernel) stays free.
            task = await asyncio.to_thread(
                client.fetch, waiter.task_id, timeout=waiter.request_timeout()
            )
        except Exception as error:
            waiter.on_error(error)
            continue
        if waiter.on_task(task):
            return task
