"""Progress cards: each followed job as the plain dict a view's ES module draws.

A :class:`Deck` is the list of cards of one view (the progress view, the cards under the
extend form). The one watcher thread (:mod:`luma_nb.client.watcher`) tells each card of a
change; the deck then writes the whole list into its view's synced trait. Buttons on a card
(Cancel, Save MP4) come back as messages that :meth:`Deck.handle` answers.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...client.watcher import DEFAULT_TIMEOUT, Watch, Watcher, get_watcher
from ...contract.plain_words import explain
from .. import display as text
from . import _recent
from .parents import poster_src, title_of

if TYPE_CHECKING:
    from ...client.job import Job

__all__ = ("Card", "Deck")


class Card:
    """One job followed by the watcher; :meth:`state` is what the view shows of it."""

    def __init__(self, deck: Deck, job: Job) -> None:
        self.deck = deck
        self.job = job
        self.message = ""
        self.kind = "info"
        self.video: dict[str, Any] | None = None
        self.saving = False
        self._timing = ""
        self._done: list[Callable[[Card], Any]] = []
        self._ended = False
        self._done_lock = threading.Lock()
        parent = job.parent_task_id
        #: What the card says it continues (the parent's title, when the parent is known).
        self.continues = ""
        if parent:
            prompt = _recent.prompt_of(job.client, parent)
            self.continues = f"continues {title_of(prompt, parent)}" if prompt else "an extend"
        _recent.remember(job)
        watcher = deck.watcher or get_watcher()
        if job.done:
            # Already over: drawn here, at once (nothing changes later, so no second writer).
            self.watch: Watch = watcher.watch(job, timeout=deck.timeout)
            self._changed(self.watch, publish=False)
        else:
            self.watch = watcher.watch(job, timeout=deck.timeout, listener=self._changed)

    @property
    def state_name(self) -> str:
        """``watching``, then ``finished``, ``failed``, ``timeout``, ``error`` or ``cancelled``."""
        return self.watch.state

    def on_done(self, callback: Callable[[Card], Any]) -> None:
        """Call ``callback(card)`` when watching ends (from the watcher thread), or at once
        when it has already ended."""
        with self._done_lock:
            if not self._ended:
                self._done.append(callback)
                return
        callback(self)

    def state(self) -> dict[str, Any]:
        """The card as JSON for the view (escaped by the view: it sets text, never HTML)."""
        job, task, state = self.job, self.job.task, self.watch.state
        if state == "watching":
            pct = task.percentage if task is not None and task.percentage is not None else 0.0
            words = text.status_text(task) if task is not None else "submitted"
        elif state == "finished":
            pct, words = 100.0, f"finished in {text.format_seconds(self.watch.elapsed())}"
        elif state == "failed":
            pct, words = 100.0, "failed"
        else:
            pct = task.percentage if task is not None and task.percentage is not None else 0.0
            words = {"cancelled": "stopped watching", "timeout": "still running"}.get(
                state, "could not be followed"
            )
        return {
            "task_id": job.task_id,
            "title": text.prompt_preview(job.prompt) or f"Task {job.task_id}",
            "prompt": job.prompt or "",
            "parent_task_id": job.parent_task_id or "",
            "continues": self.continues,
            "state": state,
            "pct": int(pct),
            "words": words,
            "timing": self._timing if state == "watching" else "",
            "message": self.message,
            "kind": self.kind,
            "video": self.video,
            "can_cancel": state == "watching",
            "can_save": state == "finished" and not self.saving,
            "can_extend": state == "finished",
        }

    # -- the watcher thread -----------------------------------------------------------------

    def _changed(self, watch: Watch, *, publish: bool = True) -> None:
        try:
            if watch.state == "watching":
                self._timing = self._timing_of(watch)
            else:
                self._end(watch)
        except Exception as error:  # shown, never lost in a thread
            self.message, self.kind = f"Could not update this card: {error}", "error"
        if publish:
            self.deck.publish()
        if watch.state != "watching":
            with self._done_lock:
                self._ended, callbacks = True, list(self._done)
                self._done.clear()
            for callback in callbacks:
                try:
                    callback(self)
                except Exception as error:
                    self.message, self.kind = f"A done-callback failed: {error}", "error"
                    self.deck.publish()

    @staticmethod
    def _timing_of(watch: Watch) -> str:
        now = watch.watcher.clock()
        parts = [f"elapsed {text.format_seconds(watch.elapsed(now))}"]
        eta = watch.eta()
        if eta is not None and watch.samples:
            left = max(0.0, eta - (now - watch.samples[-1][0]))
            parts.append(f"about {text.format_seconds(left)} left")
        return " · ".join(parts)

    def _end(self, watch: Watch) -> None:
        state, task = watch.state, self.job.task
        if state == "finished":
            self.video = self._video()
        elif state == "cancelled":
            self.message = (
                "Stopped watching. The job keeps running at the service; "
                "watch it again with job.show()."
            )
            self.kind = "warn"
        elif state == "timeout":
            self.message = (
                "Not finished in time. The job keeps running at the service; "
                "watch it again with job.show()."
            )
            self.kind = "warn"
        elif state == "failed":
            self.message = (task.error if task is not None else None) or "The task failed."
            self.kind = "error"
        else:
            error = watch.error or RuntimeError(state)
            self.message = explain(error, service=self.job.client.service).text
            self.kind = "error"

    def _video(self) -> dict[str, Any] | None:
        """The player's source by the notebook's video route (the route note only as a title)."""
        from ..media import video

        try:
            made = video(self.job, width=None, keep=False)
        except Exception as error:
            self.message, self.kind = str(error), "error"
            return None
        if made.embed:
            data = made.data if isinstance(made.data, bytes) else b""
            src = "data:video/mp4;base64," + base64.b64encode(data).decode("ascii")
        else:
            src = str(made.url or made.filename or "")
        route = getattr(made, "route", None)
        return {
            "src": src,
            "poster": poster_src(self.job.client, self.job.task_id) or "",
            "route": getattr(route, "how", "direct"),
            "title": getattr(route, "detail", ""),
            "width": self.deck.video_width,
        }

    # -- buttons (kernel thread) ------------------------------------------------------------

    def cancel(self) -> None:
        """Stop watching (the job keeps running at the service)."""
        self.watch.cancel()

    def save(self) -> Path | None:
        """Save the MP4 into the deck's folder; the card says where (or why not)."""
        from ..media import save

        self.saving = True
        self.message, self.kind = "Saving…", "info"
        self.deck.publish()
        started = time.monotonic()
        try:
            path = save(self.job, self.deck.save_dir)
        except Exception as error:
            self.message, self.kind = f"Could not save the MP4: {error}", "error"
            return None
        finally:
            self.saving = False
            self.deck.publish()
        took = time.monotonic() - started
        self.message, self.kind = f"Saved to {path} ({took:.1f} s).", "ok"
        self.deck.publish()
        return path


class Deck:
    """The cards of one view, newest first or in the order added; writes them with ``publish``.

    Parameters:
        publish: called with the list of card dicts after every change (from any thread).
        timeout: seconds each job is watched before its card says it is still running.
        save_dir: where "Save MP4" puts files.
        video_width: the player's width in pixels.
        watcher: the :class:`Watcher` (the process-wide one by default).
    """

    def __init__(
        self,
        publish: Callable[[list[dict[str, Any]]], None],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        save_dir: str | Path = ".",
        video_width: int = 480,
        watcher: Watcher | None = None,
        newest_first: bool = True,
    ) -> None:
        self._publish = publish
        self.timeout = timeout
        self.save_dir = Path(save_dir)
        self.video_width = video_width
        self.watcher = watcher
        self.newest_first = newest_first
        self.cards: list[Card] = []
        self._lock = threading.RLock()

    def add(self, job: Job) -> Card:
        """Follow ``job`` in a new card and show it."""
        card = Card(self, job)
        with self._lock:
            if self.newest_first:
                self.cards.insert(0, card)
            else:
                self.cards.append(card)
        self.publish()
        return card

    def card(self, task_id: object) -> Card | None:
        """The card of ``task_id``, or None."""
        with self._lock:
            return next((c for c in self.cards if c.job.task_id == task_id), None)

    def publish(self) -> None:
        """Write every card's state to the view (under a lock: the newest write wins whole)."""
        with self._lock:
            self._publish([card.state() for card in self.cards])

    def handle(self, content: dict[str, Any]) -> bool:
        """Answer a card's button (``cancel``, ``save``); True when ``content`` was one."""
        action = content.get("type")
        if action not in ("cancel", "save"):
            return False
        card = self.card(content.get("task_id"))
        if card is None:
            return True
        if action == "cancel":
            card.cancel()
        else:
            card.save()
        return True
