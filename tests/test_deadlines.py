"""Deadlines and memory bounds against answers that drip, never end, nest or say "wait forever".

Every check is a count or a size, never a time of the suite: a server dripping one byte every
``DRIP`` seconds counts what it managed to send before the client hung up, so a client that
honours a deadline of ``T`` seconds lets through at most about ``T / DRIP`` bytes (a loaded
machine only lowers that count). A server that streams without end counts the bytes the client
accepted before closing, which bounds the memory it could have used.
"""

from __future__ import annotations

import json

import pytest

from luma_nb import (
    FixedPolicy,
    Journal,
    LumaClient,
    ServerError,
    SubmitUncertainError,
    TransportError,
    WaitTimeout,
)
from luma_nb.client.watcher import get_watcher

from .rawserver import RawServer, Request, Wire
from .scripted import Reply, ScriptedServer

TID = "6f1d2c3b-0a9e-4f8d-b7c6-a5e4d3c2b1a0"
PROCESSING = {"task_id": TID, "task_type": "luma-ext", "status": "processing", "percentage": "5"}
FINISHED = {"task_id": TID, "task_type": "luma-ext", "video_url": "https://cdn.example/v.mp4"}
DRIP = 0.05  # seconds between the bytes of a dripping answer
LONG = json.dumps({**PROCESSING, "pad": "x" * 600}).encode()  # 35 s of dripping
MIB = 1024 * 1024
#: What a capped client may read past its cap before it notices: socket buffers on both sides.
SLACK = 16 * MIB


def dripping(request: Request, wire: Wire) -> None:
    """A 200 whose declared body arrives one byte every DRIP seconds."""
    headers = {"Content-Type": "application/json", "Content-Length": str(len(LONG))}
    if wire.head(200, headers):
        wire.drip(LONG, DRIP)


def bound(seconds: float) -> int:
    """The most bytes a drip may deliver within ``seconds`` (plus a few for scheduling)."""
    return int(seconds / DRIP) + 40


@pytest.fixture
def drip_server():
    with RawServer({"/fetch": dripping, "/fetch-many": dripping}) as srv:
        yield srv


def test_fetch_has_a_total_deadline_not_one_per_read(drip_server):
    client = LumaClient("k", base_url=drip_server.url, timeout=30, journal=None)
    with pytest.raises(TransportError, match="deadline"):
        client.fetch(TID, timeout=1)
    wire = drip_server.last_wire()
    assert wire.gone, "the client read the whole dripping answer"
    assert wire.sent < bound(1) < len(LONG), f"{wire.sent} bytes read in a 1 s deadline"


def dripping_head(request: Request, wire: Wire) -> None:
    """An answer whose status line and headers themselves arrive one byte at a time."""
    wire.drip(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"y" * 600 + b"\r\nContent-Length: 2\r\n\r\n{}", DRIP)


def test_the_deadline_also_bounds_an_answer_that_drips_its_headers():
    with RawServer({"/fetch": dripping_head}) as srv:
        client = LumaClient("k", base_url=srv.url, timeout=30, journal=None)
        with pytest.raises(TransportError, match="deadline"):
            client.fetch(TID, timeout=1)
        wire = srv.last_wire()
    assert wire.gone and wire.sent < bound(1), f"{wire.sent} header bytes read in 1 s"


def test_a_wait_deadline_bounds_the_requests_inside_it(drip_server):
    client = LumaClient("k", base_url=drip_server.url, timeout=30, journal=None)
    with pytest.raises(WaitTimeout):
        client.wait(TID, timeout=1.5, poll=FixedPolicy(0.0))
    wire = drip_server.last_wire()
    assert wire.gone and wire.sent < bound(1.5)


def test_a_watch_deadline_bounds_the_watcher_thread(drip_server):
    client = LumaClient("k", base_url=drip_server.url, timeout=30, journal=None)
    job = client.job(TID)
    watch = job.watch(timeout=1)
    with pytest.raises(WaitTimeout):
        watch.wait(timeout=60)  # the hang guard; the watch's own deadline must end it first
    wire = drip_server.last_wire()
    assert wire.gone and wire.sent < bound(1)


def endless(request: Request, wire: Wire) -> None:
    """A 200 that declares 48 MiB (or nothing) and streams JSON padding without end."""
    declared = {"Content-Length": str(48 * MIB)} if request.path == "/fetch" else {}
    if not wire.head(200, {"Content-Type": "application/json", "Connection": "close", **declared}):
        return
    wire.write(b'{"task_id": "' + TID.encode() + b'", "pad": "')
    block = b"x" * 65536
    while wire.sent < 64 * MIB and wire.write(block):
        pass


def test_an_oversized_answer_is_refused_past_the_cap():
    with RawServer({"/fetch": endless, "/fetch-many": endless}) as srv:
        client = LumaClient("k", base_url=srv.url, timeout=30, journal=None)
        with pytest.raises(ServerError, match="MiB"):
            client.fetch(TID)
        declared = srv.last_wire()
        with pytest.raises(ServerError, match="MiB"):
            client.fetch_many([TID, TID.replace("6", "7")])
        undeclared = srv.last_wire()
    # 48 MiB declared: refused before reading it; endless: cut at the cap.
    assert declared.sent < SLACK
    assert undeclared.gone and undeclared.sent < LumaClient.MAX_ANSWER_BYTES + SLACK


NESTED = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_is_a_server_error_not_a_recursion_error(tmp_path):
    with ScriptedServer() as srv:
        nested = Reply(200, NESTED, headers={"Content-Type": "application/json"})
        srv.default("/fetch", nested)
        srv.default("/luma-imagine", nested)
        journal = Journal(tmp_path / "j.sqlite3")
        client = LumaClient("k", base_url=srv.url, journal=journal)
        with pytest.raises(ServerError):
            client.fetch(TID)
        # A submit whose answer cannot be read may have been paid: uncertain, not rejected.
        with pytest.raises(SubmitUncertainError):
            client.imagine("a lighthouse")
    (entry,) = journal.entries()
    assert entry.state == "uncertain", entry


@pytest.mark.parametrize("advice", ["inf", "1e9", "nan", "-5"])
def test_retry_after_advice_never_outlives_the_watch_or_kills_the_thread(advice):
    watcher = get_watcher()
    with ScriptedServer() as bad, ScriptedServer() as good:
        slow_down = Reply(429, {"errors": [{"msg": "slow down"}]}, {"Retry-After": advice})
        bad.default("/fetch", slow_down)
        good.default("/fetch", Reply(200, FINISHED))
        # The throttled job is the only one watched: the thread's next sleep is its advice.
        throttled = LumaClient("k", base_url=bad.url, journal=None).job(TID).watch(timeout=1)
        thread = watcher._thread
        with pytest.raises(WaitTimeout):
            throttled.wait(timeout=20)  # hang guard: the watch's own 1 s deadline must end it
        assert throttled.state == "timeout", "the watch outlived its deadline"
        assert len(bad.requests_to("/fetch")) >= 1
        healthy = LumaClient("k", base_url=good.url, journal=None, poll=FixedPolicy(0.05))
        task = healthy.job(TID).watch(timeout=20).wait(timeout=20)
    assert task.is_finished
    # The same thread served both: the advice did not kill it.
    assert thread is not None and watcher._thread is thread and thread.is_alive()
