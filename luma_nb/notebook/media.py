"""The finished MP4: play it inline (``IPython.display.Video``) or save it to disk.

By default a video is shown by its URL, which keeps notebooks small. A sandbox video's URL is on
the kernel's loopback, which a browser elsewhere (Binder, JupyterHub, Colab) cannot reach: there,
it goes through the Jupyter server's jupyter-server-proxy or Colab's port proxy when one is
detected, and is embedded only when no route exists (:mod:`luma_nb.notebook.frontend`); the
player's ``title`` says which way was used. Inside a kernel, the video is kept beside the
notebook (bounded), and the player carries the task's poster, so a saved notebook shows a
picture, never a dead player. ``download_to=`` saves it
next to the notebook and plays the local file (Jupyter serves it; Voila needs ``.mp4`` in its
file allow-list). ``embed=True`` puts the bytes into the notebook, below a size cap: JupyterLab
strips embedded data URLs from untrusted notebooks, so prefer a file for sharing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from ..contract.environment import environment
from ..contract.errors import LumaError
from ..contract.posters import poster_url
from ..contract.text import is_loopback_url
from .display import esc, safe_url
from .frontend import Route, browser_route, find_server, in_kernel, remote_browser

if TYPE_CHECKING:
    from IPython.core.display import Video

    from ..client.job import Job
    from ..contract.models import Task

__all__ = (
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EMBED_BYTES",
    "MediaError",
    "Playable",
    "playable",
    "poster_data",
    "remote_browser",
    "save",
    "video",
)

#: Largest download :func:`save` accepts by default (a Luma clip is a few MB).
DEFAULT_MAX_BYTES = 500 * 1024 * 1024
#: Largest video :func:`video` embeds by default (base64 adds a third on top).
DEFAULT_MAX_EMBED_BYTES = 20 * 1024 * 1024
_ACCEPTED_TYPES = frozenset({"video/mp4", "application/octet-stream"})
_CHUNK = 256 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class MediaError(LumaError):
    """The video could not be shown or saved (not finished, bad URL, bad answer, too big)."""


class _TooLarge(MediaError):
    """The download went over its byte limit."""


def _task_of(source: Task | Job) -> Task:
    from ..client.job import Job

    task = source.task if isinstance(source, Job) else source
    if task is None:
        raise MediaError(f"Job {source.task_id} has not been looked at yet: wait for it first.")
    if not task.is_finished or not task.video_url:
        raise MediaError(
            f"Task {task.task_id} has no video yet (status: {task.describe()}); wait for it first."
        )
    return task


def _session_of(source: object, session: requests.Session | None) -> requests.Session | None:
    if session is not None:
        return session
    client = getattr(source, "client", None)
    found = getattr(client, "session", None)
    return found if isinstance(found, requests.Session) else None


def file_name(task_id: str) -> str:
    """``<task_id>.mp4`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced."""
    stem = _UNSAFE_NAME.sub("_", task_id).strip("._") or "video"
    return stem[:120] + ".mp4"


def _target(path_or_dir: str | os.PathLike[str], name: str) -> Path:
    path = Path(path_or_dir).expanduser()
    if path.suffix.lower() == ".mp4" and not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    path.mkdir(parents=True, exist_ok=True)
    return path / name


def save(
    task_or_url: Task | Job | str,
    path_or_dir: str | os.PathLike[str] = ".",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    journal: Any = ...,
) -> Path:
    """Download the MP4 of a finished task (or an http(s) URL) and return the file's path.

    ``path_or_dir`` is a folder (the file is named ``<task_id>.mp4``, never from the server) or a
    path ending in ``.mp4``. The download streams into a temporary file in the same folder and is
    renamed into place only when complete, so a failure leaves no partial file behind. A Job's
    client session is used unless ``session`` is given.

    The file is recorded in the task journal (a Job's client journal, else the default one;
    ``journal=None`` records nothing).

    Raises :class:`MediaError` when the task is not finished, the URL is not http(s), the answer
    is not a 200 with ``video/mp4`` (or ``application/octet-stream``), it exceeds ``max_bytes``,
    or the transfer is cut off.
    """
    if isinstance(task_or_url, str):
        url = task_or_url
        name = "video-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:12] + ".mp4"
    else:
        task = _task_of(task_or_url)
        url, name = task.video_url or "", file_name(task.task_id)
    if safe_url(url) is None:
        raise MediaError(f"Only http:// and https:// video URLs can be downloaded, not {url!r}.")
    target = _target(path_or_dir, name)
    borrowed = _session_of(task_or_url, session)
    http = borrowed or requests.Session()
    fd, temp = _part_file(target)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(http, url, out, max_bytes=max_bytes, timeout=timeout)
        problem = mp4_problem(temp)
        if problem is not None:  # e.g. a close-delimited answer that was cut short
            raise MediaError(f"Downloading {url} did not give a complete MP4 ({problem}).")
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    finally:
        if borrowed is None:
            http.close()
    if not isinstance(task_or_url, str):
        _record_saved(task_or_url, task.task_id, target, journal)
    return target


def _part_file(target: Path) -> tuple[int, Path]:
    """Create a new, empty temporary file beside ``target`` and open it for writing.

    Its mode is that of any file the user saves: 0o666 less the umask (group-readable under the
    usual 022 or 002, private under 077). ``tempfile.mkstemp`` would make it 0o600 whatever the
    umask says, and the rename keeps the mode.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = target.parent / f".{target.name}.{secrets.token_hex(6)}.part"
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _record_saved(source: Task | Job, task_id: str, target: Path, journal: Any) -> None:
    """Tell the journal where the video now lives (best effort: the file is already saved)."""
    if journal is ...:
        client = getattr(source, "client", None)
        if client is not None:
            journal = client.journal
        else:
            from ..client.journal import Journal

            journal = Journal()
    if journal is not None:
        journal.saved(task_id, target)


def _download(
    http: requests.Session, url: str, out: Any, *, max_bytes: int, timeout: float
) -> None:
    try:
        with http.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise MediaError(f"Downloading {url} failed: HTTP {response.status_code}.")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind not in _ACCEPTED_TYPES:
                raise MediaError(
                    f"Downloading {url} gave {kind or 'no content type'!s}, not an MP4 video."
                )
            declared = _int(response.headers.get("Content-Length"))
            if declared is not None and declared > max_bytes:
                raise _TooLarge(
                    f"The video is {declared:,} bytes, over the limit of {max_bytes:,} "
                    "(raise max_bytes= to allow it)."
                )
            received = 0
            for chunk in response.iter_content(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise _TooLarge(
                        f"The video is over the limit of {max_bytes:,} bytes "
                        "(raise max_bytes= to allow it)."
                    )
                out.write(chunk)
    except requests.RequestException as error:
        raise MediaError(
            f"Downloading {url} failed: the transfer was cut off or timed out "
            f"({type(error).__name__})."
        ) from None
    # Content-Length counts the bytes on the wire: compressed ones, for a gzip-encoded answer.
    wire = response.raw.tell() if hasattr(response.raw, "tell") else received
    if declared is not None and wire != declared:
        raise MediaError(f"Downloading {url} was cut off after {wire:,} of {declared:,} bytes.")


def mp4_problem(path: str | os.PathLike[str]) -> str | None:
    """What makes ``path`` an incomplete MP4, or None when its box structure is whole.

    The top-level boxes must tile the file exactly (a cut file ends inside one), and the
    ``ftyp``, ``moov`` and ``mdat`` boxes a playable MP4 needs must all be there.
    """
    size = os.path.getsize(path)
    seen: list[bytes] = []
    with open(path, "rb") as source:
        offset = 0
        while offset < size:
            source.seek(offset)
            head = source.read(16)
            if len(head) < 8:
                return f"it ends inside a box header at byte {offset:,}"
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if length == 1:
                if len(head) < 16:
                    return f"it ends inside a box header at byte {offset:,}"
                length = int.from_bytes(head[8:16], "big")
            elif length == 0:
                length = size - offset  # "to the end of the file"
            if length < 8:
                return f"box {kind!r} at byte {offset:,} has an impossible size"
            if offset + length > size:
                return (
                    f"it ends inside its {kind.decode('latin-1')!r} box "
                    f"({size:,} of {offset + length:,} bytes)"
                )
            seen.append(kind)
            offset += length
    missing = [k.decode() for k in (b"ftyp", b"moov", b"mdat") if k not in seen]
    if missing:
        return "no " + " or ".join(f"{k!r} box" for k in missing)
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


#: The route of a video nobody needs to be told about (a public URL, an explicit choice).
_NO_NOTE = Route("direct", "", "")


def _routed_video(
    task_id: str, route: Route, *, poster: str | None = None, **options: Any
) -> Video:
    """An ``IPython.display.Video`` of ``task_id`` that stays a picture when it cannot play.

    Its ``text/html`` is the player with the task's poster (``poster``: a small JPEG as a
    ``data:`` URI, or None) and a line saying to run the cell to play; see :func:`video`. Its
    ``text/plain`` names the task and where the video is (instead of an object repr), and
    ``.route`` tells which way was used (``direct``, ``proxy``, ``colab``, ``file``,
    ``embed``); how, in words, is the player's ``title``, never its text.
    """
    cls = _routed_class()
    made = cls(**options)
    made.task_id = task_id  # type: ignore[attr-defined]
    made.route = route  # type: ignore[attr-defined]
    made.poster = poster  # type: ignore[attr-defined]
    return made


#: What a saved output says under its player (the poster shows when it cannot play).
RUN_TO_PLAY = "Not playing? Run the cell to play."

_ROUTED: list[type[Video]] = []


def _routed_class() -> type[Video]:
    if _ROUTED:
        return _ROUTED[0]
    from IPython.core.display import Video

    class _Routed(Video):
        task_id: str
        route: Route
        poster: str | None

        def _repr_html_(self) -> str:
            return player_html(
                str(super()._repr_html_()),  # type: ignore[no-untyped-call]
                task_id=self.task_id,
                route=self.route,
                poster=self.poster,
                width=self.width,
            )

        def __repr__(self) -> str:
            where = "embedded in the notebook" if self.embed else str(self.url or self.filename)
            line = f"Video of task {self.task_id}: {where}"
            return line + (f"\n{self.route.detail}" if self.route.detail else "")

    _Routed.__name__ = _Routed.__qualname__ = "RoutedVideo"
    _ROUTED.append(_Routed)
    return _Routed


def player_html(
    video_html: str, *, task_id: str, route: Route, poster: str | None, width: int | None
) -> str:
    """``video_html`` (IPython's ``<video>``) made robust for a saved notebook.

    The ``<video>`` gets the poster (``poster=``) and ``preload="none"``: opened without its
    kernel (JupyterLab, Notebook 7, nbconvert's HTML), it shows the poster until played, and
    keeps showing it if the file is gone. Inside the ``<video>``, where a browser would say it
    cannot play video, is the poster as an ``<img>``: a viewer that strips ``<video>`` but keeps
    its content (as GitHub's does with elements it does not allow) shows the picture. A line
    under it says to run the cell to play; the route's words are the ``title``.
    """
    attrs = ' preload="none"' if poster else ' preload="metadata"'
    if poster:
        attrs += f' poster="{esc(poster)}"'
    html = video_html.replace(" controls", " controls" + attrs, 1)
    size = f' width="{int(width)}"' if width else ""
    picture = (
        f'<img src="{esc(poster)}"{size} alt="Poster of the video of task {esc(task_id)}">'
        if poster
        else ""
    )
    for fallback in (
        "Your browser does not support the <code>video</code> element.",
        "Your browser does not support the video tag.",
    ):
        html = html.replace(fallback, picture)
    title = f' title="{esc(route.detail)}"' if route.detail else ""
    return (
        f'<div class="luma-nb-video luma-nb-route" data-route="{esc(route.how)}" '
        f'data-task-id="{esc(task_id)}"{title}>{html}'
        f'<div class="luma-nb-video-note" style="color:#666;font-size:85%">{RUN_TO_PLAY}</div>'
        "</div>"
    )


# -- demo videos kept beside the notebook ----------------------------------------------------

#: The folder, beside the notebook, where the videos it showed are kept (served by Jupyter's
#: ``/files/`` route), so a saved notebook plays them after the sandbox is gone, and after the
#: provider deleted its copy (APIFRAME deletes result files after three months).
KEEP_FOLDER = "luma_nb_videos"
#: Default bound of that folder (``LUMA_NB_KEEP_VIDEOS_MB``); the oldest files go first.
DEFAULT_KEEP_MB = 100


def keep_limit() -> int | None:
    """Bytes the kept-videos folder may hold, or None when videos are not kept.

    ``LUMA_NB_KEEP_VIDEOS=0`` turns keeping off, ``1`` on; unset, it is on inside a Jupyter
    kernel (where a notebook sits in the working directory) and off in scripts.
    ``LUMA_NB_KEEP_VIDEOS_MB`` bounds the folder (default 100 MB).
    """
    env = environment()
    if env.keep_videos is False or (env.keep_videos is None and not in_kernel()):
        return None
    try:
        megabytes = float(env.keep_videos_mb or DEFAULT_KEEP_MB)
    except ValueError:
        megabytes = DEFAULT_KEEP_MB
    return max(0, int(megabytes * 1024 * 1024)) or None


def _kept_copy(task: Task, http: requests.Session | None) -> str | None:
    """The video saved in :data:`KEEP_FOLDER` (path relative to the notebook), or None
    (keeping off, no Jupyter server serving this folder, over the bound, not savable)."""
    limit = keep_limit()
    if limit is None or not files_route():
        return None
    folder = Path.cwd() / KEEP_FOLDER
    target = folder / file_name(task.task_id)
    if not target.is_file():
        try:
            save(task, folder, session=http, max_bytes=limit, journal=None)
        except (MediaError, OSError):
            return None
    bound_folder(folder, limit, keep=target)
    return f"{KEEP_FOLDER}/{target.name}" if target.is_file() else None


def files_route() -> bool:
    """True when a Jupyter server started this kernel and serves its working directory
    (``{base_url}files/...``), so a path relative to the notebook reaches the browser."""
    server = find_server()
    if server is None or not server.root_dir:
        return False
    try:
        Path.cwd().resolve().relative_to(Path(server.root_dir).expanduser().resolve())
    except (ValueError, OSError):
        return False
    return True


def bound_folder(folder: Path, limit: int, *, keep: Path | None = None) -> list[Path]:
    """Delete the oldest ``*.mp4`` files of ``folder`` until it holds at most ``limit`` bytes.

    ``keep`` (the file just saved) goes last. Only MP4 files are counted or touched. Returns
    the deleted paths.
    """
    files = []
    for path in folder.glob("*.mp4"):
        with contextlib.suppress(OSError):
            stat = path.stat()
            files.append((path == keep, stat.st_mtime, stat.st_size, path))
    files.sort(key=lambda item: (item[0], item[1]))
    total = sum(size for _, _, size, _ in files)
    removed = []
    for _, _, size, path in files:
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
            total -= size
    return removed


def video(
    task_or_job: Task | Job,
    *,
    embed: bool = False,
    download_to: str | os.PathLike[str] | None = None,
    max_embed_bytes: int = DEFAULT_MAX_EMBED_BYTES,
    width: int | None = 480,
    session: requests.Session | None = None,
    keep: bool | None = None,
) -> Video:
    """An ``IPython.display.Video`` of a finished task or job.

    By URL by default; with ``download_to`` (a folder or ``.mp4`` path) the file is saved with
    :func:`save` and played from its path relative to the working directory (the notebook's);
    with ``embed=True`` the bytes are embedded, if at most ``max_embed_bytes``.

    A video is by default (``keep`` None: inside a kernel, see :func:`keep_limit`) kept in
    :data:`KEEP_FOLDER` beside the notebook and played from there when the kernel's Jupyter
    server serves that folder: the saved notebook plays it when reopened, trusted or not, on
    Binder too, after the sandbox is gone or the provider deleted its copy. Otherwise a sandbox
    (loopback) video goes the way :func:`~luma_nb.notebook.frontend.browser_route` finds (by
    URL, through Jupyter's or Colab's proxy, or embedded when no route exists), and a public
    one by its URL. ``keep=False`` (the live widgets, not saved) skips the copy.

    Saved notebooks never show a dead player: the ``<video>`` carries the task's poster, a
    small JPEG embedded as a ``data:`` URI (the sandbox's, taken where the task's own part
    begins; for another service, a frame of the kept copy), loads nothing before it is played,
    and says under it to run the cell to play (see :func:`player_html`). The way the video came
    is in the player's ``title``.

    Raises :class:`MediaError` when there is no video yet, the URL is not http(s), or an embed
    would exceed the cap.
    """
    task = _task_of(task_or_job)
    url = safe_url(task.video_url)
    if url is None:
        raise MediaError(f"Task {task.task_id} has no playable http(s) video URL.")
    http = _session_of(task_or_job, session)
    service = _service_of(task_or_job, url)
    route = _NO_NOTE
    if download_to is None and not embed:
        if is_loopback_url(url):
            route = browser_route(url)
        kept = _kept_copy(task, http) if keep is not False and route.how != "colab" else None
        if kept is not None:
            poster = _poster(task, service, http, Path.cwd() / kept, width)
            return _routed_video(
                task.task_id, _kept_route(kept), poster=poster, url=kept, width=width
            )
        embed = route.how == "embed"
    poster = _poster(task, service, http, None, width)
    if download_to is not None:
        # The job (not its task) is saved: the journal to tell is its client's, maybe none.
        path = save(task_or_job, download_to, session=http)
        poster = poster or _poster(task, service, http, path, width)
        if embed:
            return _embedded(path, max_embed_bytes, width, task.task_id, route, poster)
        return _routed_video(
            task.task_id, route, poster=poster, filename=_relative(path), width=width
        )
    if embed:
        with tempfile.TemporaryDirectory(prefix="luma-nb-") as folder:
            try:
                # A file deleted on return is never recorded as the task's saved file.
                path = save(task, folder, session=http, max_bytes=max_embed_bytes, journal=None)
            except _TooLarge:
                raise MediaError(_too_big_to_embed(None, max_embed_bytes)) from None
            poster = poster or _poster(task, service, http, path, width)
            return _embedded(path, max_embed_bytes, width, task.task_id, route, poster)
    shown = route.url_for(url) if route.how != "direct" else url
    return _routed_video(task.task_id, route, poster=poster, url=shown or url, width=width)


def poster_player(
    task: Task,
    *,
    service: str | None = None,
    session: requests.Session | None = None,
    width: int | None = 480,
) -> str | None:
    """The player of a finished task as a cell's HTML shows it (a ``Task`` or a ``Job`` as a
    result): by URL (routed for a remote browser where a route exists), with the task's poster
    embedded (see :func:`player_html`), nothing kept or embedded. None when it has no video."""
    url = safe_url(task.video_url)
    if not task.is_finished or url is None:
        return None
    service = service or _service_of(task, url)
    route = browser_route(url) if is_loopback_url(url) else _NO_NOTE
    shown = route.url_for(url) if route.how not in ("direct", "embed") else url
    tag = f'<video src="{esc(shown or url)}" controls width="{int(width or 480)}">' + (
        "Your browser does not support the <code>video</code> element.</video>"
    )
    poster = _poster(task, service, session, None, width)
    return player_html(tag, task_id=task.task_id, route=route, poster=poster, width=width)


def _service_of(source: object, url: str) -> str | None:
    """Who made the video: a job's client knows; a loopback URL alone is the sandbox's."""
    client = getattr(source, "client", None)
    service = getattr(client, "service", None)
    if isinstance(service, str) and service not in ("unknown", "relay"):
        return service
    return "sandbox" if is_loopback_url(url) else service


def _kept_route(kept: str) -> Route:
    return Route(
        "file",
        "",
        f"Played from the copy kept beside the notebook ({kept}, served by the Jupyter "
        "server): it plays again when the notebook is reopened, after the service's copy is "
        "gone.",
    )


# -- the poster a saved output shows ---------------------------------------------------------

#: Width of the poster embedded in a saved output, at most (a small JPEG, some 15 KB).
POSTER_WIDTH = 480
#: Seconds of new footage an extension adds (a Luma clip): where a poster is taken in a video
#: whose service serves no poster of its own.
CLIP_SECONDS = 5.0


def _poster(
    task: Task,
    service: str | None,
    http: requests.Session | None,
    local: Path | None,
    width: int | None,
) -> str | None:
    """The task's poster as a small JPEG ``data:`` URI, or None.

    The sandbox serves one (taken where the task's own part begins). For another service, it
    is a frame of the local copy (``local``), when PyAV and Pillow are there: at the start of
    an imagine, one clip (:data:`CLIP_SECONDS`) before the end of an extension.
    """
    found = poster_url(task, service=service)
    data = fetch_poster(found, http) if found else None
    if data is None and local is not None and local.is_file():
        extension = task.task_type == "luma-ext" or task.task_type is None
        data = _frame_jpeg(local, CLIP_SECONDS if extension else None)
    if data is None:
        return None
    small = _shrunk(data, min(width or POSTER_WIDTH, POSTER_WIDTH))
    return "data:image/jpeg;base64," + base64.b64encode(small).decode()


def _shrunk(data: bytes, width: int) -> bytes:
    """The JPEG ``data`` at most ``width`` pixels wide (as it is without Pillow)."""
    try:
        import io

        from PIL import Image
    except ImportError:
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width <= width:
                return data
            height = max(1, round(image.height * width / image.width))
            out = io.BytesIO()
            image.convert("RGB").resize((width, height)).save(out, format="JPEG", quality=75)
            return out.getvalue()
    except (OSError, ValueError):
        return data


def _frame_jpeg(path: Path, before_end: float | None) -> bytes | None:
    """A frame of the MP4 at ``path`` as JPEG bytes (``before_end`` seconds before its end,
    or the first), or None without PyAV/Pillow or for an unreadable file."""
    try:
        import io

        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            length = float(stream.duration * stream.time_base) if stream.duration else 0.0
            at = max(0.0, length - before_end) if before_end is not None else 0.0
            if at > 0 and stream.time_base is not None:
                container.seek(int(at / stream.time_base), stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is None or frame.time >= at - 0.02:
                    break
            if chosen is None:
                return None
            out = io.BytesIO()
            chosen.to_image().convert("RGB").save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (OSError, ValueError, IndexError, av.error.FFmpegError):
        return None


def _embedded(
    path: Path,
    max_embed_bytes: int,
    width: int | None,
    task_id: str,
    route: Route,
    poster: str | None = None,
) -> Video:
    size = path.stat().st_size
    if size > max_embed_bytes:
        raise MediaError(_too_big_to_embed(size, max_embed_bytes))
    return _routed_video(
        task_id,
        route,
        poster=poster,
        data=path.read_bytes(),
        embed=True,
        mimetype="video/mp4",
        width=width,
    )


def _too_big_to_embed(size: int | None, cap: int) -> str:
    what = f"{size:,} bytes" if size is not None else "larger than that"
    return (
        f"The video is too big to embed ({what}; the limit is {cap:,} bytes): show it by URL, "
        "save it with download_to=, or raise max_embed_bytes=."
    )


def _relative(path: Path) -> str:
    """The path relative to the working directory when inside it, else absolute (as text)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


# -- what a browser view loads: the poster at once, the video on play -------------------------

#: Largest poster fetched to embed as a ``data:`` URI (a sandbox poster is some 30 KB).
MAX_POSTER_BYTES = 512 * 1024


@dataclass(frozen=True)
class Playable:
    """What a view in the browser loads for one finished task."""

    video: str | None
    """The URL the browser plays, or None when it has no route (the kernel sends the bytes)."""
    poster: str | None
    """The poster's URL (or a ``data:`` URI), or None when there is none."""
    note: str
    """How the video reaches the browser, in words (for a ``title``, never the view's text)."""


def playable(
    task: Task,
    *,
    service: str | None,
    session: requests.Session | None = None,
    poster: str | None = None,
) -> Playable:
    """The browser's way to ``task``'s video and poster, as :func:`video` finds it.

    A loopback (sandbox) URL goes through the route :func:`~.frontend.browser_route` finds;
    where there is none, the video is None (a view asks the kernel for its bytes on play) and
    the poster is fetched by the kernel and given as a ``data:`` URI. ``service`` is who made
    the video (see :func:`luma_nb.contract.posters.poster_url`); ``poster`` a poster URL known
    otherwise (a class relay names it), routed like the video.
    """
    url = safe_url(task.video_url)
    poster = safe_url(poster) or poster_url(task, service=service)
    if url is None:
        return Playable(None, None, "")
    if not is_loopback_url(url):
        return Playable(url, poster, "")
    route = browser_route(url)
    if route.how == "embed":
        return Playable(None, poster_data(poster, session) if poster else None, route.detail)
    return Playable(route.url_for(url), route.url_for(poster) if poster else None, route.detail)


def poster_data(url: str, session: requests.Session | None = None) -> str | None:
    """The JPEG at ``url`` as a ``data:image/jpeg;base64,...`` URI, or None (not reachable,
    not an image, over :data:`MAX_POSTER_BYTES`)."""
    data = fetch_poster(url, session)
    return None if data is None else "data:image/jpeg;base64," + base64.b64encode(data).decode()


def fetch_poster(url: str, session: requests.Session | None = None) -> bytes | None:
    """The bytes of the JPEG poster at ``url``, or None when it cannot be had."""
    http = session or requests.Session()
    try:
        with http.get(url, stream=True, timeout=10) as response:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if response.status_code != 200 or kind != "image/jpeg":
                return None
            data = response.raw.read(MAX_POSTER_BYTES + 1, decode_content=True)
    except (requests.RequestException, OSError):
        return None
    finally:
        if session is None:
            http.close()
    return data if 0 < len(data) <= MAX_POSTER_BYTES else None


def video_bytes(task: Task, session: requests.Session | None = None) -> bytes:
    """The MP4 of a finished task, read by the kernel (for a browser without a route to it).

    :raises MediaError: as :func:`save` does, or when it is over :data:`DEFAULT_MAX_EMBED_BYTES`.
    """
    with tempfile.TemporaryDirectory(prefix="luma-nb-") as folder:
        try:
            path = save(
                task, folder, session=session, max_bytes=DEFAULT_MAX_EMBED_BYTES, journal=None
            )
        except _TooLarge:
            raise MediaError(_too_big_to_embed(None, DEFAULT_MAX_EMBED_BYTES)) from None
        return path.read_bytes()


#: Bytes read from the start of an MP4 to find its length (a fast-start file's index).
_HEAD_BYTES = 256 * 1024


def video_seconds(url: str, session: requests.Session | None = None) -> float | None:
    """The length in seconds of the MP4 at ``url``, read from its index (``moov``/``mvhd``) in
    its first bytes (one Range request); None when the index is not there or not readable."""
    http = session or requests.Session()
    try:
        with http.get(
            url, headers={"Range": f"bytes=0-{_HEAD_BYTES - 1}"}, stream=True, timeout=10
        ) as response:
            if response.status_code not in (200, 206):
                return None
            head = response.raw.read(_HEAD_BYTES, decode_content=True)
    except (requests.RequestException, OSError):
        return None
    finally:
        if session is None:
            http.close()
    return mp4_seconds(head)


def mp4_seconds(head: bytes) -> float | None:
    """The length in seconds an MP4's ``mvhd`` box states, found in ``head`` (the file's first
    bytes), or None."""
    moov = _box(head, b"moov")
    mvhd = _box(moov, b"mvhd") if moov is not None else None
    if mvhd is None or len(mvhd) < 20:
        return None
    if mvhd[0] == 1:
        if len(mvhd) < 32:
            return None
        scale, length = int.from_bytes(mvhd[20:24], "big"), int.from_bytes(mvhd[24:32], "big")
    else:
        scale, length = int.from_bytes(mvhd[12:16], "big"), int.from_bytes(mvhd[16:20], "big")
    return length / scale if scale else None


def _box(data: bytes, kind: bytes) -> bytes | None:
    """The body of the first top-level box ``kind`` in ``data`` (whole), or None."""
    offset = 0
    while offset + 8 <= len(data):
        size, name = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8]
        header = 8
        if size == 1 and offset + 16 <= len(data):
            size, header = int.from_bytes(data[offset + 8 : offset + 16], "big"), 16
        elif size == 0:
            size = len(data) - offset
        if size < header:
            return None
        if name == kind:
            end = offset + size
            return data[offset + header : end] if end <= len(data) else None
        offset += size
    return None
