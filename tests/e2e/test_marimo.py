"""The same widgets in marimo: ``notebooks/06-marimo.py`` served by ``marimo run``, headless.

marimo runs the notebook's cells for the browser's session (this is what executes
``06-marimo.py`` in the default test run: nbval reads only ``.ipynb``). In Chromium: the form
renders inside marimo's shadow root, the parent is picked by clicking its thumbnail, a prompt is
typed, Submit; the card's bar moves while a reactive cell follows what is typed; the video loads,
outlasts its parent, plays and seeks; the result also lands in the notebook's gallery as a
poster. Screenshots: ``artifacts/e2e/marimo-*.png``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from .driver import (
    Shots,
    check_the_view_reads_well,
    extend_through_the_form,
    find_form,
    luma,
)
from .harness import ServerProcess

pytestmark = pytest.mark.e2e


def test_the_form_and_gallery_in_marimo(
    page: Any, page_log: Any, marimo_app: ServerProcess
) -> None:
    started = time.monotonic()
    shots = Shots("marimo")
    page.goto(marimo_app.url)
    form = find_form(page)
    # marimo puts each widget in a shadow root; the hooks are found through it.
    assert page.locator("marimo-anywidget").count() >= 1 or form.count() == 1
    check_the_view_reads_well(form)

    def the_notebook_reacts(card: Any) -> None:
        # mo.ui.anywidget: the cell reading form.value ran again with the typed prompt.
        page.get_by_text(re.compile(r"You are about to extend with \d+")).first.wait_for(
            timeout=30_000
        )
        assert luma(card, "video").count() == 0, (
            "the job finished before the page was checked; lower LUMA_NB_E2E_SANDBOX_SPEED"
        )

    result = extend_through_the_form(page, form, shots, page_log, meanwhile=the_notebook_reacts)
    assert result["route"] == "direct", result

    # The result is in the gallery below too, shown by its poster (no video loaded for it).
    gallery = page.locator('[data-luma="gallery"]').first
    gallery.scroll_into_view_if_needed()
    luma(gallery, "poster").first.wait_for(timeout=60_000)
    shots.take(page, "gallery")
    problems = page_log.ours()
    assert not problems, page_log.report()
    print(
        f"marimo: {time.monotonic() - started:.1f} s, video {result['duration']:.2f} s "
        f"(parent {result['parent_duration']:.2f} s), bar values {result['progress'].bar_values}"
    )
