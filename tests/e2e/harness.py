"""Pieces of the browser test: real servers in their own process groups, Chromium, diagnostics.

Nothing here skips: a missing browser or Playwright is a failure with the command that fixes it,
so CI can never pass by leaving the browser test out.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "artifacts" / "e2e"

CHROMIUM = os.environ.get("LUMA_NB_CHROMIUM", "/usr/bin/chromium")
#: The flags JUPYTER_NOTES prescribes for Debian's Chromium in a container.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
INSTALL_HINT = (
    "The e2e browser test needs Debian's Chromium and Playwright for Python:\n"
    "    apt-get update && apt-get install -y chromium      # /usr/bin/chromium\n"
    "    python -m pip install -e '.[sandbox,test]'          # brings playwright\n"
    "(do not run `playwright install`; the test drives the system Chromium, "
    "or the one named by LUMA_NB_CHROMIUM)."
)

#: Simulated seconds per real second for the notebooks' demo sandbox. A job then takes 5-25 s:
#: long enough to see the bar mid-way and to run another cell meanwhile, short enough for CI.
SANDBOX_SPEED = os.environ.get("LUMA_NB_E2E_SANDBOX_SPEED", "12")


def require_browser() -> None:
    """Fail (never skip) when Playwright or Chromium is missing, with the install commands."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        pytest.fail(f"Playwright is not importable ({error}).\n{INSTALL_HINT}", pytrace=False)
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"No Chromium at {CHROMIUM}.\n{INSTALL_HINT}", pytrace=False)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    """The environment of a notebook server: demo mode, fast sandbox, no user Jupyter state."""
    env = dict(os.environ)
    for name in (
        "APIFRAME_API_KEY",
        "APIFRAME_BASE_URL",
        "JUPYTER_TOKEN",
        "JUPYTER_PORT",
        "JUPYTERHUB_SERVICE_PREFIX",
        # The pytest run turns keeping off for the repository's notebooks; these are copies,
        # and the kernels keep demo videos beside them as they would for a user.
        "LUMA_NB_KEEP_VIDEOS",
    ):
        env.pop(name, None)
    dirs = {
        "LUMA_NB_HOME": home / "luma_nb_home",
        "JUPYTER_CONFIG_DIR": home / "jupyter_config",
        "JUPYTER_DATA_DIR": home / "jupyter_data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter_runtime",
        "IPYTHONDIR": home / "ipython",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["LUMA_NB_SANDBOX_SPEED"] = SANDBOX_SPEED
    # The browser runs on this machine: videos play from the sandbox's URL (HTTP Range), not
    # embedded as data URLs.
    env["LUMA_NB_REMOTE_BROWSER"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    # The kernel must import this checkout's luma_nb and the same interpreter's packages.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def copy_notebooks(dest: Path) -> Path:
    """A scratch copy of ``notebooks/`` (outputs, media and all) that the servers may change."""
    if NOTEBOOKS.is_dir():
        shutil.copytree(NOTEBOOKS, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    else:
        dest.mkdir(parents=True)
    return dest


def require_notebook(root: Path, name: str) -> Path:
    """The copied notebook ``name``; a loud failure when the repository does not have it."""
    path = root / name
    if not path.is_file():
        pytest.fail(
            f"notebooks/{name} does not exist in {REPO}; the browser test drives the shipped "
            "notebooks and cannot pass without them.",
            pytrace=False,
        )
    return path


@dataclass
class ServerProcess:
    """A notebook server started in its own process group, logging to a file."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: The server's base URL path (``/user/ada/`` for a Hub-like one).
    base_path: str = "/"
    #: The token the server wants ("" for none).
    token: str = ""

    @property
    def url(self) -> str:
        """The server's base URL, ending with a slash."""
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` (no path)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str, timeout: float = 90.0) -> ServerProcess:
        """Start the server and wait until ``ready_path`` answers below 400.

        :raises AssertionError: when it exits or does not answer in time (with its log tail).
        """
        args = [arg.replace("{port}", str(self.port)) for arg in self.args]
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            try:
                if requests.get(self.url + ready_path, timeout=5).status_code < 400:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} did not answer {self.url + ready_path} within {timeout:.0f} s:\n"
                    + self.log_tail()
                )
            time.sleep(0.25)

    def stop(self) -> None:
        """Terminate the server's process group, then kill what lingers, kernels included.

        Kernels run in process groups of their own: SIGTERM lets the server shut them down;
        any still alive afterwards are killed by pid.
        """
        process = self.process
        if process is None:
            return
        kernels = _children(process.pid)
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if process.poll() is not None and not _group_alive(process.pid):
                break
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        for pid in kernels:
            with contextlib.suppress(OSError):
                # Only if that pid is still a kernel (pids are reused).
                if b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            with self.log_path.open("rb") as handle:
                tail = deque(io.TextIOWrapper(handle, errors="replace"), maxlen=lines)
        except OSError as error:
            return f"(no log: {error})"
        return "".join(tail) or "(empty log)"


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies (Linux), so a killed
    pytest (CI's ``timeout``) does not leave servers behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.parent.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def lab_server(root: Path, home: Path) -> ServerProcess:
    """JupyterLab over ``root``: no token, no password, app exposed for the command API.

    The same server also serves the Notebook 7 interface (``/tree``, ``/notebooks/...``).
    """
    args = _lab_args(root, home)
    return ServerProcess("JupyterLab", args, server_env(home), root, home / "jupyterlab.log")


def hub_lab_server(root: Path, home: Path, base_path: str, token: str) -> ServerProcess:
    """JupyterLab as a JupyterHub single-user server runs it: under ``base_path``, with a
    token, ``JUPYTERHUB_SERVICE_PREFIX`` set and jupyter-server-proxy loaded.

    The browser is treated as remote (as on a Hub): nothing tells luma_nb otherwise, so demo
    videos must find their way through the server's proxy.
    """
    args = _lab_args(root, home, token=token)
    args.append(f"--ServerApp.base_url={base_path}")
    env = server_env(home)
    env.pop("LUMA_NB_REMOTE_BROWSER", None)
    env["JUPYTERHUB_SERVICE_PREFIX"] = base_path
    return ServerProcess(
        "JupyterLab (Hub-like)",
        args,
        env,
        root,
        home / "jupyterlab-hub.log",
        base_path=base_path,
        token=token,
    )


def _lab_args(root: Path, home: Path, *, token: str = "") -> list[str]:
    settings = home / "lab_settings"
    plugin = settings / "@jupyterlab" / "apputils-extension"
    notification = plugin / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    # No news or update toasts over the screenshots.
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Draw every cell: with virtual scrolling, outputs scrolled into view paint late (blank shots).
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        "--port={port}",
        "--ServerApp.port_retries=0",
        "--allow-root",
        f"--IdentityProvider.token={token}",
        "--ServerApp.password=",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'lab_workspaces'}",
    ]
    return args


def voila_server(root: Path, home: Path) -> ServerProcess:
    """Voila over ``root``, allowed to serve MP4s from its file route."""
    args = [
        sys.executable,
        "-m",
        "voila",
        "--no-browser",
        "--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        "--VoilaConfiguration.file_allowlist=['.*\\.(png|jpg|gif|svg|mp4)']",
        str(root),
    ]
    return ServerProcess("Voila", args, server_env(home), root, home / "voila.log")


def marimo_server(root: Path, home: Path, notebook: str) -> ServerProcess:
    """``marimo run`` of ``root/notebook``, headless, no token: an app that runs its cells
    for each browser session (the same demo-mode environment as the Jupyter servers).

    marimo keeps its config and state under ``XDG_CONFIG_HOME``/``XDG_STATE_HOME``: here, in
    ``home``.
    """
    env = server_env(home)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        path = home / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    args = [
        sys.executable,
        "-m",
        "marimo",
        "run",
        str(root / notebook),
        "--headless",
        "--host=127.0.0.1",
        "--port={port}",
        "--no-token",
        "--no-sandbox",
    ]
    return ServerProcess("marimo", args, env, root, home / "marimo.log")


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium through Playwright, with the flags from JUPYTER_NOTES."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
    )


def _where(error: Any) -> str:
    """An uncaught page error with the place it was thrown (its stack's first frame)."""
    frames = [line.strip() for line in str(getattr(error, "stack", "") or "").splitlines()]
    first = next((f for f in frames if f.startswith("at ")), "")
    return f"{error} ({first})" if first else str(error)


@dataclass
class PageLog:
    """What the page said: console messages, uncaught errors and media responses."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    media: list[tuple[int, str, str]] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        """Listen to ``page``."""
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda error: self.errors.append(_where(error)))
        page.on("response", self._on_response)

    def _on_response(self, response: Any) -> None:
        if response.url.split("?", 1)[0].endswith(".mp4"):
            rng = response.request.headers.get("range", "")
            self.media.append((response.status, rng, response.url))

    def ours(self) -> list[str]:
        """The uncaught errors thrown from this project's own code: the widgets' ES modules
        (anywidget imports them from ``blob:`` URLs) or any script named after luma. Errors of
        the front-end itself (Notebook 7's settings loader throws one on start) are not."""
        return [e for e in self.errors if "blob:" in e or "luma" in e.lower()]

    def report(self, limit: int = 80) -> str:
        """A readable dump for a failure report."""
        parts = ["page errors:", *(self.errors or ["(none)"]), "console (last lines):"]
        parts += self.console[-limit:] or ["(none)"]
        parts += ["media responses:", *(f"{s} range={r!r} {u}" for s, r, u in self.media)]
        return "\n".join(parts)
