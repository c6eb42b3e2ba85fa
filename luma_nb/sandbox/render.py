"""The render pool: a couple of daemon threads that turn tasks into MP4 files.

A task is queued when it enters processing, so its video is usually ready by the time its
simulated processing ends. Demo parents are rendered on first need, synchronously, through
:meth:`Renderer.ensure`, which the pool also uses (so an extension can wait for its parent).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ._net import is_loopback_url, loopback_get
from .state import Store

__all__ = ("Renderer",)

log = logging.getLogger("luma_nb.sandbox")

_IMAGE_LIMIT = 16 * 1024 * 1024
_IMAGE_TIMEOUT = 3.0
_SECONDS = 5.0  # each imagine, and each extension, adds five seconds of video


class Renderer:
    """Synthesizes task videos into the store's media folder."""

    def __init__(
        self,
        store: Store,
        *,
        local_media: Callable[[str], bytes | None],
        workers: int = 2,
    ) -> None:
        """``local_media(name)`` returns the bytes the sandbox serves at ``/media/<name>``."""
        self._store = store
        self._local_media = local_media
        self._workers = workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._stopped = False

    def submit(self, task_id: str) -> None:
        """Render ``task_id`` in the background (the store hears back through ``media_done``)."""
        with self._guard:
            if self._stopped:
                return
            if not self._threads:
                for n in range(self._workers):
                    thread = threading.Thread(
                        target=self._work, name=f"luma-sandbox-render-{n}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        self._queue.put(task_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the renders under way, drop the queued ones, and join the workers."""
        with self._guard:
            self._stopped = True
            threads, self._threads = self._threads, []
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            task_id = self._queue.get()
            if task_id is None:
                return
            try:
                self.ensure(task_id)
            except Exception:  # noqa: S112 - ensure() already reported it to the store
                continue

    def _lock(self, task_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(task_id, threading.Lock())

    def ensure(self, task_id: str) -> Path:
        """Return the task's MP4, synthesizing it (and its parent's) first if needed.

        :raises KeyError: for an unknown task.
        :raises luma_nb.sandbox.video.MissingSandboxExtra: without PyAV/Pillow.
        :raises Exception: whatever synthesis raised; the task is then marked failed.
        """
        path = self._store.media_dir / f"{task_id}.mp4"
        with self._lock(task_id):
            store = self._store
            with store.lock:
                record = store.record(task_id)
                if record is None:
                    raise KeyError(task_id)
                if record.media_ready and path.is_file():
                    return path
                prompt = record.prompt + (" (enhanced)" if record.enhance_prompt else "")
                aspect, parent_id, seed = record.aspect_ratio, record.parent_task_id, record.seed
                urls = (record.image_url, record.end_image_url)
                notes = list(record.notes)
                if record.loop:
                    notes.append("loop: on")
            from .video import MissingSandboxExtra, synthesize

            try:
                parent = self.ensure(parent_id) if parent_id else None
                first = self._image(urls[0], "first frame", notes)
                last = self._image(urls[1], "last frame", notes)
                with store.lock:
                    record.render_notes = tuple(notes)
                synthesize(
                    path,
                    prompt=prompt,
                    aspect_ratio=aspect,
                    seconds=_SECONDS,
                    parent=parent,
                    first_frame=first,
                    last_frame=last,
                    notes=notes,
                    seed=seed,
                )
            except MissingSandboxExtra as exc:
                store.media_done(task_id, error=str(exc))
                raise
            except Exception as exc:
                log.warning("sandbox: rendering %s failed: %s", task_id, exc)
                store.media_done(task_id, error=f"Video synthesis failed: {exc}")
                raise
            store.media_done(task_id)
            return path

    def _image(self, url: str | None, label: str, notes: list[str]) -> bytes | None:
        """The bytes of an image URL on this machine, or None with a note saying why."""
        if not url:
            return None
        data: bytes | None = None
        parts = urlsplit(url)
        own = urlsplit(self._store.base_url)
        if is_loopback_url(url) and parts.port == own.port and parts.path.startswith("/media/"):
            data = self._local_media(parts.path[len("/media/") :])
        elif is_loopback_url(url):
            try:
                data = loopback_get(url, timeout=_IMAGE_TIMEOUT, limit=_IMAGE_LIMIT)
            except (OSError, ValueError) as exc:
                log.info("sandbox: could not fetch %s: %s", url, exc)
        if data is not None and _is_image(data):
            return data
        notes.append(f"{label}: {url} (not fetched)")
        return None


def _is_image(data: bytes) -> bool:
    """True when Pillow recognises ``data`` as an image."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:
        return False
    return True
