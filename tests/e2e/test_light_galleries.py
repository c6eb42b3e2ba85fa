"""A class-sized gallery is light: 300 finished videos, and no video bytes until one is played.

Every request the page makes is recorded (Playwright's ``page.on("request")``). A media request
is one the browser makes for a ``<video>`` (resource type ``media``), any ``.mp4`` URL, or the
teacher's play link. On load (the page open, the gallery drawn with its 300 cards and their
posters) there is none; after one card is played, all of them are for that one video.

- **The Gallery widget in JupyterLab**: a notebook runs 300 extends on a sandbox in its kernel
  (the same prompt: the sandbox renders once and shares it) and shows them in a ``Gallery``.
- **The teacher's dashboard**: a relay in this process in front of a sandbox, 300 finished
  student videos in its class gallery.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from luma_nb.relay.settings import issue_teacher_token
from tests._notebooks import code_notebook
from tests.relay_support import Classroom

from .driver import Shots, luma, open_in_lab, run_all_cells, tidy_lab
from .harness import ServerProcess

pytestmark = pytest.mark.e2e

COUNT = 300
PROMPT = "The same calm sea at dawn, gulls circling"
NOTEBOOK = "300-videos.ipynb"
CELLS = (
    "import luma_nb\nfrom luma_nb.sandbox import Sandbox\n\n"
    "box = Sandbox(speed=500, credits=None).start()\n"
    "client = luma_nb.LumaClient(box.api_key, base_url=box.base_url, "
    "poll=luma_nb.FixedPolicy(1.0))\n"
    "parent = box.demo_parents[0].task_id\n"
    # One render first: the 299 that follow share it (the sandbox caches by request).
    f"first = client.extend(parent, {PROMPT!r})\n"
    "await first\n"
    f"jobs = [first, *client.extend_many(parent, [{PROMPT!r}] * {COUNT - 1})]\n"
    "gallery = luma_nb.Gallery(jobs, columns=6, video_width=180)\n"
    "tasks = await gallery.wait_async()\n"
    "print(sum(t.is_finished for t in tasks), 'finished')",
    "gallery",
)
#: A finished card of the widget, and of the dashboard.
FINISHED_CARD = '[data-luma="card"][data-state="finished"]'


@dataclass
class MediaRequests:
    """Every media request a page makes, in order."""

    urls: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("request", self._on_request)

    def _on_request(self, request: Any) -> None:
        path = request.url.split("?", 1)[0].split("#", 1)[0]
        if request.resource_type == "media" or path.endswith(".mp4") or "/teacher/play/" in path:
            self.urls.append(request.url)


def _write_notebook(path: Path) -> None:
    nbformat.write(code_notebook(CELLS), str(path))


def _scroll_through(page: Any, container: Any) -> None:
    """Scroll every card into view once, so lazy posters load as a user's scrolling would."""
    cards = luma(container, "card")
    for index in range(0, cards.count(), 12):
        cards.nth(index).scroll_into_view_if_needed()
        page.wait_for_timeout(60)
    cards.last.scroll_into_view_if_needed()
    page.wait_for_timeout(500)


def _play(page: Any, card: Any) -> dict[str, Any]:
    """Press the card's play button; wait until its video plays; its state."""
    card.scroll_into_view_if_needed()
    luma(card, "play").first.click()
    video = luma(card, "video").first
    video.wait_for(state="attached", timeout=30_000)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "v => !v.paused && v.readyState >= 2 && v.currentTime > 0.2",
        arg=video.element_handle(),
        timeout=30_000,
    )
    return dict(
        video.evaluate("v => ({src: v.currentSrc, readyState: v.readyState, t: v.currentTime})")
    )


def test_a_gallery_of_300_videos_fetches_only_the_one_played(
    page: Any, page_log: Any, lab: ServerProcess, notebook_root: Path
) -> None:
    started = time.monotonic()
    _write_notebook(notebook_root / NOTEBOOK)
    media = MediaRequests()
    media.attach(page)
    shots = Shots("gallery-300")
    open_in_lab(page, lab.url, NOTEBOOK)
    tidy_lab(page)
    run_all_cells(page, timeout_ms=240_000)
    gallery = page.locator('[data-luma="gallery"]').first
    page.get_by_text(f"{COUNT} finished").first.wait_for(timeout=60_000)
    finished = gallery.locator(FINISHED_CARD)
    page.wait_for_function(
        '([g, n]) => g.querySelectorAll(\'[data-luma="card"][data-state="finished"]\').length >= n',
        arg=[gallery.element_handle(), COUNT],
        timeout=120_000,
    )
    assert finished.count() == COUNT, finished.count()
    assert luma(gallery, "poster").count() == COUNT
    assert gallery.locator("video").count() == 0, "a card holds a player before it is played"
    _scroll_through(page, gallery)
    loaded_posters = gallery.locator('img[data-luma="poster"]').evaluate_all(
        "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert loaded_posters > 0, "no poster picture loaded"
    assert media.urls == [], f"the page asked for video bytes on load: {media.urls[:5]}"
    luma(gallery, "card").first.scroll_into_view_if_needed()
    shots.take(page, "loaded")

    state = _play(page, finished.nth(150))
    played = {u.split("#", 1)[0] for u in media.urls}
    assert played == {state["src"].split("#", 1)[0]}, (
        f"played {state['src']}, but the page asked for {sorted(played)}"
    )
    assert gallery.locator("video").count() == 1
    shots.take(page, "one-playing")
    print(
        f"300-video gallery in JupyterLab: {time.monotonic() - started:.1f} s, "
        f"{loaded_posters} posters loaded, media requests after one play: {len(media.urls)}"
    )


@pytest.fixture
def big_class(make_sandbox: Any, tmp_path: Path) -> Iterator[Classroom]:
    sandbox = make_sandbox(speed=500, credits=None)
    room = Classroom(sandbox, tmp_path, students=3)
    yield room
    room.close()


def _fill_the_gallery(room: Classroom) -> None:
    """300 finished extends by three students, through the relay."""
    first = room.extend(0, PROMPT)
    assert first.status_code == 200, first.text
    student = room.client(0)
    student.job(first.json()["task_id"]).wait(timeout=120)
    ids = []
    for index in range(COUNT - 1):
        answer = room.extend(index % 3, PROMPT)
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["task_id"])
    deadline = time.monotonic() + 180
    while True:
        statuses = {}
        for student_index in range(3):
            mine = ids[student_index::3]
            for task in room.client(student_index).fetch_many(mine):
                statuses[task.task_id] = task.status
        if all(status == "finished" for status in statuses.values()):
            return
        assert time.monotonic() < deadline, f"not all finished: {statuses}"
        time.sleep(1.0)


def test_the_teachers_dashboard_of_300_videos_fetches_only_the_one_played(
    page: Any, page_log: Any, big_class: Classroom
) -> None:
    started = time.monotonic()
    _fill_the_gallery(big_class)
    token = issue_teacher_token(big_class.relay.store)
    shots = Shots("teacher-300")
    page.goto(big_class.url + "/teacher")
    page.locator('input[name="token"]').fill(token)
    page.get_by_role("button", name="Log in").click()

    # A fresh load of the dashboard, counted from its first request.
    media = MediaRequests()
    media.attach(page)
    page.goto(big_class.url + "/teacher")
    gallery = page.locator('[data-section="gallery"]')
    cards = luma(gallery, "card")
    page.wait_for_function(
        "([g, n]) => g.querySelectorAll('[data-luma=\"card\"]').length >= n",
        arg=[gallery.element_handle(), COUNT],
        timeout=60_000,
    )
    assert cards.count() == COUNT, cards.count()
    assert gallery.locator("video").count() == 0, "a card holds a player before it is played"
    _scroll_through(page, gallery)
    # Two live refreshes of the page (every 2 s) later, still nothing asked.
    page.wait_for_timeout(4_500)
    assert media.urls == [], f"the dashboard asked for video bytes on load: {media.urls[:5]}"
    cards.first.scroll_into_view_if_needed()
    shots.take(page, "loaded")

    state = _play(page, cards.nth(150))
    asked = set(media.urls)
    played = state["src"].split("#", 1)[0]
    # The play link redirects to the video: both name the same task.
    task_id = played.rsplit("/", 1)[-1].removesuffix(".mp4")
    assert all(task_id in url for url in asked), f"played {played}, asked for {sorted(asked)}"
    assert gallery.locator("video").count() == 1
    shots.take(page, "one-playing")
    print(
        f"300-video dashboard: {time.monotonic() - started:.1f} s, "
        f"media requests after one play: {len(media.urls)}"
    )
