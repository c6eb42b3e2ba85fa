"""ClassGallery: every published video of the class, live, from the classroom relay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...client.class_feed import GalleryFollow, require_class
from ...client.defaults import class_url, default_client
from ...contract.class_videos import ClassVideo
from ...contract.errors import ClassOnlyError, ValidationError
from ...contract.models import Task
from .. import display as text
from ._style import message_html

if TYPE_CHECKING:
    from ...client.client import LumaClient

__all__ = ("NO_CLASS", "ClassGallery", "class_gallery")

#: What a notebook outside a class is told.
NO_CLASS = (
    "No class gallery: this notebook is not in a class. To join one, set LUMA_NB_CLASS_URL "
    "and LUMA_NB_CLASS_TOKEN to the relay address and the token your teacher gave you "
    "(e.g. with %env in a cell), then restart the kernel."
)
_STATES = {
    "new": "not started",
    "connecting": "connecting…",
    "live": "live",
    "stopped": "stopped",
    "error": "stopped by an error",
}


class ClassGallery(widgets.VBox):  # type: ignore[misc]
    """The class gallery, live: a player per published video, added and taken away as the
    relay says (a finished and shared video arrives; a hidden or unshared one goes).

    Parameters:
        client: a client of the classroom relay; None shows ``notice`` instead.
        notice: why there is no gallery (shown when ``client`` is None).
        columns: players per row.
        video_width: width of each player in pixels.
        transport: ``"events"`` (server-sent events) or ``"poll"`` (long-poll).
        start: start following at once (else call :meth:`start`).

    Following runs on one background thread (the kernel stays free); it is the only writer of
    the widget's values. The Stop button and :meth:`stop` end it. ``value`` is the list of
    :class:`~luma_nb.contract.class_videos.ClassVideo` shown.
    """

    def __init__(
        self,
        client: LumaClient | None,
        *,
        notice: str = NO_CLASS,
        columns: int = 3,
        video_width: int = 300,
        transport: str = "events",
        start: bool = True,
        **kwargs: Any,
    ) -> None:
        self.client = client
        self.notice = notice if client is None else None
        self.video_width = video_width
        self._header = widgets.HTML()
        self._stop = widgets.Button(description="Stop", icon="stop", layout={"width": "auto"})
        self._message = widgets.HTML()
        self._grid = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat({max(1, int(columns))}, minmax(0, 1fr))",
                grid_gap="12px",
            )
        )
        self._cards: dict[str, widgets.Widget] = {}
        self._stop.on_click(self._on_stop_click)
        top = widgets.HBox([self._header, self._stop], layout={"align_items": "center"})
        super().__init__(children=[top, self._message, self._grid], **kwargs)
        self.follow: GalleryFollow | None = None
        if client is None:
            self._stop.layout.display = "none"
            self._header.value = message_html(self.notice, "info")
            return
        self.follow = GalleryFollow(client, listener=self._on_follow_change, transport=transport)
        self._render_header()
        if start:
            self.start()

    # -- public -----------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False outside a class (the widget only shows its notice)."""
        return self.follow is not None

    @property
    def value(self) -> list[ClassVideo]:
        """The videos shown now, oldest first."""
        return self.follow.value if self.follow is not None else []

    def wait_for(self, count: int = 1, timeout: float = 60.0) -> bool:
        """Block until at least ``count`` videos are shown (for scripts and rehearsals); True
        if they are, False after ``timeout`` s or when following ended first."""
        if self.follow is None:
            return False
        self.follow.wait_until(
            lambda f: len(f.videos) >= count or f.state in ("stopped", "error"), timeout
        )
        return len(self.value) >= count

    def start(self) -> ClassGallery:
        """Start following the gallery (done at once unless ``start=False``)."""
        if self.follow is not None:
            self.follow.start()
        return self

    def stop(self) -> None:
        """Stop following (what the Stop button does); the videos shown stay."""
        if self.follow is not None:
            self._stop.disabled = True
            self.follow.stop()

    def __repr__(self) -> str:
        if self.client is None:
            return self.notice or NO_CLASS
        return f"ClassGallery({self._class_name()!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget, with text and HTML for front-ends without the widget manager."""
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        data["text/plain"] = repr(self)
        if self.client is None:
            data["text/html"] = f"<p>{text.esc(self.notice)}</p>"
        else:
            videos = self.value
            cards = "".join(
                f"<div>{self._caption(v)}{text.video_html(v.video_url, width=self.video_width)}"
                "</div>"
                for v in videos
            )
            head = f"<p><b>Class gallery: {text.esc(self._class_name())}</b></p>"
            data["text/html"] = head + (cards or "<p><em>No published videos yet.</em></p>")
        return dict(data)

    # -- rendering (the follow's thread) ----------------------------------------------------

    def _class_name(self) -> str:
        return (self.client.class_name if self.client is not None else None) or "Class"

    def _render_header(self) -> None:
        follow = self.follow
        if follow is None:
            return
        count = len(follow.videos)
        videos = f"{count} video{'s' if count != 1 else ''}"
        state = _STATES.get(follow.state, follow.state)
        self._header.value = (
            f"<b>Class gallery: {text.esc(self._class_name())}</b> · {videos} · "
            f'<span style="color:#555">{text.esc(state)}</span>'
        )

    def _on_follow_change(self, follow: GalleryFollow) -> None:
        try:
            shown = follow.value
            wanted = {video.task_id for video in shown}
            for task_id in list(self._cards):
                if task_id not in wanted:
                    del self._cards[task_id]
            for video in shown:
                if video.task_id not in self._cards:
                    self._cards[video.task_id] = self._card(video)
            self._grid.children = tuple(self._cards[v.task_id] for v in shown)
            self._render_header()
            if follow.state == "error":
                self._message.value = message_html(str(follow.error or "the gallery stopped"))
            if follow.state in ("error", "stopped"):
                self._stop.disabled = True
        except Exception as error:  # shown, never lost in a thread
            self._message.value = message_html(f"Could not update the gallery: {error}")

    @staticmethod
    def _caption(video: ClassVideo) -> str:
        prompt = text.prompt_preview(video.prompt) or ""
        return (
            f"<div><b>{text.esc(video.student)}</b></div>"
            f'<div style="color:#444;font-size:90%">{text.esc(prompt)}</div>'
        )

    def _card(self, video: ClassVideo) -> widgets.Widget:
        from ..media import video as make_video

        caption = widgets.HTML(self._caption(video))
        player = widgets.Output()
        task = Task(task_id=video.task_id, status="finished", video_url=video.video_url)
        try:
            html = make_video(task, width=self.video_width)._repr_html_()  # type: ignore[no-untyped-call]
        except Exception as error:
            html = message_html(f"Could not show this video: {error}")
        player.outputs = (
            {
                "output_type": "display_data",
                "data": {"text/plain": "<video>", "text/html": html},
                "metadata": {},
            },
        )
        return widgets.VBox([caption, player])

    # -- buttons (kernel thread) ------------------------------------------------------------

    def _on_stop_click(self, button: widgets.Button) -> None:
        self.stop()


def class_gallery(client: LumaClient | None = None, **options: Any) -> ClassGallery:
    """Every published video of your class, live (a widget that follows the class relay).

    Parameters:
        client: a client of the class relay; default: the class of ``LUMA_NB_CLASS_URL``.
        options: passed to :class:`ClassGallery` (``columns``,
            ``video_width``, ``transport``).

    Without a class (no ``LUMA_NB_CLASS_URL``, or a client of the API or the sandbox) the
    widget says there is no class gallery and how to join a class; nothing is started.
    """
    if client is None:
        if class_url() is None:
            return ClassGallery(None, **options)
        try:
            client = default_client()
        except ValidationError as error:  # the URL is set, the token is not
            return ClassGallery(None, notice=f"No class gallery: {error}", **options)
    try:
        require_class(client)
    except ClassOnlyError as error:
        return ClassGallery(None, notice=f"No class gallery. {error}", **options)
    return ClassGallery(client, **options)
