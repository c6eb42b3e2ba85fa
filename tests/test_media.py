"""Saving and showing the MP4: real downloads from the sandbox and from a misbehaving server."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from luma_nb import Journal, Task, media
from luma_nb.notebook.media import MediaError, file_name, save, video


def box(kind: bytes, payload: bytes) -> bytes:
    """One MP4 box: a 32-bit size, the four-letter kind, the payload."""
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


# The box structure of an MP4 (what save() checks) around 16 KiB of "video".
BODY = (
    box(b"ftyp", b"mp42\x00\x00\x00\x00mp42isom")
    + box(b"moov", box(b"mvhd", bytes(100)))
    + box(b"mdat", bytes(range(256)) * 64)
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/ok.mp4":
            self._send(200, "video/mp4", BODY)
        elif self.path == "/octet":
            self._send(200, "application/octet-stream", BODY)
        elif self.path == "/page.html":
            self._send(200, "text/html; charset=utf-8", b"<html>login</html>")
        elif self.path == "/missing.mp4":
            self._send(404, "text/plain", b"no")
        elif self.path == "/cut.mp4":
            # Promise the whole file, send half of it, then hang up.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[: len(BODY) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif self.path == "/chunked-big.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(BODY), BODY))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, "text/plain", b"unknown")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the cut-off answer ends its connection on purpose


@pytest.fixture
def media_server() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def finished(url: str, task_id: str = "t-1") -> Task:
    return Task(task_id=task_id, status="finished", video_url=url)


def test_save_names_the_file_from_the_task_id(media_server, tmp_path):
    path = save(finished(f"{media_server}/ok.mp4", "abc-123"), tmp_path)
    assert path == tmp_path / "abc-123.mp4"
    assert path.read_bytes() == BODY
    assert os.listdir(tmp_path) == ["abc-123.mp4"]


@pytest.mark.parametrize(
    ("umask", "mode"),
    [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
    ids=["umask022", "umask002", "umask077"],
)
def test_a_saved_file_has_the_mode_the_umask_gives_any_new_file(
    media_server, tmp_path, umask, mode
):
    before = os.umask(umask)
    try:
        path = save(finished(f"{media_server}/ok.mp4", "abc-123"), tmp_path)
        explicit = save(finished(f"{media_server}/ok.mp4"), tmp_path / "mine.mp4")
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE(explicit.stat().st_mode) == mode


def test_task_ids_never_become_paths(media_server, tmp_path):
    assert file_name("../../etc/passwd") == "etc_passwd.mp4"
    assert file_name("a/b\\c:d") == "a_b_c_d.mp4"
    assert file_name("..") == "video.mp4"
    path = save(finished(f"{media_server}/ok.mp4", "../escape"), tmp_path / "out")
    assert path.parent == tmp_path / "out"
    assert path.name == "escape.mp4"


def test_save_to_an_explicit_mp4_path_and_octet_stream(media_server, tmp_path):
    target = tmp_path / "sub" / "mine.mp4"
    assert save(finished(f"{media_server}/octet"), target) == target
    assert target.read_bytes() == BODY


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.mp4", "HTTP 404"),
        ("/page.html", "text/html, not an MP4"),
        ("/cut.mp4", "cut off"),
    ],
)
def test_failed_downloads_leave_no_file(media_server, tmp_path, path, message):
    with pytest.raises(MediaError, match=message):
        save(finished(media_server + path), tmp_path)
    assert os.listdir(tmp_path) == []


def test_size_cap_from_content_length_and_while_streaming(media_server, tmp_path):
    with pytest.raises(MediaError, match="over the limit"):
        save(finished(f"{media_server}/ok.mp4"), tmp_path, max_bytes=1000)
    with pytest.raises(MediaError, match="over the limit"):
        save(finished(f"{media_server}/chunked-big.mp4"), tmp_path, max_bytes=len(BODY) * 3)
    assert os.listdir(tmp_path) == []


def test_only_http_urls_and_finished_tasks(tmp_path):
    for url in ("javascript:alert(1)", "file:///etc/passwd", "ftp://x/y.mp4"):
        with pytest.raises(MediaError, match="http"):
            save(url, tmp_path)
        with pytest.raises(MediaError, match="http"):
            video(finished(url))
    pending = Task(task_id="t", status="processing", percentage=10.0)
    with pytest.raises(MediaError, match="no video yet"):
        video(pending)
    with pytest.raises(MediaError, match="no video yet"):
        save(pending, tmp_path)
    assert os.listdir(tmp_path) == []


def test_video_by_url_is_the_default():
    clip = video(finished('https://cdn.example/a"b.mp4'))
    assert clip.url == "https://cdn.example/a%22b.mp4"
    html = clip._repr_html_()
    assert '<video src="https://cdn.example/a%22b.mp4" controls' in html


def test_video_download_to_plays_the_relative_local_file(media_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = video(finished(f"{media_server}/ok.mp4", "t-9"), download_to="videos")
    assert clip.filename == "videos/t-9.mp4"
    assert (tmp_path / "videos" / "t-9.mp4").read_bytes() == BODY
    assert 'src="videos/t-9.mp4"' in clip._repr_html_()


def test_embed_below_the_cap_and_a_clear_error_above(media_server, tmp_path):
    clip = video(finished(f"{media_server}/ok.mp4"), embed=True)
    assert 'src="data:video/mp4;base64,' in clip._repr_html_()
    with pytest.raises(MediaError, match=r"too big to embed.*max_embed_bytes"):
        video(finished(f"{media_server}/ok.mp4"), embed=True, max_embed_bytes=1000)
    with pytest.raises(MediaError, match="too big to embed"):
        video(
            finished(f"{media_server}/ok.mp4"),
            embed=True,
            download_to=tmp_path,
            max_embed_bytes=1000,
        )


def test_real_sandbox_video_through_the_clients_session(sandbox, client, tmp_path):
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide comes in")
    with pytest.raises(MediaError, match="no video yet"):
        media.video(job)
    job.wait()
    path = save(job, tmp_path)
    assert path == tmp_path / f"{job.task_id}.mp4"
    assert path.read_bytes()[4:8] == b"ftyp"
    assert [r.path for r in sandbox.requests if r.path.startswith("/media/")] == [
        f"/media/{job.task_id}.mp4"
    ]
    assert media.video(job).url == job.task.video_url
    assert Path(path).stat().st_size > 1000


def test_saved_file_is_recorded_in_the_journal(sandbox, make_client, tmp_path):
    client = make_client(sandbox)  # the default journal
    job = client.extend(sandbox.demo_parents[0].task_id, "kept on disk")
    task = job.wait()
    by_job = save(job, tmp_path / "a")
    (entry,) = [e for e in client.journal.entries() if e.task_id == job.task_id]
    assert entry.local_file == str(by_job.absolute())
    by_task = save(task, tmp_path / "b")  # a bare Task goes to the default journal
    (entry,) = [e for e in client.journal.entries() if e.task_id == job.task_id]
    assert entry.local_file == str(by_task.absolute())
    save(task, tmp_path / "c", journal=None)
    (entry,) = [e for e in client.journal.entries() if e.task_id == job.task_id]
    assert entry.local_file == str(by_task.absolute())


def test_an_embedded_view_records_no_file_and_the_journal_only_points_at_real_files(
    sandbox, make_client, tmp_path
):
    journal = Journal(tmp_path / "j.sqlite3")
    client = make_client(sandbox, journal=journal)
    job = client.extend(sandbox.demo_parents[0].task_id, "shown inline")
    job.wait()
    shown = video(job, embed=True)  # downloads into a folder deleted before it returns
    assert shown.embed and len(shown.data) > 1000
    (entry,) = journal.entries()
    assert entry.local_file is None
    kept = video(job, download_to=tmp_path / "kept")
    (entry,) = journal.entries()
    assert entry.local_file is not None and Path(entry.local_file).is_file()
    assert Path(kept.filename).resolve() == Path(entry.local_file).resolve()


def test_journal_none_writes_nothing_anywhere(sandbox, client, tmp_path, _luma_nb_home):
    job = client.extend(sandbox.demo_parents[0].task_id, "no journal at all")
    job.wait()
    video(job, embed=True)
    video(job, download_to=tmp_path / "kept")
    save(job, tmp_path / "again")
    assert list(Path(_luma_nb_home).rglob("*")) == []  # not even the default journal's file
