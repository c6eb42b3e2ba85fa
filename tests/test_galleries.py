"""The galleries as anywidget widgets: their synced state and messages, against the sandbox.

Assertions are on the traits a front-end receives (``cards``, ``final``, ``status``...) and on
the comm messages the widget exchanges, never on private attributes. The browser side (no
media request until a card is played) is the browser tests' business.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anywidget
import av
import comm
import pytest
import requests
from comm.base_comm import BaseComm
from PIL import Image, ImageChops, ImageStat

import luma_nb
from luma_nb.contract.errors import ValidationError
from luma_nb.notebook import frontend
from luma_nb.notebook.widgets import Gallery, Storyboard, storyboard
from luma_nb.notebook.widgets.gallery import STATIC
from luma_nb.sandbox import Sandbox
from tests.support import eventually

WAIT = 60.0


class RecordingComm(BaseComm):
    """A comm that keeps what the widget sends (as the kernel's comm would publish it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, Any, list[Any]]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        self.sent.append((msg_type, data, list(buffers or [])))

    def custom(self) -> list[tuple[dict[str, Any], list[Any]]]:
        """The custom messages sent to the front-end so far."""
        return [
            (data["content"], buffers)
            for kind, data, buffers in self.sent
            if kind == "comm_msg" and isinstance(data, dict) and data.get("method") == "custom"
        ]

    def from_front_end(self, content: dict[str, Any]) -> None:
        """Deliver a custom message as the front-end's ``model.send(content)`` does."""
        self.handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )


@pytest.fixture
def comms(monkeypatch) -> Iterator[list[RecordingComm]]:
    made: list[RecordingComm] = []

    def create(*args: Any, **kwargs: Any) -> RecordingComm:
        made.append(RecordingComm(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create)
    yield made


@pytest.fixture
def local_browser(monkeypatch) -> None:
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    frontend.forget_routes()


@pytest.fixture
def remote_browser(monkeypatch, tmp_path) -> Iterator[None]:
    """A browser elsewhere with no route to the sandbox (no Jupyter server to proxy through)."""
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("JUPYTERHUB_SERVICE_URL", raising=False)
    frontend.forget_routes()
    yield
    frontend.forget_routes()


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def _differ(a: bytes, b: bytes) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(_image(a), _image(b))).mean) / 3


# -- the shipped module -------------------------------------------------------------------------


def test_one_es_module_and_css_shipped_in_the_package() -> None:
    js, css = (STATIC / "gallery.js").read_text(), (STATIC / "gallery.css").read_text()
    assert "export default" in js and "render" in js
    # The stable hooks the browser tests use.
    for marker in (
        '"data-luma": options.final ? "final" : "card"',
        '"data-luma": "poster"',
        '"data-luma": "play"',
        '"data-luma": "status"',
    ):
        assert marker in js
    # Nothing fetched at run time: no CDN, no import of other modules.
    assert "import " not in js and "http" not in js and "cdn" not in js.lower()
    assert "var(--jp-" in css and "var(--jp-layout-color1, " in css  # with fallbacks
    assert issubclass(Gallery, anywidget.AnyWidget) and issubclass(Storyboard, anywidget.AnyWidget)
    gallery = Gallery([])
    assert isinstance(gallery._esm, str) and "export default" in gallery._esm  # anywidget's trait


# -- Gallery -------------------------------------------------------------------------------------


def test_a_gallery_of_variations_shows_a_different_poster_on_each_card(
    sandbox: Sandbox, client, local_browser
) -> None:
    parent = sandbox.demo_parents[0].task_id
    jobs = client.extend_many(parent, ["a red kite", "a green kite", "a blue kite"])
    gallery = luma_nb.Gallery(jobs, columns=3)
    assert isinstance(gallery, Gallery) and repr(gallery) == "Gallery(3 jobs)"
    assert [c["id"] for c in gallery.cards] == [j.task_id for j in jobs]
    assert {c["state"] for c in gallery.cards} <= {"running", "finished"}
    tasks = gallery.wait(WAIT)
    assert all(t.is_finished for t in tasks) and gallery.value == tasks
    eventually(lambda: all(c["state"] == "finished" for c in gallery.cards))

    cards = gallery.cards
    for card, job in zip(cards, jobs, strict=True):
        assert card["video"] == job.task.video_url
        assert card["poster"] == f"{sandbox.base_url}/media/{job.task_id}.jpg"
        assert card["embed"] is False and card["prompt"] == job.prompt
        assert card["start"] == 5.0  # it plays from where its own part begins
    posters = [requests.get(c["poster"], timeout=10).content for c in cards]
    assert all(_differ(posters[i], posters[j]) > 5 for i in range(3) for j in range(i + 1, 3))

    # One status line for the view; the loopback address only in its tooltip.
    assert gallery.status == "Offline sandbox, no credits used · 3 videos"
    assert "127.0.0.1" not in gallery.status and "127.0.0.1" in gallery.status_title
    for card in cards:
        assert not any("sandbox" in str(card.get(k, "")).lower() for k in ("prompt", "word"))


def test_gallery_add_and_the_empty_gallery(sandbox, client, local_browser) -> None:
    gallery = Gallery([], columns=3)
    assert gallery.cards == [] and repr(gallery) == "Gallery(0 jobs)"
    assert "No jobs yet" in gallery.empty
    bundle = gallery._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["text/plain"] == "Gallery(0 jobs)" and "No jobs yet" in data["text/html"]

    job = client.extend(sandbox.demo_parents[0].task_id, "a gull lands on the rail")
    watch = gallery.add(job)
    assert gallery.jobs == [job] and [c["id"] for c in gallery.cards] == [job.task_id]
    assert watch.wait(WAIT).is_finished
    assert [t.status for t in gallery.wait(WAIT)] == ["finished"]
    assert asyncio.run(_await(gallery))[0].task_id == job.task_id


async def _await(gallery: Gallery) -> Any:
    return await gallery


def test_a_failed_job_says_why_on_its_card(sandbox, client, local_browser) -> None:
    sandbox.faults.next_task(fail="the GPU melted")
    job = client.extend(sandbox.demo_parents[0].task_id, "doomed")
    gallery = Gallery([job])
    with pytest.raises(luma_nb.TaskFailedError):
        gallery.wait(WAIT)
    eventually(lambda: gallery.cards[0]["state"] == "failed")
    assert "GPU melted" in gallery.cards[0]["error"]
    assert gallery.status.endswith("1 video: 1 failed")


def test_saved_output_has_no_player_and_no_media_url(sandbox, client, local_browser) -> None:
    jobs = client.extend_many(sandbox.demo_parents[0].task_id, ["one", "two"])
    gallery = Gallery(jobs)
    gallery.wait(WAIT)
    bundle = gallery._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert "<video" not in html and ".mp4" not in html and "127.0.0.1" not in html
    assert "one" in html and "two" in html


def test_without_a_route_the_poster_is_embedded_and_play_sends_the_bytes(
    sandbox: Sandbox, client, remote_browser, comms
) -> None:
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide comes in")
    gallery = Gallery([job])
    gallery.wait(WAIT)
    eventually(lambda: gallery.cards[0]["state"] == "finished")
    [card] = gallery.cards
    assert card["video"] == "" and card["embed"] is True
    assert card["poster"].startswith("data:image/jpeg;base64,")
    assert "Embedded" in card["title"]
    media_before = sandbox.count(f"/media/{job.task_id}.mp4")

    [recording] = [c for c in comms if c.comm_id == gallery.comm.comm_id]
    recording.from_front_end({"type": "play", "id": job.task_id})
    eventually(lambda: recording.custom(), timeout=WAIT)
    [(content, buffers)] = recording.custom()
    assert content == {"type": "video", "id": job.task_id, "mime": "video/mp4"}
    served = requests.get(job.task.video_url, timeout=10).content
    assert bytes(buffers[0]) == served
    assert sandbox.count(f"/media/{job.task_id}.mp4") == media_before + 2  # kernel, then us

    recording.from_front_end({"type": "play", "id": "not-a-card"})
    eventually(lambda: len(recording.custom()) == 2, timeout=WAIT)
    assert recording.custom()[1][0]["error"]


# -- Storyboard ----------------------------------------------------------------------------------


def _frame_at(video: bytes, seconds: float) -> Image.Image:
    with av.open(io.BytesIO(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds - 0.02:
                return frame.to_image().convert("RGB")
    raise AssertionError(f"no frame at {seconds}")


def test_storyboard_steps_show_their_own_part_and_the_story_its_first_frame(
    sandbox: Sandbox, client, local_browser
) -> None:
    parent = sandbox.demo_parents[1].task_id
    board = storyboard(client, parent, ["first", "second", "third"])
    assert isinstance(board, Storyboard) and repr(board) == "Storyboard(3 extends)"
    assert [c["state"] for c in board.cards][1:] == ["waiting", "waiting"]
    final = board.wait(WAIT)
    jobs = board.jobs
    assert [j.parent_task_id for j in jobs] == [parent, jobs[0].task_id, jobs[1].task_id]
    assert final.task_id == jobs[-1].task_id and final.is_finished

    cards = board.cards
    assert [c["state"] for c in cards] == ["finished"] * 3
    assert [c["label"] for c in cards] == ["1", "2", "3"]
    assert [c["start"] for c in cards] == [5.0, 10.0, 15.0]  # where each new part begins
    for card, job in zip(cards, jobs, strict=True):
        assert card["poster"] == f"{sandbox.base_url}/media/{job.task_id}.jpg"
        assert card["video"] == job.task.video_url
        video = requests.get(card["video"], timeout=10).content
        poster = _image(requests.get(card["poster"], timeout=10).content)
        assert (
            sum(ImageStat.Stat(ImageChops.difference(poster, _frame_at(video, card["start"]))).mean)
            / 3
            < 3
        )

    story = board.final
    assert story["video"] == jobs[-1].task.video_url and story["start"] == 0.0
    assert story["poster"] == f"{sandbox.base_url}/media/{parent}.jpg"  # not step 3's again
    assert story["poster"] != cards[-1]["poster"] and story["id"] != cards[-1]["id"]
    assert story["heading"] == "The whole story: 3 extends, 0:20"
    assert board.status == "Offline sandbox, no credits used · 3 steps"
    assert board.heading.startswith("Storyboard: 3 extends")


def test_storyboard_validates_every_prompt_before_the_first_submit(sandbox, client) -> None:
    with pytest.raises(ValidationError, match=r"prompts\[2\] is empty"):
        storyboard(client, sandbox.demo_parents[0].task_id, ["ok", "fine", "  "])
    with pytest.raises(ValidationError, match="aspect_ratio"):
        storyboard(client, sandbox.demo_parents[0].task_id, ["ok"], aspect_ratio="5:4")
    assert sandbox.count("/luma-extend") == 0


def test_storyboard_is_awaitable(sandbox, client, local_browser) -> None:
    board = storyboard(client, sandbox.demo_parents[0].task_id, ["one", "two"])

    async def main() -> Any:
        return await board

    assert asyncio.run(main()).task_id == board.jobs[-1].task_id


def test_storyboard_failure_stops_the_chain(sandbox, client, local_browser) -> None:
    sandbox.faults.next_task(fail="the GPU melted")
    board = storyboard(client, sandbox.demo_parents[0].task_id, ["one", "two"])
    with pytest.raises(luma_nb.TaskFailedError, match="GPU melted"):
        board.wait(WAIT)
    assert len(board.jobs) == 1 and sandbox.count("/luma-extend") == 1
    assert "GPU melted" in board.message
    assert [c["state"] for c in board.cards] == ["failed", "waiting"]
    assert board.final == {}


def test_public_names() -> None:
    assert luma_nb.Gallery is Gallery and luma_nb.storyboard is storyboard
    assert Path(STATIC, "gallery.css").is_file()
