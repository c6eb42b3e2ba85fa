"""Run the notebooks of ``notebooks/`` headless, as nbval and nbconvert do (shared by the tests).

Also a tool: ``python -m tests._notebooks`` re-executes every notebook in place in demo mode
(offline sandbox) and saves it with its outputs, which is how the committed outputs are made.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: Environment variables that would make a notebook leave demo mode or the test's folders.
SERVICE_VARS = ("APIFRAME_API_KEY", "APIFRAME_BASE_URL", "APIFRAME_WEBHOOK_SECRET")
#: Sandbox speed in tests: a job takes 0.3-1.5 simulated-then-scaled seconds.
TEST_SPEED = "200"


def notebook_paths(folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered notebooks (``01-...ipynb``), in order."""
    return sorted(folder.glob("[0-9][0-9]-*.ipynb"))


def code_notebook(cells: Iterable[str]) -> Any:
    """A new notebook of these code cells, for the ``python3`` kernel."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def demo_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for demo-mode kernels: no key, fast sandbox, journal under ``home``."""
    env = {
        k: v for k, v in (base if base is not None else os.environ).items() if k not in SERVICE_VARS
    }
    env.update(
        LUMA_NB_HOME=str(home),
        LUMA_NB_SANDBOX_SPEED=TEST_SPEED,
        # Videos by URL, as on a laptop; Binder's remote browser is covered by media tests.
        LUMA_NB_REMOTE_BROWSER="0",
        # No copies of the demo videos beside the repository's notebooks.
        LUMA_NB_KEEP_VIDEOS="0",
    )
    return env


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` replaced by ``env`` (kernels inherit it), restored afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(
    path: Path, *, cwd: Path | None = None, timeout: int = 120, kernel_name: str = "python3"
) -> Any:
    """Execute the notebook at ``path`` on a fresh kernel (cwd: its folder); the executed nb.

    Raises ``nbclient.exceptions.CellExecutionError`` when a cell fails.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    client.execute()
    return nb


def output_text(nb: Any) -> str:
    """Every output of ``nb`` as text (streams, plain text, HTML, errors)."""
    parts: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                parts.append(out.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                parts.extend(str(v) for v in out.get("data", {}).values())
            elif kind == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
                parts.extend(out.get("traceback", []))
    return "\n".join(parts)


def copy_notebooks(target: Path, names: Iterable[Path] | None = None) -> list[Path]:
    """Copy the notebooks into ``target``; the copies' paths."""
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, target / p.name)) for p in (names or notebook_paths())]


def _clean_for_commit(nb: Any) -> None:
    """Drop what only this run knows: saved widget state (stale under ipykernel 7), timings."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def main(argv: list[str] | None = None) -> int:
    """Re-execute the notebooks in place (demo mode) and save them with their outputs."""
    import nbformat

    parser = argparse.ArgumentParser(prog="python -m tests._notebooks", description=main.__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all)")
    parser.add_argument("--out", type=Path, help="save the executed copies here instead")
    parser.add_argument(
        "--env-as-is", action="store_true", help="keep this environment (default: demo mode)"
    )
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or notebook_paths()
    with tempfile.TemporaryDirectory(prefix="luma-nb-home-") as home:
        env = dict(os.environ) if args.env_as_is else demo_env(Path(home))
        with environment(env):
            for path in paths:
                started = time.monotonic()
                nb = execute(path)
                if args.out is None:
                    _clean_for_commit(nb)
                target = (args.out / path.name) if args.out is not None else path
                target.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, target)
                took = time.monotonic() - started
                print(f"{path.name}: executed in {took:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
