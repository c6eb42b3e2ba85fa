"""The class gallery widget and the form's share choice, driven in-process against a real relay
in front of the sandbox (assertions on kernel-side widget values, as in test_widgets.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anywidget
import pytest
import requests

import luma_nb
from luma_nb import LumaClient
from luma_nb.notebook.widgets import ClassGallery, _recent, extend_form
from luma_nb.notebook.widgets.class_gallery import NO_CLASS
from luma_nb.notebook.widgets.form import SUBMIT_COOLDOWN
from luma_nb.sandbox import Sandbox
from tests.relay_support import Classroom
from tests.support import eventually

WAIT = 30.0


def _of(form, job):
    """The picker item of ``job`` in ``form`` (its items), or no items."""
    return next((p for p in form.parents if p["task_id"] == job.task_id), {}).items()


EVIL = '"><script>alert(1)</script>'


@pytest.fixture
def room(sandbox: Sandbox, tmp_path) -> Iterator[Classroom]:
    classroom = Classroom(sandbox, tmp_path, students=2)
    yield classroom
    classroom.close()


def test_the_widget_shows_videos_as_they_arrive_and_leave_and_stops(room, monkeypatch):
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    gallery = ClassGallery(room.client(0), columns=2)
    try:
        assert isinstance(gallery, anywidget.AnyWidget) and gallery.available
        assert gallery.follow is not None
        assert gallery.follow.wait_until(lambda f: f.state == "live", WAIT)
        assert gallery.value == [] and gallery.cards == []
        assert gallery.heading == "Class gallery: Year 9 Art" and gallery.can_stop

        author = room.client(1)
        job = author.extend(room.sandbox.demo_parents[0].task_id, EVIL)
        job.wait(timeout=WAIT)
        assert gallery.follow.wait_until(lambda f: job.task_id in f.videos, WAIT)
        [card] = gallery.cards
        # Text goes to the front-end as data (it sets textContent, never HTML).
        assert card["prompt"] == EVIL and card["label"] == room.tokens[1].name
        assert card["video"] == job.task.video_url and card["state"] == "finished"
        # The relay names the sandbox's poster of the video: the card shows it, no player.
        assert card["poster"] == f"{room.sandbox.base_url}/media/{job.task_id}.jpg"
        assert requests.get(card["poster"], timeout=10).headers["Content-Type"] == "image/jpeg"
        assert gallery.value[0].poster_url == card["poster"]
        assert gallery.status == "1 video · live"
        assert "127.0.0.1" not in gallery.status
        assert repr(gallery) == "ClassGallery('Year 9 Art')"
        bundle = gallery._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        assert data["text/plain"] == "ClassGallery('Year 9 Art')"
        assert "&lt;script&gt;" in data["text/html"] and "<script>" not in data["text/html"]
        assert "<video" not in data["text/html"]

        assert room.relay.store.set_hidden(job.task_id, True)  # the teacher hides it
        assert gallery.follow.wait_until(lambda f: not f.videos, WAIT)
        eventually(lambda: gallery.cards == [])
        assert gallery.status == "0 videos · live"

        gallery.on_stop()  # what the Stop button's message does
        assert not gallery.follow.running and gallery.follow.state == "stopped"
        assert gallery.stopped and gallery.status.endswith("stopped")
    finally:
        gallery.stop()
    gallery.stop()  # again: nothing happens


def test_the_widget_can_long_poll_too(room):
    gallery = ClassGallery(room.client(0), transport="poll")
    try:
        job = room.client(1).extend(room.sandbox.demo_parents[0].task_id, "polled")
        job.wait(timeout=WAIT)
        assert gallery.follow is not None
        assert gallery.follow.wait_until(lambda f: job.task_id in f.videos, WAIT)
        eventually(lambda: len(gallery.cards) == 1)
        assert gallery.cards[0]["poster"].endswith(f"/media/{job.task_id}.jpg")
    finally:
        gallery.stop()
    assert gallery.follow.state == "stopped"


def test_without_a_class_it_says_so_and_how_to_join(monkeypatch, sandbox):
    monkeypatch.delenv("LUMA_NB_CLASS_URL", raising=False)
    gallery = luma_nb.class_gallery()
    assert isinstance(gallery, ClassGallery) and not gallery.available
    assert repr(gallery) == NO_CLASS and "LUMA_NB_CLASS_URL" in NO_CLASS
    bundle = gallery._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["text/plain"] == NO_CLASS and gallery.status == NO_CLASS
    assert gallery.value == [] and gallery.follow is None
    gallery.stop()

    monkeypatch.setenv("LUMA_NB_CLASS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LUMA_NB_CLASS_TOKEN", "")
    assert "LUMA_NB_CLASS_TOKEN" in repr(luma_nb.class_gallery())

    demo = LumaClient(sandbox.api_key, base_url=sandbox.base_url, service="sandbox", journal=None)
    notice = repr(luma_nb.class_gallery(demo))
    assert "No class gallery" in notice and "offline sandbox" in notice
    demo.close()


def test_class_gallery_follows_the_configured_class(room, monkeypatch):
    from luma_nb.client import defaults

    monkeypatch.setenv("LUMA_NB_CLASS_URL", room.url)
    monkeypatch.setenv("LUMA_NB_CLASS_TOKEN", room.tokens[0].token)
    monkeypatch.setattr(defaults, "_client", None)
    gallery = luma_nb.class_gallery()
    try:
        assert gallery.available and gallery.client is defaults.default_client()
        assert luma_nb.ClassGallery is ClassGallery
        assert gallery.follow is not None
        assert gallery.follow.wait_until(lambda f: f.state == "live", WAIT)
    finally:
        gallery.stop()
        monkeypatch.setattr(defaults, "_client", None)


def test_the_form_offers_the_share_choice_only_in_a_class(room, sandbox):
    client = room.client(0)
    client.account()  # the relay says who it is
    form = extend_form(client, parent_task_id=sandbox.demo_parents[0].task_id)
    assert form.share is True and form.in_class
    assert form.status_line.startswith("Class: ")
    # The class's start videos (the sandbox's demo videos behind the relay), picked by title.
    eventually(lambda: form.parents and form.parents[0]["kind"] == "start")
    starts = {p["task_id"]: p for p in form.parents if p["kind"] == "start"}
    assert sandbox.demo_parents[0].task_id in starts
    assert set(starts) <= {d.task_id for d in sandbox.demo_parents}
    assert all(p["poster"].endswith(".jpg") and p["ratio"] for p in starts.values())
    assert form.ratio_text == f"{sandbox.demo_parents[0].aspect_ratio} (the parent's)"

    form.prompt = "kept to myself"
    form.share = False
    job = form.submit()
    assert job is not None
    form.prompt = "for everyone"
    form.share = True
    time.sleep(SUBMIT_COOLDOWN)  # past the double-click guard
    other = form.submit()
    assert other is not None
    job.wait(timeout=WAIT)
    other.wait(timeout=WAIT)
    items = {i.task_id: i for i in room.relay.store.gallery()[1]}
    _recent.forget_all()  # a classmate's view: the video is known from the class gallery
    again = extend_form(client)
    eventually(lambda: {"task_id": other.task_id, "kind": "class"}.items() <= _of(again, other))
    assert job.task_id not in {p["task_id"] for p in again.parents}  # kept to myself
    assert not items[job.task_id].shared and not items[job.task_id].visible
    assert items[other.task_id].visible

    demo = LumaClient(sandbox.api_key, base_url=sandbox.base_url, service="sandbox", journal=None)
    assert not extend_form(demo).in_class
    demo.close()


def test_the_classroom_notebook_shows_the_class_gallery_in_a_class(room, tmp_path):
    from tests._notebooks import (
        NOTEBOOKS,
        copy_notebooks,
        demo_env,
        environment,
        execute,
        output_text,
    )

    [copy] = copy_notebooks(tmp_path / "nb", [NOTEBOOKS / "04-classroom.ipynb"])
    env = demo_env(tmp_path / "home") | {
        "LUMA_NB_CLASS_URL": room.url,
        "LUMA_NB_CLASS_TOKEN": room.tokens[0].token,
    }
    with environment(env):
        text = output_text(execute(copy, timeout=120))
    assert "ClassGallery('Year 9 Art')" in text and "Gallery(0 jobs)" not in text
    assert room.tokens[0].token not in text
