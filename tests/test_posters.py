"""Posters: each task's own picture, taken where its new part begins (sandbox and contract)."""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from luma_nb.contract.models import Task
from luma_nb.contract.posters import poster_url, sandbox_poster_url, start_fragment
from luma_nb.sandbox import Sandbox
from tests.support import SandboxHTTP

# -- the rule, no I/O ---------------------------------------------------------------------------


def test_a_sandbox_video_url_gives_the_poster_beside_it() -> None:
    url = "http://classroom:8765/media/3f1c-aa_b.mp4?x=1#t=2"
    assert sandbox_poster_url(url) == "http://classroom:8765/media/3f1c-aa_b.jpg"
    assert (
        poster_url(video_url=url, service="sandbox") == "http://classroom:8765/media/3f1c-aa_b.jpg"
    )
    task = Task.from_json({"task_id": "x", "video_url": url})
    assert poster_url(task, service="sandbox") == "http://classroom:8765/media/3f1c-aa_b.jpg"


def test_the_real_service_has_no_poster() -> None:
    url = "https://cdn.example.invalid/media/abc.mp4"
    task = Task.from_json({"task_id": "abc", "video_url": url})
    assert poster_url(task) is None
    assert poster_url(task, service="api") is None
    assert poster_url(video_url=url, service="unknown") is None
    assert poster_url(None) is None


def test_unsafe_or_odd_urls_give_no_poster() -> None:
    assert sandbox_poster_url("javascript:alert(1)//media/a.mp4") is None
    assert sandbox_poster_url("http://h/media/../a.mp4") is None
    assert sandbox_poster_url("http://h/videos/a.mp4") is None
    assert poster_url({"video_url": "data:video/mp4,/media/a.mp4"}, service="sandbox") is None
    assert poster_url({"video_url": 3}, service="sandbox") is None


def test_start_fragment() -> None:
    assert start_fragment("https://h/v.mp4", 5.0) == "https://h/v.mp4#t=5"
    assert start_fragment("https://h/v.mp4#t=1", 10.25) == "https://h/v.mp4#t=10.25"
    assert start_fragment("https://h/v.mp4", 0) == "https://h/v.mp4"
    assert start_fragment("https://h/v.mp4", None) == "https://h/v.mp4"
    assert start_fragment("https://h/v.mp4", float("nan")) == "https://h/v.mp4"


# -- the sandbox serves them --------------------------------------------------------------------


def _frame(video: bytes, index: int) -> Image.Image:
    with av.open(io.BytesIO(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_image()
    raise AssertionError(f"no frame {index}")


def _frames(video: bytes) -> int:
    with av.open(io.BytesIO(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    assert a.size == b.size
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def _poster(http: SandboxHTTP, task_id: str) -> Image.Image:
    response = http.get(f"/media/{task_id}.jpg")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    assert "max-age=" in response.headers["Cache-Control"]
    assert response.headers["ETag"]
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "JPEG"
    return image


def test_each_extend_of_one_parent_gets_its_own_poster_at_the_parents_length(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    parent = sandbox.demo_parents[1].task_id
    children = [
        sandbox_http.extend(parent, f"variation {n}: a {c} kite")
        for n, c in enumerate(("red", "green", "blue"))
    ]
    bodies = [sandbox_http.wait(child) for child in children]
    for child, body in zip(children, bodies, strict=True):
        assert poster_url(body, service="sandbox") == f"{sandbox.base_url}/media/{child}.jpg"

    parent_video = sandbox_http.get(f"/media/{parent}.mp4").content
    parent_frames = _frames(parent_video)
    posters = [_poster(sandbox_http, child) for child in children]
    for child, poster in zip(children, posters, strict=True):
        video = sandbox_http.get(f"/media/{child}.mp4").content
        assert _frames(video) > parent_frames
        # The poster is the first frame of the new part (JPEG error aside) ...
        assert _difference(poster, _frame(video, parent_frames)) < 3
        # ... not the parent's first frame that every extension starts with.
        assert _difference(poster, _frame(video, 0)) > 10
    for i in range(len(posters)):
        for j in range(i + 1, len(posters)):
            assert _difference(posters[i], posters[j]) > 5, "two variations share a poster"


def test_an_imagine_poster_is_its_first_frame_and_is_cached(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    task_id = sandbox_http.imagine("a lantern over a dark lake")
    sandbox_http.wait(task_id)
    poster = _poster(sandbox_http, task_id)
    video = sandbox_http.get(f"/media/{task_id}.mp4").content
    assert _difference(poster, _frame(video, 0)) < 3

    first = sandbox_http.get(f"/media/{task_id}.jpg")
    again = sandbox_http.get(
        f"/media/{task_id}.jpg", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert sandbox_http.get(f"/media/{task_id}.jpg").content == first.content
    head = sandbox_http.session.head(f"{sandbox.base_url}/media/{task_id}.jpg", timeout=10)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(first.content)


def test_a_demo_parent_has_a_poster(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    parent = sandbox.demo_parents[0]
    poster = _poster(sandbox_http, parent.task_id)
    assert poster.size == (672, 384)  # its 16:9 frame


@pytest.mark.parametrize("name", ["no-such-task.jpg", "..jpg", "x" * 300 + ".jpg"])
def test_unknown_posters_are_404_like_unknown_media(sandbox_http: SandboxHTTP, name: str) -> None:
    response = sandbox_http.get(f"/media/{name}")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "errors" in response.json()
    unknown_video = sandbox_http.get("/media/no-such-task.mp4")
    assert unknown_video.status_code == 404
    assert unknown_video.json().keys() == response.json().keys()


def test_a_poster_before_the_video_exists_is_404(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    sandbox.pause_renders()
    try:
        task_id = sandbox_http.imagine("not rendered yet")
        response = sandbox_http.get(f"/media/{task_id}.jpg")
        assert response.status_code == 404
        assert response.json()["errors"][0]["msg"] == f"Media not found: {task_id}.jpg"
    finally:
        sandbox.pause_renders(False)
