"""Job: a submitted (or re-attached) task, with its last snapshot and ways to wait for it."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from ..contract import rendering
from ..contract import validation as check
from ..contract.errors import TaskFailedError
from ..contract.models import Task
from ..contract.polling import PollPolicy

if TYPE_CHECKING:
    from IPython.display import Video

    from ..api.client import LumaClient
    from ..contract.waiting import Waiter
    from .watch import Listener, Watch

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
        """A wait that keeps this job's snapshot up to date, then calls ``on_progress``."""
        check.callback(on_progress, "on_progress")

        def seen(task: Task) -> None:
            self.observe(task)
            if on_progress is not None:
                on_progress(task)

        return self.client._waiter(
            self.task_id, timeout, seen, fresh=self._fresh, last=self.task, poll=poll
        )

    def wait(
        self,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """Block until the task finishes; see :meth:`LumaClient.wait`."""
        if self._settled():
            return self.task  # type: ignore[return-value]
        return self.client._drive(self._waiter(timeout, on_progress, poll))

    async def wait_async(
        self,
        *,
        timeout: float = 1800,
        on_progress: Callable[[Task], Any] | None = None,
        poll: PollPolicy | None = None,
    ) -> Task:
        """Like :meth:`wait`, for ``await`` (the event loop stays free)."""
        if self._settled():
            return self.task  # type: ignore[return-value]
        return await self.client._drive_async(self._waiter(timeout, on_progress, poll))

    def __await__(self) -> Generator[Any, None, Task]:
        """``task = await job`` waits with the default deadline."""
        return self.wait_async().__await__()

    def __repr__(self) -> str:
        seen = self.task.describe() if self.task is not None else "not looked at yet"
        return f"<Job {self.task_id} {seen}>"

    # -- display (notebooks) ----------------------------------------------------------------

    def watch(self, *, timeout: float = 1800, listener: Listener | None = None) -> Watch:
        """Follow the job on the shared background watcher and return at once.

        The returned :class:`~luma_nb.jobs.watcher.Watch` is awaitable (``task = await job.watch()``
        piggybacks on the watcher instead of polling again) and has ``wait()`` and ``cancel()``.
        """
        from .watcher import watch

        return watch(self, timeout=timeout, listener=listener)

    def video(self, **kwargs: Any) -> Video:
        """An ``IPython.display.Video`` of the finished job (see :func:`luma_nb.media.video`)."""
        clip: Video = rendering.video(self, **kwargs)
        return clip

    def show(self, *, wait: bool | None = None, timeout: float = 1800) -> None:
        """Display progress, then the video.

        In Jupyter (``wait=None``) the live progress view is displayed and the call returns at
        once; the video appears in the view when the job finishes. Outside a kernel (terminal
        IPython, plain Python), or with ``wait=True``, it blocks: one progress line per change,
        then the result (video HTML for front-ends that render it). Ctrl-C stops the wait and
        the watching it started.
        """
        rendering.job_show(self, wait=wait, timeout=timeout)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        """A live progress widget in a kernel (with text and HTML fallbacks); text elsewhere."""
        bundle: dict[str, Any] = rendering.job_bundle(self)
        return bundle
