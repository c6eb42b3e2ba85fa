"""storyboard(): chain extends - each one extends the previous result - shown as a timeline."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...client.defaults import default_client
from ...client.watcher import DEFAULT_TIMEOUT, Ending, Watcher
from ...contract.bodies import extend_bodies
from ...contract.errors import LumaError, WaitTimeout
from ..display import esc, job_html, prompt_preview, video_html
from . import _recent
from ._style import message_html
from .progress import ProgressView

if TYPE_CHECKING:
    from ...client.client import LumaClient
    from ...client.job import Job
    from ...contract.models import Task

__all__ = ("Storyboard", "storyboard")

_MARKS = {"waiting": "·", "submitting": "…", "running": "⏳", "done": "✓", "failed": "✗"}


def _validated(parent_task_id: Any, prompts: Iterable[str], options: dict[str, Any]) -> list[str]:
    """Every prompt and option checked before anything is sent (so bad input costs nothing)."""
    return [body["prompt"] for body in extend_bodies(parent_task_id, prompts, options)]


class Storyboard(widgets.VBox):  # type: ignore[misc]
    """A chain of extends run beside the kernel; see :func:`storyboard`.

    ``jobs`` are the jobs submitted so far; ``done``/``error`` tell how it ended; ``wait()``
    blocks, ``await board`` awaits, ``cancel()`` stops before the next submit (and stops watching).
    """

    def __init__(
        self,
        client: LumaClient,
        parent_task_id: str,
        prompts: Iterable[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        watcher: Watcher | None = None,
        **options: Any,
    ) -> None:
        self.prompts = _validated(parent_task_id, prompts, options)
        self.client = client
        self.parent_task_id = parent_task_id.strip()
        self.options = options
        self.timeout = timeout
        self.jobs: list[Job] = []
        self.error: BaseException | None = None
        self._watcher = watcher
        self._ending = Ending()
        self._stop = threading.Event()
        self._view: ProgressView | None = None
        self._cards = [widgets.HTML(self._card(i, "waiting")) for i in range(len(self.prompts))]
        self._timeline = widgets.HBox(self._cards, layout={"overflow": "auto"})
        self._current = widgets.VBox()
        self._message = widgets.HTML()
        self._final = widgets.HTML()
        title = widgets.HTML(
            f"<b>Storyboard</b>: {len(self.prompts)} extends of "
            f"<code>{esc(self.parent_task_id)}</code>, each continuing the previous one"
        )
        super().__init__(
            children=[title, self._timeline, self._current, self._message, self._final]
        )
        self._thread = threading.Thread(target=self._run, name="luma-nb-storyboard", daemon=True)
        self._thread.start()

    # -- the chain (its own thread; each clip is watched by the shared watcher) --------------

    def _card(self, index: int, state: str, task: Task | None = None) -> str:
        prompt = esc(prompt_preview(self.prompts[index]) or "")
        clip = _player(task, 160) if task is not None and task.video_url else ""
        return (
            '<div style="border:1px solid #ccc;border-radius:4px;padding:4px;width:170px;'
            f'font-size:85%">{_MARKS.get(state, "·")} <b>{index + 1}</b> {esc(state)}'
            f"<br>{prompt}<br>{clip}</div>"
        )

    def _run(self) -> None:
        parent = self.parent_task_id
        try:
            for index, prompt in enumerate(self.prompts):
                if self._stop.is_set():
                    raise LumaError(f"Storyboard cancelled before clip {index + 1}.")
                self._cards[index].value = self._card(index, "submitting")
                job = self.client.extend(parent, prompt, **self.options)
                self.jobs.append(job)
                _recent.remember(job)
                view = ProgressView(job, timeout=self.timeout, watcher=self._watcher)
                self._view = view
                self._current.children = (view,)
                self._cards[index].value = self._card(index, "running")
                try:
                    task = view.watch.wait()
                except Exception:
                    self._cards[index].value = self._card(index, "failed")
                    raise
                self._cards[index].value = self._card(index, "done", task)
                parent = job.task_id
            self._current.children = ()
            last = self.jobs[-1]
            self._final.value = f"<b>Final video</b> ({len(self.jobs)} extends):<br>" + _player(
                last.task, 640
            )
        except BaseException as error:
            self.error = error
            self._message.value = message_html(str(error))
        finally:
            self._ending.set()

    # -- public -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the chain ended (finished, failed or cancelled)."""
        return self._ending.is_set()

    @property
    def value(self) -> Task | None:
        """The final task once the chain finished, else None."""
        if self.done and self.error is None and self.jobs:
            return self.jobs[-1].task
        return None

    def result(self) -> Task:
        """The final (longest) task; raises the chain's error."""
        if not self.done:
            raise RuntimeError("the storyboard is still running")
        if self.error is not None:
            raise self.error
        task = self.jobs[-1].task
        assert task is not None
        return task

    def wait(self, timeout: float | None = None) -> Task:
        """Block until the chain ends; the final task (Ctrl-C interrupts the wait only)."""
        if not self._ending.wait(timeout):
            last = self.jobs[-1] if self.jobs else None
            tid = last.task_id if last else self.parent_task_id
            raise WaitTimeout(tid, timeout or 0.0, last.task if last else None)
        return self.result()

    async def wait_async(self) -> Task:
        """Await the end of the chain (the kernel's loop stays free)."""
        await self._ending.wait_async()
        return self.result()

    def __await__(self) -> Generator[Any, None, Task]:
        """``task = await board``."""
        return self.wait_async().__await__()

    def cancel(self) -> None:
        """Submit nothing more and stop watching the current clip (it keeps running remotely)."""
        self._stop.set()
        view = self._view
        if view is not None:
            view.watch.cancel()

    def __repr__(self) -> str:
        return f"Storyboard({len(self.prompts)} extends)"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        data["text/plain"] = repr(self)
        data["text/html"] = "".join(job_html(job, width=320) for job in self.jobs) or esc(
            repr(self)
        )
        return dict(data)


def _player(task: Task | None, width: int) -> str:
    """The task's player: by URL, or embedded where the browser cannot reach the sandbox."""
    from ..media import video

    try:
        return str(video(task, width=width, keep=False)._repr_html_())  # type: ignore[arg-type,no-untyped-call]
    except Exception:
        return video_html(task.video_url if task is not None else None, width=width)


def storyboard(
    client: LumaClient | None,
    parent_task_id: str,
    prompts: Iterable[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **options: Any,
) -> Storyboard:
    """Chain extends: the first extends ``parent_task_id``, each next one the previous result.

    All prompts and options are validated before the first submit (bad input costs nothing).
    Each extend is submitted only after the previous one finished. The returned widget shows
    the chain as a timeline of clips and ends with the final, longest video; ``.jobs`` holds the
    jobs, ``.wait()`` blocks and ``await`` awaits the final task. ``client=None`` means
    :func:`luma_nb.default_client`. Raises :class:`~luma_nb.ValidationError` for bad input.
    """
    if client is None:
        client = default_client()
    return Storyboard(client, parent_task_id, prompts, timeout=timeout, **options)
