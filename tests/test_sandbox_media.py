"""The sandbox's media route (ranges, HEAD, types), the videos it makes, and persistence."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
import requests
from PIL import Image

from luma_nb.sandbox import DEMO_PARENTS, Sandbox
from luma_nb.sandbox.media_library import Unsatisfiable, parse_range
from luma_nb.sandbox.video import frame_size
from tests.support import SandboxHTTP


def _decode(data: bytes) -> dict[str, Any]:
    """Codec, size, frame count and duration of an MP4, read back with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        rate = float(stream.average_rate or 24)
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (frames[0].width, frames[0].height),
            "frames": len(frames),
            "seconds": len(frames) / rate,
        }


@pytest.fixture(scope="module")
def finished() -> Iterator[tuple[str, bytes]]:
    """A finished imagine task's video URL and MP4 bytes (one sandbox for the module)."""
    with Sandbox(speed=200) as sandbox:
        http = SandboxHTTP(sandbox)
        task_id = http.imagine("a glass of water on a table")
        url = sandbox.complete(task_id)["body"]["video_url"]
        yield url, requests.get(url, timeout=10).content
        http.close()


def test_media_is_served_as_mp4(finished: tuple[str, bytes]) -> None:
    url, data = finished
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert int(response.headers["Content-Length"]) == len(data) > 1000
    assert data[4:8] == b"ftyp"
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: playable while downloading


def test_head_has_the_headers_and_no_body(finished: tuple[str, bytes]) -> None:
    url, data = finished
    response = requests.head(url, timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Type"] == "video/mp4"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-500", -500, None),
        ("bytes=10-10", 10, 10),
        ("bytes=0-999999999", 0, None),
    ],
)
def test_range_requests(
    finished: tuple[str, bytes], header: str, first: int, last: int | None
) -> None:
    url, data = finished
    response = requests.get(url, headers={"Range": header}, timeout=10)
    assert response.status_code == 206
    expected = data[first:] if last is None else data[first : last + 1]
    assert response.content == expected
    start = first % len(data)
    assert (
        response.headers["Content-Range"]
        == f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    )
    assert response.headers["Content-Length"] == str(len(expected))


def test_unsatisfiable_range_is_416(finished: tuple[str, bytes]) -> None:
    url, data = finished
    response = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    assert response.json()["errors"][0]["msg"]


def test_head_with_range(finished: tuple[str, bytes]) -> None:
    url, _ = finished
    response = requests.head(url, headers={"Range": "bytes=0-9"}, timeout=10)
    assert response.status_code == 206 and response.headers["Content-Length"] == "10"


def test_parse_range_edge_cases() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-1,4-5", 10) is None  # several ranges: whole file
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=5-2", 10) is None
    assert parse_range("bytes=-20", 10) == (0, 9)
    for bad in ("bytes=10-", "bytes=-0", "bytes=99-100"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 10)


def test_unknown_media_is_404(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    for name in ("nope.mp4", "..%2Fsecret", ".hidden", "demo-frame-9.png"):
        response = requests.get(f"{sandbox.base_url}/media/{name}", timeout=10)
        assert response.status_code == 404, name
        assert response.json()["errors"][0]["msg"]
    pending = sandbox_http.imagine()
    assert requests.get(f"{sandbox.base_url}/media/{pending}.mp4", timeout=10).status_code == 404
    response = requests.post(f"{sandbox.base_url}/media/nope.mp4", timeout=10)
    assert response.status_code == 405


def test_demo_frames_are_pngs(sandbox: Sandbox) -> None:
    for n in (1, 2, 3):
        response = requests.get(f"{sandbox.base_url}/media/demo-frame-{n}.png", timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.format == "PNG" and image.size[0] > 0


def test_media_needs_no_key(finished: tuple[str, bytes]) -> None:
    url, _ = finished
    assert requests.get(url, headers={"Authorization": ""}, timeout=10).status_code == 200


# -- the videos --------------------------------------------------------------------------------


def test_extension_is_its_parent_plus_five_seconds(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    parent = DEMO_PARENTS[0]
    media_dir = Path(sandbox.task(parent.task_id)["body"]["video_url"]).name
    assert media_dir == f"{parent.task_id}.mp4"
    assert sandbox.task(parent.task_id)["media_ready"] is False  # made lazily, not at start
    child = sandbox_http.extend(parent.task_id, "a ship passes the lighthouse")
    child_url = sandbox_http.wait(child)["video_url"]
    parent_video = _decode(
        requests.get(f"{sandbox.base_url}/media/{parent.task_id}.mp4", timeout=10).content
    )
    child_video = _decode(requests.get(child_url, timeout=10).content)
    assert parent_video["codec"] == child_video["codec"] == "h264"
    assert child_video["pix_fmt"] == "yuv420p"
    assert parent_video["size"] == child_video["size"] == frame_size(parent.aspect_ratio)
    assert child_video["seconds"] - parent_video["seconds"] == pytest.approx(5.0, abs=0.2)


def test_frame_size_follows_the_aspect_ratio(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    task_id = sandbox_http.imagine("a tall tower", aspect_ratio="9:16")
    video = _decode(requests.get(sandbox_http.wait(task_id)["video_url"], timeout=10).content)
    assert video["size"] == frame_size("9:16") and video["size"][0] < video["size"][1]
    assert video["seconds"] == pytest.approx(5.0, abs=0.2)


def test_image_urls_on_loopback_become_frames(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    own = f"{sandbox.base_url}/media/demo-frame-2.png"
    task_id = sandbox_http.imagine(image_url=own, end_image_url="https://example.com/end.png")
    sandbox_http.wait(task_id)
    notes = sandbox.task(task_id)["render_notes"]
    assert notes == ["last frame: https://example.com/end.png (not fetched)"]


def test_image_urls_on_another_loopback_server_are_fetched(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, make_sandbox: Callable[..., Sandbox]
) -> None:
    other = make_sandbox()
    url = f"{other.base_url}/media/demo-frame-3.png"
    broken = f"{other.base_url}/media/missing.png"
    task_id = sandbox_http.imagine(image_url=url, end_image_url=broken)
    sandbox_http.wait(task_id)
    assert sandbox.task(task_id)["render_notes"] == [f"last frame: {broken} (not fetched)"]
    assert other.count("/media/demo-frame-3.png") == 1


def test_user_files_in_the_data_dir_are_served(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "my-start.png").write_bytes(b"\x89PNG fake")
    sandbox = make_sandbox(data_dir=tmp_path)
    response = requests.get(f"{sandbox.base_url}/media/my-start.png", timeout=10)
    assert response.status_code == 200 and response.content == b"\x89PNG fake"
    assert response.headers["Content-Type"] == "image/png"


# -- persistence -------------------------------------------------------------------------------


def test_tasks_and_media_survive_a_restart(tmp_path: Path) -> None:
    with Sandbox(speed=200, data_dir=tmp_path) as first:
        http = SandboxHTTP(first)
        done = http.imagine("kept across restarts")
        video = requests.get(http.wait(done)["video_url"], timeout=10).content
        running = http.imagine("still running at stop")
        credits = first.credits
        http.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "sandbox.db")) as db:
        (row,) = db.execute("SELECT data FROM tasks WHERE task_id = ?", (done,)).fetchall()
    assert json.loads(row[0])["task_id"] == done

    with Sandbox(speed=200, data_dir=tmp_path) as second:
        http = SandboxHTTP(second)
        body = http.fetch(done)
        assert body["video_url"] == f"{second.base_url}/media/{done}.mp4"
        assert requests.get(body["video_url"], timeout=10).content == video
        assert "video_url" in http.wait(running)
        assert second.credits == credits
        assert http.get("/account").json()["credits"] == credits
        assert set(second.task_ids) == {done, running}
        http.close()


def test_without_data_dir_the_temp_dir_is_removed() -> None:
    sandbox = Sandbox(speed=200).start()
    http = SandboxHTTP(sandbox)
    sandbox.complete(http.imagine())
    media = sandbox._store.media_dir
    assert list(media.glob("*.mp4"))
    assert media.is_dir()
    http.close()
    sandbox.stop()
    assert not media.exists()


def test_an_unreadable_task_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "broken.json").write_text("{half a task")
    with Sandbox(speed=200, data_dir=tmp_path) as sandbox:
        assert sandbox.task_ids == []
        http = SandboxHTTP(sandbox)
        assert http.get("/account").status_code == 200
        http.close()


def test_an_empty_api_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Sandbox(api_key=" ")


def test_render_workers_leave_ctrl_c_to_the_sandbox() -> None:
    # An interrupted or shut-down kernel signals its whole process group; the render workers
    # must not answer with KeyboardInterrupt tracebacks of their own.
    import signal

    from luma_nb.sandbox.work import process_pool

    handler = process_pool().submit(signal.getsignal, signal.SIGINT).result(timeout=120)
    assert handler == signal.SIG_IGN
