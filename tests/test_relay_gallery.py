"""The live class gallery over real HTTP: a relay in front of a real sandbox, students listening
with server-sent events or long-polls, the share choice and the teacher's hiding."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests

from luma_nb import ClassOnlyError, LumaClient, TransportError
from luma_nb.client.class_feed import GalleryStream
from luma_nb.contract.class_videos import GalleryUpdate
from luma_nb.contract.errors import APIError, AuthenticationError
from luma_nb.sandbox import Sandbox
from tests.relay_support import Classroom

#: Generous waits: the machine is shared, the sandbox makes a video in 0.3-1.5 s.
WAIT = 30.0


@pytest.fixture
def room(sandbox: Sandbox, tmp_path) -> Iterator[Classroom]:
    classroom = Classroom(sandbox, tmp_path, students=3)
    yield classroom
    classroom.close()


def finished(room: Classroom, student: int, prompt: str) -> str:
    """A finished extend by ``student``; its task id."""
    client = room.client(student)
    job = client.extend(room.sandbox.demo_parents[0].task_id, prompt)
    job.wait(timeout=WAIT)
    return job.task_id


class Listener:
    """A student's live stream on a thread, recording every update (and any error)."""

    def __init__(self, stream: GalleryStream) -> None:
        self.stream = stream
        self.updates: list[GalleryUpdate] = []
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for update in self.stream:
                with self._cond:
                    self.updates.append(update)
                    self._cond.notify_all()
        except BaseException as error:
            self.error = error
        with self._cond:
            self._cond.notify_all()

    def shown(self) -> dict[str, str]:
        """task id -> prompt of what the updates add up to."""
        videos: dict[str, str] = {}
        with self._cond:
            for update in self.updates:
                if update.reset:
                    videos.clear()
                for task_id in update.removed:
                    videos.pop(task_id, None)
                for video in update.videos:
                    videos[video.task_id] = video.prompt
        return videos

    def ever(self) -> set[str]:
        with self._cond:
            return {v.task_id for u in self.updates for v in u.videos}

    def until(self, predicate, timeout: float = WAIT) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate() or self.error is not None, timeout)
        assert self.error is None, f"the stream failed: {self.error!r}"
        assert ok, f"not seen in time; updates: {self.updates}"

    def close(self) -> None:
        self.stream.close()
        self.thread.join(10)
        assert not self.thread.is_alive()


def sse(room: Classroom, student: int = 0, last_id: int | None = None):
    """A raw event stream (plain requests): the response and a reader of its events."""
    headers = {"Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    response = room.http(student).get(
        room.url + "/class/gallery/events", headers=headers, stream=True, timeout=(5, WAIT)
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    lines = response.iter_lines(decode_unicode=True)

    def events(until_sync: int = 1) -> list[tuple[str, dict, str]]:
        """(name, data, raw text) of events up to the ``until_sync``-th ``sync`` event."""
        got, name, data, raw, syncs = [], "message", "", [], 0
        for line in lines:
            raw.append(line)
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                got.append((name, json.loads(data), "\n".join(raw)))
                if name == "sync":
                    syncs += 1
                    if syncs == until_sync:
                        return got
                name, data, raw = "message", "", []
        return got

    return response, events


def test_a_listening_student_gets_a_classmates_video_when_it_finishes(room):
    listener = Listener(room.client(0).gallery_events())
    try:
        listener.until(lambda: listener.updates)  # the (empty) gallery as it is now
        task_id = finished(room, 1, "a heron <lands>")
        listener.until(lambda: task_id in listener.shown())
        [video] = [v for u in listener.updates for v in u.videos]
        assert (video.task_id, video.student, video.prompt) == (
            task_id,
            room.tokens[1].name,
            "a heron <lands>",
        )
        assert video.video_url.startswith(room.sandbox.base_url + "/media/")
    finally:
        listener.close()


def test_a_hidden_video_is_taken_away_and_an_unshared_one_never_shows(room):
    hidden = finished(room, 1, "to be hidden")
    listener = Listener(room.client(0).gallery_events())
    try:
        listener.until(lambda: hidden in listener.shown())
        # The teacher hides it (as the dashboard does, through the store): no poke, the
        # periodic look at the store's sequence finds it.
        assert room.relay.store.set_hidden(hidden, True)
        listener.until(lambda: hidden not in listener.shown())

        client = room.client(2)
        private = client.extend(room.sandbox.demo_parents[0].task_id, "only mine")
        client.share(private.task_id, False)  # before it finishes
        private.wait(timeout=WAIT)
        later = finished(room, 1, "after the private one")
        listener.until(lambda: later in listener.shown())
        assert private.task_id not in listener.ever()
        assert private.task_id not in {v.task_id for v in room.client(0).class_gallery().videos}

        client.share(private.task_id, True)  # changed her mind
        listener.until(lambda: private.task_id in listener.shown())
        assert room.relay.store.set_hidden(hidden, False)
        listener.until(lambda: hidden in listener.shown())
    finally:
        listener.close()


def test_resuming_with_last_event_id_misses_nothing(room):
    first = finished(room, 1, "first")
    response, events = sse(room)
    got = events()
    assert [(n, d.get("task_id")) for n, d, _ in got] == [("video", first), ("sync", None)]
    seen = got[-1][1]["seq"]
    response.close()  # the connection drops

    # Meanwhile: a new video, a hidden one, and an unshared one that was never shown.
    second = finished(room, 2, "second")
    assert room.relay.store.set_hidden(first, True)

    response, events = sse(room, last_id=seen)
    got = events()
    response.close()
    assert [(n, d.get("task_id")) for n, d, _ in got[:-1]] == [
        ("video", second),
        ("removed", first),
    ]
    ids = [int(block.split("\n")[0][4:]) for _, _, block in got if block.startswith("id: ")]
    assert ids == sorted(ids) and ids[0] > seen  # in order, nothing before the resume point

    # The same through the client: a stream that drops (the relay restarts) reopens by itself
    # after its pause, from where it was, and gets what changed while it was away.
    listener = Listener(room.client(0).gallery_events(backoff=2.0))
    try:
        listener.until(lambda: second in listener.shown())
        room.restart()
        assert room.relay.store.set_shared(second, room.relay.store.students()[2], False)
        assert room.relay.store.set_hidden(first, False)
        assert listener.stream.reconnects == 0  # still pausing: the changes came meanwhile
        listener.until(lambda: set(listener.shown()) == {first})
        assert listener.stream.reconnects == 1
        assert not any(update.reset for update in listener.updates)
        third = finished(room, 1, "third")
        listener.until(lambda: third in listener.shown())
    finally:
        listener.close()


def test_the_long_poll_answers_at_once_with_news_and_waits_without(room):
    video = finished(room, 1, "news")
    http = room.http(0)

    # News: answered at once (the client would time out long before the 30 s wait).
    body = http.get(room.url + "/class/gallery?after=0&wait=30", timeout=10).json()
    assert [v["task_id"] for v in body["videos"]] == [video] and body["removed"] == []
    seq = body["seq"]

    # No news: the answer comes after the wait, empty, having looked at the store meanwhile.
    live = room.relay._ctx.gallery
    looks = live.checks
    body = http.get(room.url + f"/class/gallery?after={seq}&wait=1", timeout=10).json()
    assert body == {"seq": seq, "videos": [], "removed": []}
    assert live.checks > looks

    # News while waiting: a waiting poll returns with it.
    answer: dict = {}
    poll = threading.Thread(
        target=lambda: answer.update(
            http.get(room.url + f"/class/gallery?after={seq}&wait=30", timeout=25).json()
        )
    )
    poll.start()
    room.client(1).share(video, False)
    poll.join(25)
    assert answer == {"seq": seq + 1, "videos": [], "removed": [video]}

    # The client's call is the same long-poll.
    update = room.client(0).class_gallery(0)
    assert update.seq == seq + 1 and update.videos == ()
    for bad in ("after=-1", "after=x", "wait=31", "wait=nan"):
        assert http.get(room.url + "/class/gallery?" + bad, timeout=10).status_code == 400


def test_a_student_can_share_only_their_own_tasks(room):
    theirs = finished(room, 1, "not yours")
    with pytest.raises(APIError) as caught:
        room.client(0).share(theirs, False)
    assert caught.value.status_code == 404
    [item] = room.relay.store.gallery()[1]
    assert item.shared and item.visible
    for body in ({"task_id": theirs}, {"task_id": theirs, "shared": "no"}, ["x"]):
        assert room.post("/class/share", body, 1).status_code == 400
    assert room.post("/class/share", {"task_id": theirs, "shared": False}, 1).json() == {
        "task_id": theirs,
        "shared": False,
    }


def test_no_token_or_stranger_is_let_in_and_tokens_never_appear(room):
    for path in ("/class/gallery", "/class/gallery/events"):
        assert requests.get(room.url + path, timeout=10).status_code == 401
        bad = requests.get(room.url + path, headers={"Authorization": "nope"}, timeout=10)
        assert bad.status_code == 401
    with pytest.raises(AuthenticationError):
        LumaClient("nope", base_url=room.url, journal=None).class_gallery()

    video = finished(room, 1, "watch me")
    response, events = sse(room, 0)
    streamed = "\n".join(raw for _, _, raw in events())
    response.close()
    polled = room.http(2).get(room.url + "/class/gallery", timeout=10).text
    assert video in streamed and video in polled
    for issued in room.tokens:
        assert issued.token not in streamed and issued.token not in polled

    # A revoked student's stream ends at the next change.
    response, events = sse(room, 2)
    events()
    assert room.relay.revoke(room.tokens[2].name)
    finished(room, 1, "after the revoke")
    assert all(name != "video" for name, _, _ in events(until_sync=99))
    response.close()


def test_the_gallery_is_only_a_class_relays(sandbox):
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None)
    with pytest.raises(ClassOnlyError, match="LUMA_NB_CLASS_URL"):  # the URL says nothing yet
        client.class_gallery()
    assert client.service == "sandbox"
    with pytest.raises(ClassOnlyError, match="offline sandbox"):
        client.gallery_events()
    with pytest.raises(ClassOnlyError):
        client.share("some-task", False)
    with pytest.raises(ClassOnlyError, match="API itself"):
        LumaClient("k", journal=None).class_gallery()
    client.close()


def test_the_stream_gives_up_with_a_typed_error_when_the_relay_is_gone(room):
    client = room.client(0)
    room.relay.stop()
    stream = client.gallery_events(retries=2, backoff=0.01)
    with pytest.raises(TransportError, match="could not connect"):
        next(iter(stream))


def test_an_idle_stream_sends_keep_alives_and_ends_cleanly_when_the_relay_stops(room):
    room.relay._ctx.gallery.heartbeat = 0.1
    response, _ = sse(room)
    lines = response.iter_lines(decode_unicode=True)
    seen: list[str] = []
    for line in lines:
        seen.append(line)
        if seen.count(": keep-alive") >= 2:
            break
    room.relay.stop()
    rest = list(lines)  # the answer ends: no read timeout, no error
    assert "event: close" in rest
    assert room.relay._ctx.gallery.streams == 0
