"""Binder: a fresh virtual environment made from ``binder/`` alone runs every notebook.

This does what repo2docker does with the folder, minus Docker: ``pip install -r
binder/requirements.txt`` from the repository root into a new venv, then ``binder/postBuild``;
every server and kernel is started through ``binder/start``. Then:

- every notebook executes top to bottom (``jupyter nbconvert --execute``, demo mode, no key);
- the classroom notebook renders in Voila at the launch link's path (``/voila/render/...``)
  without any code, and Voila's file route serves ``.mp4`` (the allow-list from postBuild).

- nothing in it is older than the security floors of the Jupyter packages (:data:`FLOORS`).

Slow (about 2 minutes: a pip install of JupyterLab, Voila and PyAV), so it runs only when asked:
``LUMA_NB_BINDER_CHECK=1 python -m pytest tests/test_binder.py``. That binder/requirements.txt
and the test extra state those floors is checked in every run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ._notebooks import ROOT, copy_notebooks, demo_env, notebook_paths

# On every test that builds (or uses) the venv.
binder_build = pytest.mark.skipif(
    os.environ.get("LUMA_NB_BINDER_CHECK") != "1",
    reason="builds a venv from binder/ (slow): set LUMA_NB_BINDER_CHECK=1 to run",
)

BINDER = ROOT / "binder"

#: The oldest release of each Jupyter package the project accepts, for published advisories:
#: jupyter-server-proxy 4.1.0 proxied websockets without authentication (GHSA-w3vc-fx9p-wp4v,
#: fixed in 4.1.1); jupyter-server before 2.20.0 has a stored XSS in its nbconvert handlers
#: (CVE-2026-44727).
FLOORS = {"jupyter-server-proxy": "4.1.1", "jupyter-server": "2.20.0"}


def _name(text: str) -> str:
    return canonicalize_name(text)


def _floor_kept(requirement: Requirement, floor: str) -> bool:
    """True when the requirement admits ``floor`` and no release below it."""
    lowest = [
        Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", ">")
    ]
    return requirement.specifier.contains(floor) and any(v >= Version(floor) for v in lowest)


def _floors_of(lines: list[str]) -> dict[str, Requirement]:
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        if _name(requirement.name) in FLOORS:
            found[_name(requirement.name)] = requirement
    return found


def _test_extra() -> list[str]:
    """The requirements of pyproject.toml's ``test`` extra (its quoted strings)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^test = \[\n(.*?)^\]", text, re.M | re.S)
    assert block is not None, "pyproject.toml has no test extra"
    return re.findall(r'^\s*"([^"]+)",', block.group(1), re.M)


def test_binder_requirements_and_the_test_extra_keep_the_security_floors() -> None:
    """Every place the project names a Jupyter package with a floor states the patched one."""
    binder = _floors_of((BINDER / "requirements.txt").read_text().splitlines())
    test_extra = _floors_of(_test_extra())
    for where, found in (("binder/requirements.txt", binder), ("the test extra", test_extra)):
        assert sorted(found) == sorted(FLOORS), f"{where} names {sorted(found)}"
        for name, requirement in found.items():
            assert _floor_kept(requirement, FLOORS[name]), f"{where}: {requirement}"
    # and the checker itself tells the vulnerable ranges apart
    assert not _floor_kept(Requirement("jupyter-server-proxy>=4.1,<5"), "4.1.1")
    assert not _floor_kept(Requirement("jupyter-server"), "2.20.0")


def _run(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output}"
    return output


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with exactly binder/requirements.txt installed and binder/postBuild run."""
    assert sorted(p.name for p in BINDER.iterdir()) == [
        "postBuild",
        "requirements.txt",
        "runtime.txt",
        "start",
    ], "binder/ changed: update this test"
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    path = tmp_path_factory.mktemp("binder") / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    _run([sys.executable, "-m", "venv", str(path)], env=env, cwd=ROOT, timeout=120)
    python = str(path / "bin" / "python")
    # As repo2docker does: from the repository root, so "-e ." is this repository.
    _run(
        [python, "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"],
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    env_post = {**env, "NB_PYTHON_PREFIX": str(path), "PATH": f"{path / 'bin'}:{env['PATH']}"}
    _run(["bash", str(BINDER / "postBuild")], env=env_post, cwd=ROOT, timeout=120)
    return path


def _binder_env(venv: Path, home: Path) -> dict[str, str]:
    env = demo_env(home)
    env.pop("LUMA_NB_REMOTE_BROWSER", None)  # binder/start decides, as on Binder
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["JUPYTER_CONFIG_DIR"] = str(home / "jupyter-config")  # no user config leaks in
    env["JUPYTER_DATA_DIR"] = str(home / "jupyter-data")
    env["JUPYTER_RUNTIME_DIR"] = str(home / "jupyter-runtime")
    return env


@pytest.mark.binder
@binder_build
def test_the_binder_environment_has_no_jupyter_package_below_its_floor(venv: Path) -> None:
    listed = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
        cwd=ROOT,
        timeout=120,
    )
    installed = {_name(d["name"]): d["version"] for d in json.loads(listed.splitlines()[0])}
    for name, floor in FLOORS.items():
        assert name in installed, f"{name} is not in the binder environment"
        assert Version(installed[name]) >= Version(floor), f"{name} {installed[name]} < {floor}"
    print("binder floors:", {name: installed[name] for name in FLOORS})


@pytest.mark.binder
@binder_build
def test_every_notebook_executes_in_the_binder_environment(venv: Path, tmp_path: Path) -> None:
    notebooks = copy_notebooks(tmp_path / "notebooks")
    env = _binder_env(venv, tmp_path / "home")
    out = tmp_path / "executed"
    timings = {}
    for path in notebooks:
        started = time.monotonic()
        _run(
            [
                str(BINDER / "start"),
                "jupyter",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--ExecutePreprocessor.timeout=120",
                "--output-dir",
                str(out),
                str(path),
            ],
            env=env,
            cwd=path.parent,
            timeout=600,
        )
        timings[path.name] = round(time.monotonic() - started, 1)
        executed = json.loads((out / path.name).read_text())
        errors = [
            o
            for c in executed["cells"]
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, f"{path.name}: {errors}"
        if path.name == "01-quickstart.ipynb":
            # binder/start said the browser is remote, and nbconvert is no Jupyter server to
            # proxy through: the sandbox video is embedded, not linked, and the output says why.
            cell = next(c for c in executed["cells"] if "job.watch()" in "".join(c["source"]))
            shown = json.dumps(cell["outputs"])
            assert "data:video/mp4;base64," in shown and "127.0.0.1" not in shown, shown[:500]
            assert "Embedded in the notebook: the browser has no route" in shown, shown[-800:]
    assert sorted(timings) == [p.name for p in notebook_paths()]
    print("executed in the binder venv (s):", timings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(venv: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab (with the Voila server extension, as on Binder) over a copy of notebooks/."""
    root = tmp_path / "repo"
    copy_notebooks(root / "notebooks")
    env = _binder_env(venv, tmp_path / "home")
    port = _free_port()
    log = (tmp_path / "lab.log").open("wb")
    process = subprocess.Popen(
        [
            str(BINDER / "start"),
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/api/status", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (tmp_path / "lab.log").read_text()
            assert time.monotonic() < deadline, "JupyterLab did not start in 60 s"
            time.sleep(0.3)
        yield url, root
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)
        log.close()


@pytest.mark.binder
@binder_build
def test_jupyter_server_proxy_streams_a_sandbox_video(lab: tuple[str, Path], sandbox) -> None:
    """The route remote browsers use on Binder: {base_url}proxy/<port>/..., Range included."""
    url, _ = lab
    port = sandbox.base_url.rstrip("/").rsplit(":", 1)[1].split("/")[0]
    video = f"/media/{sandbox.demo_parents[0].task_id}.mp4"
    whole = requests.get(sandbox.base_url.rstrip("/") + video, timeout=30).content
    part = requests.get(f"{url}/proxy/{port}{video}", headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == whole[10:20], part.status_code


@pytest.mark.binder
@binder_build
def test_classroom_renders_in_voila_without_code_and_mp4s_are_served(lab: tuple[str, Path]) -> None:
    url, root = lab
    page = requests.get(f"{url}/voila/render/notebooks/04-classroom.ipynb", timeout=180)
    assert page.status_code == 200, page.text[-2000:]
    html = page.text
    assert "Make the video go on" in html and "Prompt ideas" in html
    assert "application/vnd.jupyter.widget-view+json" in html  # the form and the gallery
    for code in ("import luma_nb", "extend_form(", "class_gallery", "PARENT_TASK_ID"):
        assert code not in html, f"Voila shows code: {code!r}"
    assert "Traceback" not in html and "Error" not in html.split("</head>", 1)[-1]

    clip = root / "notebooks" / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
    (root / "notebooks" / "notes.txt").write_text("not for Voila")
    served = requests.get(
        f"{url}/voila/files/notebooks/clip.mp4", headers={"Range": "bytes=0-99"}, timeout=30
    )
    assert served.status_code == 206 and len(served.content) == 100
    refused = requests.get(f"{url}/voila/files/notebooks/notes.txt", timeout=30)
    assert refused.status_code == 403
