"""storyboard(): chain extends - each one extends the previous result - shown as a timeline.

Each step is a card showing its own new part: its poster is taken where the step begins (its
parent's length), and its player starts there (``#t=``). Below the steps, "the whole story" is
the last video played from its start, with the story's first frame as its poster, so it does
not look like the last step again.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

from ...client.defaults import default_client
from ...client.watcher import DEFAULT_TIMEOUT, Ending, Watch, Watcher, get_watcher
from ...contract.bodies import extend_bodies
from ...contract.errors import LumaError, WaitTimeout
from .. import display as text
from ..media import video_seconds
from . import _recent
from .gallery import CardView, count_words, where_words

if TYPE_CHECKING:
    from ...client.client import LumaClient
    from ...client.job import Job
    from ...contract.models import Task

__all__ = ("Storyboard", "storyboard")


def _validated(parent_task_id: Any, prompts: Iterable[str], options: dict[str, Any]) -> list[str]:
    """Every prompt and option checked before anything is sent (so bad input costs nothing)."""
    return [body["prompt"] for body in extend_bodies(parent_task_id, prompts, options)]


class Storyboard(CardView):
    """A chain of extends run beside the kernel; see :func:`storyboard`.

    ``jobs`` are the jobs submitted so far; ``done``/``error`` tell how it ended; ``await
    board`` awaits the final task (``wait()`` blocks, for scripts); ``cancel()`` stops before
    the next submit (and stops watching).
    """

    def __init__(
        self,
        client: LumaClient,
        parent_task_id: str,
        prompts: Iterable[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        watcher: Watcher | None = None,
        card_width: int = 240,
        projector: bool = False,
        **options: Any,
    ) -> None:
        self.prompts = _validated(parent_task_id, prompts, options)
        super().__init__(kind="storyboard", card_width=card_width, projector=projector)
        self.client = client
        self.parent_task_id = parent_task_id.strip()
        self.options = options
        self.timeout = timeout
        self.jobs: list[Job] = []
        self.error: BaseException | None = None
        self._watcher = watcher
        self._watch: Watch | None = None
        self._ending = Ending()
        self._stop = threading.Event()
        self._steps: list[dict[str, Any]] = [
            {
                "id": f"step-{i + 1}",
                "label": f"{i + 1}",
                "prompt": text.prompt_preview(p) or "",
                "state": "waiting",
                "word": "waiting",
            }
            for i, p in enumerate(self.prompts)
        ]
        n = len(self.prompts)
        self.heading = f"Storyboard: {n} extend{'s' if n != 1 else ''}, each continuing the last"
        self._publish()
        self._thread = threading.Thread(target=self._run, name="luma-nb-storyboard", daemon=True)
        self._thread.start()

    # -- the chain (its own thread; each clip is watched by the shared watcher) --------------

    def _set(self, index: int, **fields: Any) -> None:
        with self._lock:
            self._steps[index] = {**self._steps[index], **fields}
        self._publish()

    def _publish(self) -> None:
        with self._lock:
            counts: dict[str, int] = {}
            for step in self._steps:
                counts[step["state"]] = counts.get(step["state"], 0) + 1
            self.cards = [dict(step) for step in self._steps]
            where = where_words(self.client) if hasattr(self, "client") else ""
            line = count_words(counts).replace("video", "step")
            self.status = " · ".join(p for p in (where, line) if p)

    def _run(self) -> None:
        parent = self.parent_task_id
        service, session = self.client.service, self.client.session
        first = self._parent_task()
        start = self._seconds(first)
        try:
            for index, prompt in enumerate(self.prompts):
                if self._stop.is_set():
                    raise LumaError(f"Storyboard cancelled before clip {index + 1}.")
                self._set(index, state="submitting", word="submitting…")
                job = self.client.extend(parent, prompt, **self.options)
                self.jobs.append(job)
                _recent.remember(job)
                self._set(index, state="running", word="submitted", title=f"task {job.task_id}")
                watch = (self._watcher or get_watcher()).watch(
                    job, timeout=self.timeout, listener=functools.partial(self._progress, index)
                )
                self._watch = watch
                try:
                    task = watch.wait()
                except Exception as error:
                    self._set(index, state="failed", word="failed", error=str(error))
                    raise
                card = self.finished_card(
                    f"step-{index + 1}",
                    task,
                    service=service,
                    session=session,
                    start=start or 0.0,
                    label=f"{index + 1}",
                    prompt=text.prompt_preview(prompt) or "",
                    word="finished",
                )
                length = self._seconds(task)
                if start is not None and length is not None:
                    card["length"] = f"{text.format_seconds(start)}–{text.format_seconds(length)}"
                self._set(index, **card)
                start = length
                parent = job.task_id
            self._show_story(first)
        except BaseException as error:
            self.error = error
            self.message = str(error)
        finally:
            self._ending.set()

    def _progress(self, index: int, watch: Watch) -> None:
        task = watch.task
        if watch.state != "watching" or task is None:
            return
        pct = task.percentage if task.percentage is not None else 0.0
        self._set(index, percent=pct, word=text.status_text(task))

    def _parent_task(self) -> Task | None:
        try:
            return self.client.fetch(self.parent_task_id)
        except LumaError:
            return None

    def _seconds(self, task: Task | None) -> float | None:
        url = text.safe_url(task.video_url) if task is not None else None
        return video_seconds(url, self.client.session) if url else None

    def _show_story(self, first: Task | None) -> None:
        last = self.jobs[-1].task
        assert last is not None
        card = self.finished_card(
            f"story-{last.task_id}",
            last,
            service=self.client.service,
            session=self.client.session,
            prompt=f"All {len(self.jobs)} extends, from the start",
        )
        # The poster of the story is its first frame (the parent's own poster), not the last
        # step's (which the last card already shows).
        opening = (
            self.finished_card(
                f"parent-{first.task_id}", first, service=self.client.service, session=None
            )
            if first is not None and first.video_url
            else None
        )
        card["poster"] = opening["poster"] if opening is not None else ""
        length = self._seconds(last)
        n = len(self.jobs)
        card["heading"] = f"The whole story: {n} extend{'s' if n != 1 else ''}" + (
            f", {text.format_seconds(length)}" if length is not None else ""
        )
        self.final = card

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
        """``await board.wait_async()`` is ``await board``."""
        await self._ending.wait_async()
        return self.result()

    def __await__(self) -> Generator[Any, None, Task]:
        """``task = await board``: the kernel's loop stays free."""
        return self.wait_async().__await__()

    def cancel(self) -> None:
        """Submit nothing more and stop watching the current clip (it keeps running remotely)."""
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.cancel()

    def __repr__(self) -> str:
        return f"Storyboard({len(self.prompts)} extends)"


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
    the chain as a timeline of cards, each with the poster of its own new part, and ends with
    the whole story; ``.jobs`` holds the jobs, ``await board`` awaits the final task
    (``board.wait()`` blocks, in a script). ``client=None`` means
    :func:`luma_nb.default_client`. Raises :class:`~luma_nb.ValidationError` for bad input.
    """
    if client is None:
        client = default_client()
    return Storyboard(client, parent_task_id, prompts, timeout=timeout, **options)
