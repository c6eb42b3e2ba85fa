"""``luma-nb demo``, run in this process: what it asks the sandbox, and the files it leaves."""

from __future__ import annotations

import os
import stat

import pytest

import luma_nb.sandbox
from luma_nb import cli
from luma_nb.sandbox import Sandbox


@pytest.fixture
def demo_sandboxes(monkeypatch):
    """The sandboxes ``luma-nb demo`` starts (real ones, kept for the test to look at)."""
    started: list[Sandbox] = []

    class Kept(Sandbox):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            started.append(self)

    monkeypatch.setattr(luma_nb.sandbox, "Sandbox", Kept)
    return started


@pytest.mark.parametrize("ratio", ["16:9", "9:16"])
def test_the_demo_extends_at_its_parents_aspect_ratio(demo_sandboxes, tmp_path, capsys, ratio):
    argv = ["demo", "--speed", "200", "--aspect-ratio", ratio, "--out", str(tmp_path)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    (sandbox,) = demo_sandboxes
    bodies = {r.path: r.body for r in sandbox.requests if r.method == "POST"}
    assert bodies["/luma-imagine"]["aspect_ratio"] == ratio
    assert bodies["/luma-extend"]["aspect_ratio"] == ratio
    (extension,) = [t for t in sandbox.task_ids if sandbox.task(t)["parent_task_id"]]
    view = sandbox.task(extension)
    assert view["aspect_ratio"] == ratio
    assert not [n for n in view["notes"] if "kept as the parent" in n], view["notes"]


@pytest.mark.parametrize(
    ("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)], ids=["umask022", "umask077"]
)
def test_the_demo_videos_have_the_mode_of_any_new_file(tmp_path, capsys, umask, mode):
    before = os.umask(umask)
    try:
        assert cli.main(["demo", "--speed", "200", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(before)
    videos = sorted(tmp_path.glob("*.mp4"))
    assert len(videos) == 2, videos
    assert [stat.S_IMODE(v.stat().st_mode) for v in videos] == [mode, mode]
    assert "Done. Play it:" in capsys.readouterr().out
