"""Hostile answers that must not leak a key, reopen a finished job or pass off half a file.

Each test talks to a real loopback server (the sandbox, a scripted server or a hand-written
one) and checks what the user ends up with: error texts, journal entries, saved files, the
terminal output of the CLI.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from luma_nb import (
    AuthenticationError,
    BadRequestError,
    FixedPolicy,
    Journal,
    JournalError,
    LumaClient,
    ValidationError,
)
from luma_nb.cli import main as cli_main
from luma_nb.client.webhooks import Receiver
from luma_nb.notebook.media import MediaError, save
from luma_nb.notebook.widgets import ExtendForm

from .rawserver import RawServer, Request, Wire
from .scripted import Reply, ScriptedServer

TID = "6f1d2c3b-0a9e-4f8d-b7c6-a5e4d3c2b1a0"
KEY = f"sk-echoed-{uuid.uuid4().hex}"
HOOK_SECRET = f"whs-echoed-{uuid.uuid4().hex}"


def box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


MP4 = (
    box(b"ftyp", b"isom\x00\x00\x02\x00isomavc1")
    + box(b"moov", box(b"mvhd", bytes(100)))
    + box(b"mdat", os.urandom(40_000))
)


# -- 5. a key echoed back by the server -----------------------------------------------------


def test_a_key_or_secret_echoed_in_an_error_is_never_kept(tmp_path: Path) -> None:
    with ScriptedServer() as srv:
        srv.queue(
            "/luma-imagine",
            Reply(401, {"errors": [{"msg": f"Invalid API key: {KEY}"}]}),
            Reply(400, f"<p>bad request: Authorization={KEY} secret={HOOK_SECRET}</p>"),
        )
        journal = Journal(tmp_path / "j.sqlite3")
        client = LumaClient(KEY, base_url=srv.url, journal=journal)
        with pytest.raises(AuthenticationError) as denied:
            client.imagine("a lighthouse")
        with pytest.raises(BadRequestError) as refused:
            client.imagine(
                "a lighthouse", webhook_url="https://hooks.example/x", webhook_secret=HOOK_SECRET
            )
    shown = [str(denied.value), str(refused.value), repr(refused.value.body)]
    shown += [str(e.reason) for e in journal.entries()]
    shown.append(journal.history()._repr_html_())
    shown.append(str(journal.history()))
    for text in shown:
        assert KEY not in text and HOOK_SECRET not in text, text
    assert "[redacted]" in str(denied.value)
    assert [e.state for e in journal.entries()] == ["rejected", "rejected"]


# -- 7. the form's webhook secret after a failed submit ------------------------------------


def test_the_form_forgets_the_webhook_secret_after_a_failed_submit(sandbox) -> None:
    client = LumaClient("k", base_url=sandbox.base_url, journal=None)
    form = ExtendForm(client)
    form.pick(sandbox.demo_parents[0].task_id)
    form.prompt = "the camera pulls back"
    form.webhook_url = "https://hooks.example/luma"
    form.set_webhook_secret(HOOK_SECRET)
    sandbox.faults.add(path="/luma-extend", kind="500")
    assert form.submit() is None
    assert "had a problem on its side" in form.message  # the status stays in the exception
    assert not form.secret_set and HOOK_SECRET not in str(form.get_state())
    assert "webhook secret again" in form.message


# -- 8. a submit killed between the journal's intent and the answer ------------------------

_KILLED_SUBMIT = """
import sys
from luma_nb import Journal, LumaClient
client = LumaClient("k", base_url=sys.argv[1], journal=Journal(sys.argv[2]))
client.imagine("killed while sending")
"""


def test_a_submit_killed_while_sending_is_uncertain_at_once(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with ScriptedServer() as srv:
        srv.default("/luma-imagine", Reply(200, {"task_id": TID}, delay=120))
        child = subprocess.Popen([sys.executable, "-c", _KILLED_SUBMIT, srv.url, str(path)])
        try:
            # Wait until the request is at the server: the intent is written by then.
            for _ in range(600):
                if srv.requests_to("/luma-imagine") or child.poll() is not None:
                    break
                time.sleep(0.05)
            assert srv.requests_to("/luma-imagine"), "the submit never arrived"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    journal = Journal(path)
    (entry,) = journal.entries()
    assert entry.state == "sending" and entry.pid == child.pid
    assert entry.age < 300  # well before the 300 s fallback would say so
    assert entry.is_uncertain and entry.shown_status == "uncertain"
    assert [e.id for e in journal.uncertain()] == [entry.id]
    assert "uncertain" in str(journal.history())


def test_a_submit_still_being_sent_by_a_live_process_is_not_uncertain(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    entry_id = journal.intent("/luma-imagine", {"prompt": "in flight"})
    entry = journal.entry(entry_id)
    assert entry.pid == os.getpid() and not entry.is_uncertain
    assert journal.uncertain() == []


# -- 9. a late progress webhook after the job finished by polling ---------------------------


def test_a_late_progress_webhook_never_reopens_a_finished_job(sandbox, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    client = LumaClient("k", base_url=sandbox.base_url, journal=journal, poll=FixedPolicy(0.05))
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide comes in")
    finished = job.watch(timeout=60).wait(timeout=60)
    assert finished.is_finished and finished.video_url
    late = {"task_id": job.task_id, "task_type": "luma-ext", "status": "processing"}
    with Receiver(HOOK_SECRET) as receiver:
        receiver.track(job)
        answer = requests.post(
            receiver.url,
            json={**late, "percentage": "60"},
            headers={"x-webhook-secret": HOOK_SECRET},
            timeout=10,
        )
        assert answer.status_code == 200 and receiver.counts["accepted"] == 1
    assert job.task is not None and job.task.is_finished
    assert job.task.video_url == finished.video_url
    assert journal.unfinished() == []
    (entry,) = journal.entries()
    assert entry.status == "finished" and entry.video_url == finished.video_url


# -- 10/11. downloads that are cut short or compressed -------------------------------------


def cut_without_length(request: Request, wire: Wire) -> None:
    """A close-delimited MP4 answer that stops after 1,500 bytes."""
    if wire.head(200, {"Content-Type": "video/mp4", "Connection": "close"}):
        wire.write(MP4[:1500])


def gzipped(request: Request, wire: Wire) -> None:
    """The whole MP4, gzip-encoded; Content-Length counts the compressed bytes."""
    data = gzip.compress(MP4)
    headers = {
        "Content-Type": "video/mp4",
        "Content-Encoding": "gzip",
        "Content-Length": str(len(data)),
        "Connection": "close",
    }
    if wire.head(200, headers):
        wire.write(data)


def test_a_cut_download_without_content_length_is_not_saved(tmp_path: Path) -> None:
    with (
        RawServer({"/cut.mp4": cut_without_length}) as srv,
        pytest.raises(MediaError, match="complete MP4"),
    ):
        save(srv.url + "/cut.mp4", tmp_path / "v.mp4", journal=None)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a leftover part


def test_a_gzip_encoded_download_is_saved_whole(tmp_path: Path) -> None:
    with RawServer({"/v.mp4": gzipped}) as srv:
        path = save(srv.url + "/v.mp4", tmp_path / "v.mp4", journal=None)
    assert path.read_bytes() == MP4


# -- 12. a damaged journal file ------------------------------------------------------------


def test_a_damaged_journal_names_the_file_and_submits_keep_working(sandbox, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database at all " * 200)
    journal = Journal(path)
    for look in (journal.history, journal.unfinished, journal.uncertain):
        with pytest.raises(JournalError) as raised:
            look()
        assert str(path) in str(raised.value) and "Move it aside" in str(raised.value)
    client = LumaClient("k", base_url=sandbox.base_url, journal=journal)
    with pytest.warns(UserWarning, match="journal"):
        job = client.extend(sandbox.demo_parents[0].task_id, "still works")
    assert job.task_id


# -- 15. a receiver secret with surrounding spaces ------------------------------------------


@pytest.mark.parametrize("secret", ["spaced-secret ", " spaced-secret", "\tspaced\n"])
def test_a_receiver_refuses_a_secret_no_header_could_carry(secret: str) -> None:
    with pytest.raises(ValidationError, match="spaces"):
        Receiver(secret)


# -- 16. terminal escapes in what the CLI prints -------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\x9b"


def test_the_cli_never_prints_server_text_raw(monkeypatch, capsys) -> None:
    failed = {"task_id": TID, "task_type": "luma-ext", "status": "failed", "error": ESCAPES}
    account = {"email": f"a{ESCAPES}@example.com", "credits": 5, "plan": ESCAPES}
    with ScriptedServer() as srv:
        srv.default("/fetch", Reply(200, failed))
        srv.default("/account", Reply(200, account))
        srv.default("/luma-imagine", Reply(400, {"errors": [{"msg": f"no {ESCAPES}"}]}))
        monkeypatch.setenv("APIFRAME_API_KEY", "k")
        for argv in (["fetch", TID], ["account"], ["imagine", "x"]):
            cli_main(["--base-url", srv.url, *argv])
    out, err = capsys.readouterr()
    assert "pwned" in out and "pwned" in err  # the text is shown, its escapes are not
    for control in ("\x1b", "\x07", "\x9b"):
        assert control not in out and control not in err
