"""Kernel-level: a real ipykernel (this venv's python) runs cells while jobs are being watched.

The notebook is executed with nbclient, as nbval and nbconvert do. We assert on real outputs
and on kernel-side state printed by cells, never on saved widget state (ipykernel 7 tags
messages from other threads with the creating cell, so saved widget state can be stale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nbclient import NotebookClient

from ._notebooks import code_notebook

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent

SETUP = """\
import threading
import luma_nb
from luma_nb import FixedPolicy, LumaClient
from luma_nb.sandbox import Sandbox
from luma_nb.client.watcher import get_watcher
sandbox = Sandbox(speed=40).start()  # a job takes 1.5-7.5 s: time to run cells meanwhile
client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(0.1),
                    journal=None)
parent = sandbox.demo_parents[0].task_id
"""

SUBMIT = """\
job = client.extend(parent, "the waves roll in")
job
"""

WHILE_WATCHED = """\
watch = get_watcher().watching(job)
print("watched:", watch is not None, "| done:", job.done)
print("watcher threads:", sum(t.name == "luma-nb-watcher" for t in threading.enumerate()))
print("other work:", sum(range(1000)))
"""

AWAIT_WATCH = """\
task = await job.watch()
print("awaited:", task.status, "| still watched:", get_watcher().watching(job) is not None)
task
"""

AWAIT_JOB = """\
import asyncio
view_job = client.extend(parent, "awaited at the top level")
view = luma_nb.ProgressView(view_job)
t2 = await view_job                  # top-level await (the client's own async wait)
await view.watch                     # the view's watch ends on the watcher thread
card = view.cards[0]
print("awaited job:", t2.status, "| bar:", card["state"], card["pct"])
print("player has video:", bool(card["video"] and card["video"]["src"]))
"""

SYNC_WAIT = """\
job3 = client.extend(parent, "a blocking wait")
view3 = luma_nb.ProgressView(job3)
bars = []
view3.watch.add_listener(lambda w: bars.append(view3.cards[0]["pct"]))  # after the view's own
print("blocking wait:", job3.wait(timeout=60).status)
print("view moved during the blocking wait:", any(0 < v < 100 for v in bars))
await asyncio.sleep(0.01)
6 * 7
"""


def _run(cells: list[str]) -> list[Any]:
    nb = code_notebook(cells)
    client = NotebookClient(
        nb,
        timeout=90,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    return [cell.outputs for cell in nb.cells]


def _text(outputs: list[Any]) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif out.get("output_type") in ("execute_result", "display_data"):
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
        elif out.get("output_type") == "error":
            parts.append(f"ERROR {out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def test_cells_run_while_jobs_are_watched_and_end_with_video(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMA_NB_HOME", str(tmp_path / "home"))  # the kernel inherits it
    outputs = _run([SETUP, SUBMIT, WHILE_WATCHED, AWAIT_WATCH, "job", AWAIT_JOB, SYNC_WAIT])
    _setup, _submit, meanwhile, awaited, shown, after, sync = (_text(o) for o in outputs)
    assert "ERROR" not in "".join(_text(o) for o in outputs)

    # The submit cell returned at once with a live view (widget + text/html fallback).
    result = outputs[1][0]
    assert "application/vnd.jupyter.widget-view+json" in result["data"]
    assert result["data"]["text/plain"] == "ProgressView(prompt='the waves roll in')"
    assert "the waves roll in" in result["data"]["text/html"]

    # The next cell ran while the job was being watched by the one watcher thread.
    assert "watched: True | done: False" in meanwhile
    assert "watcher threads: 1" in meanwhile
    assert "other work: 499500" in meanwhile

    # Awaiting piggybacks on the watcher; the cell's result is the video.
    assert "awaited: finished | still watched: False" in awaited
    assert "<video" in awaited
    assert "<video" in shown  # the finished job shown again: HTML fallback carries the video

    # A top-level await of the job, with a progress view watching it on the thread.
    assert "awaited job: finished | bar: finished 100" in after
    assert "player has video: True" in after
    assert "blocking wait: finished" in sync
    assert "view moved during the blocking wait: True" in sync
    assert "42" in sync
