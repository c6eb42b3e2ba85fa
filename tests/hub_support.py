"""A real JupyterHub for the tests: its proxy, its REST API, its users' servers and kernels.

``Hub(folder, config_text, env)`` runs ``jupyterhub`` (from PyPI) in ``folder`` with a config
file, behind configurable-http-proxy (from npm, see :func:`proxy_command`), and talks to it with
an admin service token. ``Hub.kernel(user)`` starts a kernel in a user's own server (the server's
environment, the kernel the Hub's spawner gives) and runs code there over the Jupyter server's
websocket, as a browser tab would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from .support import eventually

#: Where ``.ci/run`` installs configurable-http-proxy when it is not on PATH.
NPM_FOLDER = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "luma_nb" / "npm"
ADMIN_TOKEN = "hub-test-admin-" + uuid.uuid4().hex


def proxy_command() -> str:
    """The configurable-http-proxy executable: ``LUMA_NB_CHP``, PATH, or the npm cache folder.

    Raises AssertionError with how to install it (the tests fail, never skip, without it).
    """
    candidates = [
        os.environ.get("LUMA_NB_CHP", ""),
        shutil.which("configurable-http-proxy") or "",
        str(NPM_FOLDER / "node_modules" / ".bin" / "configurable-http-proxy"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(
        "configurable-http-proxy (npm) is missing, and the JupyterHub tests need it: run "
        f"`npm install --prefix {NPM_FOLDER} configurable-http-proxy` (.ci/run does), "
        "or put it on PATH, or set LUMA_NB_CHP to it."
    )


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Any, timeout: float, *, log: Path | None = None) -> Any:
    """``eventually(check)`` for a process still starting; a failure shows ``log``'s tail."""
    try:
        return eventually(
            check,
            timeout=timeout,
            what=what,
            every=0.2,
            ignoring=(requests.RequestException, OSError),
        )
    except AssertionError as error:
        tail = log.read_text("utf-8", "replace")[-4000:] if log and log.exists() else ""
        raise AssertionError(f"{error}\n{tail}") from None


class Hub:
    """A started JupyterHub; ``url`` is its proxy's public URL, ``api`` its REST API there."""

    def __init__(self, folder: Path, config_text: str, env: dict[str, str], port: int) -> None:
        self.folder = folder
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / "jupyterhub.log"
        if shutil.which("jupyterhub", path=env.get("PATH")) is None:
            raise AssertionError(
                "jupyterhub (PyPI) is missing, and the JupyterHub tests need it: "
                "pip install -e '.[test]' (or '.[hub]')"
            )
        (folder / "jupyterhub_config.py").write_text(config_text, "utf-8")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {ADMIN_TOKEN}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["jupyterhub", "-f", "jupyterhub_config.py"],
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for("JupyterHub", self._up, 120, log=self.log)
        except BaseException:
            self.stop()
            raise

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"jupyterhub exited with {self.process.returncode}:\n"
                + self.log.read_text("utf-8", "replace")[-4000:]
            )
        return self.session.get(self.url + "/hub/api/", timeout=5).status_code == 200

    def api(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)):
        """A Hub API request as the admin service; asserts the status, returns the JSON."""
        answer = self.session.request(method, self.url + "/hub/api" + path, json=body, timeout=30)
        assert answer.status_code in ok, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def start_server(self, user: str) -> None:
        """Start a user's server (asynchronously; see :meth:`wait_server`)."""
        self.api("POST", f"/users/{user}/server", ok=(201, 202))

    def wait_server(self, user: str, timeout: float = 180) -> None:
        """Wait until a user's server is up and answers through the proxy."""

        def ready() -> bool:
            model = self.api("GET", f"/users/{user}")
            if model.get("pending") or not model.get("server"):
                return False
            answer = self.session.get(f"{self.url}/user/{user}/api/status", timeout=10)
            return answer.status_code == 200

        wait_for(f"{user}'s server", ready, timeout, log=self.log)

    def user_token(self, user: str, note: str) -> tuple[str, str]:
        """A new API token of ``user`` (its value and its id)."""
        made = self.api("POST", f"/users/{user}/tokens", {"note": note, "expires_in": 3600})
        return str(made["token"]), str(made["id"])

    def kernel(self, user: str) -> Kernel:
        """A new python3 kernel in ``user``'s running server."""
        base = f"{self.url}/user/{user}/api/kernels"
        answer = self.session.post(base, json={"name": "python3"}, timeout=60)
        assert answer.status_code == 201, answer.text
        return Kernel(self, user, str(answer.json()["id"]))

    def stop(self) -> None:
        """Stop the Hub (it stops its services, proxy and servers), then anything left."""
        self.session.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(60)
        # Whatever the Hub started in its own process group and left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


class Kernel:
    """A kernel in a user's server, driven over the server's websocket (as JupyterLab does)."""

    def __init__(self, hub: Hub, user: str, kernel_id: str) -> None:
        self.hub = hub
        self.user = user
        self.id = kernel_id
        self.session = uuid.uuid4().hex

    def shutdown(self) -> None:
        """Shut the kernel down (so its server stops quickly later)."""
        url = f"{self.hub.url}/user/{self.user}/api/kernels/{self.id}"
        answer = self.hub.session.delete(url, timeout=60)
        assert answer.status_code == 204, answer.text

    def run(self, code: str, timeout: float = 120) -> str:
        """Run ``code``; its stdout and results as text. Raises AssertionError on an error."""
        return asyncio.run(self._run(code, timeout))

    async def _run(self, code: str, timeout: float) -> str:
        import tornado.httpclient
        import tornado.websocket

        url = self.hub.url.replace("http://", "ws://", 1)
        url += f"/user/{self.user}/api/kernels/{self.id}/channels?session_id={self.session}"
        request = tornado.httpclient.HTTPRequest(
            url,
            headers={"Authorization": f"token {ADMIN_TOKEN}"},
            connect_timeout=30,
            request_timeout=timeout,
        )
        socket_ = await tornado.websocket.websocket_connect(request)
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "test",
                "session": self.session,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        await socket_.write_message(json.dumps(message))
        out: list[str] = []
        error: str | None = None
        idle = replied = False
        deadline = time.monotonic() + timeout
        try:
            while not (idle and replied):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the cell did not finish in {timeout} s: {code[:200]}")
                raw = await asyncio.wait_for(socket_.read_message(), left)
                if raw is None:
                    raise AssertionError("the kernel's websocket closed")
                if isinstance(raw, bytes):
                    continue  # a message with binary buffers (widget state): not ours to read
                reply = json.loads(raw)
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = reply.get("msg_type"), reply.get("content", {})
                if kind == "stream":
                    out.append(content.get("text", ""))
                elif kind in ("execute_result", "display_data"):
                    out.append(content.get("data", {}).get("text/plain", "") + "\n")
                elif kind == "error":
                    error = f"{content.get('ename')}: {content.get('evalue')}\n" + "\n".join(
                        content.get("traceback", [])
                    )
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                elif kind == "execute_reply":
                    replied = True
        finally:
            socket_.close()
            # Wait for the closing handshake, so no socket outlives this call's event loop.
            try:
                while await asyncio.wait_for(socket_.read_message(), 10) is not None:
                    pass
            except (asyncio.TimeoutError, OSError):
                pass
        text = "".join(out)
        if error is not None:
            raise AssertionError(f"the cell failed in {self.user}'s kernel:\n{error}\n{text}")
        return text
