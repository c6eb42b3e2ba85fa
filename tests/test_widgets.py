"""The widgets, built and driven in plain pytest against the real sandbox over HTTP.

Typing is setting ``.value`` on the child widgets (what the front-end does), clicking is
``button.click()``; assertions are on widget values and on the sandbox's request log.
"""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import ipywidgets as widgets
import pytest

import luma_nb
from luma_nb import ASPECT_RATIOS, FixedPolicy, LumaClient, ValidationError
from luma_nb.client.watcher import Watcher, get_watcher
from luma_nb.notebook.display import DEMO_NOTE
from luma_nb.notebook.widgets import (
    ExtendForm,
    Gallery,
    ProgressView,
    _recent,
    extend_form,
    storyboard,
)
from luma_nb.notebook.widgets import form as form_module

EVIL = '"><script>alert(1)</script>'


@pytest.fixture(autouse=True)
def _clean_state():
    yield
    watcher = get_watcher()
    for watch in watcher.watches:
        watcher.unwatch(watch.job)
    _recent.forget_all()


@pytest.fixture
def client(sandbox):
    with LumaClient(
        sandbox.api_key,
        base_url=sandbox.base_url,
        poll=FixedPolicy(0.05),
        journal=None,
        service="sandbox",
    ) as c:
        yield c


def posts(sandbox, path="/luma-extend"):
    return [r for r in sandbox.requests if r.method == "POST" and r.path == path]


def eventually(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def fill(form: ExtendForm, parent: str, prompt: str = "the camera pulls back") -> None:
    form._parent.value = parent
    form._prompt.value = prompt


# -- the form --------------------------------------------------------------------------------


def test_form_has_all_eight_fields_with_fitting_controls(sandbox, client):
    form = extend_form(client, parent_task_id="abc")
    assert isinstance(form, ExtendForm) and isinstance(form, widgets.VBox)
    assert isinstance(form._parent, widgets.Combobox) and form._parent.value == "abc"
    assert isinstance(form._prompt, widgets.Textarea) and form._prompt.continuous_update
    assert isinstance(form._image_url, widgets.Text) and form._image_url.continuous_update
    assert isinstance(form._end_image_url, widgets.Text)
    assert isinstance(form._enhance, widgets.Checkbox)
    assert isinstance(form._aspect, widgets.Dropdown)
    assert tuple(form._aspect.options) == ASPECT_RATIOS
    assert isinstance(form._webhook_secret, widgets.Password)
    assert form._advanced.selected_index is None  # collapsed
    assert form._advanced.titles == ("Advanced",)
    advanced = form._advanced.children[0]
    inside = [w for row in advanced.children for w in row.children]
    assert form._webhook_url in inside and form._webhook_secret in inside
    assert DEMO_NOTE in form._mode.value
    assert sandbox.demo_parents[0].task_id in form._parent.options
    assert repr(form) == "ExtendForm()"


def test_credits_are_shown_when_the_account_answers(sandbox, client):
    form = ExtendForm(client)
    eventually(lambda: "Credits: 1200" in form._credits.value)


def test_validation_runs_as_you_type_with_the_clients_messages(sandbox, client):
    form = ExtendForm(client)
    assert form._submit.disabled
    assert form._parent_msg.value == "" and form._prompt_msg.value == ""  # untouched: quiet
    form._parent.value = "has space"
    with pytest.raises(ValidationError) as info:
        client.extend("has space", "x")
    assert str(info.value).split("'")[0] in form._parent_msg.value
    form._parent.value = sandbox.demo_parents[0].task_id
    assert form._parent_msg.value == ""
    assert "lighthouse" in form._parent_note.value  # the demo parent's prompt
    form._prompt.value = "   "
    assert "prompt is empty" in form._prompt_msg.value and form._submit.disabled
    form._prompt.value = "x" * 5001
    assert "at most 5000" in form._prompt_msg.value
    assert "5001 / 5000" in form._prompt_count.value
    form._prompt.value = "waves roll in"
    assert form._prompt_msg.value == "" and "13 / 5000" in form._prompt_count.value
    assert not form._submit.disabled
    form._image_url.value = "javascript:alert(1)"
    assert "http" in form._image_url_msg.value and form._submit.disabled
    assert form._image_url_thumb.value == ""
    form._image_url.value = f"https://img.example/a.png?{EVIL}"
    assert form._image_url_msg.value == ""
    assert "<img" in form._image_url_thumb.value and "<script>" not in form._image_url_thumb.value
    form._image_url.value = ""
    form._webhook_secret.value = "s3cret"
    assert "webhook_secret was given without webhook_url" in form._webhook_secret_msg.value
    assert form._submit.disabled
    assert "s3cret" not in repr(form.value) and "webhook_secret" not in form.value
    form._webhook_url.value = "https://hooks.example/luma"
    assert form._webhook_secret_msg.value == "" and not form._submit.disabled
    assert posts(sandbox) == []  # typing sends nothing


def test_invalid_form_sends_nothing_even_when_submitted(sandbox, client):
    form = ExtendForm(client)
    form._prompt.value = "no parent given"
    form._submit.click()
    assert form.submit() is None
    assert "parent_task_id is empty" in form._parent_msg.value  # shown once submit is tried
    assert posts(sandbox) == []


def test_double_click_submits_exactly_once(sandbox, client):
    form = ExtendForm(client)
    fill(form, sandbox.demo_parents[0].task_id)
    form._submit.click()
    form._submit.click()
    assert len(posts(sandbox)) == 1
    assert len(form.jobs) == 1
    body = posts(sandbox)[0].body
    assert body == {
        "parent_task_id": sandbox.demo_parents[0].task_id,
        "prompt": "the camera pulls back",
        "enhance_prompt": False,
        "aspect_ratio": sandbox.demo_parents[0].aspect_ratio,  # the parent's, by default
    }
    view = form._jobs_box.children[0]
    assert isinstance(view, ProgressView) and view.job is form.jobs[0]
    assert form.jobs[0].task_id in form._parent.options


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_clicks_during_a_submit_in_flight_are_ignored(sandbox, client, monkeypatch):
    clock = Clock()  # the form's cooldown clock, moved by hand
    monkeypatch.setattr(form_module, "time", types.SimpleNamespace(monotonic=clock))
    sandbox.faults.add(path="/luma-extend", kind="slow", seconds=0.5)
    form = ExtendForm(client)
    fill(form, sandbox.demo_parents[0].task_id)
    first = threading.Thread(target=form._submit.click)
    first.start()
    eventually(lambda: form._busy, timeout=5)
    assert form._submit.disabled and form._submit.description == "Submitting…"
    for _ in range(3):
        form._submit.click()
    first.join(10)
    assert len(posts(sandbox)) == 1 and len(form.jobs) == 1
    clock.now += form_module.SUBMIT_COOLDOWN - 0.01  # within the cooldown: still ignored
    form._submit.click()
    assert len(posts(sandbox)) == 1
    clock.now += 0.02  # after the cooldown a new click is a new submit
    form._submit.click()
    assert len(posts(sandbox)) == 2 and len(form.jobs) == 2


def test_api_errors_appear_in_words_not_tracebacks(sandbox, client):
    sandbox.credits = 0
    form = ExtendForm(client)
    fill(form, sandbox.demo_parents[0].task_id, f"costly {EVIL}")
    called = []
    form.on_submit(called.append)
    form._submit.click()
    text = form._message.value
    assert "HTTP 402" in text and "Traceback" not in text
    assert "<script>" not in text
    assert form.jobs == [] and called == []
    assert not form._submit.disabled


def test_submitted_secret_is_sent_but_never_shown(sandbox, client):
    form = ExtendForm(client)
    fill(form, sandbox.demo_parents[0].task_id)
    form._webhook_url.value = "https://hooks.example/luma"
    form._webhook_secret.value = "s3cret-value"
    job = form.submit()
    assert job is not None
    # Sent: the sandbox holds it for its deliveries (its request log shows it redacted).
    assert sandbox._store.record(job.task_id).webhook_secret == "s3cret-value"
    assert posts(sandbox)[0].body["webhook_secret"] == "<redacted>"
    view = form._jobs_box.children[0]
    shown = view._title.value + view._status.value + form._message.value
    assert "s3cret" not in shown and "s3cret" not in str(job.request)
    assert "s3cret" not in str(view._repr_mimebundle_())


# -- the progress view -----------------------------------------------------------------------


def test_progress_view_goes_green_with_video_save_and_extend(sandbox, client, tmp_path):
    job = client.extend(sandbox.demo_parents[0].task_id, f"the tide {EVIL}")
    view = ProgressView(job, save_dir=tmp_path)
    assert view._bar.min == 0 and view._bar.max == 100
    assert DEMO_NOTE in view._title.value and "<script>" not in view._title.value
    assert "keeps running at the service" in view._cancel.tooltip
    view.watch.wait(30)
    eventually(lambda: view._bar.bar_style == "success")
    assert view._bar.value == 100
    assert "finished" in view._status.value
    html = view._player.outputs[0]["data"]["text/html"]
    assert "<video" in html and job.task.video_url in html
    assert view._actions.layout.display == "flex"
    assert view._cancel.layout.display == "none"
    view._save.click()
    assert (tmp_path / f"{job.task_id}.mp4").exists()
    assert "Saved to" in view._message.value
    view._extend.click()
    form = view._extra.children[1]
    assert isinstance(form, ExtendForm) and form._parent.value == job.task_id
    assert form.client is client


def test_progress_view_shows_percentages_elapsed_and_eta(make_sandbox):
    sandbox = make_sandbox(speed=40)
    client = LumaClient(
        sandbox.api_key,
        base_url=sandbox.base_url,
        poll=FixedPolicy(0.05),
        journal=None,
        service="sandbox",
    )
    job = client.extend(sandbox.demo_parents[0].task_id, "slow enough to watch")
    view = ProgressView(job)
    seen: set[str] = set()

    def record():
        seen.add(view._status.value)
        return "ETA" in view._status.value

    eventually(record, timeout=30)
    assert any("processing" in s and "%" in s for s in seen)
    assert all("elapsed" in s for s in seen if "processing" in s)
    assert 0 < view._bar.value < 100 or view.watch.done
    view.watch.cancel()


def test_progress_view_turns_red_with_the_reason(sandbox, client):
    sandbox.faults.next_task(fail=f"GPU quota {EVIL}")
    job = client.extend(sandbox.demo_parents[0].task_id, "doomed")
    view = ProgressView(job)
    eventually(lambda: view._bar.bar_style == "danger")
    assert "GPU quota" in view._message.value and "<script>" not in view._message.value
    assert view._player.outputs == () and view._actions.layout.display == "none"


def test_cancel_stops_watching_and_says_the_job_goes_on(sandbox, client):
    sandbox.faults.next_task(stall=True)
    job = client.extend(sandbox.demo_parents[0].task_id, "stalls")
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)  # ticked by the test on its own clock
    view = ProgressView(job, watcher=watcher)

    def tick() -> None:
        clock.now += 0.06  # every look is due (FixedPolicy(0.05))
        watcher.tick()

    eventually(lambda: tick() or job.status == "processing")
    view._cancel.click()
    watcher.tick()  # the listeners hear the cancel on the watcher's turn
    assert "keeps running at the service" in view._message.value
    assert view._bar.bar_style == "warning"
    assert watcher.watching(job) is None and watcher.watches == []
    asked = len([r for r in sandbox.requests if job.task_id in str(r.body)])
    for _ in range(5):
        tick()
    assert len([r for r in sandbox.requests if job.task_id in str(r.body)]) == asked


def test_widget_bundles_offer_the_view_plus_stable_text_and_html(sandbox, client):
    job = client.extend(sandbox.demo_parents[0].task_id, "a fox")
    view = ProgressView(job)
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == "ProgressView(prompt='a fox')"  # no ids, ports or times
    assert "a fox" in bundle["text/html"]
    view.watch.wait(30)
    assert "<video" in view._repr_mimebundle_()["text/html"]


def test_a_finished_job_renders_green_at_once(sandbox, client):
    job = client.extend(sandbox.demo_parents[0].task_id, "done already")
    job.wait()
    view = ProgressView(job)
    assert view._bar.bar_style == "success" and view._bar.value == 100
    assert "<video" in view._player.outputs[0]["data"]["text/html"]


def test_unknown_statuses_are_shown_as_they_came(sandbox, client):
    sandbox.faults.next_task(unknown_status="queued_for_gpu")
    job = client.extend(sandbox.demo_parents[0].task_id, "odd status")
    view = ProgressView(job)
    seen: list[str] = []
    view.watch.add_listener(lambda w: seen.append(view._status.value))  # runs after the view's
    seen.append(view._status.value)  # what it showed before this listener came (a fast look)
    view.watch.wait(30)
    assert any("<b>queued_for_gpu</b>" in s for s in seen)


def test_journal_entries_are_offered_as_parents(sandbox, tmp_path):
    journaled = LumaClient(
        sandbox.api_key,
        base_url=sandbox.base_url,
        service="sandbox",
        poll=FixedPolicy(0.05),
        journal=tmp_path / "journal.sqlite3",
    )
    job = journaled.extend(sandbox.demo_parents[0].task_id, "remembered on disk")
    job.wait()
    _recent.forget_all()  # as after a kernel restart: only the journal knows it
    form = ExtendForm(journaled)
    assert job.task_id in form._parent.options
    form._parent.value = job.task_id
    assert "remembered on disk" in form._parent_note.value


def test_public_names_and_demo_mode_default_client(monkeypatch):
    from luma_nb.client import defaults

    monkeypatch.delenv("APIFRAME_API_KEY", raising=False)
    monkeypatch.setenv("LUMA_NB_SANDBOX_SPEED", "200")
    monkeypatch.setattr(defaults, "_client", None)
    client = luma_nb.default_client()
    assert client.is_sandbox and client is luma_nb.default_client()
    form = luma_nb.extend_form()
    assert form.client is client and DEMO_NOTE in form._mode.value
    assert luma_nb.ExtendForm is ExtendForm and luma_nb.ProgressView is ProgressView
    assert luma_nb.Gallery is Gallery and luma_nb.storyboard is storyboard
    monkeypatch.setenv("APIFRAME_API_KEY", "k-123")
    monkeypatch.setattr(defaults, "_client", None)
    real = luma_nb.default_client()
    assert not real.is_sandbox and real.has_key
    assert "Live API" in ExtendForm(real)._mode.value
    monkeypatch.setattr(defaults, "_client", None)
    monkeypatch.setenv("LUMA_NB_SANDBOX_SPEED", "fast")
    monkeypatch.delenv("APIFRAME_API_KEY")
    with pytest.raises(ValueError, match="LUMA_NB_SANDBOX_SPEED"):
        luma_nb.default_client()
    monkeypatch.setattr(defaults, "_client", None)


def test_saving_from_the_progress_view_records_the_file_once(sandbox, tmp_path):
    journal = luma_nb.Journal(tmp_path / "j.sqlite3")
    client = LumaClient("k", base_url=sandbox.base_url, poll=FixedPolicy(0.05), journal=journal)
    saves = []
    record = client.journal.saved  # count what reaches the client's journal

    def counted(task_id, path):
        saves.append((task_id, str(path)))
        record(task_id, path)

    client.journal.saved = counted
    job = client.extend(sandbox.demo_parents[0].task_id, "saved by the button")
    view = ProgressView(job, save_dir=tmp_path / "out")
    view.watch.wait(30)
    eventually(lambda: view._actions.layout.display == "flex")
    view._save.click()
    assert "Saved to" in view._message.value
    saved = tmp_path / "out" / f"{job.task_id}.mp4"
    assert saves == [(job.task_id, str(saved))]
    (entry,) = journal.entries()
    assert Path(entry.local_file) == saved.absolute()


def test_the_aspect_ratio_follows_the_parent_and_says_what_an_extend_does(sandbox, client):
    wide = next(p for p in sandbox.demo_parents if p.aspect_ratio != "1:1")
    form = ExtendForm(client, parent_task_id=wide.task_id)
    assert form._aspect.value == wide.aspect_ratio
    assert "keeps the parent" in form._aspect_note.value
    square = next((p for p in sandbox.demo_parents if p.aspect_ratio == "1:1"), None)
    if square is not None:
        form._parent.value = square.task_id
        assert form._aspect.value == "1:1"
    form._aspect.value = "9:16"  # the user's choice is kept from now on
    form._parent.value = wide.task_id
    assert form._aspect.value == "9:16"
