"""What a user does with the extend form in a browser, as Playwright steps with checks.

The form and its progress cards are found by their stable ``data-luma`` hooks, never by
private class names: ``[data-luma="form"]`` holds the ``status-line``, the parent ``picker``
(``picker-item`` buttons), the ``prompt``, ``submit`` and ``submit-reason``; each submit adds a
``card`` (newest first, ``data-task-id``/``data-parent-id``) with its ``progress`` bar
(``aria-valuenow``), its ``card-status`` and, once finished, its ``video``.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from luma_nb.contract.plain_words import SANDBOX_LINE

from .harness import ARTIFACTS

DEMO_NOTE = SANDBOX_LINE
PROMPT = "The lighthouse beam sweeps across a stormy sea as a red sailboat races for the harbour"
FORM = '[data-luma="form"]'
SUBMIT = '[data-luma="submit"]'
PROMPT_BOX = '[data-luma="prompt"]'
PICKER_ITEM = '[data-luma="picker-item"]'
PARENT_BOX = '[data-luma="parent"]'
RATIO = '[data-luma="ratio"]'
SUBMIT_REASON = '[data-luma="submit-reason"]'
CARD = '[data-luma="card"]'
VIDEO = '[data-luma="video"]'
STATUS_LINE = '[data-luma="status-line"]'
FINISHED = re.compile(r"\bfinished\b", re.IGNORECASE)
#: Longest real time a demo job may take at the test's sandbox speed, polling lag included.
JOB_TIMEOUT_MS = 120_000

_BAR_JS = """form => {
    const bar = form.querySelector('[data-luma="card"] [data-luma="progress"]');
    if (!bar) return null;
    const value = bar.getAttribute('aria-valuenow');
    return value === null ? null : parseFloat(value);
}"""

_WAIT_LOADED_JS = """async v => {
    v.muted = true;
    if (v.readyState < 2 && !v.error) {
        await new Promise(done => {
            const stop = () => done();
            v.addEventListener('loadeddata', stop, {once: true});
            v.addEventListener('error', stop, {once: true});
            setTimeout(stop, 20000);
            if (v.networkState === HTMLMediaElement.NETWORK_EMPTY || v.preload === 'none') v.load();
        });
    }
    return {readyState: v.readyState, duration: v.duration, src: v.currentSrc,
            error: v.error ? `${v.error.code} ${v.error.message}` : null};
}"""

_SEEK_JS = """async ([v, target]) => {
    v.pause();
    await new Promise(done => {
        v.addEventListener('seeked', () => done(), {once: true});
        setTimeout(done, 15000);
        v.currentTime = target;
    });
    const ranges = [];
    for (let i = 0; i < v.seekable.length; i++)
        ranges.push([v.seekable.start(i), v.seekable.end(i)]);
    return {currentTime: v.currentTime, seeking: v.seeking, seekable: ranges,
            error: v.error ? `${v.error.code} ${v.error.message}` : null};
}"""


@dataclass
class Shots:
    """Screenshots of one test, numbered in the order they are taken."""

    prefix: str
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Any, name: str, replace: Path | None = None) -> Path:
        """Save the viewport as ``artifacts/e2e/<prefix>-<n>-<name>.png`` (or over ``replace``)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = replace or ARTIFACTS / f"{self.prefix}-{len(self.taken) + 1}-{name}.png"
        page.screenshot(path=str(path))
        if replace is None:
            self.taken.append(path)
        return path


@dataclass
class Progress:
    """What the progress view showed while the job ran."""

    bar_values: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    midway_shot: Path | None = None
    centred: bool = False

    @property
    def midway(self) -> list[float]:
        """Bar values strictly between empty and full."""
        return [v for v in self.bar_values if 0.0 < v < 100.0]


def find_form(page: Any, timeout_ms: float = 120_000) -> Any:
    """The first rendered extend form, once its textarea is visible."""
    form = page.locator(FORM).first
    form.locator(PROMPT_BOX).first.wait_for(state="visible", timeout=timeout_ms)
    return form


def pick_parent(form: Any, index: int = 0, *, title: str | None = None) -> str:
    """Click a thumbnail of the parent picker (the ``index``-th, or the one showing ``title``);
    the task id it chose, once the kernel has taken it."""
    items = form.locator(PICKER_ITEM)
    item = items.filter(has_text=title).first if title else items.nth(index)
    task_id = str(item.get_attribute("data-task-id"))
    item.click()
    form.locator(f'{PICKER_ITEM}[data-task-id="{task_id}"][aria-pressed="true"]').wait_for(
        timeout=20_000
    )
    return task_id


def fill_and_submit(page: Any, form: Any, shots: Shots, prompt: str = PROMPT) -> None:
    """Type the prompt like a user, screenshot the filled form, click Submit."""
    area = form.locator(PROMPT_BOX).first
    area.click()
    area.fill(prompt)
    submit = form.locator(SUBMIT).first
    # Python validates: Submit is enabled once the kernel has seen the prompt.
    page.wait_for_function("b => !b.disabled", arg=submit.element_handle(), timeout=30_000)
    scroll_to_top(form)
    shots.take(page, "form-filled")
    submit.click()


def scroll_to_top(element: Any) -> None:
    """Scroll ``element``'s top to the top of the view; wait for the frame to be painted."""
    element.evaluate("e => e.scrollIntoView({block: 'start'})")
    element.page.wait_for_timeout(250)


def form_text(form: Any) -> str:
    """The form's visible text."""
    return str(form.inner_text())


def watch_progress(
    page: Any, form: Any, shots: Shots, timeout_ms: float = JOB_TIMEOUT_MS
) -> Progress:
    """Sample the bar and status until a video appears; screenshot once mid-way."""
    seen = Progress()
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        value = form.evaluate(_BAR_JS)
        if value is not None and (not seen.bar_values or seen.bar_values[-1] != value):
            seen.bar_values.append(float(value))
        text = form_text(form)
        if not seen.statuses or seen.statuses[-1] != text:
            seen.statuses.append(text)
        if (
            value is not None
            and 0.0 < value < 100.0
            and (seen.midway_shot is None or (not seen.centred and 25.0 <= value <= 75.0))
        ):
            # The first value in between is kept; one nearer the middle replaces it.
            scroll_to_top(form)
            seen.midway_shot = shots.take(page, "progress-midway", replace=seen.midway_shot)
            seen.centred = 25.0 <= value <= 75.0
        if form.locator(VIDEO).count():
            return seen
        page.wait_for_timeout(150)
    raise AssertionError(
        f"no video within {timeout_ms / 1000:.0f} s; bar values {seen.bar_values}, "
        f"last text {seen.statuses[-1:]!r}"
    )


def video_state(video: Any) -> dict[str, Any]:
    """Wait (bounded) for the first frame; readyState, duration, currentSrc and error."""
    return dict(video.evaluate(_WAIT_LOADED_JS))


def parent_duration(
    video_src: str, parent_id: str | None, headers: dict[str, str] | None = None
) -> float:
    """The parent's duration, measured from the MP4 the same sandbox serves.

    ``parent_id`` None (the page did not name the parent) measures every demo parent and takes
    the longest, since the extension must outlast whichever it continues. The parent is read
    by the same route as ``video_src`` (the sandbox itself, or the Jupyter server's proxy,
    for which ``headers`` carry the token).
    """
    import av

    from luma_nb.sandbox import DEMO_PARENTS

    parts = urlsplit(video_src)
    folder = parts.path.rsplit("/", 1)[0]
    base = f"{parts.scheme}://{parts.netloc}{folder}"
    ids = [parent_id] if parent_id else [p.task_id for p in DEMO_PARENTS]
    longest = 0.0
    for task_id in ids:
        response = requests.get(f"{base}/{task_id}.mp4", headers=headers, timeout=60)
        response.raise_for_status()
        with av.open(io.BytesIO(response.content)) as container:
            assert container.duration is not None, f"no duration in {task_id}.mp4"
            longest = max(longest, container.duration / 1_000_000)
    return longest


def check_video(
    page: Any, form: Any, shots: Shots, page_log: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The finished form's video loads, outlasts its parent, plays, and seeks (Range) mid-way.

    ``headers`` authenticate the test's own request for the parent (a server with a token).
    """
    video = form.locator(VIDEO).first
    video.wait_for(state="attached")
    state = video_state(video)
    assert state["error"] is None, f"video error: {state}"
    assert state["readyState"] >= 2, f"video has no current frame: {state}"
    named = form.locator(CARD).first.get_attribute("data-parent-id")
    parent = parent_duration(state["src"], named or None, headers)
    assert state["duration"] > parent + 0.5, (
        f"extension lasts {state['duration']:.2f} s, not longer than its parent ({parent:.2f} s)"
    )

    # Play the new part (after the parent's frames), as a user would after the first seconds;
    # the screenshot shows the form with that part running.
    handle = video.element_handle()
    page.evaluate(_SEEK_JS, [handle, parent + 0.2])
    video.evaluate("v => { v.muted = true; v.play(); }")
    page.wait_for_function(
        "([v, t]) => !v.paused && v.currentTime > t", arg=[handle, parent + 1.0], timeout=30_000
    )
    scroll_to_top(form)
    playing = shots.take(page, "video-playing")

    middle = state["duration"] / 2
    seek = dict(page.evaluate(_SEEK_JS, [handle, middle]))
    assert seek["error"] is None, f"video error after seeking: {seek}"
    assert abs(seek["currentTime"] - middle) < 0.3, f"seek to {middle:.2f} s gave {seek}"
    assert seek["seekable"] and seek["seekable"][-1][1] >= state["duration"] - 0.1, (
        f"the player cannot seek through the whole video (no Range support?): {seek}"
    )
    partial = [m for m in page_log.media if m[0] == 206]
    assert partial, f"no 206 Partial Content for the video: {page_log.media}"
    return {**state, "parent_duration": parent, "seek": seek, "playing_shot": playing}


# -- JupyterLab ------------------------------------------------------------------------------

IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'

_ALL_RUN_JS = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""

_TRACEBACKS_JS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
    .map(o => o.innerText).filter(t => /Traceback \\(most recent call last\\)/.test(t))"""

_KERNEL_READY_JS = """async name => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.sessionContext || !panel.context || !panel.context.path.endsWith(name))
        return false;
    await panel.context.ready;
    await panel.sessionContext.ready;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""

_ANY_RUN_JS = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""

_LAST_CELL_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = panel.content.widgets.length - 1;
    panel.content.mode = 'command';
}"""


def open_in_lab(page: Any, server_url: str, name: str) -> None:
    """Open ``name`` in JupyterLab (``?reset`` drops remembered layouts); wait for its kernel."""
    page.goto(f"{server_url}lab/tree/{name}?reset")
    page.locator(IDLE).wait_for(state="attached", timeout=120_000)
    # The indicator can say idle before the kernel's websocket is up; cells run then are lost.
    page.wait_for_function(_KERNEL_READY_JS, arg=name, timeout=120_000, polling=250)


def login(page: Any, server_url: str, token: str) -> None:
    """Log in to a server that wants a token, as its ``?token=`` link does (sets the cookie)."""
    page.goto(f"{server_url}api/status?token={token}")
    cookies = page.context.cookies()
    assert any(c["name"].startswith("username-") for c in cookies), f"no login cookie: {cookies}"


def open_in_notebook7(page: Any, server_url: str, name: str) -> None:
    """Open ``name`` in the Notebook 7 interface (``/notebooks/...``); wait for its kernel.

    Notebook 7 is built from JupyterLab's parts: the same app object (exposed), commands and
    cell markup, so the other steps here work in it too.
    """
    page.goto(f"{server_url}notebooks/{name}")
    page.locator(IDLE).wait_for(state="attached", timeout=120_000)
    page.wait_for_function(_KERNEL_READY_JS, arg=name, timeout=120_000, polling=250)


_SAVE_JS = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    await panel.context.save();
    return panel.context.model.dirty;
}"""

_TRUSTED_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code').map(c => c.model.trusted)"""


def save_notebook(page: Any) -> None:
    """Save the open notebook (as Ctrl-S does) and wait until it is written."""
    dirty = page.evaluate(_SAVE_JS)
    assert dirty is False, "the notebook is still unsaved"


def code_cells_trusted(page: Any) -> list[bool]:
    """Whether each code cell of the open notebook is trusted (its outputs unsanitised)."""
    return list(page.evaluate(_TRUSTED_JS))


def play_and_seek(page: Any, video: Any) -> dict[str, Any]:
    """Load ``video``, play it a moment, seek to its middle; the states seen."""
    state = video_state(video)
    assert state["error"] is None and state["readyState"] >= 2, f"video does not load: {state}"
    handle = video.element_handle()
    video.evaluate("v => { v.muted = true; v.play(); }")
    page.wait_for_function("v => !v.paused && v.currentTime > 0.3", arg=handle, timeout=30_000)
    middle = state["duration"] / 2
    seek = dict(page.evaluate(_SEEK_JS, [handle, middle]))
    assert seek["error"] is None and abs(seek["currentTime"] - middle) < 0.3, seek
    return {**state, "seek": seek}


def tidy_lab(page: Any) -> None:
    """Close the file browser and any notifications, so screenshots show the notebook."""
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    page.evaluate("() => document.querySelectorAll('.Toastify__toast').forEach(t => t.remove())")


def run_all_cells(page: Any, timeout_ms: float = JOB_TIMEOUT_MS) -> None:
    """Run every cell through the command API; wait until each has a number and none failed."""
    # Fire and forget: the command's promise settles only when the last cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    try:
        page.wait_for_function(_ANY_RUN_JS, timeout=15_000)
    except Exception as error:
        raise AssertionError(
            "run-all started no cell within 15 s (kernel not connected?)"
        ) from error
    page.wait_for_function(_ALL_RUN_JS, timeout=timeout_ms)
    page.locator(IDLE).wait_for(state="attached", timeout=timeout_ms)
    failures = page.evaluate(_TRACEBACKS_JS)
    assert not failures, "cells failed:\n" + "\n---\n".join(failures)


def run_new_cell(page: Any, source: str) -> Any:
    """Append a code cell at the end, type ``source`` and run it; returns the cell's locator."""
    page.evaluate(_LAST_CELL_JS)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:insert-cell-below')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:enter-edit-mode')")
    cell = page.locator(".jp-Notebook .jp-Cell").last
    cell.locator(".cm-content").click()
    page.keyboard.type(source)
    page.keyboard.press("Control+Enter")
    return cell
