"""What a user does with the widgets in a browser, as Playwright steps with checks.

The widgets mark what a user sees with ``data-luma="..."`` attributes (the form, its prompt,
Submit, the parent picker's thumbnails, each progress card with its bar and video, a gallery's
posters and play buttons); the steps find them by those, never by private class names.
Playwright's CSS locators pierce shadow roots, so the same steps work in marimo, which puts
each widget in one. In-page JavaScript runs on located elements only (``document.querySelector``
would not see inside marimo's shadow roots).
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

from .harness import ARTIFACTS

PROMPT = "The lighthouse beam sweeps across a stormy sea as a red sailboat races for the harbour"
FORM = '[data-luma="form"]'
#: The form's one status line says where it runs (demo mode: the offline sandbox).
DEMO_WORDS = re.compile(r"\b(demo|sandbox)\b", re.IGNORECASE)
FINISHED = re.compile(r"\b(finished|done|ready)\b", re.IGNORECASE)
#: Longest real time a demo job may take at the test's sandbox speed, polling lag included.
JOB_TIMEOUT_MS = 120_000


def luma(root: Any, name: str) -> Any:
    """The elements marked ``data-luma="name"`` under ``root`` (a page or a locator)."""
    return root.locator(f'[data-luma="{name}"]')


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
    """What the progress card showed while the job ran."""

    bar_values: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    midway_shot: Path | None = None
    centred: bool = False

    @property
    def midway(self) -> list[float]:
        """Bar values strictly between empty and full."""
        return [v for v in self.bar_values if 0.0 < v < 100.0]


def find_form(page: Any, timeout_ms: float = 120_000) -> Any:
    """The first rendered extend form, once its prompt is visible."""
    form = page.locator(FORM).first
    luma(form, "prompt").first.wait_for(state="visible", timeout=timeout_ms)
    return form


def status_line(form: Any) -> str:
    """The form's one status line (where it runs, credits left)."""
    return str(luma(form, "status-line").first.inner_text())


#: The view names no loopback address (routing notes stay in title/data- attributes).
LOOPBACK = re.compile(r"127\.0\.0\.1|localhost|\[::1\]")


def check_the_view_reads_well(form: Any) -> None:
    """One status line that says demo mode; no loopback address anywhere in the view's text."""
    line = status_line(form)
    assert DEMO_WORDS.search(line), f"the status line does not say demo mode: {line!r}"
    text = form.inner_text()
    assert not LOOPBACK.search(text), f"the view shows a loopback address: {text!r}"


def pick_parent(form: Any, index: int = 1) -> str:
    """Click the ``index``-th thumbnail of the parent picker, as a user would; wait until the
    kernel has made it the parent (the thumbnail pressed, the id field filled); its task id.

    The picker's answer comes from Python, so this is also a round trip through the kernel.
    """
    items = luma(form, "picker-item")
    items.first.wait_for(state="visible", timeout=60_000)
    assert items.count() > index, f"the picker offers {items.count()} parents"
    item = items.nth(index)
    task_id = str(item.get_attribute("data-task-id"))
    item.click()
    # The picker is drawn again from the kernel's answer: look the item up by its id.
    form.locator(
        f'[data-luma="picker-item"][data-task-id="{task_id}"][aria-pressed="true"]'
    ).wait_for(timeout=20_000)
    field_value = luma(form, "parent").first.input_value()
    assert field_value == task_id, f"the parent field says {field_value!r}, not {task_id}"
    pressed = form.locator('[data-luma="picker-item"][aria-pressed="true"]')
    assert pressed.count() == 1, f"{pressed.count()} thumbnails are pressed"
    return task_id


def card_ids(form: Any) -> set[str]:
    """The task ids of the progress cards ``form`` shows now."""
    cards = luma(form, "card")
    return {str(cards.nth(i).get_attribute("data-task-id")) for i in range(cards.count())}


def fill_and_submit(page: Any, form: Any, shots: Shots, prompt: str = PROMPT) -> set[str]:
    """Type the prompt like a user, screenshot the filled form, click Submit.

    Returns the task ids of the cards shown before the click (the new one is not among them).
    """
    area = luma(form, "prompt").first
    area.click()
    area.fill(prompt)
    submit = luma(form, "submit").first
    # Python checks the input as it is typed; Submit is enabled once it is valid.
    form.locator('[data-luma="submit"]:enabled').first.wait_for(timeout=20_000)
    before = card_ids(form)
    scroll_to_top(form)
    shots.take(page, "form-filled")
    submit.click()
    return before


def new_card(form: Any, before: set[str], timeout_ms: float = 30_000) -> Any:
    """The progress card of a task not in ``before`` (waits for it), by its task id."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        fresh = sorted(card_ids(form) - before - {"None", ""})
        if fresh:
            return form.locator(f'[data-luma="card"][data-task-id="{fresh[0]}"]')
        if time.monotonic() > deadline:
            raise AssertionError(f"no new progress card within {timeout_ms / 1000:.0f} s")
        time.sleep(0.1)


def scroll_to_top(element: Any) -> None:
    """Scroll ``element``'s top to the top of the view; wait for the frame to be painted."""
    element.evaluate("e => e.scrollIntoView({block: 'start'})")
    element.page.wait_for_timeout(250)


def watch_progress(
    page: Any, card: Any, shots: Shots, timeout_ms: float = JOB_TIMEOUT_MS, frame: Any = None
) -> Progress:
    """Sample the card's bar and words until its video appears; screenshot once mid-way
    (scrolled to ``frame``, the form, when given)."""
    seen = Progress()
    bar = luma(card, "progress").first
    words = luma(card, "card-status").first
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        raw = bar.get_attribute("aria-valuenow") if bar.count() else None
        value = float(raw) if raw not in (None, "") else None
        if value is not None and (not seen.bar_values or seen.bar_values[-1] != value):
            seen.bar_values.append(value)
        text = words.inner_text() if words.count() else ""
        if not seen.statuses or seen.statuses[-1] != text:
            seen.statuses.append(text)
        if (
            value is not None
            and 0.0 < value < 100.0
            and (seen.midway_shot is None or (not seen.centred and 25.0 <= value <= 75.0))
        ):
            # The first value in between is kept; one nearer the middle replaces it.
            scroll_to_top(frame if frame is not None else card)
            seen.midway_shot = shots.take(page, "progress-midway", replace=seen.midway_shot)
            seen.centred = 25.0 <= value <= 75.0
        if luma(card, "video").count():
            return seen
        page.wait_for_timeout(150)
    raise AssertionError(
        f"no video within {timeout_ms / 1000:.0f} s; bar values {seen.bar_values}, "
        f"last words {seen.statuses[-1:]!r}"
    )


def video_state(video: Any) -> dict[str, Any]:
    """Wait (bounded) for the first frame; readyState, duration, currentSrc and error."""
    return dict(video.evaluate(_WAIT_LOADED_JS))


def parent_duration(video_src: str, parent_id: str, headers: dict[str, str] | None = None) -> float:
    """The parent's duration, measured from the MP4 the same sandbox serves, by the same route
    as ``video_src`` (the sandbox itself, or the Jupyter server's proxy, for which ``headers``
    carry the token)."""
    import av

    parts = urlsplit(video_src)
    folder = parts.path.rsplit("/", 1)[0]
    response = requests.get(
        f"{parts.scheme}://{parts.netloc}{folder}/{parent_id}.mp4", headers=headers, timeout=60
    )
    response.raise_for_status()
    with av.open(io.BytesIO(response.content)) as container:
        assert container.duration is not None, f"no duration in {parent_id}.mp4"
        return float(container.duration / 1_000_000)


def check_video(
    page: Any,
    card: Any,
    shots: Shots,
    page_log: Any,
    parent_id: str,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The finished card's video loads, outlasts its parent, plays, and seeks (Range) mid-way.

    ``headers`` authenticate the test's own request for the parent (a server with a token).
    """
    video = luma(card, "video").first
    video.wait_for(state="attached")
    state = video_state(video)
    assert state["error"] is None, f"video error: {state}"
    assert state["readyState"] >= 2, f"video has no current frame: {state}"
    parent = parent_duration(state["src"], parent_id, headers)
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
    # The whole card in view (its video at the bottom), with as much of the form as fits.
    card.evaluate("e => e.scrollIntoView({block: 'end'})")
    page.wait_for_timeout(250)
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
    route = video.get_attribute("data-route")
    return {
        **state,
        "parent_duration": parent,
        "seek": seek,
        "playing_shot": playing,
        "route": route,
        "route_title": video.get_attribute("title") or "",
    }


def extend_through_the_form(
    page: Any,
    form: Any,
    shots: Shots,
    page_log: Any,
    *,
    meanwhile: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The whole user story in one front-end: pick a parent by its thumbnail, type a prompt,
    Submit, watch the card's bar move, then the video loads, outlasts its parent, plays and
    seeks. ``meanwhile(card)`` runs right after the card appears (a busy-kernel check)."""
    parent = pick_parent(form)
    before = fill_and_submit(page, form, shots)
    card = new_card(form, before)
    if meanwhile is not None:
        meanwhile(card)
    progress = watch_progress(page, card, shots, frame=form)
    assert progress.midway, f"the bar never showed a value between 0 and 100: {progress}"
    video = check_video(page, card, shots, page_log, parent, headers)
    assert not page_log.ours(), page_log.report()
    return {**video, "progress": progress, "parent": parent, "card": card}


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


def another_cell_runs(page: Any) -> Any:
    """While the job runs, another cell runs and prints (the kernel is not frozen)."""

    def check(card: Any) -> None:
        cell = run_new_cell(page, 'print("kernel alive:", 6 * 7)')
        output = cell.locator(".jp-OutputArea-output").get_by_text("kernel alive: 42")
        output.wait_for(timeout=20_000)
        assert luma(card, "video").count() == 0, (
            "the job finished before the second cell ran, so that check proved nothing; "
            "lower LUMA_NB_E2E_SANDBOX_SPEED"
        )

    return check
