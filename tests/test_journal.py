"""The task journal: intent before send, task ids, progress, secrets, failures, resume, history."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

import luma_nb
from luma_nb import LumaClient, SubmitUncertainError, Task, ValidationError
from luma_nb.client.journal import Journal, JournalWarning, data_home

from .scripted import Reply
from .support import FAST

TID = "0d5c7f0e-3a7b-4a57-9f61-b7f5a3c5e001"
PARENT = "1e6d8a1f-4b8c-4b68-8a72-c8a6b4d6f002"


def journal_path(home: Path) -> Path:
    return home / "journal.sqlite3"


# -- where and when ----------------------------------------------------------------------------


def test_default_file_is_under_luma_nb_home_and_opened_lazily(_luma_nb_home, scripted_client):
    assert scripted_client.journal.path == journal_path(_luma_nb_home)
    assert not journal_path(_luma_nb_home).exists()  # nothing written before a submit


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_DATA_HOME": "/xdg"}, "/xdg/luma_nb"),
        ("linux", {}, "~/.local/share/luma_nb"),
        ("linux", {"XDG_DATA_HOME": "relative/ignored"}, "~/.local/share/luma_nb"),
        ("darwin", {}, "~/Library/Application Support/luma_nb"),
        ("win32", {"LOCALAPPDATA": "C:/Users/u/AppData/Local"}, "C:/Users/u/AppData/Local/luma_nb"),
    ],
)
def test_platform_data_dirs(monkeypatch, platform, env, expected):
    monkeypatch.delenv("LUMA_NB_HOME")
    for name in ("XDG_DATA_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "platform", platform)
    assert data_home() == Path(expected).expanduser()


def test_luma_nb_home_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("LUMA_NB_HOME", str(tmp_path / "custom"))
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert data_home() == tmp_path / "custom"


class _PeekHandler(BaseHTTPRequestHandler):
    """Answers a submit after looking at the journal file, as it is when the request arrives."""

    protocol_version = "HTTP/1.1"
    seen: list[list[tuple[str, str | None]]]
    journal_file: Path

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with sqlite3.connect(self.journal_file) as conn:
            rows = conn.execute("SELECT state, task_id FROM entries").fetchall()
        self.seen.append(rows)
        data = json.dumps({"task_id": TID}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_intent_is_on_disk_before_the_submit_is_sent(_luma_nb_home):
    handler = type(
        "Peek", (_PeekHandler,), {"seen": [], "journal_file": journal_path(_luma_nb_home)}
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with LumaClient("k", base_url=url, timeout=5) as client:
            job = client.extend(PARENT, "a lighthouse")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert handler.seen == [[("sending", None)]]  # written, and not yet answered
    (entry,) = client.journal.entries()
    assert (entry.state, entry.task_id) == ("submitted", job.task_id)


# -- what is recorded --------------------------------------------------------------------------


def test_submit_progress_video_and_saved_file_are_recorded(sandbox, make_client, tmp_path):
    client = make_client(sandbox)
    parent = sandbox.demo_parents[0].task_id
    job = client.extend(parent, "the camera pulls back", aspect_ratio="16:9", enhance_prompt=True)
    (entry,) = client.journal.entries()
    assert entry.kind == "extend" and entry.endpoint == "/luma-extend"
    assert entry.prompt == "the camera pulls back" and entry.parent == parent
    assert entry.options == {"aspect_ratio": "16:9", "enhance_prompt": True}
    assert entry.service == "sandbox" and entry.state == "submitted"
    assert entry.task_id == job.task_id and entry.is_unfinished

    statuses = []
    task = job.wait(timeout=30, on_progress=lambda t: statuses.append(t.status))
    entry = client.journal.entry(entry.id)
    assert entry.status == "finished" and entry.video_url == task.video_url
    assert entry.percentage == 100.0 and not entry.is_unfinished

    client.journal.saved(job.task_id, tmp_path / "v.mp4")
    assert client.journal.entry(entry.id).local_file == str(tmp_path / "v.mp4")


def test_failed_task_is_recorded_with_its_reason(sandbox, make_client):
    client = make_client(sandbox)
    sandbox.faults.next_task(fail="GPU quota exceeded")
    job = client.imagine("a storm")
    with pytest.raises(luma_nb.TaskFailedError):
        job.wait(timeout=30)
    (entry,) = client.journal.entries()
    assert entry.kind == "imagine" and entry.status == "failed"
    assert entry.error == "GPU quota exceeded"
    assert "GPU quota exceeded" in entry.explanation
    assert client.journal.unfinished() == []


def test_no_secret_ever_reaches_the_journal_files(make_sandbox, webhook_receiver, _luma_nb_home):
    key = "KEY-b7c1e0a9f3d24c8e9a61-planted"
    secret = "HOOK-5e2f8d7c1b9a4e30-planted"
    sandbox = make_sandbox(api_key=key)
    client = LumaClient(key, base_url=sandbox.base_url, poll=FAST)
    parent = sandbox.demo_parents[0].task_id
    job = client.extend(
        parent, "canary-prompt-91", webhook_url=webhook_receiver.url, webhook_secret=secret
    )
    job.wait(timeout=30)
    sandbox.faults.add(path="/luma-imagine", kind="drop")
    with pytest.raises(SubmitUncertainError):
        client.imagine(
            "canary-uncertain-92", webhook_url=webhook_receiver.url, webhook_secret=secret
        )
    sandbox.faults.add(path="/luma-imagine", kind="500")
    with pytest.raises(luma_nb.ServerError):
        client.imagine(
            "canary-rejected-93", webhook_url=webhook_receiver.url, webhook_secret=secret
        )
    assert sandbox.wait_webhooks(10)
    # The secret really travelled (so its absence from the journal means something).
    assert any(r.headers.get("x-webhook-secret") == secret for r in webhook_receiver.received)

    files = sorted(_luma_nb_home.glob("journal.sqlite3*"))
    assert journal_path(_luma_nb_home) in files
    data = b"".join(path.read_bytes() for path in files)
    for canary in (b"canary-prompt-91", b"canary-uncertain-92", b"canary-rejected-93"):
        assert canary in data  # we are reading the right bytes
    assert key.encode() not in data and secret.encode() not in data
    states = sorted(e.state for e in client.journal.entries())
    assert states == ["rejected", "submitted", "uncertain"]


def test_journal_file_is_private_to_the_user(scripted_client, scripted, _luma_nb_home):
    scripted.queue("/luma-imagine", Reply(200, {"task_id": TID}))
    scripted_client.imagine("x")
    assert journal_path(_luma_nb_home).stat().st_mode & 0o077 == 0


# -- uncertain, rejected, resubmit -------------------------------------------------------------


def test_lost_answer_is_uncertain_with_its_request_and_nothing_is_resent(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(drop=True))
    with pytest.raises(SubmitUncertainError) as caught:
        scripted_client.extend(PARENT, "a dropped answer", aspect_ratio="9:16")
    (entry,) = scripted_client.journal.uncertain()
    assert caught.value.journal_id == entry.id
    assert entry.request == {
        "parent_task_id": PARENT,
        "prompt": "a dropped answer",
        "enhance_prompt": False,
        "aspect_ratio": "9:16",
    }
    assert "connection was closed" in (entry.reason or "")
    assert "may have been charged" in entry.explanation and f"resubmit({entry.id})" in (
        entry.explanation
    )
    # Looking at history and resuming never sends it again.
    shown = repr(luma_nb.history())
    assert "uncertain" in shown and "a dropped answer" in shown
    assert scripted_client.resume() == []
    assert len(scripted.requests_to("/luma-extend")) == 1


def test_interrupt_after_sending_is_uncertain_not_rejected(scripted):
    class InterruptedAfterSending(requests.Session):
        # A real request reaches the server; then the user presses Ctrl-C before the answer.
        def request(self, *args, **kwargs):
            super().request(*args, **kwargs)
            raise KeyboardInterrupt

    scripted.queue("/luma-extend", Reply(200, {"task_id": TID}))
    client = LumaClient(
        "k-journal-test", base_url=scripted.url, session=InterruptedAfterSending(), poll=FAST
    )
    with pytest.raises(KeyboardInterrupt):
        client.extend(PARENT, "interrupted")
    (entry,) = client.journal.uncertain()
    assert "interrupted" in (entry.reason or "") and entry.request["prompt"] == "interrupted"
    assert len(scripted.requests_to("/luma-extend")) == 1


def test_resubmit_sends_again_only_when_called_and_only_once(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(drop=True), Reply(200, {"task_id": TID}))
    with pytest.raises(SubmitUncertainError):
        scripted_client.extend(PARENT, "try again", aspect_ratio="4:3")
    journal = scripted_client.journal
    (entry,) = journal.uncertain()
    job = luma_nb.history().resubmit(entry.id, client=scripted_client)
    first, second = (s.json for s in scripted.requests_to("/luma-extend"))
    assert first == second and job.task_id == TID
    old = journal.entry(entry.id)
    assert old.state == "resubmitted" and old.follow_up == TID
    assert journal.uncertain() == []
    with pytest.raises(ValidationError, match="only uncertain"):
        journal.resubmit(entry.id, client=scripted_client)
    assert len(scripted.requests_to("/luma-extend")) == 2


def test_resubmit_asks_for_the_webhook_secret_again(scripted, scripted_client):
    scripted.queue("/luma-imagine", Reply(drop=True), Reply(200, {"task_id": TID}))
    hook = "https://hooks.example/luma"
    with pytest.raises(SubmitUncertainError):
        scripted_client.imagine(
            "with a hook", webhook_url=hook, webhook_secret="s3cr3t-value", loop=True
        )
    (entry,) = scripted_client.journal.uncertain()
    assert "webhook_secret" not in entry.request
    with pytest.raises(ValidationError, match="webhook_secret"):
        scripted_client.journal.resubmit(entry.id, client=scripted_client)
    assert (
        scripted_client.journal.entry(entry.id).state == "uncertain"
    )  # the refusal changed nothing
    scripted_client.journal.resubmit(
        entry.id, client=scripted_client, webhook_secret="s3cr3t-value"
    )
    body = scripted.requests_to("/luma-imagine")[-1].json
    assert body["webhook_secret"] == "s3cr3t-value" and body["loop"] is True
    assert body["webhook_url"] == hook


def test_resubmit_refused_by_the_service_leaves_the_entry_uncertain(scripted, scripted_client):
    scripted.queue(
        "/luma-imagine", Reply(drop=True), Reply(400, {"errors": [{"msg": "Invalid request"}]})
    )
    with pytest.raises(SubmitUncertainError):
        scripted_client.imagine("refused later")
    (entry,) = scripted_client.journal.uncertain()
    with pytest.raises(luma_nb.BadRequestError):
        scripted_client.journal.resubmit(entry.id, client=scripted_client)
    assert scripted_client.journal.entry(entry.id).state == "uncertain"
    scripted_client.journal.dismiss(entry.id)
    assert scripted_client.journal.uncertain() == []


def test_resubmit_must_use_the_same_service(scripted, scripted_client, sandbox):
    scripted.queue("/luma-imagine", Reply(drop=True))
    with pytest.raises(SubmitUncertainError):
        scripted_client.imagine("elsewhere")
    (entry,) = scripted_client.journal.uncertain()
    other = LumaClient("k", base_url="https://api.example.invalid")
    with pytest.raises(ValidationError, match="was sent to"):
        scripted_client.journal.resubmit(entry.id, client=other)


def test_rejected_submit_is_recorded_and_never_resumed(scripted, scripted_client):
    scripted.queue("/luma-extend", Reply(400, {"errors": [{"msg": "prompt too spicy"}]}))
    with pytest.raises(luma_nb.BadRequestError):
        scripted_client.extend(PARENT, "nope")
    (entry,) = scripted_client.journal.entries()
    assert entry.state == "rejected" and "prompt too spicy" in (entry.reason or "")
    assert scripted_client.journal.unfinished() == [] and scripted_client.journal.uncertain() == []


def test_submit_cut_off_while_sending_becomes_uncertain_after_a_while(_luma_nb_home):
    journal = Journal(service="sandbox")
    entry_id = journal.intent("/luma-imagine", {"prompt": "cut off"})
    assert journal.uncertain() == []  # could still be in flight
    with sqlite3.connect(journal.path) as conn:
        conn.execute("UPDATE entries SET created = created - 3600 WHERE id = ?", (entry_id,))
    (entry,) = journal.uncertain()
    assert entry.id == entry_id and "kernel restart" in entry.explanation


# -- a broken journal --------------------------------------------------------------------------


def test_broken_journal_never_blocks_a_submit_and_shows_the_task_id(scripted, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the journal folder should be")
    scripted.queue("/luma-extend", Reply(200, {"task_id": TID}))
    client = LumaClient("k", base_url=scripted.url, journal=blocker / "journal.sqlite3")
    with pytest.warns(JournalWarning) as caught:
        job = client.extend(PARENT, "still submitted")
    assert job.task_id == TID
    assert len(scripted.requests_to("/luma-extend")) == 1
    texts = [str(w.message) for w in caught]
    assert any(TID in text and "keep this task id" in text for text in texts)


def test_broken_journal_shows_an_uncertain_request(scripted, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    scripted.queue("/luma-imagine", Reply(drop=True))
    client = LumaClient("k", base_url=scripted.url, journal=blocker / "j.sqlite3")
    with pytest.warns(JournalWarning) as caught, pytest.raises(SubmitUncertainError):
        client.imagine("lost and unrecorded")
    assert any("lost and unrecorded" in str(w.message) for w in caught)


def test_journal_recovers_when_the_folder_becomes_writable(scripted, tmp_path):
    blocker = tmp_path / "later"
    blocker.write_text("x")
    scripted.queue("/luma-imagine", Reply(200, {"task_id": TID}))
    journal = Journal(blocker / "journal.sqlite3")
    client = LumaClient("k", base_url=scripted.url, journal=journal)
    with pytest.warns(JournalWarning, match="cannot be written"):
        entry_id = client.journal.intent("/luma-imagine", {"prompt": "deferred"})
    assert entry_id < 0  # kept in memory
    blocker.unlink()
    client.journal.submitted(entry_id, TID)  # the whole entry is written now
    (entry,) = client.journal.entries()
    assert (entry.prompt, entry.task_id, entry.state) == ("deferred", TID, "submitted")


def test_journal_none_records_nothing(scripted, _luma_nb_home):
    scripted.queue("/luma-imagine", Reply(200, {"task_id": TID}))
    client = LumaClient("k", base_url=scripted.url, journal=None)
    client.imagine("unrecorded")
    assert client.journal is None
    assert not any(_luma_nb_home.iterdir())
    with pytest.raises(ValidationError, match="no journal"):
        client.resume()


def test_bad_journal_argument_is_refused():
    with pytest.raises(ValidationError, match="journal"):
        LumaClient("k", journal=42)


# -- resume ------------------------------------------------------------------------------------


def test_resume_reattaches_unfinished_jobs_of_this_service_only(sandbox, make_client):
    first = make_client(sandbox)
    sandbox.faults.next_task(stall=True)
    stalled = first.imagine("stays processing")
    parent = sandbox.demo_parents[0].task_id
    running = first.extend(parent, "finishes after the restart")
    done = first.imagine("finished before the restart")
    done.wait(timeout=30)
    first.journal.bind("https://api.apiframe.pro").intent("/luma-imagine", {"prompt": "real"})

    later = make_client(sandbox)  # a new kernel, the same journal file
    jobs = later.resume()
    assert [j.task_id for j in jobs] == [stalled.task_id, running.task_id]
    assert jobs[1].prompt == "finishes after the restart" and jobs[1].parent_task_id == parent
    assert all(j.client is later for j in jobs)
    assert jobs[1].wait(timeout=30).is_finished
    assert [j.task_id for j in later.resume()] == [stalled.task_id]


def test_resume_watches_the_jobs_both_spellings_alike(sandbox, make_client):
    client = make_client(sandbox)
    job = client.imagine("watched after resume")
    from luma_nb.client import watcher

    (resumed,) = luma_nb.resume(client)
    (same,) = client.resume()
    assert same.task_id == resumed.task_id and watcher.get_watcher().watching(same) is not None
    assert resumed.task_id == job.task_id
    watch = watcher.get_watcher().watching(resumed)
    assert watch is not None
    assert watch.wait(timeout=30).is_finished
    assert client.journal.entries()[0].status == "finished"


def test_resume_without_watch_returns_plain_jobs(sandbox, make_client):
    client = make_client(sandbox)
    client.imagine("not watched")
    from luma_nb.client import watcher

    (job,) = client.resume(watch=False)
    assert watcher.get_watcher().watching(job) is None


# -- history -----------------------------------------------------------------------------------


def test_history_escapes_untrusted_text_and_links_only_http(_luma_nb_home):
    journal = Journal(service="sandbox")
    evil = '"><script>alert(1)</script>\x1b[31m'
    entry_id = journal.intent("/luma-extend", {"prompt": evil, "parent_task_id": "<img src=x>"})
    journal.submitted(entry_id, "t-1")
    journal.observe(Task("t-1", status="finished", video_url="javascript:alert(1)"))
    other = journal.intent("/luma-imagine", {"prompt": "fine"})
    journal.submitted(other, "t-2")
    journal.observe(Task("t-2", status="finished", video_url="https://cdn.example/a.mp4?x=1&y=2"))
    journal.saved("t-2", "/tmp/<b>.mp4")

    shown = luma_nb.history()
    assert [e.task_id for e in shown.entries] == ["t-2", "t-1"]
    page = shown._repr_html_()
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page
    assert 'href="javascript' not in page
    assert 'href="https://cdn.example/a.mp4?x=1&amp;y=2"' in page
    text = repr(shown)
    assert "\x1b" not in text and "t-1" not in text.split("\n")[0]
    assert "fine" in text


def test_history_limit_and_empty(_luma_nb_home):
    assert "no submits" in repr(luma_nb.history())
    assert "no submits yet" in luma_nb.history()._repr_html_()
    journal = Journal(service="x")
    for n in range(5):
        journal.intent("/luma-imagine", {"prompt": f"p{n}"})
    assert [e.prompt for e in luma_nb.history(limit=2)] == ["p4", "p3"]


def test_observe_writes_only_changes(scripted, scripted_client):
    scripted.queue("/luma-imagine", Reply(200, {"task_id": TID}))
    scripted_client.imagine("x")
    journal = scripted_client.journal
    before = journal.entries()[0].updated
    task = Task(TID, status="processing", percentage=10.0)
    journal.observe(task)
    after = journal.entries()[0].updated
    assert after > before
    journal.observe(task)
    assert journal.entries()[0].updated == after


# -- two processes -----------------------------------------------------------------------------

#: Each writer records its first task, says "started", then waits for "go" on stdin before
#: the rest: the test sends "go" only when both have started, so the writes really overlap.
_WRITER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("error")
    from luma_nb.client.journal import Journal
    from luma_nb.contract.models import Task
    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    journal = Journal(path, service="svc-" + name)
    for n in range(count):
        entry = journal.intent("/luma-imagine", {"prompt": f"{name}-{n}"})
        assert entry > 0, entry
        journal.submitted(entry, f"{name}-{n}")
        journal.observe(Task(f"{name}-{n}", status="processing", percentage=50.0))
        if n % 2:
            journal.observe(Task.from_json({"task_id": f"{name}-{n}", "video_url": "https://v/"}))
        journal.unfinished("svc-" + name)
        if n == 0:
            print("started", flush=True)
            assert sys.stdin.readline() == "go\\n"
    print("ok")
    """
)


def test_two_processes_write_the_same_journal_at_once(tmp_path):
    path = tmp_path / "shared.sqlite3"
    count = 80
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    # The barrier: both have opened the journal and written a task, neither has finished.
    for proc in procs:
        assert proc.stdout.readline() == "started\n", proc.stderr.read()
    assert all(proc.poll() is None for proc in procs)
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "ok" and err == ""

    journal = Journal(path)
    for name in ("a", "b"):
        entries = journal.entries(limit=1000, service=f"svc-{name}")
        assert len(entries) == count
        assert {e.task_id for e in entries} == {f"{name}-{n}" for n in range(count)}
        assert all(e.state == "submitted" for e in entries)
        assert len(journal.unfinished(f"svc-{name}")) == count // 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_text_that_utf8_cannot_encode_is_still_recorded(_luma_nb_home, recwarn):
    journal = Journal(service="sandbox")
    entry_id = journal.intent("/luma-imagine", {"prompt": "half a pair \ud800 here"})
    journal.submitted(entry_id, "t-odd")
    odd = json.loads('{"task_id": "t-odd", "status": "failed", "message": "bad \\udc00 byte"}')
    journal.observe(Task.from_json(odd))
    (entry,) = journal.entries()
    assert entry.prompt == "half a pair \ufffd here" and entry.request["prompt"].endswith("here")
    assert entry.status == "failed" and entry.error == "bad \ufffd byte"
    assert not [w for w in recwarn if issubclass(w.category, JournalWarning)]
