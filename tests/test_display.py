"""HTML and text renderings: escaping, safe URLs, and the text fallback outside a kernel."""

from __future__ import annotations

import pytest

import luma_nb
from luma_nb import LumaClient, Task
from luma_nb.client.job import Job
from luma_nb.client.watcher import get_watcher
from luma_nb.notebook import display as d
from luma_nb.notebook import showing

EVIL = '"><script>alert(1)</script>'


@pytest.fixture(autouse=True)
def _clean_global_watcher():
    yield
    watcher = get_watcher()
    for watch in watcher.watches:
        watcher.unwatch(watch.job)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:x",
        "//evil.example/x.mp4",
        "/media/x.mp4",
        "file:///etc/passwd",
        "http://",
        "http://exa\nmple.com/x",
        None,
        42,
    ],
)
def test_only_http_urls_are_safe(url):
    assert d.safe_url(url) is None
    assert "<video" not in d.video_html(url)
    assert d.image_html(url) == ""


def test_safe_url_percent_encodes_attribute_breakers():
    url = "https://cdn.example/a\"b<c>d'e f.mp4?x=1&y=2"
    safe = d.safe_url(url)
    assert safe is not None
    assert not any(ch in safe for ch in "\"<>' ")
    assert safe.startswith("https://cdn.example/a%22b%3Cc%3Ed%27e%20f.mp4?x=1&y=2")
    html = d.video_html(url)
    assert 'src="https://cdn.example/a%22b%3Cc%3Ed%27e%20f.mp4?x=1&amp;y=2"' in html


def test_task_html_escapes_every_server_text():
    task = Task(task_id=EVIL, status=EVIL, error=EVIL, video_url=f"https://x.example/{EVIL}")
    html = task._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    failed = Task(task_id="t1", status="failed", error=EVIL)
    assert "<script>" not in d.task_html(failed)
    assert "failed: &quot;&gt;&lt;script&gt;" in d.task_html(failed)


def test_finished_task_html_has_the_video_and_javascript_urls_never_play():
    ok = Task(task_id="t1", status="finished", video_url="https://cdn.example/t1.mp4")
    assert '<video src="https://cdn.example/t1.mp4" controls' in ok._repr_html_()
    bad = Task(task_id="t2", status="finished", video_url="javascript:alert(1)")
    html = bad._repr_html_()
    assert "<video" not in html and "javascript:alert(1)" in html  # shown as escaped text only
    assert 'src="javascript' not in html


def test_status_words_and_unknown_statuses_are_shown_as_they_came():
    assert d.status_text(None) == "not looked at yet"
    assert d.status_text(Task(task_id="t", status="processing", percentage=40.0)) == (
        "processing 40%"
    )
    assert d.status_text(Task(task_id="t", status="queued_for_gpu")) == "queued_for_gpu"


def test_eta_and_time_formatting():
    assert d.eta_seconds([]) is None
    assert d.eta_seconds([(0.0, 10.0)]) is None
    assert d.eta_seconds([(0.0, 10.0), (10.0, 10.0)]) is None  # no movement yet
    assert d.eta_seconds([(0.0, 10.0), (10.0, 30.0)]) == pytest.approx(35.0)
    assert d.format_seconds(75.2) == "1:15"
    assert d.format_seconds(3725) == "1:02:05"
    assert d.format_seconds(None) == "-"
    assert d.format_seconds(-1) == "-"


def test_text_fallback_outside_a_kernel_shows_status_then_video(sandbox, client):
    job = client.extend(sandbox.demo_parents[0].task_id, f"a fox {EVIL}")
    assert not showing.in_kernel()
    bundle = showing.job_bundle(job)  # what IPython's formatter shows for a job
    assert set(bundle) == {"text/plain", "text/html"}  # no widget: nothing to render it here
    assert "pending" in bundle["text/plain"]
    assert "<script>" not in bundle["text/html"]
    assert d.DEMO_NOTE in bundle["text/html"]
    assert get_watcher().watching(job) is None  # displaying as text watches nothing
    job.wait()
    bundle = showing.job_bundle(job)
    assert "finished" in bundle["text/plain"]
    assert bundle["text/plain"].splitlines()[-1].startswith("video: http://127.0.0.1:")
    html = bundle["text/html"]
    assert html.rstrip().endswith("Run the cell to play.</div></div></div>")  # the player, last
    assert html.count("<video") == 1 and 'poster="data:image/jpeg;base64,' in html


def test_blocking_show_prints_progress_lines_and_ends_with_the_video(sandbox, client, capsys):
    job = client.extend(sandbox.demo_parents[0].task_id, "a fox")
    luma_nb.show(job)  # outside a kernel: blocks until the end
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(job.task_id)]
    assert lines[0].endswith(("pending", "staged", "starting")) or "processing" in lines[0]
    assert lines[-1] == f"{job.task_id}: finished"
    assert "video: http://127.0.0.1:" in out
    assert get_watcher().watching(job) is None


def test_job_text_for_reattached_job_without_snapshot(sandbox):
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, journal=None)
    job = Job(client, "abc")
    assert d.job_text(job) == "Luma job abc: not looked at yet"
    assert "not looked at yet" in d.job_html(job)
