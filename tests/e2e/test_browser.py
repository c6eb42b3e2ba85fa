"""End to end in headless Chromium: a user extends a video from the notebooks.

JupyterLab (``01-quickstart``): run all cells, pick the parent by clicking its thumbnail, type a
prompt, Submit, run another cell while the job runs, watch the card's bar move, then check that
the video loads, outlasts its parent, plays and seeks (HTTP Range). Voila (``04-classroom``):
the same form with no code on the page.
Screenshots go to ``artifacts/e2e/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .driver import (
    Shots,
    another_cell_runs,
    card_ids,
    check_the_view_reads_well,
    extend_through_the_form,
    find_form,
    luma,
    new_card,
    open_in_lab,
    pick_parent,
    run_all_cells,
    scroll_to_top,
    tidy_lab,
)
from .harness import ServerProcess, require_notebook

pytestmark = pytest.mark.e2e

QUICKSTART = "01-quickstart.ipynb"
CLASSROOM = "04-classroom.ipynb"


def test_quickstart_in_jupyterlab(
    page: Any, page_log: Any, lab: ServerProcess, notebook_root: Path
) -> None:
    """01-quickstart in JupyterLab: picker, form, live progress, a free kernel, a playing video."""
    require_notebook(notebook_root, QUICKSTART)
    started = time.monotonic()
    shots = Shots("lab-quickstart")
    open_in_lab(page, lab.url, QUICKSTART)
    tidy_lab(page)
    run_all_cells(page)
    form = find_form(page)
    check_the_view_reads_well(form)

    result = extend_through_the_form(page, form, shots, page_log, meanwhile=another_cell_runs(page))
    assert result["route"] == "direct", result
    check_the_view_reads_well(form)
    # The README's first picture: the whole form, its picker, and the finished job's card.
    page.set_viewport_size({"width": 1280, "height": 1540})
    scroll_to_top(form)
    shots.take(page, "form-finished")

    # A second click that comes right after a submit (Python ignores it for a second, so a
    # double click submits once) leaves Submit usable, and each click makes one job at most.
    before = card_ids(form)
    luma(form, "submit").first.click()
    new_card(form, before)
    enabled = form.locator('[data-luma="submit"]:enabled').first
    enabled.wait_for(timeout=20_000)
    luma(form, "submit").first.click()
    enabled.wait_for(timeout=10_000)
    assert len(card_ids(form) - before) in (1, 2), card_ids(form) - before
    print(f"quickstart in JupyterLab: {time.monotonic() - started:.1f} s, {_summary(result)}")


def test_classroom_in_voila(
    page: Any, page_log: Any, voila: ServerProcess, notebook_root: Path
) -> None:
    """04-classroom in Voila: no code on the page, the form works, the video plays."""
    require_notebook(notebook_root, CLASSROOM)
    started = time.monotonic()
    shots = Shots("voila-classroom")
    page.goto(f"{voila.url}voila/render/{CLASSROOM}")
    form = find_form(page)
    # Markdown renders inside .jp-InputArea too, so look for code editors and code text.
    code = page.locator(".jp-CodeCell .jp-InputArea, .cm-editor, .CodeMirror")
    visible = [i for i in range(code.count()) if code.nth(i).is_visible()]
    assert not visible, f"Voila shows {len(visible)} code cells"
    body = page.inner_text("body")
    assert "import luma_nb" not in body and "extend_form(" not in body, "Voila shows code"
    check_the_view_reads_well(form)

    def the_kernel_answers(card: Any) -> None:
        # No cells to run here: the kernel proves it is free by answering the picker while
        # the job runs (the chosen parent is set kernel-side).
        pick_parent(form, index=2)
        assert luma(card, "video").count() == 0, (
            "the job finished before the kernel was asked something else; "
            "lower LUMA_NB_E2E_SANDBOX_SPEED"
        )

    result = extend_through_the_form(page, form, shots, page_log, meanwhile=the_kernel_answers)
    print(f"classroom in Voila: {time.monotonic() - started:.1f} s, {_summary(result)}")


def _summary(result: dict[str, Any]) -> str:
    progress = result["progress"]
    return (
        f"video {result['duration']:.2f} s (parent {result['parent_duration']:.2f} s), "
        f"readyState {result['readyState']}, seeked to {result['seek']['currentTime']:.2f} s, "
        f"bar values {progress.bar_values}"
    )
