"""ClassGallery: every published video of the class, live, from the classroom relay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...client.class_feed import GalleryFollow, require_class
from ...client.defaults import class_url, default_client
from ...contract.class_videos import ClassVideo
from ...contract.errors import ClassOnlyError, ValidationError
from ...contract.models import Task
from .. import display as text
from .gallery import CardView

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


class ClassGallery(CardView):
    """The class gallery, live: a card per published video (its poster, the student, the
    prompt), added and taken away as the relay says (a finished and shared video arrives; a
    hidden or unshared one goes). A video plays when its card is clicked.

    Parameters:
        client: a client of the classroom relay; None shows ``notice`` instead.
        notice: why there is no gallery (shown when ``client`` is None).
        columns: cards per row.
        video_width: width of each card in pixels.
        transport: ``"events"`` (server-sent events) or ``"poll"`` (long-poll).
        start: start following at once (else call :meth:`start`).
        projector: large type, for a class on a projector.

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
        projector: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            kind="class",
            columns=max(1, int(columns)),
            card_width=int(video_width),
            projector=projector,
            empty="No published videos yet.",
            **kwargs,
        )
        self.client = client
        self.notice = notice if client is None else None
        self.video_width = video_width
        self._shown: dict[str, dict[str, Any]] = {}
        self.follow: GalleryFollow | None = None
        if client is None:
            self.status = self.notice or NO_CLASS
            self.empty = ""
            return
        self.can_stop = True
        self.follow = GalleryFollow(client, listener=self._on_follow_change, transport=transport)
        self._render_status()
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
            self.stopped = True
            self.follow.stop()
            self._render_status()

    def on_stop(self) -> None:
        """The Stop button."""
        self.stop()

    def __repr__(self) -> str:
        if self.client is None:
            return self.notice or NO_CLASS
        return f"ClassGallery({self._class_name()!r})"

    def static_html(self) -> str:
        """The gallery as plain HTML (no media), or the notice outside a class."""
        if self.client is None:
            return f"<p>{text.esc(self.notice)}</p>"
        return super().static_html()

    # -- rendering (the follow's thread) ----------------------------------------------------

    def _class_name(self) -> str:
        return (self.client.class_name if self.client is not None else None) or "Class"

    def _render_status(self) -> None:
        follow = self.follow
        if follow is None:
            return
        self.heading = f"Class gallery: {self._class_name()}"  # the name comes with answers
        count = len(follow.videos)
        videos = f"{count} video{'s' if count != 1 else ''}"
        state = _STATES.get(follow.state, follow.state)
        self.status = f"{videos} · {state}"
        if follow.state in ("error", "stopped"):
            self.stopped = True

    def _on_follow_change(self, follow: GalleryFollow) -> None:
        try:
            shown = follow.value
            with self._lock:
                wanted = {video.task_id for video in shown}
                for task_id in list(self._shown):
                    if task_id not in wanted:
                        del self._shown[task_id]
                for video in shown:
                    if video.task_id not in self._shown:
                        self._shown[video.task_id] = self._card(video)
                self.cards = [dict(self._shown[v.task_id]) for v in shown]
            self._render_status()
            if follow.state == "error":
                self.message = str(follow.error or "the gallery stopped")
        except Exception as error:  # shown, never lost in a thread
            self.message = f"Could not update the gallery: {error}"

    def _card(self, video: ClassVideo) -> dict[str, Any]:
        task = Task(task_id=video.task_id, status="finished", video_url=video.video_url)
        session = self.client.session if self.client is not None else None
        card = self.finished_card(
            video.task_id,
            task,
            service=None,
            session=session,
            poster=video.poster_url or None,  # the relay names it when it knows one
            label=video.student,
            prompt=text.prompt_preview(video.prompt) or "",
        )
        return card


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
