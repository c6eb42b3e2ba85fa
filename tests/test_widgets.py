"""The extend form and the progress card, driven as their ES module drives them.

A field edit is an ``update`` message and a click a ``custom`` message, delivered through the
widget's comm (tests/widget_frontend.py); assertions are on the widgets' synced traits, their
public API and the request logs of real servers on 127.0.0.1 (the sandbox, a sandbox that
refuses the key, a scripted server, a closed port).
"""

from __future__ import annotations

import socket
import threading
import types
from pathlib import Path

import anywidget
import ipywidgets as widgets
import pytest

import luma_nb
from luma_nb import FixedPolicy, ValidationError
from luma_nb.client.watcher import Watcher, get_watcher
from luma_nb.contract.plain_words import SANDBOX_LINE
from luma_nb.notebook.widgets import (
    ExtendForm,
    Gallery,
    ProgressView,
    _recent,
    extend_form,
    storyboard,
)
from luma_nb.notebook.widgets import form as form_module
from tests.scripted import Reply
from tests.support import eventually
from tests.widget_frontend import Frontend

EVIL = '"><script>alert(1)</script>'
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def _clean_state():
    yield
    watcher = get_watcher()
    for watch in watcher.watches:
        watcher.unwatch(watch.job)
    _recent.forget_all()


def posts(sandbox, path="/luma-extend"):
    return [r for r in sandbox.requests if r.method == "POST" and r.path == path]


def shown_text(form: ExtendForm) -> str:
    """Every text the form's view shows (not its title/data- attributes)."""
    parts = [
        form.status_line,
        form.parent_note,
        form.ratio_text,
        form.disabled_reason,
        form.message,
        *form.field_errors.values(),
    ]
    for item in form.parents:
        parts += [item["title"], item["prompt"], item["source"]]
    for card in form.cards:
        parts += [card["title"], card["words"], card["timing"], card["message"]]
    return "\n".join(parts)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the form: what it shows -----------------------------------------------------------------


def test_the_form_is_an_anywidget_with_one_status_line_and_a_picker(sandbox, client):
    form = extend_form(client)
    assert isinstance(form, anywidget.AnyWidget) and isinstance(form, widgets.DOMWidget)
    assert form.status_line == SANDBOX_LINE and form.status_kind == "sandbox"
    assert sandbox.base_url in form.status_title  # the address is a title, not view text
    demo = sandbox.demo_parents
    assert form.parent_task_id == demo[0].task_id  # a newcomer only types a prompt
    picked = [(p["task_id"], p["ratio"], p["source"]) for p in form.parents]
    assert picked == [(p.task_id, p.aspect_ratio, "sandbox demo video") for p in demo]
    assert all(p["prompt"] for p in form.parents) and all(p["title"] for p in form.parents)
    assert form.ratio_text == f"{demo[0].aspect_ratio} (the parent's)"
    assert form.parent_note.startswith(demo[0].prompt)
    assert not form.ready and form.disabled_reason == "Say what happens next first."
    assert form.field_errors == {}  # untouched fields are quiet
    assert "127.0.0.1" not in shown_text(form)
    assert repr(form) == "ExtendForm()" and not form.projector
    assert extend_form(client, projector=True).projector


def test_the_view_ships_in_the_package_without_a_cdn():
    static = Path(form_module.__file__).parent / "static"
    js, css = (static / "luma.js").read_text(), (static / "luma.css").read_text()
    assert str(ExtendForm._esm) == str(ProgressView._esm) == js  # read from the package
    assert str(ExtendForm._css) == css
    assert "export default" in js and "import " not in js.split("export default")[0][:200]
    assert "http://" not in js and "https://" not in js.replace("https://…", "")
    for hook in ("status-line", "picker-item", "prompt", "submit", "submit-reason", "progress"):
        assert f'"{hook}"' in js
    assert "var(--jp-" in css


def test_bundle_keeps_text_and_html_fallbacks(sandbox, client):
    form = ExtendForm(client, parent_task_id=sandbox.demo_parents[0].task_id, prompt="a fox")
    bundle = form._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"].startswith(f"ExtendForm for task {sandbox.demo_parents[0].task_id}")
    assert SANDBOX_LINE in data["text/html"] and "a fox" in data["text/html"]
    assert f"Continues:</b> {sandbox.demo_parents[0].prompt}" in data["text/html"]
    assert "127.0.0.1" not in data["text/plain"] + data["text/html"]


# -- the form: typing and validating ---------------------------------------------------------


def test_validation_runs_as_you_type_and_every_disabled_submit_says_why(sandbox, client):
    form = ExtendForm(client)
    view = Frontend(form)
    assert form.disabled_reason == "Pick a video to continue first."
    view.edit(parent_task_id="has space")
    with pytest.raises(ValidationError) as info:
        client.extend("has space", "x")
    assert form.field_errors["parent_task_id"] == str(info.value)
    assert form.disabled_reason == "Check the parent id." and not form.ready
    view.edit(parent_task_id=sandbox.demo_parents[0].task_id)
    assert "parent_task_id" not in form.field_errors
    assert "lighthouse" in form.parent_note.lower()
    view.edit(prompt="   ")
    assert "prompt is empty" in form.field_errors["prompt"]
    assert form.disabled_reason == "Say what happens next first."
    view.edit(prompt="x" * 5001)
    assert "at most 5000" in form.field_errors["prompt"]
    assert form.disabled_reason == "The prompt is too long."
    view.edit(prompt="waves roll in")
    assert form.field_errors == {} and form.ready and form.disabled_reason == ""
    view.edit(image_url="javascript:alert(1)")
    assert "http" in form.field_errors["image_url"] and not form.ready
    assert form.disabled_reason == "Check the first frame URL (under Options)."
    assert form.previews == {}  # no preview of a bad URL
    view.edit(image_url=f"https://img.example/a.png?{EVIL}")
    assert form.ready and form.previews["image_url"].startswith("https://img.example/a.png?")
    assert "<script>" not in form.previews["image_url"]  # only a safe http(s) URL is shown
    view.edit(image_url="")
    view.send(type="secret", value="s3cret")
    assert "webhook_secret was given without webhook_url" in form.field_errors["webhook_secret"]
    assert form.disabled_reason == "Check the webhook secret (under Options)."
    assert form.secret_set and "s3cret" not in str(form.get_state())
    assert "webhook_secret" not in form.value
    view.edit(webhook_url="https://hooks.example/luma")
    assert form.ready
    assert form.errors == {} and form.value["prompt"] == "waves roll in"
    assert posts(sandbox) == []  # typing sends nothing


def test_an_invalid_form_spends_nothing_even_when_submitted(sandbox, client):
    form = ExtendForm(client)
    view = Frontend(form)
    view.edit(prompt="no parent given")
    view.submit()
    assert form.submit() is None
    assert "parent_task_id is empty" in form.field_errors["parent_task_id"]  # shown once tried
    assert form.errors.keys() == {"parent_task_id"}
    assert posts(sandbox) == [] and form.jobs == []


# -- the form: submitting --------------------------------------------------------------------


def test_a_double_click_submits_once_with_the_parents_ratio(sandbox, client):
    wide = next(p for p in sandbox.demo_parents if p.aspect_ratio == "16:9")
    form = extend_form(client, wide.task_id)
    view = Frontend(form)
    view.edit(prompt="the camera pulls back")
    view.submit()
    view.submit()
    assert len(posts(sandbox)) == 1 and len(form.jobs) == 1
    assert posts(sandbox)[0].body == {
        "parent_task_id": wide.task_id,
        "prompt": "the camera pulls back",
        "enhance_prompt": False,
        "aspect_ratio": "16:9",  # the parent's: an extend keeps it
    }
    assert [card["task_id"] for card in form.cards] == [form.jobs[0].task_id]
    assert form.cards[0]["continues"] == f"continues {wide.prompt}"  # its title, not its id
    assert form.message_kind == "ok"


def test_ctrl_enter_submits_the_prompt_just_typed(sandbox, client):
    """The view sends the last edit, then the submit message (Ctrl/Cmd+Enter, no click)."""
    form = extend_form(client)
    called = []
    form.on_submit(called.append)
    view = Frontend(form)
    view.edit(prompt="typed and sent at once")
    view.submit()
    (job,) = form.jobs
    assert called == [job] and job.prompt == "typed and sent at once"
    assert posts(sandbox)[0].body["prompt"] == "typed and sent at once"


def test_clicks_during_a_submit_in_flight_are_ignored(sandbox, client, monkeypatch):
    clock = Clock()  # the form's cooldown clock, moved by hand
    monkeypatch.setattr(form_module, "time", types.SimpleNamespace(monotonic=clock))
    sandbox.faults.add(path="/luma-extend", kind="slow", seconds=0.5)
    form = extend_form(client)
    view = Frontend(form)
    view.edit(prompt="the camera pulls back")
    first = threading.Thread(target=view.submit)
    first.start()
    eventually(lambda: form.busy, timeout=5)
    assert not form.ready and form.disabled_reason == "Submitting…"
    for _ in range(3):
        view.submit()
    first.join(10)
    assert len(posts(sandbox)) == 1 and len(form.jobs) == 1
    clock.now += form_module.SUBMIT_COOLDOWN - 0.01  # within the cooldown: still ignored
    view.submit()
    assert len(posts(sandbox)) == 1
    clock.now += 0.02  # after the cooldown a new click is a new submit
    view.submit()
    assert len(posts(sandbox)) == 2 and len(form.jobs) == 2


def test_the_secret_is_sent_but_never_kept_or_shown(sandbox, client):
    form = extend_form(client)
    view = Frontend(form)
    view.edit(prompt="hooked", webhook_url="https://hooks.example/luma")
    view.send(type="secret", value="s3cret-value")
    epoch = form.secret_epoch
    view.submit()
    (job,) = form.jobs
    assert sandbox._store.record(job.task_id).webhook_secret == "s3cret-value"
    assert posts(sandbox)[0].body["webhook_secret"] == "<redacted>"
    assert not form.secret_set and form.secret_epoch == epoch + 1  # the view empties its box
    assert "s3cret" not in str(form.get_state()) and "s3cret" not in str(job.request)


# -- the form: the parent picker -------------------------------------------------------------


def test_picking_a_thumbnail_fills_the_parent_and_its_ratio(sandbox, client):
    form = extend_form(client)
    view = Frontend(form)
    tall = next(p for p in sandbox.demo_parents if p.aspect_ratio == "9:16")
    view.send(type="pick", task_id=tall.task_id)
    assert form.parent_task_id == tall.task_id
    assert form.ratio_text == "9:16 (the parent's)" and form.value["aspect_ratio"] == "9:16"
    assert form.parent_note.startswith(tall.prompt)
    view.edit(parent_task_id=UNKNOWN)  # pasted: nothing known about it
    assert form.ratio_text == "the parent's (kept by the service)" and form.parent_note == ""


def test_finished_jobs_and_the_journal_become_parents(sandbox, make_client, tmp_path):
    journaled = make_client(sandbox, journal=tmp_path / "journal.sqlite3")
    form = extend_form(journaled)
    view = Frontend(form)
    view.edit(prompt="remembered on disk")
    view.submit()
    (job,) = form.jobs
    job.wait(timeout=30)
    eventually(lambda: form.parents[0]["task_id"] == job.task_id)  # refreshed when it ends
    assert form.parents[0]["source"] == "made in this notebook"
    assert form.parents[0]["ratio"] == sandbox.demo_parents[0].aspect_ratio
    _recent.forget_all()  # as after a kernel restart: only the journal knows it
    again = extend_form(journaled)
    first = again.parents[0]
    assert (first["task_id"], first["source"]) == (job.task_id, "made earlier")
    assert first["prompt"] == "remembered on disk"
    Frontend(again).send(type="pick", task_id=job.task_id)
    assert "remembered on disk" in again.parent_note


def test_extend_this_under_a_card_makes_it_the_parent(sandbox, client):
    form = extend_form(client)
    view = Frontend(form)
    view.edit(prompt="first part")
    view.submit()
    (job,) = form.jobs
    job.wait(timeout=30)
    eventually(lambda: form.cards[0]["can_extend"])
    view.send(type="extend", task_id=job.task_id)
    assert form.parent_task_id == job.task_id and form.prompt == ""
    assert form.disabled_reason == "Say what happens next first."


# -- the form: errors in plain words ---------------------------------------------------------


def test_a_refused_key_is_said_and_the_sandbox_is_one_click_away(
    make_sandbox, make_client, monkeypatch
):
    monkeypatch.setenv("LUMA_NB_SANDBOX_SPEED", "200")
    strict = make_sandbox(api_key="the-right-key")
    wrong = make_client(strict.base_url, api_key="a-wrong-key", journal=None)
    form = extend_form(wrong, parent_task_id=strict.demo_parents[0].task_id)
    eventually(lambda: form.offer_sandbox, what="the refusal to be seen")
    assert form.message.startswith("The API key was refused")
    assert "refused" in form.status_line and form.status_kind == "refused"
    assert (
        not form.ready and form.disabled_reason == "The API key was refused: see the message below."
    )
    view = Frontend(form)
    view.edit(prompt="never sent")
    view.submit()
    assert posts(strict) == [] and form.jobs == []
    view.send(type="use_sandbox")
    assert form.client.is_sandbox and form.client.base_url != strict.base_url
    assert form.status_line == SANDBOX_LINE and form.message == "" and not form.offer_sandbox
    assert form.parent_task_id in {p["task_id"] for p in form.parents}
    assert form.ready
    view.submit()
    (job,) = form.jobs
    assert job.client is form.client and job.wait(timeout=60).is_finished


def test_a_refused_key_at_the_real_api_reads_the_same(scripted, make_client):
    scripted.default("/account", Reply(401, {}))
    scripted.default("/luma-extend", Reply(401, {}))
    form = extend_form(make_client(scripted, journal=None), parent_task_id=UNKNOWN)
    eventually(lambda: form.offer_sandbox)
    assert form.message.startswith("The API key was refused: check APIFRAME_API_KEY")
    assert "HTTP" not in form.message and "127.0.0.1" not in shown_text(form)


def test_an_unknown_parent_reads_no_task_with_that_id(sandbox, client):
    form = extend_form(client, UNKNOWN)
    view = Frontend(form)
    view.edit(prompt="continue it")
    view.submit()
    text = f"No task with id {UNKNOWN}: check the parent id."
    assert form.message == text and form.field_errors["parent_task_id"] == text
    assert "HTTP" not in form.message and form.jobs == [] and not form.offer_sandbox
    assert not form.ready and form.disabled_reason == "Check the parent id."
    Frontend(form).send(type="pick", task_id=sandbox.demo_parents[0].task_id)
    assert "parent_task_id" not in form.field_errors and form.ready
    with pytest.raises(luma_nb.BadRequestError) as info:  # the details stay in the exception
        client.extend(UNKNOWN, "continue it")
    assert info.value.status_code == 400 and info.value.endpoint == "/luma-extend"


def test_an_unreachable_service_is_said_with_the_sandbox_offered(make_client):
    gone = make_client(closed_port_url(), journal=None, timeout=2)
    form = extend_form(gone, parent_task_id=UNKNOWN)
    eventually(lambda: form.message)  # the credits question already finds nobody
    assert form.message.startswith("Cannot reach the service") and form.offer_sandbox
    view = Frontend(form)
    view.edit(prompt="into the void")
    view.submit()
    assert form.message.startswith("Cannot reach the service") and form.jobs == []
    assert "127.0.0.1" not in shown_text(form)


def test_no_credits_left_is_said_in_words(sandbox, client):
    sandbox.credits = 0
    form = extend_form(client)
    view = Frontend(form)
    view.edit(prompt=f"costly {EVIL}")
    view.submit()
    assert form.message == "Not enough credits left for this extend (each costs 6)."
    assert form.jobs == [] and form.ready  # a retry is possible


# -- the progress card -----------------------------------------------------------------------


def test_the_progress_card_moves_and_ends_with_the_video(sandbox, client, tmp_path):
    job = client.extend(sandbox.demo_parents[0].task_id, f"the tide {EVIL}")
    view = ProgressView(job, save_dir=tmp_path)
    assert isinstance(view, anywidget.AnyWidget) and view.where == SANDBOX_LINE
    seen: list[tuple[str, int]] = []
    view.observe(
        lambda change: seen.append((change["new"][0]["state"], change["new"][0]["pct"])), "cards"
    )
    view.watch.wait(30)
    eventually(lambda: view.cards[0]["state"] == "finished")
    (card,) = view.cards
    assert card["pct"] == 100 and card["words"].startswith("finished in")
    assert card["title"] == f"the tide {EVIL}"  # text: the view never sets it as HTML
    assert card["video"]["src"] == job.task.video_url and card["video"]["route"] == "direct"
    assert card["can_save"] and card["can_extend"] and not card["can_cancel"]
    assert SANDBOX_LINE not in str(card)  # one status line per view: the card repeats none
    assert [state for state, _ in seen][-1] == "finished"
    Frontend(view).send(type="save", task_id=job.task_id)
    assert (tmp_path / f"{job.task_id}.mp4").exists()
    assert view.cards[0]["message"].startswith("Saved to") and view.cards[0]["kind"] == "ok"


def test_the_progress_card_shows_percentages_elapsed_and_time_left(make_sandbox, make_client):
    sandbox = make_sandbox(speed=40)
    client = make_client(sandbox, journal=None, poll=FixedPolicy(0.05))
    job = client.extend(sandbox.demo_parents[0].task_id, "slow enough to watch")
    view = ProgressView(job)
    seen: list[dict] = []

    def record():
        seen.append(dict(view.cards[0]))
        return "left" in view.cards[0]["timing"]

    eventually(record, timeout=30)
    moving = [c for c in seen if c["words"].startswith("processing")]
    assert moving and all("%" in c["words"] and "elapsed" in c["timing"] for c in moving)
    assert 0 < view.cards[0]["pct"] < 100 or view.watch.done
    view.watch.cancel()


def test_a_failed_task_says_why(sandbox, client):
    sandbox.faults.next_task(fail=f"GPU quota {EVIL}")
    job = client.extend(sandbox.demo_parents[0].task_id, "doomed")
    view = ProgressView(job)
    eventually(lambda: view.cards[0]["state"] == "failed")
    card = view.cards[0]
    assert card["message"] == f"GPU quota {EVIL}" and card["kind"] == "error"
    assert card["video"] is None and not card["can_extend"]


def test_cancel_stops_watching_and_says_the_job_goes_on(sandbox, client):
    sandbox.faults.next_task(stall=True)
    job = client.extend(sandbox.demo_parents[0].task_id, "stalls")
    clock = Clock()
    watcher = Watcher(autostart=False, clock=clock)  # ticked by the test on its own clock
    view = ProgressView(job, watcher=watcher)

    def tick() -> None:
        clock.now += 0.06
        watcher.tick()

    eventually(lambda: tick() or job.status == "processing")
    Frontend(view).send(type="cancel", task_id=job.task_id)
    watcher.tick()  # the listeners hear the cancel on the watcher's turn
    card = view.cards[0]
    assert card["state"] == "cancelled" and "keeps running at the service" in card["message"]
    assert watcher.watching(job) is None and watcher.watches == []
    asked = len([r for r in sandbox.requests if job.task_id in str(r.body)])
    for _ in range(5):
        tick()
    assert len([r for r in sandbox.requests if job.task_id in str(r.body)]) == asked


def test_extend_this_in_a_progress_card_chains_a_new_card(sandbox, client):
    job = client.extend(sandbox.demo_parents[2].task_id, "the balloon rises")
    view = ProgressView(job)
    made = []
    view.on_extend(made.append)
    view.watch.wait(30)
    eventually(lambda: view.cards[0]["can_extend"])
    Frontend(view).send(type="extend", task_id=job.task_id, prompt="  ")
    assert "prompt is empty" in view.extend_error and len(view.cards) == 1
    Frontend(view).send(type="extend", task_id=job.task_id, prompt="into the stars")
    (child,) = made
    assert child.parent_task_id == job.task_id and view.extend_error == ""
    assert [c["task_id"] for c in view.cards] == [job.task_id, child.task_id]
    assert posts(sandbox)[-1].body["aspect_ratio"] == sandbox.demo_parents[2].aspect_ratio
    assert view.jobs == [job, child]


def test_progress_bundle_offers_the_view_plus_stable_text_and_html(sandbox, client):
    job = client.extend(sandbox.demo_parents[0].task_id, "a fox")
    view = ProgressView(job)
    bundle = view._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == "ProgressView(prompt='a fox')"  # no ids, ports or times
    assert "a fox" in data["text/html"]
    view.watch.wait(30)
    later = view._repr_mimebundle_()
    assert "<video" in (later[0] if isinstance(later, tuple) else later)["text/html"]


def test_a_finished_job_renders_at_once(sandbox, client):
    job = client.extend(sandbox.demo_parents[0].task_id, "done already")
    job.wait()
    view = ProgressView(job)
    done = []
    view.on_done(done.append)
    assert view.cards[0]["state"] == "finished" and view.cards[0]["video"]["src"]
    assert done == [view]


def test_unknown_statuses_are_shown_as_they_came(sandbox, client):
    sandbox.faults.next_task(unknown_status="queued_for_gpu")
    job = client.extend(sandbox.demo_parents[0].task_id, "odd status")
    view = ProgressView(job)
    seen: list[str] = [view.cards[0]["words"]]
    view.observe(lambda change: seen.append(change["new"][0]["words"]), "cards")
    view.watch.wait(30)
    assert "queued_for_gpu" in seen


def test_public_names_and_demo_mode_default_client(monkeypatch):
    from luma_nb.client import defaults

    monkeypatch.delenv("APIFRAME_API_KEY", raising=False)
    monkeypatch.setenv("LUMA_NB_SANDBOX_SPEED", "200")
    monkeypatch.setattr(defaults, "_client", None)
    client = luma_nb.default_client()
    assert client.is_sandbox and client is luma_nb.default_client()
    form = luma_nb.extend_form()
    assert form.client is client and form.status_line == SANDBOX_LINE
    assert luma_nb.ExtendForm is ExtendForm and luma_nb.ProgressView is ProgressView
    assert luma_nb.Gallery is Gallery and luma_nb.storyboard is storyboard
    monkeypatch.setenv("APIFRAME_API_KEY", "k-123")
    monkeypatch.setattr(defaults, "_client", None)
    real = luma_nb.default_client()
    assert not real.is_sandbox and real.has_key
    assert ExtendForm(real).status_line.startswith("Live API: each extend costs 6 credits")
    monkeypatch.setattr(defaults, "_client", None)
    monkeypatch.setenv("LUMA_NB_SANDBOX_SPEED", "fast")
    monkeypatch.delenv("APIFRAME_API_KEY")
    with pytest.raises(ValueError, match="LUMA_NB_SANDBOX_SPEED"):
        luma_nb.default_client()
    monkeypatch.setattr(defaults, "_client", None)


def test_saving_from_the_progress_card_records_the_file_once(sandbox, make_client, tmp_path):
    journal = luma_nb.Journal(tmp_path / "j.sqlite3")
    client = make_client(sandbox, journal=journal)
    saves = []
    record = client.journal.saved  # count what reaches the client's journal

    def counted(task_id, path):
        saves.append((task_id, str(path)))
        record(task_id, path)

    client.journal.saved = counted
    job = client.extend(sandbox.demo_parents[0].task_id, "saved by the button")
    view = ProgressView(job, save_dir=tmp_path / "out")
    view.watch.wait(30)
    eventually(lambda: view.cards[0]["can_save"])
    Frontend(view).send(type="save", task_id=job.task_id)
    assert view.cards[0]["message"].startswith("Saved to")
    saved = tmp_path / "out" / f"{job.task_id}.mp4"
    assert saves == [(job.task_id, str(saved))]
    (entry,) = journal.entries()
    assert Path(entry.local_file) == saved.absolute()


# -- gallery and storyboard (their views: tests/test_galleries.py) -----------------------------


def test_gallery_shows_a_batch_side_by_side(sandbox, client):
    jobs = client.extend_many(sandbox.demo_parents[0].task_id, ["a", "b", "c"])
    gallery = luma_nb.Gallery(jobs, columns=2)
    assert isinstance(gallery, Gallery) and len(gallery.cards) == 3
    assert repr(gallery) == "Gallery(3 jobs)"
    tasks = gallery.wait(30)
    assert all(t.is_finished for t in tasks)
    eventually(lambda: all(card["state"] == "finished" for card in gallery.cards))


def test_storyboard_chains_extends_and_ends_with_the_final_video(sandbox, client):
    parent = sandbox.demo_parents[1].task_id
    board = storyboard(client, parent, ["first", "second", "third"])
    final = board.wait(60)
    jobs = board.jobs
    assert [j.parent_task_id for j in jobs] == [parent, jobs[0].task_id, jobs[1].task_id]
    assert final.task_id == jobs[-1].task_id and final.is_finished
    extends = posts(sandbox)
    assert [r.body["parent_task_id"] for r in extends] == [parent] + [j.task_id for j in jobs[:2]]
    # Each extend was sent only after its parent was seen finished.
    for job, request in zip(jobs[:-1], extends[1:], strict=True):
        done_at = max(
            r.time
            for r in sandbox.requests
            if r.path.startswith("/fetch") and job.task_id in str(r.body)
        )
        assert request.time > done_at - 1e-6
    eventually(lambda: board.final.get("video") == jobs[-1].task.video_url)
    assert all(card["state"] == "finished" and card["video"] for card in board.cards)
