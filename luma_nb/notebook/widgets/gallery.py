"""Gallery: many jobs side by side, each a card with its poster, its prompt and its progress.

An anywidget widget. Its state is a few synced traits (``cards``, ``status``, ...), drawn by
``static/gallery.js`` with ``static/gallery.css``; :class:`CardView` is the part the
storyboard and the class gallery share. A card shows the task's poster (taken where its own new
part begins, see :mod:`luma_nb.contract.posters`) and creates a player only when it is played,
so a gallery of hundreds of videos fetches no video bytes until one is played. A browser with
no route to a video asks the kernel for its bytes (a ``play`` message, answered with the MP4).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ...client.watcher import DEFAULT_TIMEOUT, Watch, Watcher, get_watcher
from ...contract.errors import LumaError
from .. import display as text
from ..media import MediaError, Playable, playable, video_bytes, video_seconds

if TYPE_CHECKING:
    from ...client.client import LumaClient
    from ...client.job import Job
    from ...contract.models import Task

__all__ = ("STATIC", "CardView", "Gallery", "count_words", "where_words")

#: The ES module and CSS of the galleries.
STATIC = Path(__file__).parent / "static"

#: A card's state from its watch's.
_STATES = {"watching": "running", "finished": "finished", "failed": "failed"}


def where_words(client: LumaClient | None) -> str:
    """Where the videos are made, for a view's one status line."""
    if client is None:
        return ""
    if client.service == "sandbox":
        return "Offline sandbox, no credits used"
    if client.service == "relay":
        name = getattr(client, "class_name", None)
        return f"Class {name}" if name else "Class relay"
    if client.service == "api":
        return "Live API"
    return "Video service"


def count_words(counts: dict[str, int]) -> str:
    """``"3 videos: 2 finished, 1 running"`` from a count per card state."""
    total = sum(counts.values())
    noun = "video" if total == 1 else "videos"
    parts = [f"{n} {state}" for state, n in counts.items() if n and state != "finished"]
    done = counts.get("finished", 0)
    if done and done != total:
        parts.insert(0, f"{done} finished")
    if done == total and total:
        return f"{total} {noun}"
    return f"{total} {noun}: " + ", ".join(parts) if parts else f"{total} {noun}"


class CardView(anywidget.AnyWidget):
    """Cards of videos drawn by ``static/gallery.js``; the base of the galleries.

    Synced state: ``cards`` (one dict per video: ``id``, ``label``, ``prompt``, ``state``,
    ``percent``, ``word``, ``poster``, ``video``, ``start``, ``embed``, ``error``, ``title``),
    ``final`` (a storyboard's whole story, else empty), ``heading``, ``status`` (the view's one
    status line), ``status_title`` (how videos reach the browser: a tooltip, never the text),
    ``message`` (an error in words), ``columns``, ``card_width``, ``empty``, ``projector``.
    """

    _esm = STATIC / "gallery.js"
    _css = STATIC / "gallery.css"

    kind = traitlets.Unicode("gallery").tag(sync=True)
    heading = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    status_title = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)
    final = traitlets.Dict().tag(sync=True)
    columns = traitlets.Int(3).tag(sync=True)
    card_width = traitlets.Int(300).tag(sync=True)
    empty = traitlets.Unicode("").tag(sync=True)
    projector = traitlets.Bool(False).tag(sync=True)
    can_stop = traitlets.Bool(False).tag(sync=True)
    stopped = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        #: card id -> (the finished task, its client's session): what a ``play`` message plays.
        self._playable: dict[str, tuple[Task, Any]] = {}
        self.on_msg(self._on_message)

    # -- cards ------------------------------------------------------------------------------

    def finished_card(
        self,
        card_id: str,
        task: Task,
        *,
        service: str | None,
        session: Any = None,
        start: float = 0.0,
        poster: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A finished card: its poster and the way its video plays (found once, here)."""
        try:
            way = playable(task, service=service, session=session, poster=poster)
        except Exception as error:  # a broken route must not break the card
            way = Playable(None, None, f"No route to the video: {error}")
        with self._lock:
            self._playable[card_id] = (task, session)
        return {
            "id": card_id,
            "state": "finished",
            "percent": 100,
            "poster": way.poster or "",
            "video": way.video or "",
            "embed": way.video is None,
            "start": start,
            "title": way.note,
            **fields,
        }

    def _on_message(self, widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "play" and isinstance(content.get("id"), str):
            threading.Thread(
                target=self._send_video, args=(content["id"],), name="luma-nb-play", daemon=True
            ).start()
        elif content.get("type") == "stop":
            self.on_stop()

    def on_stop(self) -> None:
        """The view's Stop button (a class gallery's)."""

    def _send_video(self, card_id: str) -> None:
        with self._lock:
            found = self._playable.get(card_id)
        if found is None:
            self.send({"type": "video", "id": card_id, "error": "This video is not known here."})
            return
        task, session = found
        try:
            data = video_bytes(task, session)
        except MediaError as error:
            self.send({"type": "video", "id": card_id, "error": str(error)})
            return
        self.send({"type": "video", "id": card_id, "mime": "video/mp4"}, [data])

    # -- outputs ----------------------------------------------------------------------------

    def static_html(self) -> str:
        """The view as plain HTML, for front-ends without the widget manager: no media."""
        rows = "".join(
            '<li class="luma-nb-card">'
            + (f"<b>{text.esc(c.get('label'))}</b> " if c.get("label") else "")
            + f"{text.esc(c.get('prompt') or '')}"
            + f' <span style="color:#666">({text.esc(c.get("word") or c.get("state"))})</span>'
            + "</li>"
            for c in self.cards
        )
        head = f"<b>{text.esc(self.heading)}</b>" if self.heading else ""
        if rows:
            body = f"<ul>{rows}</ul><div><em>Run the cell to see the videos.</em></div>"
        else:
            body = f"<div><em>{text.esc(self.empty or 'Nothing to show yet.')}</em></div>"
        return f'<div class="luma-nb-gallery-static">{head}{body}</div>'

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        bundle, *rest = data if isinstance(data, tuple) else (data,)
        bundle = dict(bundle)
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.static_html()
        return (bundle, *rest) if rest else bundle


class Gallery(CardView):
    """Many jobs side by side (e.g. ``client.extend_many(...)``), each a card with its poster.

    Parameters:
        jobs: the jobs (or one job).
        columns: cards per row.
        video_width: width of each card in pixels.
        timeout: seconds each job is watched.
        watcher: the ``Watcher`` to use (the process-wide one by default).
        projector: large type, for a class on a projector.

    ``jobs`` are the jobs shown; ``add(job)`` adds one; ``value`` holds their last snapshots;
    ``wait()`` blocks and ``await gallery`` awaits until every job ended.
    """

    def __init__(
        self,
        jobs: Job | Iterable[Job] = (),
        *,
        columns: int = 3,
        video_width: int = 300,
        timeout: float = DEFAULT_TIMEOUT,
        watcher: Watcher | None = None,
        projector: bool = False,
        **kwargs: Any,
    ) -> None:
        from ...client.job import Job

        super().__init__(
            kind="gallery",
            columns=max(1, int(columns)),
            card_width=int(video_width),
            projector=projector,
            empty="No jobs yet. Jobs added while the notebook runs appear here.",
            **kwargs,
        )
        self.timeout = timeout
        self._watcher = watcher
        self.jobs: list[Job] = []
        self.watches: list[Watch] = []
        self._cards: dict[str, dict[str, Any]] = {}
        self._notes: set[str] = set()
        self._lengths: dict[str, float] = {}
        for job in [jobs] if isinstance(jobs, Job) else list(jobs):
            self.add(job)
        self._publish()

    def add(self, job: Job) -> Watch:
        """Append ``job`` (e.g. ``form.on_submit(gallery.add)``); returns its ``Watch``."""
        with self._lock:
            self.jobs.append(job)
            self._cards[job.task_id] = self._running_card(job, None)
        chosen = self._watcher or get_watcher()
        listener: Callable[[Watch], None] = self._changed
        if job.done:
            watch = chosen.watch(job, timeout=self.timeout)
            self._changed(watch)
        else:
            watch = chosen.watch(job, timeout=self.timeout, listener=listener)
        with self._lock:
            self.watches.append(watch)
        self._publish()
        return watch

    @property
    def value(self) -> list[Task | None]:
        """The last snapshot of every job, in order."""
        return [job.task for job in self.jobs]

    def wait(self, timeout: float | None = None) -> list[Task]:
        """Block until every job ended; the finished tasks (raises the first failure)."""
        return [watch.wait(timeout) for watch in list(self.watches)]

    async def wait_async(self) -> list[Task]:
        """Await every job without polling; the finished tasks (raises the first failure)."""
        return [await watch for watch in list(self.watches)]

    def __await__(self) -> Generator[Any, None, list[Task]]:
        """``tasks = await gallery``."""
        return self.wait_async().__await__()

    def __repr__(self) -> str:
        return f"Gallery({len(self.jobs)} jobs)"

    # -- the watcher's thread ---------------------------------------------------------------

    def _running_card(self, job: Job, watch: Watch | None) -> dict[str, Any]:
        task = job.task
        state = _STATES.get(watch.state, watch.state) if watch is not None else "running"
        word = text.status_text(task) if task is not None else "submitted"
        if watch is not None and watch.state not in ("watching", "finished", "failed"):
            word = {"timeout": "still running", "cancelled": "stopped watching"}.get(
                watch.state, watch.state
            )
        error = ""
        if state == "failed":
            error = (task.error if task is not None else None) or str(watch.error if watch else "")
        elif state == "error" and watch is not None:
            error = str(watch.error or "")
        pct = task.percentage if task is not None and task.percentage is not None else 0.0
        return {
            "id": job.task_id,
            "prompt": text.prompt_preview(job.prompt) or "",
            "state": state,
            "percent": pct,
            "word": word,
            "error": error,
        }

    def _changed(self, watch: Watch) -> None:
        job = watch.job
        try:
            task = job.task
            if watch.state == "finished" and task is not None:
                card = self.finished_card(
                    job.task_id,
                    task,
                    service=job.client.service,
                    session=job.client.session,
                    start=self._parent_seconds(job),
                    prompt=text.prompt_preview(job.prompt) or "",
                )
                if card["title"]:
                    self._notes.add(card["title"])
            else:
                card = self._running_card(job, watch)
            with self._lock:
                self._cards[job.task_id] = card
            self._publish()
        except Exception as error:  # shown, never lost in a thread
            self.message = f"Could not update the gallery: {error}"

    def _parent_seconds(self, job: Job) -> float:
        """Where the job's own new part begins: its parent's length (looked up once per
        parent: one fetch, and the first bytes of its video); 0 for an imagine or unknown."""
        parent = job.parent_task_id
        if not parent:
            return 0.0
        with self._lock:
            known = self._lengths.get(parent)
        if known is None:
            known = 0.0
            with contextlib.suppress(LumaError):
                url = text.safe_url(job.client.fetch(parent).video_url)
                known = (video_seconds(url, job.client.session) if url else None) or 0.0
            with self._lock:
                self._lengths[parent] = known
        return known

    def _publish(self) -> None:
        with self._lock:
            cards = [dict(self._cards[job.task_id]) for job in self.jobs]
            counts: dict[str, int] = {}
            for card in cards:
                counts[card["state"]] = counts.get(card["state"], 0) + 1
            where = where_words(self.jobs[0].client) if self.jobs else ""
            self.cards = cards
            self.status = " · ".join(p for p in (where, count_words(counts) if cards else "") if p)
            self.status_title = " ".join(sorted(self._notes))
