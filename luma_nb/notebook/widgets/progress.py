"""ProgressView: the live card of one job - a moving bar, the status in words, then the video.

What ``luma_nb.show(job)`` (and a job as a cell's result) shows in a kernel. An anywidget
widget: its state is the ``cards`` trait (see :mod:`.cards`), drawn by ``static/luma.js``.
"Extend this" under the finished video opens a prompt box in the same view; each extend made
there is followed by a new card below (a chain), and told to the ``on_extend`` callbacks.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ...client.watcher import DEFAULT_TIMEOUT, Watch, Watcher
from ...contract import validation as check
from ...contract.errors import ValidationError
from ...contract.plain_words import explain
from .. import display as text
from .cards import Card, Deck

if TYPE_CHECKING:
    from ...client.job import Job

__all__ = ("ProgressView",)

STATIC = pathlib.Path(__file__).parent / "static"


class ProgressView(anywidget.AnyWidget):
    """A live progress card of ``job``; watching starts at once (one shared background thread).

    Parameters:
        job: the job to follow.
        timeout: seconds to watch before the card says it is still running (the job goes on).
        save_dir: where "Save MP4" puts the file (``<task_id>.mp4``).
        video_width: width of the player in pixels.
        watcher: the ``Watcher`` to use (the process-wide one by default).

    ``value`` is the job's last :class:`~luma_nb.Task`; ``watch`` the underlying ``Watch``;
    ``on_done(callback)`` registers ``callback(view)`` for the end; ``on_extend(callback)``
    registers ``callback(job)`` for each extend made with "Extend this"; :meth:`extend` does what
    that box does. The ``cards`` trait is written only by the watcher thread once watching
    started (and by the buttons' handlers).
    """

    _esm = STATIC / "luma.js"
    _css = STATIC / "luma.css"
    view = traitlets.Unicode("progress").tag(sync=True)
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)
    service = traitlets.Unicode("").tag(sync=True)
    where = traitlets.Unicode("").tag(sync=True)
    extend_error = traitlets.Unicode("").tag(sync=True)
    max_prompt = traitlets.Int(check.MAX_PROMPT_LENGTH).tag(sync=True)

    def __init__(
        self,
        job: Job,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        save_dir: str | Path = ".",
        video_width: int = 480,
        watcher: Watcher | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.service = job.client.service
        # Where it runs, for the card's title attribute only (one status line per view: the
        # form's; a card repeats none).
        self.where = text.DEMO_NOTE if job.client.is_sandbox else ""
        self._extend_callbacks: list[Callable[[Job], Any]] = []
        self.deck = Deck(
            self._publish,
            timeout=timeout,
            save_dir=save_dir,
            video_width=video_width,
            watcher=watcher,
            newest_first=False,
        )
        self._first: Card = self.deck.add(job)
        self.on_msg(self._on_message)

    # -- public -----------------------------------------------------------------------------

    @property
    def value(self) -> Any:
        """The job's last snapshot (a :class:`~luma_nb.Task`, or None)."""
        return self.job.task

    @property
    def watch(self) -> Watch:
        """The watch of this view's job."""
        return self._first.watch

    @property
    def save_dir(self) -> Path:
        """Where "Save MP4" puts files."""
        return self.deck.save_dir

    @property
    def jobs(self) -> list[Job]:
        """The job of this view, then the extends made from it here, in order."""
        return [card.job for card in self.deck.cards]

    def on_done(self, callback: Callable[[ProgressView], Any]) -> None:
        """Call ``callback(view)`` (from the watcher thread) when watching the job ends."""
        self._first.on_done(lambda card: callback(self))

    def on_extend(self, callback: Callable[[Job], Any]) -> None:
        """Call ``callback(job)`` after each extend made with "Extend this" in this view."""
        self._extend_callbacks.append(callback)

    def extend(self, prompt: str, parent_task_id: str | None = None) -> Job | None:
        """Extend a finished video of this view (its job by default) with ``prompt``.

        The new job is followed in a card below. Returns it, or None when nothing was sent
        (``extend_error`` then says why, in plain words).
        """
        parent = parent_task_id or self.deck.cards[-1].job.task_id
        card = self.deck.card(parent)
        client = card.job.client if card is not None else self.job.client
        try:
            clean = check.prompt(prompt)
        except ValidationError as error:
            self.extend_error = str(error)
            return None
        try:
            job = client.extend(parent, clean, aspect_ratio=_ratio_of(card) or "1:1")
        except Exception as error:
            self.extend_error = explain(error, service=client.service, parent_task_id=parent).text
            return None
        self.extend_error = ""
        self.deck.add(job)
        for callback in list(self._extend_callbacks):
            try:
                callback(job)
            except Exception as error:
                self.extend_error = f"An on_extend callback failed: {error}"
        return job

    def __repr__(self) -> str:
        prompt = text.prompt_preview(self.job.prompt)
        return f"ProgressView(prompt={prompt!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget for front-ends that have the widget manager; text and HTML for the rest."""
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        bundle, metadata = data if isinstance(data, tuple) else (data, None)
        bundle = dict(bundle)
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = text.job_html(self.job, note=self.where or None)
        return (bundle, metadata) if metadata is not None else bundle

    # -- messages from the view ---------------------------------------------------------------

    def _publish(self, cards: list[dict[str, Any]]) -> None:
        self.cards = cards

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if self.deck.handle(content):
            return
        if content.get("type") == "extend":
            prompt = content.get("prompt")
            parent = content.get("task_id")
            self.extend(
                prompt if isinstance(prompt, str) else "",
                parent if isinstance(parent, str) else None,
            )


def _ratio_of(card: Card | None) -> str | None:
    """The ratio an extend of ``card``'s job keeps (its own request's, or its parent's)."""
    if card is None:
        return None
    from .parents import parent_ratio

    return parent_ratio(card.job.client, card.job.task_id)
