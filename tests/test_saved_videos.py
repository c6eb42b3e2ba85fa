"""Saved notebooks never show a dead player: ``luma_nb.video`` outputs carry the task's poster
(a small JPEG ``data:`` URI) and say to run the cell to play; the videos a notebook showed are
kept beside it, bounded, and play after the sandbox is gone or the provider deleted its copy.

The real service's file host is played by a purpose-built HTTP server on 127.0.0.1 that can
"delete" its files (then it answers 404, as a provider past its retention does).
"""

from __future__ import annotations

import base64
import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import nbformat
import pytest
import requests
from nbconvert import HTMLExporter
from PIL import Image, ImageChops, ImageStat

from luma_nb import media
from luma_nb.notebook.frontend import JupyterServer
from luma_nb.notebook.media import KEEP_FOLDER, RUN_TO_PLAY
from luma_nb.sandbox import Sandbox
from luma_nb.sandbox.video import synthesize
from tests.scripted import Reply, ScriptedServer

WAIT = 60.0
POSTER = re.compile(r'poster="(data:image/jpeg;base64,[A-Za-z0-9+/=]+)"')


class FileHost:
    """The provider's file host: serves MP4s by path until they are deleted."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.gets: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host.gets.append(self.path)
                body = host.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FileHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def notebook_dir(tmp_path, monkeypatch) -> Path:
    """A notebook's folder that a Jupyter server serves (its ``/files/`` route), in a kernel."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS", "1")
    monkeypatch.delenv("LUMA_NB_KEEP_VIDEOS_MB", raising=False)
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    served = JupyterServer("http://127.0.0.1:9/", "/", ("",), str(tmp_path))
    monkeypatch.setattr(media, "find_server", lambda: served)
    return folder


@pytest.fixture(scope="module")
def extension_mp4(tmp_path_factory) -> bytes:
    """An extension as the provider would deliver it: a parent clip, then a new one."""
    folder = tmp_path_factory.mktemp("clips")
    synthesize(folder / "parent.mp4", prompt="a harbour at dawn", aspect_ratio="16:9", seconds=2)
    synthesize(
        folder / "ext.mp4", prompt="a storm rolls in", parent=folder / "parent.mp4", seconds=5
    )
    return (folder / "ext.mp4").read_bytes()


@pytest.fixture
def host() -> Iterator[FileHost]:
    with FileHost() as server:
        yield server


def _jpeg(uri: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.format == "JPEG"
    image.load()
    return image.convert("RGB")


def _frame(video: bytes, seconds: float, size: tuple[int, int]) -> Image.Image:
    with av.open(io.BytesIO(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds - 0.02:
                return frame.to_image().convert("RGB").resize(size)
    raise AssertionError(f"no frame at {seconds}")


def _differ(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def _saved(html: str) -> str:
    """The page nbconvert makes of a notebook holding this output (no kernel, no server)."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("luma_nb.video(job)", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": html, "text/plain": "Video of the task"}
        )
    ]
    nb.cells = [cell]
    page, _ = HTMLExporter().from_notebook_node(nb)
    return str(page)


# -- the sandbox's videos ------------------------------------------------------------------------


def test_a_sandbox_video_saved_in_a_notebook_shows_its_poster_and_says_run_to_play(
    make_sandbox, make_client, notebook_dir
) -> None:
    sandbox: Sandbox = make_sandbox()
    client = make_client(sandbox, journal=None)
    job = client.extend(sandbox.demo_parents[0].task_id, "a gull lands on the rail")
    job.wait(timeout=WAIT)
    served_poster = requests.get(f"{sandbox.base_url}/media/{job.task_id}.jpg", timeout=10).content
    html = media.video(job)._repr_html_()
    sandbox.stop()  # the kernel is gone: nothing below needs it

    kept = f"{KEEP_FOLDER}/{job.task_id}.mp4"
    assert (notebook_dir / kept).is_file()
    assert f'<video src="{kept}" controls preload="none" poster="data:image/jpeg;base64,' in html
    assert RUN_TO_PLAY in html and "run the cell to play" in html.lower()
    assert "127.0.0.1" not in html and "http://" not in html  # no live URL in the output
    [poster] = POSTER.findall(html)
    image = _jpeg(poster)
    assert image.width <= 480 and len(poster) < 60_000  # small
    # It is the sandbox's poster (the extension's own new part), shrunk.
    assert _differ(image, _jpeg_bytes(served_poster).resize(image.size)) < 4
    # Inside the player, for a viewer that strips <video>: the same picture.
    assert f'<img src="{poster}"' in html

    page = _saved(html)  # nbconvert's HTML of the saved notebook
    assert poster in page and RUN_TO_PLAY in page


def _jpeg_bytes(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def test_the_live_widgets_route_keeps_nothing_but_still_has_the_poster(
    sandbox: Sandbox, client, notebook_dir
) -> None:
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide goes out")
    job.wait(timeout=WAIT)
    html = media.video(job, keep=False)._repr_html_()
    assert not (notebook_dir / KEEP_FOLDER).exists()
    assert f'src="{job.task.video_url}"' in html and POSTER.search(html)


# -- the real service's videos -------------------------------------------------------------------


def _real_job(scripted: ScriptedServer, make_client, url: str, task_id: str = "abc") -> Any:
    scripted.default(
        "/fetch",
        Reply(body={"task_id": task_id, "task_type": "luma-ext", "video_url": url}),
    )
    client = make_client(scripted, service="api", journal=None)
    job = client.job(task_id)
    job.wait(timeout=WAIT)
    return job


def test_a_real_service_video_is_kept_and_plays_after_the_provider_deleted_it(
    scripted, make_client, host, extension_mp4, notebook_dir
) -> None:
    host.files["/results/abc.mp4"] = extension_mp4
    job = _real_job(scripted, make_client, f"{host.url}/results/abc.mp4")
    assert job.client.service == "api"

    clip = media.video(job)
    html = clip._repr_html_()
    kept = notebook_dir / KEEP_FOLDER / "abc.mp4"
    assert kept.read_bytes() == extension_mp4
    assert f'<video src="{KEEP_FOLDER}/abc.mp4" controls preload="none"' in html
    assert host.url not in html and RUN_TO_PLAY in html
    # The poster is made from the kept copy, where the extension's new clip begins.
    image = _jpeg(POSTER.findall(html)[0])
    assert _differ(image, _frame(extension_mp4, 2.0, image.size)) < 4
    assert _differ(image, _frame(extension_mp4, 0.0, image.size)) > 8

    # Months later the provider deleted its file: the notebook still plays its copy.
    del host.files["/results/abc.mp4"]
    assert requests.get(f"{host.url}/results/abc.mp4", timeout=10).status_code == 404
    gets = len(host.gets) - 1
    again = media.video(job)._repr_html_()
    assert f'src="{KEEP_FOLDER}/abc.mp4"' in again and POSTER.search(again)
    assert len(host.gets) - 1 == gets  # nothing asked of the provider again


def test_kept_videos_stay_within_their_bound_oldest_first(
    scripted, make_client, host, extension_mp4, notebook_dir, monkeypatch
) -> None:
    size = len(extension_mp4)
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS_MB", str(2.5 * size / 1024 / 1024))
    shown = []
    for name in ("v1", "v2", "v3", "v4"):
        host.files[f"/results/{name}.mp4"] = extension_mp4
        job = _real_job(scripted, make_client, f"{host.url}/results/{name}.mp4", name)
        shown.append(media.video(job)._repr_html_())
    folder = notebook_dir / KEEP_FOLDER
    kept = sorted(p.name for p in folder.glob("*.mp4"))
    assert kept == ["v3.mp4", "v4.mp4"]  # the newest two fit, the oldest went first
    assert sum(p.stat().st_size for p in folder.glob("*.mp4")) <= 2.5 * size
    assert all(RUN_TO_PLAY in html and POSTER.search(html) for html in shown)


def test_without_a_served_folder_nothing_is_kept_and_the_player_still_has_a_picture(
    scripted, make_client, host, extension_mp4, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS", "1")
    monkeypatch.setattr(media, "find_server", lambda: None)  # not under a Jupyter server
    host.files["/results/abc.mp4"] = extension_mp4
    job = _real_job(scripted, make_client, f"{host.url}/results/abc.mp4")
    html = media.video(job, download_to="videos")._repr_html_()
    assert 'src="videos/abc.mp4"' in html and POSTER.search(html) and RUN_TO_PLAY in html
    assert not (tmp_path / KEEP_FOLDER).exists()


# -- a task or a job as a cell's result ----------------------------------------------------------


def test_a_finished_task_or_job_as_a_cell_result_shows_its_poster(sandbox, client, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from luma_nb.notebook.showing import register_formatters, text_bundle

    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    job = client.extend(sandbox.demo_parents[0].task_id, "a kite over the dunes")
    task = job.wait(timeout=WAIT)
    shell = InteractiveShell.instance()
    try:
        register_formatters(shell)
        data, _ = shell.display_formatter.format(task)
    finally:
        InteractiveShell.clear_instance()
    html = data["text/html"]
    assert html.startswith('<div class="luma-nb-task">') and task.task_id in html
    assert f'<video src="{task.video_url}" controls preload="none" poster="data:image/jpeg' in html
    assert RUN_TO_PLAY in html
    bundle = text_bundle(job)
    assert POSTER.search(bundle["text/html"]) and RUN_TO_PLAY in bundle["text/html"]
    assert "a kite over the dunes" in bundle["text/html"]
    # Not finished: no player, nothing fetched.
    pending = client.extend(sandbox.demo_parents[0].task_id, "not yet")
    assert "<video" not in text_bundle(pending)["text/html"]
