"""End to end in headless Chromium: the teacher's dashboard of a class at work.

A sandbox and a relay with two students run in this process; the students are LumaClients
driven by the test, the teacher is the browser. The teacher logs in with the teacher token,
watches both students' jobs appear and finish in the live table, plays a video of the class
gallery, approves a prompt in approve mode, and pauses a student, whose next submit is then
refused. Screenshots go to ``artifacts/e2e/teacher-*.png``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from luma_nb.contract.errors import APIError
from luma_nb.relay.settings import issue_teacher_token
from tests.relay_support import Classroom

from .driver import Shots

pytestmark = pytest.mark.e2e

#: Simulated seconds per real second: a job takes about 1-8 s, long enough to be seen running
#: in a table refreshed every 2 s.
SPEED = 30.0
JOB_MS = 60_000

_PLAYING_JS = """v => !v.paused && v.readyState >= 2 && v.currentTime > 0.5"""


@pytest.fixture
def room(make_sandbox: Any, tmp_path: Any) -> Iterator[Classroom]:
    sandbox = make_sandbox(speed=SPEED)
    classroom = Classroom(sandbox, tmp_path, students=2, student_budget=30)
    yield classroom
    classroom.close()


def _row(page: Any, name: str) -> Any:
    return page.locator('tbody[data-section="students"] tr', has_text=name)


def _cell(page: Any, name: str, column: int) -> Any:
    """A cell of a student's row (0: name, 1: state, 5: running, 6: finished, 8: waiting)."""
    return _row(page, name).locator("td").nth(column)


def _wait_jobs_appear(page: Any, names: tuple[str, ...], timeout: float = 30.0) -> bool:
    """Wait until each student's row counts a job (running or finished); True when one was
    seen running (a fast sandbox may finish between two refreshes of the table)."""
    deadline = time.monotonic() + timeout
    running = False
    while time.monotonic() < deadline:
        counts = [
            (int(_cell(page, n, 5).inner_text()), int(_cell(page, n, 6).inner_text()))
            for n in names
        ]
        running = running or any(r for r, _ in counts)
        if all(r + f >= 1 for r, f in counts):
            return running
        page.wait_for_timeout(200)
    raise AssertionError(f"the jobs of {names} did not appear in the table within {timeout} s")


def test_the_teacher_watches_approves_and_pauses_the_class(
    page: Any, page_log: Any, room: Classroom
) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    shots = Shots("teacher")
    token = issue_teacher_token(room.relay.store)

    # Log in: /teacher sends to the login page; the token opens the dashboard.
    page.goto(room.url + "/teacher")
    page.locator('input[name="token"]').fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Year 9 Art: the class")).to_be_visible()
    expect(_cell(page, "student-02", 1)).to_have_text("active")

    # Two students submit from their notebooks; the table shows the jobs run, then finish.
    jobs = [room.client(0).imagine("a red kite"), room.client(1).imagine("a paper boat")]
    seen_running = _wait_jobs_appear(page, ("student-01", "student-02"))
    shots.take(page, "jobs-appear")
    for name in ("student-01", "student-02"):
        expect(_cell(page, name, 6)).to_have_text("1", timeout=JOB_MS)
        expect(_cell(page, name, 5)).to_have_text("0")
        expect(_cell(page, name, 2)).to_have_text("6")  # credits used
        expect(_cell(page, name, 4)).to_have_text("24")  # and left
    assert all(job.wait(timeout=30).is_finished for job in jobs)

    # The gallery shows posters and no player: no video bytes are asked for until one is
    # played. A click makes the player; it keeps playing across live refreshes.
    cards = page.locator('[data-section="gallery"] [data-luma="card"]')
    expect(cards).to_have_count(2)
    expect(page.locator('[data-section="gallery"] video')).to_have_count(0)
    posters = page.locator('[data-section="gallery"] img[data-luma="poster"]')
    expect(posters).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-section=\"gallery\"] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    assert not page_log.media, f"video bytes asked for before any play: {page_log.media}"
    shots.take(page, "gallery-posters")
    play = cards.first.locator('[data-luma="play"]')
    play.scroll_into_view_if_needed()
    play.click()
    video = page.locator('[data-section="gallery"] video')
    expect(video).to_have_count(1)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(_PLAYING_JS, arg=video.element_handle(), timeout=30_000)
    state = video.evaluate(
        "v => ({readyState: v.readyState, t: v.currentTime, src: v.currentSrc, "
        "error: v.error && v.error.code})"
    )
    assert state["error"] is None and state["readyState"] >= 2, state
    # It came through the relay's /teacher/play link, redirected to the video itself.
    assert state["src"] in {f"{room.url}/teacher/play/{job.task_id}" for job in jobs}
    urls = {job.task.video_url for job in jobs if job.task is not None}
    assert any(url in urls for _, _, url in page_log.media), page_log.media
    shots.take(page, "video-playing")
    before = page.evaluate("() => document.body.dataset.updated || ''")
    page.wait_for_function(
        "b => (document.body.dataset.updated || '') !== b", arg=before, timeout=10_000
    )
    later = video.evaluate("v => ({connected: v.isConnected, paused: v.paused, t: v.currentTime})")
    assert later["connected"] and not later["paused"] and later["t"] > state["t"], later

    # Approve mode: a student's submit waits for the teacher, then runs once approved.
    page.get_by_role("button", name="Turn approve mode on").click()
    expect(page.locator('[data-key="switches"] .state').nth(1)).to_have_text("on")
    held_job = room.client(0).imagine("a dragon made of clouds")
    finished: list[Any] = []
    waiter = threading.Thread(target=lambda: finished.append(held_job.wait(timeout=90)))
    waiter.start()
    card = page.locator('[data-section="held"] .card', has_text="a dragon made of clouds")
    expect(card).to_be_visible()
    expect(_cell(page, "student-01", 8)).to_have_text("1")
    assert room.upstream_submits() == 2  # held: not sent yet
    card.scroll_into_view_if_needed()
    shots.take(page, "approval-waiting")
    card.get_by_role("button", name="Approve").click()
    expect(page.locator("#flash")).to_contain_text("was sent")
    expect(_cell(page, "student-01", 6)).to_have_text("2", timeout=JOB_MS)
    waiter.join(90)
    assert finished and finished[0].is_finished and finished[0].task_id == held_job.task_id
    assert room.upstream_submits() == 3

    # Pause one student: their next submit is refused before anything is reserved.
    page.get_by_role("button", name="Turn approve mode off").click()
    _row(page, "student-02").get_by_role("button", name="Pause").click()
    expect(_cell(page, "student-02", 1)).to_have_text("paused")
    with pytest.raises(APIError) as caught:
        room.client(1).imagine("one more")
    assert caught.value.status_code == 403 and "paused your submits" in str(caught.value)
    expect(_cell(page, "student-02", 9)).to_contain_text("paused your submits")
    _row(page, "student-02").scroll_into_view_if_needed()
    shots.take(page, "student-paused")
    assert room.upstream_submits() == 3

    problems = [m for m in page_log.console if "error" in m.lower() or "security" in m.lower()]
    assert not page_log.errors and not problems, page_log.report()
    print(
        f"teacher's dashboard: {time.monotonic() - started:.1f} s, a job seen running: "
        f"{seen_running}, shots {[p.name for p in shots.taken]}"
    )
