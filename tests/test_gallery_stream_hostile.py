"""The client's live gallery stream against relays that misbehave on the wire (hand-written
answers): silence, a stream cut in the middle of a batch, an endless event, broken events."""

from __future__ import annotations

import threading

import pytest

from luma_nb import ServerError
from luma_nb.client.class_feed import MAX_EVENT_BYTES

from .rawserver import RawServer, Request, Wire
from .support import KEY

HEAD = {
    "Content-Type": "text/event-stream",
    "X-Luma-NB-Service": "relay",
    "Connection": "close",
}


def video(task_id: str, seq: int) -> bytes:
    data = (
        f'{{"task_id": "{task_id}", "student": "ada", "prompt": "p", "seq": {seq}, '
        f'"video_url": "https://cdn.example/{task_id}.mp4"}}'
    )
    return f"id: {seq}\nevent: video\ndata: {data}\n\n".encode()


def sync(seq: int) -> bytes:
    return f'id: {seq}\nevent: sync\ndata: {{"seq": {seq}}}\n\n'.encode()


def test_silence_and_a_cut_batch_are_reconnected_from_the_last_whole_update(make_client):
    answers = [
        # 1st: a whole update (seq 3), then silence: no keep-alive, so the client gives up on it.
        lambda wire: wire.write(video("t1", 3) + sync(3)) and wire.stop.wait(30),
        # 2nd: a video, then the connection is cut before its batch's sync.
        lambda wire: wire.write(video("t2", 4)),
        # 3rd: the batch again, whole, and a broken event the client skips.
        lambda wire: (
            wire.write(b"event: video\ndata: {not json\n\n" + video("t2", 4) + sync(4))
            and wire.stop.wait(30)
        ),
    ]

    def route(request: Request, wire: Wire) -> None:
        wire.head(200, HEAD)
        answers[min(len(server.requests), len(answers)) - 1](wire)

    with RawServer({"/class/gallery/events": route}) as server:
        stream = make_client(server.url, journal=None, timeout=10).gallery_events(
            read_timeout=0.3, backoff=0.01
        )
        updates = []
        for update in stream:
            updates.append(update)
            if len(updates) == 2:
                stream.close()
        assert [(u.seq, [v.task_id for v in u.videos]) for u in updates] == [
            (3, ["t1"]),
            (4, ["t2"]),
        ]
        sent = [r.headers.get("Last-Event-ID") for r in server.requests]
        assert sent == [None, "3", "3"]  # resumed from the last *whole* update, twice
        assert stream.reconnects == 2
        assert server.requests[0].headers["Authorization"] == KEY


def test_an_endless_event_is_refused_after_a_bounded_read(make_client):
    def endless(request: Request, wire: Wire) -> None:
        wire.head(200, HEAD)
        wire.write(b"event: video\ndata: ")
        chunk = b"x" * 65536
        while wire.write(chunk) and wire.sent < 50 * MAX_EVENT_BYTES:
            pass

    with RawServer({"/class/gallery/events": endless}) as server:
        stream = make_client(server.url, journal=None, timeout=10).gallery_events(read_timeout=5)
        with pytest.raises(ServerError, match="larger than"):
            next(iter(stream))
        stream.close()
        wire = server.last_wire()
        assert wire.sent < 40 * MAX_EVENT_BYTES  # the client stopped reading long before


def test_close_from_another_thread_ends_a_waiting_stream(make_client):
    def quiet(request: Request, wire: Wire) -> None:
        wire.head(200, HEAD)
        wire.write(sync(0))
        wire.stop.wait(30)

    with RawServer({"/class/gallery/events": quiet}) as server:
        stream = make_client(server.url, journal=None, timeout=10).gallery_events(read_timeout=30)
        first = threading.Event()
        ended = threading.Event()

        def run() -> None:
            for _ in stream:
                first.set()
            ended.set()

        threading.Thread(target=run, daemon=True).start()
        assert first.wait(10)
        stream.close()
        assert ended.wait(10)  # not after the 30 s read timeout
