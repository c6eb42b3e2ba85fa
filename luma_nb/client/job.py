"""Job: a submitted (or re-attached) task, its last snapshot, and waiting for it.

There is one way to wait in each setting: ``job.wait()`` blocks (scripts), ``await job`` awaits
(notebooks: the kernel stays free; ``job.wait_async(...)`` is the same with options), and
``job.watch()`` hands the job to the one background watcher thread (widgets, many jobs). The
first two poll ``/fetch`` by the same rules (:class:`~luma_nb.contract.waiting.Waiter`), the
one blocking, the other awaiting with each HTTP call in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from ..contract import validation as check
from ..contract.errors import TaskFailedError, ValidationError
from ..contract.models import Task, moved_method
from ..contract.polling import PollPolicy
from ..contract.waiting import Waiter

if TYPE_CHECKING:
    from .client import LumaClient
    from .watcher import Listener, Watch

__all__ = ("Job",)


class Job:
    """A task at the service, as seen by one client.

    ``task_id`` names it; ``task`` is the last snapshot seen (None before the first look when
    re-attached); ``request`` is what was submitted, without secrets (empty when re-attached).
    """

    def __init__(
        self,
        client: LumaClient,
        task_id: str,
        *,
        task: Task | None = None,
        request: Mapping[str, Any] | None = None,
        fresh: bool = False,
    ) -> None:
        self.client = client
        self.task_id = task_id
        self.task = task
        self.request: dict[str, Any] = dict(request or {})
        self._fresh = fresh

    # -- state ------------------------------------------------------------------------------

    @property
    def prompt(self) -> str | None:
        """The prompt it was submitted with, when known."""
        value = self.request.get("prompt")
        return value if isinstance(value, str) else None

    @property
    def parent_task_id(self) -> str | None:
        """The parent of an extend, when known."""
        value = self.request.get("parent_task_id")
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str:
        """The last status seen (``"unknown"`` before the first look)."""
        return self.task.status if self.task is not None else "unknown"

    @property
    def done(self) -> bool:
        """True once the last snapshot is finished or failed."""
        return self.task is not None and self.task.is_terminal

    @property
    def fresh(self) -> bool:
        """True for a job just submitted by this client and not looked at since."""
        return self._fresh

    def observe(self, task: Task) -> None:
        """Take a snapshot that arrived another way (a poll of the watcher, a webhook).

        A finished or failed job never goes back: a late, out-of-order update is ignored.
        """
        if self.task is not None and self.task.is_terminal and not task.is_terminal:
            return  # a late, out-of-order update (a delayed webhook) never undoes the end
        self.task = task
        self._fresh = False

    def refresh(self) -> Task:
        """Fetch the task's current state once and remember it."""
        task = self.client.fetch(self.task_id)
        self.observe(task)
        return task

    # -- waiting ----------------------------------------------------------------------------

    def _settled(self) -> bool:
        """True when the last snapshot is finished; raises when it failed."""
        if self.task is not None and self.task.is_failed:
            raise TaskFailedError(self.task)
        return self.task is not None and self.task.is_finished

    def _waiter(
        self,
        timeout: float,
        on_progress: Callable[[Task], Any] | None,
        poll: PollPolicy | None,
    ) -> Waiter:
        """The waiting rules for this job: keep its snapshot up to date, then ``on_progress``."""
        check.callback(on_progress, "on_progress")
        if poll is not None and not callable(getattr(poll, "schedule", None)):
            raise ValidationError(
                f"poll must be a polling policy such as FixedPolicy(3.0), got {poll!r}.",
                field="poll",
            )

        def seen(task: Task) -> None:
            self.observe(task)
            if on_progress is not None:
                on_progress(task)

        client = self.client
        policy = poll or client.poll
        return Waiter(
            self.task_id,
            timeout,
            policy.schedule(client._clock(), fresh=self._fresh),
            client._clock,
            request_timeout=client.timeout,
            on_progress=seen,
            last=self.task,
        )

    def wait(
        self,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """Block until the task finishes and return it (scripts; in a notebook, ``await job``).

        ``on_progress(task)`` is called on every observed change. Transient errors are retried
        within the deadline of ``timeout`` seconds. Raises :class:`TaskFailedError` or
        :class:`WaitTimeout`; Ctrl-C stops the wait (the task keeps running at the service).
        """
        if self._settled():
            return self.task  # type: ignore[return-value]
        waiter = self._waiter(timeout, on_progress, poll)
        client = self.client
        while True:
            client._sleep(waiter.next_delay())
            try:
                task = client.fetch(self.task_id, timeout=waiter.request_timeout())
            except Exception as error:
                waiter.on_error(error)
                continue
            if waiter.on_task(task):
                return task

    async def wait_async(
        self,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """``await job``, with options: like :meth:`wait`, but the event loop stays free (each
        HTTP call runs in a worker thread)."""
        import asyncio  # here, not at the top: it costs ~40 ms of every `import luma_nb`

        if self._settled():
            return self.task  # type: ignore[return-value]
        waiter = self._waiter(timeout, on_progress, poll)
        while True:
            await asyncio.sleep(waiter.next_delay())
            try:
                task = await asyncio.to_thread(
                    self.client.fetch, self.task_id, timeout=waiter.request_timeout()
                )
            except Exception as error:
                waiter.on_error(error)
                continue
            if waiter.on_task(task):
                return task

    def __await__(self) -> Generator[Any, None, Task]:
        """``task = await job`` waits with the default deadline."""
        return self.wait_async().__await__()

    def __repr__(self) -> str:
        seen = self.task.describe() if self.task is not None else "not looked at yet"
        return f"<Job {self.task_id} {seen}>"

    # -- the background watcher (widgets, many jobs) -----------------------------------------

    def watch(self, *, timeout: float = 1800, listener: Listener | None = None) -> Watch:
        """Follow the job on the shared background watcher and return at once.

        The returned :class:`~luma_nb.client.watcher.Watch` is awaitable (``task = await
        job.watch()`` piggybacks on the watcher instead of polling again) and has ``wait()``
        and ``cancel()``.
        """
        from .watcher import watch

        return watch(self, timeout=timeout, listener=listener)

    # -- display ----------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        raise moved_method("Job", name)

    def _repr_html_(self) -> str:
        """HTML of the job (the player once finished). In a kernel, the notebook layer shows a
        live progress view instead (:func:`luma_nb.show`)."""
        from ..contract.html import job_html  # loaded when first shown

        return job_html(self)
