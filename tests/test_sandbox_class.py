"""The sandbox serving a class: render cache, cheap extends, waiting line, credits, state."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
import requests

from luma_nb.contract.text import ordinal
from luma_nb.sandbox import DEMO_PARENTS, Sandbox
from luma_nb.sandbox.api import UNLIMITED_CREDITS
from luma_nb.sandbox.cli import add_arguments
from luma_nb.sandbox.remux import ParamsMismatch, concat
from luma_nb.sandbox.video import synthesize
from tests.support import SandboxHTTP, eventually


def _top_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_the_same_prompt_renders_once(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    http = SandboxHTTP(sandbox)
    ids = [http.imagine("the suggested prompt", aspect_ratio="16:9") for _ in range(3)]
    bodies = [http.wait(task_id) for task_id in ids]
    videos = {requests.get(b["video_url"], timeout=10).content for b in bodies}
    stats = sandbox.render_stats
    assert stats.rendered == 1
    assert stats.cache_hits + stats.joined == 2
    assert len(videos) == 1
    http.wait(http.imagine("another prompt"))
    assert sandbox.render_stats.rendered == 2
    http.close()


def test_an_extension_joins_new_seconds_without_re_encoding_the_parent(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    http = SandboxHTTP(sandbox)
    parent = DEMO_PARENTS[0].task_id
    child = http.extend(parent, "the camera pulls back")
    assert "video_url" in http.wait(child)
    media = sandbox._store.media_dir
    parent_packets = _packets(media / f"{parent}.mp4")
    child_path = media / f"{child}.mp4"
    child_packets = _packets(child_path)
    # The parent's compressed frames are copied byte for byte; only new ones follow.
    assert child_packets[: len(parent_packets)] == parent_packets
    assert len(child_packets) == len(parent_packets) + 5 * 24
    assert _decoded_frames(child_path) == len(child_packets)
    boxes = _top_boxes(child_path)
    assert boxes.index("moov") < boxes.index("mdat")
    grandchild = http.extend(child, "and further")
    assert "video_url" in http.wait(grandchild)
    assert _decoded_frames(media / f"{grandchild}.mp4") == len(child_packets) + 5 * 24
    http.close()


def test_concat_refuses_videos_with_other_codec_parameters(tmp_path: Path) -> None:
    square = synthesize(tmp_path / "a.mp4", prompt="a", aspect_ratio="1:1", seconds=0.5).path
    wide = synthesize(tmp_path / "b.mp4", prompt="b", aspect_ratio="16:9", seconds=0.5).path
    with pytest.raises(ParamsMismatch):
        concat(square, wide, str(tmp_path / "out.mp4"))
    assert not (tmp_path / "out.mp4").exists()


def test_the_queue_position_is_part_of_the_progress(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    http = SandboxHTTP(sandbox)
    sandbox.pause_renders()
    ids = [http.imagine(f"prompt number {n}") for n in range(3)]
    for task_id in ids:
        sandbox.complete(task_id, wait=None)  # its simulated time is up; only the video lacks
    eventually(
        lambda: all(sandbox.task(t)["queue_position"] for t in ids),
        what="three in line",
        timeout=60,
    )
    bodies = [http.fetch(t) for t in ids]
    assert sorted(sandbox.task(t)["queue_position"] for t in ids) == [1, 2, 3]
    for body in bodies:
        assert body["status"] == "processing"
        assert body["percentage"] == "90"  # held below 100 %, never frozen at 99
        position = sandbox.task(body["task_id"])["queue_position"]
        assert body["progress_note"] == f"waiting for a renderer ({ordinal(position)} in line)"
    sandbox.pause_renders(False)
    for task_id in ids:
        final = http.wait(task_id)
        assert "video_url" in final and "progress_note" not in final
    http.close()


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th",
    ]  # fmt: skip


def test_a_full_waiting_line_refuses_submits_before_charging(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(max_queue=2)
    http = SandboxHTTP(sandbox)
    sandbox.pause_renders()
    ids = [http.imagine(f"queued {n}") for n in range(2)]
    eventually(
        lambda: all(sandbox.task(t)["queue_position"] for t in ids), what="two in line", timeout=60
    )
    credits = sandbox.credits
    refused = http.post("/luma-imagine", {"prompt": "one too many"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"
    assert refused.json() == {"errors": [{"msg": "Too many requests: the renderers are busy"}]}
    assert sandbox.credits == credits and len(sandbox.task_ids) == 2
    sandbox.pause_renders(False)
    for task_id in ids:
        sandbox.complete(task_id)
    assert http.post("/luma-imagine", {"prompt": "now there is room"}).status_code == 200
    http.close()


def test_at_most_n_running_then_429_uncharged_until_one_ends(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(speed=1.0, max_running=2)  # jobs take minutes unless completed
    http = SandboxHTTP(sandbox)
    ids = [http.imagine(f"running {n}") for n in range(2)]
    assert sandbox.running_tasks == 2
    credits = sandbox.credits
    for path, body in (
        ("/luma-imagine", {"prompt": "a third"}),
        ("/luma-extend", {"parent_task_id": DEMO_PARENTS[0].task_id, "prompt": "a third"}),
    ):
        refused = http.post(path, body)
        assert refused.status_code == 429
        assert float(refused.headers["Retry-After"]) > 0
        assert refused.json() == {
            "errors": [{"msg": "Too many requests: 2 generations are running already"}]
        }
    assert sandbox.credits == credits and sandbox.task_ids == ids  # nothing made or charged
    sandbox.complete(ids[0])
    assert sandbox.running_tasks == 1
    third = http.imagine("now there is room")
    assert http.post("/luma-imagine", {"prompt": "a fourth"}).status_code == 429
    sandbox.max_running = None
    assert http.post("/luma-imagine", {"prompt": "no cap"}).status_code == 200
    assert third in sandbox.task_ids
    with pytest.raises(ValueError, match="max_running"):
        sandbox.max_running = 0
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--max-running", "10"]).max_running == 10
    assert parser.parse_args([]).max_running is None
    http.close()


def test_credits_option_unlimited_and_reset(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(credits=12)
    http = SandboxHTTP(sandbox)
    http.imagine("one")
    http.imagine("two")
    assert http.post("/luma-imagine", {"prompt": "three"}).status_code == 402
    sandbox.reset_credits()
    assert http.get("/account").json()["credits"] == 12
    assert http.get("/account").json()["total_images"] == 0
    sandbox.reset_credits(unlimited=True)
    for n in range(5):
        http.imagine(f"free {n}")
    assert sandbox.credits is None
    assert http.get("/account").json()["credits"] == UNLIMITED_CREDITS
    with pytest.raises(ValueError, match="credits"):
        sandbox.reset_credits(-1)
    with pytest.raises(ValueError, match="credits"):
        Sandbox(credits=-6)
    http.close()
    unlimited = make_sandbox(credits=None)
    http = SandboxHTTP(unlimited)
    http.imagine()
    assert unlimited.credits is None
    http.close()


def test_cli_credits_option() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--credits", "60000"]).credits == 60000
    assert parser.parse_args(["--credits", "unlimited"]).credits is None
    assert parser.parse_args([]).credits == 1200
    args = parser.parse_args(["--reset-credits", "--public-url", "http://class.example:80"])
    assert args.reset_credits and args.public_url == "http://class.example:80"
    for bad in (["--credits", "lots"], ["--credits", "-5"], ["--public-url", "ftp://x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_state_lives_in_sqlite_and_credits_reset_between_lessons(tmp_path: Path) -> None:
    with Sandbox(speed=200, data_dir=tmp_path, credits=30) as first:
        http = SandboxHTTP(first)
        done = http.imagine("lesson one")
        http.wait(done)
        http.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "sandbox.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1
    assert not (tmp_path / "tasks").exists() and not (tmp_path / "account.json").exists()
    with Sandbox(speed=200, data_dir=tmp_path, credits=30) as second:
        assert second.credits == 24  # spent credits carry over ...
    with Sandbox(speed=200, data_dir=tmp_path, credits=30, reset_credits=True) as third:
        assert third.credits == 30  # ... unless a new lesson starts
        assert third.task_ids == [done]
        assert "video_url" in SandboxHTTP(third).fetch(done)


def test_part_files_of_a_killed_render_are_removed_at_start(tmp_path: Path) -> None:
    media = tmp_path / "media"
    cache = tmp_path / "cache"
    media.mkdir()
    cache.mkdir()
    leftovers = [media / ".abc.mp4.x1.part", cache / ".f00.mp4.x2.part"]
    for path in leftovers:
        path.write_bytes(b"half a video")
    kept = media / "notes.txt"
    kept.write_text("not a render")
    with Sandbox(speed=200, data_dir=tmp_path):
        assert not any(path.exists() for path in leftovers)
        assert kept.exists()


def test_links_survive_a_restart_on_another_port(tmp_path: Path) -> None:
    public = "http://classroom.example:8765"
    with Sandbox(speed=200, data_dir=tmp_path, public_url=public + "/") as first:
        http = SandboxHTTP(first)
        task_id = http.imagine("kept link")
        url = http.wait(task_id)["video_url"]
        old_port = first.port
        http.close()
    assert url == f"{public}/media/{task_id}.mp4"
    with Sandbox(speed=200, data_dir=tmp_path, public_url=public) as second:
        assert second.port != old_port
        http = SandboxHTTP(second)
        assert http.fetch(task_id)["video_url"] == url
        path = url[len(public) :]
        assert http.get(path).status_code == 200
        http.close()
    with pytest.raises(ValueError, match="public_url"):
        Sandbox(public_url="classroom:8765")


def test_retry_statuses_as_a_task_fault(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    sandbox.faults.apply_spec("task:retry=retrying")
    sandbox.faults.next_task(retry="retry")
    http = SandboxHTTP(sandbox)
    for status in ("retrying", "retry"):
        bodies: list[dict[str, Any]] = []
        http.wait(http.imagine(), on_body=bodies.append)
        assert status in [b.get("status") for b in bodies]
    with pytest.raises(ValueError, match="retry"):
        sandbox.faults.apply_spec("task:retry=again")
    http.close()


def test_the_client_and_the_progress_bar_say_where_a_task_waits(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    from luma_nb import LumaClient
    from luma_nb.client.watcher import Watcher
    from luma_nb.notebook.widgets import ProgressView

    sandbox = make_sandbox()
    client = LumaClient("k", base_url=sandbox.base_url, service="sandbox", journal=None)
    sandbox.pause_renders()
    job = client.imagine("a lighthouse at dusk")
    sandbox.complete(job.task_id, wait=None)
    eventually(lambda: sandbox.task(job.task_id)["queue_position"], what="in line", timeout=60)
    task = job.refresh()
    assert task.status == "processing" and task.note == "waiting for a renderer (1st in line)"
    assert task.describe() == "processing 90% (waiting for a renderer (1st in line))"
    view = ProgressView(job, watcher=Watcher(autostart=False))  # shows the snapshot it has
    assert "waiting for a renderer (1st in line)" in view.cards[0]["words"]
    sandbox.pause_renders(False)
    finished = job.wait(timeout=120)
    assert finished.note is None and finished.describe() == "finished"
