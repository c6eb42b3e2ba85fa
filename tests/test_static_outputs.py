"""The committed notebooks read well where no widget renders: nbconvert HTML, GitHub, VS Code.

- ``jupyter nbconvert --to html`` of every committed notebook puts each widget output's
  ``text/html`` fallback where the live widget was (the notebooks save no widget state, so
  nbconvert must not pick the widget view), and no "needs a front-end" placeholder anywhere.
- Every widget output carries a useful ``text/plain`` too (VS Code, terminals, nbval).
- ``metadata.widgets`` is absent (stripped when outputs are committed) or valid, with a
  ``state`` for every model a widget view names: GitHub's renderer refuses a notebook whose
  widget metadata has no ``state``.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ._notebooks import NOTEBOOKS, _clean_for_commit, notebook_paths

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
PLACEHOLDERS = ("needs a front-end", "Loading widget", "IPython.core.display.Video object")


def _widget_outputs(nb: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    found = []
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if VIEW in out.get("data", {}):
                found.append((index, out["data"]))
    return found


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _words(markup: str) -> str:
    """The text of some HTML, tags dropped, entities read, spaces collapsed (nbconvert
    re-serialises the markup it includes, so the text is what to compare)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", markup, flags=re.S | re.I)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every committed notebook as nbconvert HTML (one nbconvert run for all)."""
    out = tmp_path_factory.mktemp("html")
    paths = notebook_paths()
    assert paths, f"no notebooks in {NOTEBOOKS}"
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(out)]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {p.name: (out / p.with_suffix(".html").name).read_text("utf-8") for p in paths}


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_nbconvert_shows_the_fallbacks_where_the_widgets_were(path: Path, rendered) -> None:
    page = rendered[path.name]
    words = _words(page)
    nb = json.loads(path.read_text("utf-8"))
    for placeholder in PLACEHOLDERS:
        assert placeholder not in page, f"{path.name}: {placeholder!r} in the HTML"
    # No saved state: nbconvert must render the fallbacks, not empty widget views.
    assert f'<script type="{VIEW}">' not in page, f"{path.name}: a widget view without state"
    at = 0
    for index, data in _widget_outputs(nb):
        html = _text(data.get("text/html", ""))
        plain = _text(data.get("text/plain", ""))
        assert html.strip(), f"{path.name} cell {index}: a widget output without text/html"
        assert len(plain) > 12 and not any(p in plain for p in PLACEHOLDERS), (
            f"{path.name} cell {index}: text/plain {plain!r} is no fallback"
        )
        text = _words(html)
        assert text, f"{path.name} cell {index}: its text/html has no text"
        found = words.find(text, at)
        assert found >= 0, f"{path.name} cell {index}: its text/html is not in the page, in order"
        at = found + len(text)


def test_the_fallbacks_say_something_useful(rendered) -> None:
    """What stands in for the form and the video, in the quickstart's HTML."""
    page = rendered["01-quickstart.ipynb"]
    assert "Extend a video" in page and "client.extend(" in page  # the form's card
    # The player says how its video came (its title), shows its poster, and says what to do.
    assert 'class="luma-nb-video luma-nb-route"' in page
    assert 'poster="data:image/jpeg;base64,' in page and "Run the cell to play." in page


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_widget_metadata_is_absent_or_valid(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    widgets = nb.metadata.get("widgets")
    if widgets is None:
        return
    state = widgets.get(STATE, {})
    assert isinstance(state.get("state"), dict), f"{path.name}: metadata.widgets has no state"
    assert {"version_major", "version_minor"} <= set(state), f"{path.name}: no state version"
    named = {data[VIEW]["model_id"] for _, data in _widget_outputs(nb)}
    missing = named - set(state["state"])
    assert not missing, f"{path.name}: widget views without saved state: {sorted(missing)}"


def test_committing_outputs_strips_the_widget_state() -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {STATE: {"state": {}, "version_major": 2, "version_minor": 0}}
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.cells.append(cell)
    _clean_for_commit(nb)
    assert "widgets" not in nb.metadata and "execution" not in nb.cells[0].metadata
