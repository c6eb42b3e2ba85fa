"""Every code block of the README runs, as a newcomer would run it.

Blocks run in a scratch folder holding a copy of ``notebooks/``, with this environment's
``luma-nb``, ``python`` and ``jupyter`` first on PATH. The README's examples use the real service
through ``APIFRAME_API_KEY``; here that key is a planted one and ``APIFRAME_BASE_URL`` points at a
sandbox that accepts only it, so each block talks to the API exactly as with a real key, offline.

- ``bash`` blocks: ``bash -euo pipefail -c BLOCK``; must exit 0.
- ``python`` blocks: run in a fresh IPython shell (top-level ``await`` works, as in a notebook);
  must raise nothing.
- ``<!-- runs-until-stopped -->`` before a block: a server; it must print its URL, then is
  stopped with Ctrl-C (SIGINT) and must exit cleanly.
- Each run block must also print or create what the README says it does: ``EXPECT`` holds one
  check per block, keyed by the block's first line, and a block without one fails.
- ``<!-- not-run: reason -->`` before a block: skipped (installs, the test command itself...).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from luma_nb.sandbox import Sandbox

from ._notebooks import ROOT, SERVICE_VARS, copy_notebooks

README = ROOT / "README.md"
KEY = "readme-test-key-7c1e4f"
FENCE = re.compile(
    r"(?:^<!--\s*(?P<marker>[^>]*?)\s*-->\n)?^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
#: Blocks that may be skipped, and why; keep this short.
ALLOWED_NOT_RUN = (
    "installs",
    "the test command itself",
    "rewrites the committed",
    "slow",
    "loaded by tests/test_hub.py",
)
#: At most this many skipped blocks: one per reason above, and a second install (Jupyter).
MAX_NOT_RUN = len(ALLOWED_NOT_RUN) + 1
IPYTHON_RUNNER = """\
import sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
result = shell.run_cell(open(sys.argv[1], encoding="utf-8").read())
sys.exit(0 if result.success else 1)
"""


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    marker: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(m["lang"], m["code"], (m["marker"] or "").strip(), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


BLOCKS = readme_blocks()
RUN = [b for b in BLOCKS if not b.marker.startswith("not-run")]


def test_readme_blocks_are_known_kinds_and_few_are_skipped() -> None:
    assert len(BLOCKS) >= 10
    for block in BLOCKS:
        assert block.lang in ("bash", "python"), f"{block.id}: fence without bash/python"
        assert block.marker in ("", "runs-until-stopped") or block.marker.startswith("not-run: "), (
            f"{block.id}: unknown marker {block.marker!r}"
        )
    skipped = [b for b in BLOCKS if b.marker.startswith("not-run")]
    for block in skipped:
        assert any(reason in block.marker for reason in ALLOWED_NOT_RUN), block
    assert len(skipped) <= MAX_NOT_RUN


def test_quickstart_is_set_up_then_main_job_then_tests() -> None:
    first = [b.code.strip() for b in BLOCKS[:3]]
    assert first == [
        'python -m venv .venv && . .venv/bin/activate && pip install -e ".[sandbox,test]"',
        "luma-nb demo",
        "python -m pytest",
    ]


def test_badges_open_the_notebooks_and_say_the_owner_is_a_placeholder() -> None:
    text = README.read_text(encoding="utf-8")
    lab = "https://mybinder.org/v2/gh/OWNER/luma_nb/HEAD?urlpath=lab/tree/notebooks/01-quickstart.ipynb"
    voila = (
        "https://mybinder.org/v2/gh/OWNER/luma_nb/HEAD?urlpath=voila/render/notebooks/"
        "04-classroom.ipynb"
    )
    assert lab in text and voila in text
    assert "placeholder" in text.split(lab)[0].rsplit("<!--", 1)[-1]
    for name in ("01-quickstart", "04-classroom"):
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file()
    assert "](docs/screenshot.png)" in text
    for link in re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", text):
        assert (ROOT / link).is_file(), link


@pytest.fixture(scope="module")
def keyed_sandbox() -> Sandbox:
    with Sandbox(api_key=KEY, speed=200) as sandbox:
        yield sandbox


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    copy_notebooks(tmp_path / "notebooks")
    return tmp_path


@pytest.fixture
def env(keyed_sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    values.update(
        APIFRAME_API_KEY=KEY,
        APIFRAME_BASE_URL=keyed_sandbox.base_url,
        LUMA_NB_HOME=str(tmp_path / "home"),
        LUMA_NB_SANDBOX_SPEED="200",
        LUMA_NB_REMOTE_BROWSER="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    return values


# -- what each block must print or create ------------------------------------------------------

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MEDIA_URL = rf"http://127\.0\.0\.1:\d+/media/{UUID}\.mp4"
Check = Callable[[str, Path, Sandbox], None]


def _has(output: str, *patterns: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, output, re.MULTILINE), f"no {pattern!r} in:\n{output}"


def _is_mp4(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data[4:8] == b"ftyp", f"{path} is not an MP4"


def _submitted(sandbox: Sandbox, path: str, prompt: str) -> None:
    bodies = [r.body for r in sandbox.requests if r.method == "POST" and r.path == path]
    assert any(isinstance(b, dict) and b.get("prompt") == prompt for b in bodies), (path, prompt)


def _demo(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, "no credits used", "^1/2 imagine ", "^2/2 extend ", "^Done. Play it: ")
    videos = sorted((work / "luma_nb_demo").glob("*.mp4"))
    assert len(videos) == 2, videos
    for video in videos:
        _is_mp4(video)


def _nbconvert(out: str, work: Path, sandbox: Sandbox) -> None:
    notebook = json.loads((work / "executed" / "01-quickstart.ipynb").read_text("utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code)
    outputs = [o for c in code for o in c["outputs"]]
    assert outputs and not [o for o in outputs if o["output_type"] == "error"]


def _client_story(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, "^processing ", rf"^finished {MEDIA_URL}$")
    _submitted(sandbox, "/luma-imagine", "A paper boat drifting down a rainy city street")
    _submitted(sandbox, "/luma-extend", "The boat sails into a sunlit harbour")


def _errors(out: str, work: Path, sandbox: Sandbox) -> None:
    assert out.startswith("fix the input: parent_task_id "), out


def _show(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, rf"^Luma job {UUID}: finished$", rf"^video: {MEDIA_URL}$")
    assert out.splitlines()[-1] == "finished", out


def _save(out: str, work: Path, sandbox: Sandbox) -> None:
    (line,) = out.splitlines()
    assert re.fullmatch(rf"videos/{UUID}\.mp4", line), line
    _is_mp4(work / line)


def _storyboard(out: str, work: Path, sandbox: Sandbox) -> None:
    assert re.fullmatch(rf"{MEDIA_URL}\n\['finished', 'finished'\]", out.strip()), out
    _submitted(sandbox, "/luma-extend", "The balloon lands softly in a snowy meadow at sunset")


def _faults(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, "^injected: HTTP 500 from /account", rf"^{MEDIA_URL}$")


def _tokens(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, "^sheet written to tokens.html", "^30 token\\(s\\) added")
    rows = (work / "tokens.csv").read_text("utf-8").strip().splitlines()
    assert len(rows) in (30, 31), rows  # 30 tokens, perhaps under a header
    assert "Year 9 Art" in (work / "tokens.html").read_text("utf-8")


def _class_status(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, "^class: ", "^credits spent: 0$", "^uncertain submits: 0$")


def _teacher_token(out: str, work: Path, sandbox: Sandbox) -> None:
    token = (work / "teacher-token.txt").read_text("utf-8").strip()
    assert re.fullmatch(r"lnbt_[A-Za-z0-9_-]{32}", token), token
    assert "shown only this once" in out


def _webhook(out: str, work: Path, sandbox: Sandbox) -> None:
    assert out.strip() == "finished", out
    _submitted(sandbox, "/luma-imagine", "A red fox in fresh snow")


def _cli(out: str, work: Path, sandbox: Sandbox) -> None:
    _has(out, "^usage: luma-nb ", rf"^{UUID} finished: {MEDIA_URL}$", rf"^saved to videos/{UUID}")
    _has(out, rf"^{UUID}: finished {MEDIA_URL}$", "^credits: ", "^plan: sandbox$")
    parent = json.loads((work / "parent.json").read_text("utf-8"))
    assert re.fullmatch(UUID, parent["task_id"]) and parent["status"] == "finished"
    (video,) = (work / "videos").glob("*.mp4")
    _is_mp4(video)


#: Per block (by its first line): what it must print or create. Server blocks list the text
#: they must print before they are stopped.
EXPECT: dict[str, Check] = {
    "luma-nb demo": _demo,
    "jupyter nbconvert --to notebook --execute": _nbconvert,
    "import luma_nb\n\nform = luma_nb.extend_form()": lambda out, work, sandbox: _has(
        out, "ExtendForm"
    ),
    "from luma_nb import LumaClient\n\nclient = LumaClient()": _client_story,
    "from luma_nb import InsufficientCreditsError": _errors,
    'job = client.imagine("A hot-air balloon rising over autumn hills")\nluma_nb.show(job)': _show,
    "from luma_nb import media": _save,
    "board = luma_nb.storyboard(": _storyboard,
    "sandbox.faults.add(": _faults,
    "luma-nb class tokens": _tokens,
    "luma-nb class status": _class_status,
    "luma-nb class teacher-token": _teacher_token,
    "from luma_nb.client.webhooks import Receiver": _webhook,
    "import luma_nb\n\ngallery = luma_nb.class_gallery()": lambda out, work, sandbox: _has(
        out, "^No class gallery: ", "LUMA_NB_CLASS_URL and LUMA_NB_CLASS_TOKEN"
    ),
    "luma-nb --help": _cli,
}
SERVER_EXPECT: dict[str, tuple[str, ...]] = {
    "luma-nb sandbox --speed 20 --port 0": ("(speed 20)",),
    "luma-nb sandbox --speed 10 --port 0 --credits unlimited": (
        "Credits: unlimited",
        "Demo parent tasks",
        "Press Ctrl-C to stop.",
    ),
    "luma-nb class serve": ("class relay ", "LUMA_NB_CLASS_URL="),
}


def _expectation(block: Block, table: dict[str, Any]) -> Any:
    found = [value for key, value in table.items() if key in block.code]
    assert len(found) == 1, f"README {block.id}: {len(found)} expectations in tests/test_readme.py"
    return found[0]


def test_every_run_block_has_an_expectation() -> None:
    for block in RUN:
        _expectation(block, SERVER_EXPECT if block.marker == "runs-until-stopped" else EXPECT)


def _check(
    result: subprocess.CompletedProcess[str], block: Block, workdir: Path, sandbox: Sandbox
) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"README {block.id} failed ({result.returncode}):\n{output}"
    assert KEY not in output, f"README {block.id} printed the API key"
    _expectation(block, EXPECT)(output, workdir, sandbox)


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_block_runs(
    block: Block, workdir: Path, env: dict[str, str], keyed_sandbox: Sandbox
) -> None:
    if block.marker == "runs-until-stopped":
        _run_server_block(block, workdir, env)
    elif block.lang == "bash":
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        _check(result, block, workdir, keyed_sandbox)
    else:
        script = workdir / "block.py"
        script.write_text(block.code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-c", IPYTHON_RUNNER, str(script)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        _check(result, block, workdir, keyed_sandbox)


def _run_server_block(block: Block, workdir: Path, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        ["bash", "-c", "exec " + block.code.strip()],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wanted = [b"http://127.0.0.1:"] + [t.encode() for t in _expectation(block, SERVER_EXPECT)]
    seen = b""
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a speed check
        assert process.stdout is not None
        while not all(w in seen for w in wanted) and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        for want in wanted:
            assert want in seen, f"README {block.id} printed no {want!r}: {seen!r}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        code = process.wait(30)
    assert code in (0, 130, -signal.SIGINT), f"README {block.id} ended with {code}: {seen!r}"
