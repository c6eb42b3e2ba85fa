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
- ``<!-- not-run: reason -->`` before a block: skipped (installs, the test command itself...).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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
ALLOWED_NOT_RUN = ("installs", "the test command itself", "rewrites the committed", "slow")
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
    assert len(skipped) <= len(ALLOWED_NOT_RUN)


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


def _check(result: subprocess.CompletedProcess[str], block: Block) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"README {block.id} failed ({result.returncode}):\n{output}"
    assert KEY not in output, f"README {block.id} printed the API key"


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_block_runs(block: Block, workdir: Path, env: dict[str, str]) -> None:
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
        _check(result, block)
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
        _check(result, block)


def _run_server_block(block: Block, workdir: Path, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        ["bash", "-c", "exec " + block.code.strip()],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen = b""
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while b"http://127.0.0.1:" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        assert b"http://127.0.0.1:" in seen, f"README {block.id} printed no URL: {seen!r}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        code = process.wait(30)
    assert code in (0, 130, -signal.SIGINT), f"README {block.id} ended with {code}: {seen!r}"
