"""ProgressView: the live view of one job - bar, status, elapsed, ETA, Cancel, then the video."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...client.watcher import DEFAULT_TIMEOUT, Watch, Watcher, get_watcher
from .. import display as text
from . import _recent
from ._style import message_html, note_html

if TYPE_CHECKING:
    from ...client.job import Job

__all__ = ("ProgressView", "offer_extend")

#: What the "Extend" button opens: the form registers itself (it imports this module, so this
#: module cannot import it).
_extend_form: Callable[..., widgets.Widget] | None = None


def offer_extend(form_class: Callable[..., widgets.Widget]) -> None:
    """Make the "Extend" button of progress views open ``form_class(client, parent_task_id=)``."""
    global _extend_form
    _extend_form = form_class


_CANCEL_TIP = "Stops watching; the job keeps running at the service (it cannot be stopped there)."
_BAR_STYLES = {
    "finished": "success",
    "failed": "danger",
    "error": "danger",
    "timeout": "warning",
    "cancelled": "warning",
}


class ProgressView(widgets.VBox):  # type: ignore[misc]
    """A live progress view of ``job``; watching starts at once (one shared background thread).

    Parameters:
        job: the job to follow.
        timeout: seconds to watch before giving up with a timeout message (the job goes on).
        save_dir: where "Save MP4" puts the file (``<task_id>.mp4``).
        video_width: width of the player in pixels.
        watcher: the ``Watcher`` to use (the process-wide one by default).

    ``value`` is the job's last :class:`~luma_nb.Task`; ``watch`` the underlying
    ``Watch``; ``on_done(callback)`` registers ``callback(view)`` for the end.
    Values are written only by the watcher thread once watching started.
    """

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
        self.job = job
        self.save_dir = Path(save_dir)
        self.video_width = video_width
        self._done_callbacks: list[Callable[[ProgressView], Any]] = []
        self._title = widgets.HTML(self._title_html())
        self._bar = widgets.IntProgress(
            value=0, min=0, max=100, bar_style="info", layout=widgets.Layout(width="60%")
        )
        self._status = widgets.HTML()
        self._cancel = widgets.Button(
            description="Cancel", icon="stop", tooltip=_CANCEL_TIP, layout={"width": "auto"}
        )
        self._message = widgets.HTML()
        self._player = widgets.Output()
        self._save = widgets.Button(description="Save MP4", icon="download")
        self._extend = widgets.Button(description="Extend this", icon="plus")
        self._actions = widgets.HBox([self._save, self._extend], layout={"display": "none"})
        self._extra = widgets.VBox()
        self._cancel.on_click(self._on_cancel_click)
        self._save.on_click(self._on_save_click)
        self._extend.on_click(self._on_extend_click)
        row = widgets.HBox([self._bar, self._cancel], layout=widgets.Layout(align_items="center"))
        children = [self._title, row, self._status, self._message, self._player]
        super().__init__(children=[*children, self._actions, self._extra], **kwargs)
        _recent.remember(job)
        self._render_running(None)
        chosen = watcher or get_watcher()
        if job.done:
            # Already over: render here, at once (nothing will change, so no second writer).
            self.watch: Watch = chosen.watch(job, timeout=timeout)
            self._on_watch_change(self.watch)
        else:
            self.watch = chosen.watch(job, timeout=timeout, listener=self._on_watch_change)

    # -- public -----------------------------------------------------------------------------

    @property
    def value(self) -> Any:
        """The job's last snapshot (a :class:`~luma_nb.Task`, or None)."""
        return self.job.task

    def on_done(self, callback: Callable[[ProgressView], Any]) -> None:
        """Call ``callback(view)`` (from the watcher thread) when watching ends."""
        self._done_callbacks.append(callback)

    def __repr__(self) -> str:
        prompt = text.prompt_preview(self.job.prompt)
        return f"ProgressView(prompt={prompt!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget for front-ends that have the widget manager; text and HTML for the rest."""
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        data["text/plain"] = repr(self)
        data["text/html"] = text.job_html(self.job, note=self._demo_note())
        return dict(data)

    # -- rendering (watcher thread) ---------------------------------------------------------

    def _demo_note(self) -> str | None:
        return text.DEMO_NOTE if self.job.client.is_sandbox else None

    def _title_html(self) -> str:
        parts = []
        note = self._demo_note()
        if note:
            parts.append(f'<div style="color:#8d6e00;font-size:90%">{text.esc(note)}</div>')
        prompt = text.prompt_preview(self.job.prompt)
        if prompt:
            parts.append(f"<div><b>{text.esc(prompt)}</b></div>")
        parts.append(
            f'<div style="color:#666;font-size:85%">task <code>{text.esc(self.job.task_id)}</code>'
            + (
                f" · extends <code>{text.esc(self.job.parent_task_id)}</code>"
                if self.job.parent_task_id
                else ""
            )
            + "</div>"
        )
        return "".join(parts)

    def _on_watch_change(self, watch: Watch) -> None:
        try:
            if watch.state == "watching":
                self._render_running(watch)
            else:
                self._render_end(watch)
        except Exception as error:  # shown, never lost in a thread
            self._message.value = message_html(f"Could not update this view: {error}")
        if watch.state != "watching":
            for callback in list(self._done_callbacks):
                try:
                    callback(self)
                except Exception as error:
                    self._message.value = message_html(f"A done-callback failed: {error}")

    def _render_running(self, watch: Watch | None) -> None:
        task = self.job.task
        pct = task.percentage if task is not None and task.percentage is not None else 0.0
        self._bar.value = int(pct)
        self._bar.bar_style = "info"
        word = text.status_text(task) if task is not None else "submitted"
        parts = [f"<b>{text.esc(word)}</b>"]
        if watch is not None:
            now = watch.watcher.clock()
            parts.append(f"elapsed {text.format_seconds(watch.elapsed(now))}")
            eta = watch.eta()
            if eta is not None and watch.samples:
                left = eta - (now - watch.samples[-1][0])
                parts.append(f"ETA {text.format_seconds(max(0.0, left))}")
        self._status.value = " · ".join(parts)

    def _render_end(self, watch: Watch) -> None:
        state = watch.state
        self._cancel.layout.display = "none"
        task = self.job.task
        word = text.status_text(task) if state in ("finished", "failed") else state
        elapsed = text.format_seconds(watch.elapsed())
        self._status.value = f"<b>{text.esc(word)}</b> · took {elapsed}"
        if state == "finished":
            self._bar.value = 100
            self._show_video()
            self._actions.layout.display = "flex"
        elif state == "cancelled":
            self._message.value = message_html(
                "Stopped watching. The job keeps running at the service; "
                "watch it again with job.watch() or job.show().",
                "warn",
            )
        else:
            reason = task.error if state == "failed" and task is not None else None
            self._message.value = message_html(reason or str(watch.error or state))
        # The colour comes last: once it changed, everything else of the end is in place.
        self._bar.bar_style = _BAR_STYLES.get(state, "warning")

    def _show_video(self) -> None:
        from ..media import video

        try:
            html = video(self.job, width=self.video_width, keep=False)._repr_html_()  # type: ignore[no-untyped-call]
        except Exception as error:
            self._message.value = message_html(str(error))
            return
        output = {
            "output_type": "display_data",
            "data": {"text/plain": "<video>", "text/html": html},
            "metadata": {},
        }
        self._player.outputs = (output,)

    # -- buttons (kernel thread) ------------------------------------------------------------

    def _on_cancel_click(self, button: widgets.Button) -> None:
        self._cancel.disabled = True
        self.watch.cancel()

    def _on_save_click(self, button: widgets.Button) -> None:
        from ..media import save

        self._save.disabled = True
        self._message.value = message_html("Saving…", "info")
        started = time.monotonic()
        try:
            path = save(self.job, self.save_dir)
        except Exception as error:
            self._message.value = message_html(f"Could not save the MP4: {error}")
            self._save.disabled = False
            return
        took = time.monotonic() - started
        self._message.value = message_html(f"Saved to {path} ({took:.1f} s).", "ok")
        self._save.disabled = False

    def _on_extend_click(self, button: widgets.Button) -> None:
        if _extend_form is None:  # pragma: no cover - luma_nb.notebook.widgets registers it
            return
        form = _extend_form(self.job.client, parent_task_id=self.job.task_id)
        header = widgets.HTML(note_html("Extend this video:", bold=True))
        self._extra.children = (header, form)
