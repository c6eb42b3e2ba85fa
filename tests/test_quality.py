"""The repository stays lint-clean, formatted and type-checked (configuration in pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_is_clean(command):
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_environment_variables_are_read_in_one_place_and_listed_once():
    """Only ``contract/environment.py`` reads the environment, and the README's table lists
    exactly what it reads."""
    import re

    from luma_nb.contract.environment import VARIABLES

    readers = []
    for path in sorted((ROOT / "luma_nb").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name == "luma_nb/contract/environment.py":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ(\.get|\[)|os\.getenv\(", text):
            readers.append(name)
    assert readers == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M)
    assert sorted(table) == sorted(VARIABLES)
