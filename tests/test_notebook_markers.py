"""nbval reads a marker only when it is the whole comment (``# NBVAL_IGNORE_OUTPUT``): a
marker with words after it on the same line is silently no marker at all, and the cell's
output is compared after all. Every marker written in the notebooks must be one nbval reads."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import comment_markers, find_comment_markers

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_nbval_marker_is_one_nbval_reads(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for number, cell in enumerate(notebook.cells):
        written = re.findall(r"^\s*#+\s*(NBVAL_\w+.*)$", cell.source, flags=re.M)
        read = list(find_comment_markers(cell.source))
        assert len(read) == len(written), (number, written)
        assert all(text.strip() in comment_markers for text in written), (number, written)


def test_the_markers_are_there() -> None:
    ignored = sum(
        1
        for path in NOTEBOOKS
        for cell in nbformat.read(path, as_version=4).cells
        if dict(find_comment_markers(cell.source)).get("check") is False
    )
    assert ignored >= 4  # the live progress views and the timing-dependent progress lines
