"""A planted API key never leaks: not in outputs, saved notebooks, logs, errors or the journal.

A unique key is planted in the environment, as a user with a real key would set it, and
``APIFRAME_BASE_URL`` points at a sandbox that accepts only that key. Then the client, the
widgets, the command line and every notebook are run, and everything they left behind is
searched for the key (and for a planted webhook secret). Running the notebooks this way also
proves they work in "real key" mode (``default_client()`` takes the key path).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import luma_nb
from luma_nb import AuthenticationError, LumaClient, SubmitUncertainError, media
from luma_nb.client import defaults as luma_defaults
from luma_nb.client.watcher import get_watcher
from luma_nb.sandbox import Sandbox

from ._notebooks import ROOT, SERVICE_VARS, copy_notebooks, notebook_paths
from .support import eventually
from .widget_frontend import Frontend

KEY = f"sk-planted-{uuid.uuid4().hex}"
WRONG_KEY = f"sk-wrong-{uuid.uuid4().hex}"
HOOK_SECRET = f"whs-planted-{uuid.uuid4().hex}"
PLANTED = (KEY, WRONG_KEY, HOOK_SECRET)


def _assert_clean(what: str, text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    for secret in PLANTED:
        assert secret.encode() not in data, f"a planted secret leaked into {what}"


@pytest.fixture(scope="module")
def keyed_sandbox() -> Iterator[Sandbox]:
    with Sandbox(api_key=KEY, speed=200) as sandbox:
        yield sandbox


@pytest.fixture
def keyed_env(keyed_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment of a user with a key (the sandbox stands in for the service)."""
    for name in SERVICE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APIFRAME_API_KEY", KEY)
    monkeypatch.setenv("APIFRAME_BASE_URL", keyed_sandbox.base_url)
    monkeypatch.setenv("LUMA_NB_SANDBOX_SPEED", "200")
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    home = tmp_path / "home"
    monkeypatch.setenv("LUMA_NB_HOME", str(home))
    monkeypatch.setattr(luma_defaults, "_client", None)  # default_client() takes the key path
    return home


def _journal_bytes(home: Path) -> bytes:
    files = [p for p in home.rglob("*") if p.is_file()]
    return b"".join(p.read_bytes() for p in files)


def test_client_and_widgets_never_show_the_key(
    keyed_env: Path,
    keyed_sandbox: Sandbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    parent = keyed_sandbox.demo_parents[0].task_id
    client = luma_nb.default_client()
    assert client.has_key and client.base_url == keyed_sandbox.base_url
    seen: list[str] = [repr(client), str(client)]

    job = client.extend(
        parent, "a quiet harbour", webhook_url="https://hooks.invalid/x", webhook_secret=HOOK_SECRET
    )
    seen += [repr(job), json.dumps(job.request)]
    task = job.wait(on_progress=lambda t: seen.append(repr(t)))
    seen += [repr(client.fetch(job.task_id)), repr(client.fetch_many([parent, job.task_id]))]
    seen += [repr(client.account()), task._repr_html_(), repr(media.video(job)._repr_html_())]
    seen.append(str(luma_nb.notebook.media.save(job, tmp_path / "videos")))

    with pytest.raises(AuthenticationError) as refused:
        LumaClient(WRONG_KEY, base_url=keyed_sandbox.base_url, journal=None).account()
    seen += [str(refused.value), repr(refused.value)]
    keyed_sandbox.faults.add(path="/luma-extend", kind="drop")
    with pytest.raises(SubmitUncertainError) as lost:
        client.extend(
            parent, "lost answer", webhook_url="https://hooks.invalid/x", webhook_secret=HOOK_SECRET
        )
    seen += [str(lost.value), repr(lost.value), repr(vars(lost.value))]

    # The widgets: the form submits as its view would, its progress card runs to the end with
    # the video. The secret reaches Python as a message and never enters the widget state
    # (which a saved notebook would carry).
    form = luma_nb.extend_form()
    assert form.parent_task_id == parent  # the sandbox's demo parent, offered in "real key" mode
    view = Frontend(form)
    view.edit(prompt="the lighthouse beam sweeps the sea", webhook_url="https://hooks.invalid/y")
    view.send(type="secret", value=HOOK_SECRET)
    assert form.secret_set
    view.submit()
    assert len(form.jobs) == 1
    get_watcher().watching(form.jobs[0]).wait(60)
    assert eventually(lambda: any(card.get("video") for card in form.cards))
    widgets = list(_all_widgets(form))
    states = [w.get_state() for w in widgets]
    seen += [json.dumps(states, default=str), repr(form), json.dumps(form.value)]
    gallery = luma_nb.Gallery([job])
    seen += [json.dumps([w.get_state() for w in _all_widgets(gallery)], default=str)]

    out, err = capfd.readouterr()
    _assert_clean("client and widget outputs", "\n".join(seen))
    _assert_clean("stdout/stderr", out + err)
    # The comm package (below ipywidgets, not ours) logs every message a view sends at DEBUG,
    # the secret typed into the form's field included, as it would any widget's field: that
    # one record is the browser's own message. Every other record must be clean.
    ours = [r for r in caplog.records if r.name != "Comm"]
    _assert_clean("logs", "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in ours))
    _assert_clean("the journal", _journal_bytes(keyed_env))
    assert keyed_env.exists() and any(keyed_env.rglob("*")), "nothing was journaled"


def _all_widgets(root: Any) -> list[Any]:
    found, todo = [], [root]
    while todo:
        widget = todo.pop()
        found.append(widget)
        todo.extend(getattr(widget, "children", ()) or ())
    return found


def test_cli_never_shows_the_key(keyed_env: Path, keyed_sandbox: Sandbox, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["APIFRAME_WEBHOOK_SECRET"] = HOOK_SECRET
    parent = keyed_sandbox.demo_parents[1].task_id
    runs = [
        ["account"],
        ["--json", "account"],
        [
            "extend",
            parent,
            "the boat turns into the wind",
            "--wait",
            "--out",
            str(tmp_path),
            "--webhook-url",
            "https://hooks.invalid/z",
        ],
        ["--json", "fetch", parent],
        ["extend", parent, ""],  # bad input: exit 2
    ]
    outputs = []
    for args in runs:
        result = subprocess.run(
            [sys.executable, "-m", "luma_nb.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs.append((args, result.returncode, result.stdout + result.stderr))
    wrong = {**env, "APIFRAME_API_KEY": WRONG_KEY}
    refused = subprocess.run(
        [sys.executable, "-m", "luma_nb.cli", "account"],
        env=wrong,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outputs.append((["account (wrong key)"], refused.returncode, refused.stdout + refused.stderr))
    codes = [code for _, code, _ in outputs]
    assert codes == [0, 0, 0, 0, 2, 3], outputs
    _assert_clean("the command line's output", "\n".join(text for _, _, text in outputs))
    _assert_clean("the journal", _journal_bytes(keyed_env))


def test_every_notebook_runs_with_a_key_and_keeps_it_out(keyed_env: Path, tmp_path: Path) -> None:
    notebooks = copy_notebooks(tmp_path / "notebooks")
    out = tmp_path / "executed"
    # One process per notebook, side by side: they mostly wait for jobs.
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests._notebooks", "--env-as-is", "--out", str(out), str(nb)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for nb in notebooks
    ]
    logs = []
    for nb, process in zip(notebooks, runs, strict=True):
        try:
            text, _ = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            text, _ = process.communicate()
        logs.append(text.decode("utf-8", "replace"))
        assert process.returncode == 0, f"{nb.name} failed with a key:\n{logs[-1][-3000:]}"
    executed = sorted(out.glob("*.ipynb"))
    assert [p.name for p in executed] == [p.name for p in notebook_paths()]
    for path in executed:
        text = path.read_text(encoding="utf-8")
        assert '"output_type": "error"' not in text, path.name
        _assert_clean(f"the saved {path.name}", text)
    quickstart = (out / "01-quickstart.ipynb").read_text(encoding="utf-8")
    assert "finished" in quickstart and "<video" in quickstart
    _assert_clean("the kernels' logs", "\n".join(logs))
    _assert_clean("the journal", _journal_bytes(keyed_env))
    _assert_clean(
        "the notebooks' folder",
        b"".join(p.read_bytes() for p in (tmp_path / "notebooks").rglob("*") if p.is_file()),
    )
