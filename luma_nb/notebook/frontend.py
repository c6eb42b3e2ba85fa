"""Where the browser is, and which route takes it to a video on the kernel's loopback.

A sandbox video's URL (``http://127.0.0.1:PORT/media/<id>.mp4``) plays as it is when the
browser runs on the kernel's machine. Elsewhere the browser needs a route through something it
can reach:

- **jupyter-server-proxy** (Binder, JupyterHub, any Jupyter server that has it installed): the
  server answers ``{base_url}proxy/<port>/<path>`` by forwarding to ``127.0.0.1:<port>``, Range
  requests included, so the player streams and seeks. The route is *detected*: the kernel finds
  its own Jupyter server (the ``jpserver-<pid>.json`` file its parent process wrote, or
  JupyterHub's ``JUPYTERHUB_SERVICE_URL``), asks it once for the first byte of the video through
  the proxy with the server's token (or the Hub's API token), and uses the route only if the
  answer is the sandbox's ``206 Partial Content`` MP4.
- **Colab**: ``google.colab.kernel.proxyPort(port)``, asked through ``google.colab.output``.
  Colab cannot be run outside Google, so this path is a small function over an injectable
  detector (:func:`colab_route`), tested with a stand-in.
- Otherwise no route exists and :mod:`luma_nb.notebook.media` embeds the video, saying so.

Routes are looked up once per video server (origin) and remembered for the kernel's life.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from ..contract.environment import environment
from ..contract.text import esc, is_loopback_url

__all__ = (
    "JupyterServer",
    "Route",
    "browser_route",
    "colab_route",
    "find_server",
    "forget_routes",
    "in_kernel",
    "proxy_route",
    "remote_browser",
)

#: How long the one probe through the Jupyter server may take.
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Route:
    """How the browser gets a video: ``direct``, ``proxy``, ``colab`` or ``embed`` (no route).

    ``prefix`` replaces the video URL's ``scheme://host:port`` (for ``direct``: that origin
    itself; for ``embed``: empty). ``detail`` says in words which way was used and why.
    """

    how: str
    prefix: str
    detail: str

    def url_for(self, url: str) -> str | None:
        """The URL the browser loads for ``url`` (same path and query), None for ``embed``."""
        if self.how == "embed":
            return None
        parts = urlsplit(url)
        rest = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return self.prefix.rstrip("/") + rest

    def caption_html(self) -> str:
        """A one-line note under the player saying which way the video came."""
        return (
            f'<div class="luma-nb-route" data-route="{esc(self.how)}" '
            f'style="color:#666;font-size:85%">{esc(self.detail)}</div>'
        )


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets may render), False in a terminal or script."""
    if "IPython" not in sys.modules:
        return False
    from IPython.core.getipython import get_ipython

    shell = get_ipython()  # type: ignore[no-untyped-call, unused-ignore]
    return shell is not None and getattr(shell, "kernel", None) is not None


def remote_browser(env: Mapping[str, str] | None = None) -> bool:
    """True when the browser probably runs on another machine than the kernel.

    ``LUMA_NB_REMOTE_BROWSER=1`` (or ``0``) decides; unset, it is True on JupyterHub and Binder
    (``JUPYTERHUB_SERVICE_PREFIX``) and in Colab.
    """
    settings = environment(env)
    if settings.remote_browser is not None:
        return settings.remote_browser
    return bool(settings.hub_service_prefix) or "google.colab" in sys.modules


# -- the kernel's Jupyter server -------------------------------------------------------------


@dataclass(frozen=True)
class JupyterServer:
    """The Jupyter server this kernel belongs to, as the kernel reaches it.

    ``url`` is the server's address with its base URL (``http://127.0.0.1:8888/user/a/``),
    ``base_url`` the path a browser uses (``/user/a/``), ``tokens`` what may authenticate the
    kernel's request (tried in order; an empty one means "no token"), ``root_dir`` the folder
    its ``/files/`` route serves ("" when unknown).
    """

    url: str
    base_url: str
    tokens: tuple[str, ...]
    root_dir: str = ""


def _runtime_dirs(env: Mapping[str, str] | None) -> list[Path]:
    found: list[Path] = []
    runtime = environment(env).jupyter_runtime_dir
    if runtime:
        found.append(Path(runtime))
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        found.append(Path(jupyter_runtime_dir()))
    except ImportError:  # pragma: no cover - jupyter_core comes with every kernel
        pass
    return list(dict.fromkeys(found))


def _loopback(url: str) -> str:
    """``url`` with a wildcard host (``0.0.0.0``, ``::``, empty) replaced by ``127.0.0.1``."""
    parts = urlsplit(url)
    if (parts.hostname or "") in ("", "0.0.0.0", "::"):  # noqa: S104 (a wildcard read, not bound)
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme or "http", netloc, parts.path, "", ""))
    return url


def _slashed(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def find_server(
    env: Mapping[str, str] | None = None,
    *,
    runtime_dirs: Iterable[Path] | None = None,
    parent_pid: int | None = None,
) -> JupyterServer | None:
    """The Jupyter server that started this kernel, or None when it cannot be found.

    First the ``jpserver-<pid>.json`` a server writes into its runtime folder, for the pid of
    this process's parent (the server launches its kernels), then ``JPY_PARENT_PID``'s; then
    JupyterHub's ``JUPYTERHUB_SERVICE_URL``. ``JUPYTERHUB_API_TOKEN`` is added to the tokens.
    """
    settings = environment(env)
    dirs = list(runtime_dirs) if runtime_dirs is not None else _runtime_dirs(env)
    hub_token = settings.hub_api_token
    pids = [str(parent_pid if parent_pid is not None else os.getppid())]
    if settings.jpy_parent_pid:
        pids.append(settings.jpy_parent_pid)
    for pid in dict.fromkeys(pids):
        for folder in dirs:
            info = _read_info(folder / f"jpserver-{pid}.json")
            if info is None or not info.get("url") or info.get("sock"):
                continue
            base = _slashed(str(info.get("base_url") or "/"))
            url = _loopback(str(info["url"]))
            if not url.endswith("/"):
                url += "/"
            own = str(info.get("token") or "")  # "" when the server wants no token
            tokens = tuple(dict.fromkeys([own, *([hub_token] if hub_token else [])]))
            root = str(info.get("root_dir") or info.get("notebook_dir") or "")
            return JupyterServer(url, base, tokens, root)
    service = settings.hub_service_url
    prefix = settings.hub_service_prefix
    if service.startswith(("http://", "https://")):
        url = _loopback(service)
        path = urlsplit(url).path
        base = _slashed(prefix or path)
        if not path.strip("/"):
            url = url.rstrip("/") + base
        return JupyterServer(url if url.endswith("/") else url + "/", base, (hub_token,))
    return None


def _read_info(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- routes ----------------------------------------------------------------------------------


def proxy_route(
    video_url: str, server: JupyterServer, *, timeout: float = PROBE_TIMEOUT
) -> Route | str:
    """The jupyter-server-proxy route to ``video_url``, or why there is none (a sentence).

    Asks the server once for the video's first byte at ``{server}proxy/<port>/<path>``; the
    route exists when the answer is ``206`` with an MP4 and a ``Content-Range`` (so seeking will
    work too). Redirects are not followed: a login page is not the video.
    """
    parts = urlsplit(video_url)
    if parts.port is None:
        return "the video's URL names no port"
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    probe = f"{server.url}proxy/{parts.port}{path}"
    last = "no answer"
    with requests.Session() as http:
        http.trust_env = False  # loopback: no HTTP proxy from the environment in between
        for token in server.tokens:
            headers = {"Range": "bytes=0-0"}
            if token:
                headers["Authorization"] = f"token {token}"
            try:
                with http.get(
                    probe, headers=headers, timeout=timeout, allow_redirects=False, stream=True
                ) as answer:
                    kind = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    if (
                        answer.status_code == 206
                        and kind == "video/mp4"
                        and answer.headers.get("Content-Range", "").startswith("bytes 0-0/")
                    ):
                        prefix = f"{server.base_url}proxy/{parts.port}"
                        return Route(
                            "proxy",
                            prefix,
                            f"Streamed through the Jupyter server's proxy ({prefix}/…): "
                            "the browser is not on the kernel's machine.",
                        )
                    last = f"HTTP {answer.status_code}" + (f" ({kind})" if kind else "")
            except requests.RequestException as error:
                last = type(error).__name__
    if last.startswith("HTTP 404"):
        last += "; is jupyter-server-proxy installed in the server's environment?"
    return f"{server.base_url}proxy/{parts.port}/ answered {last}"


#: ``port -> browser URL of that port`` in Colab (``google.colab.kernel.proxyPort``).
ColabDetector = Callable[[int], "str | None"]


def colab_proxy_port(port: int) -> str | None:
    """Colab's URL for a kernel-side port (asks the page: ``google.colab.kernel.proxyPort``).

    None outside Colab. Only reachable inside a Colab kernel, which has ``google.colab``.
    """
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab.output import eval_js  # type: ignore[import-not-found]
    except ImportError:
        return None
    # Bounded: the page answers through the kernel's own channel, which may be busy.
    answer = eval_js(
        f"google.colab.kernel.proxyPort({int(port)}, {{cache: false}})", timeout_sec=PROBE_TIMEOUT
    )
    return answer if isinstance(answer, str) and answer.startswith("https://") else None


def colab_route(video_url: str, detector: ColabDetector | None = None) -> Route | None:
    """Colab's route to ``video_url``: the page's answer for its port, or None (not Colab).

    ``detector`` stands for ``google.colab.kernel.proxyPort`` (default: the real one, which
    answers only in a Colab kernel). The answer comes from the browser itself, so a URL it
    gives is a route the browser has; anything but an https URL counts as none.
    """
    port = urlsplit(video_url).port
    if port is None:
        return None
    try:
        answer = (detector or colab_proxy_port)(port)
    except Exception:  # the page did not answer (no Colab front-end attached)
        return None
    if not isinstance(answer, str) or not answer.startswith("https://"):
        return None
    return Route("colab", answer.rstrip("/"), "Streamed through Colab's port proxy (proxyPort).")


_LOCK = threading.Lock()
_ROUTES: dict[str, Route] = {}


def forget_routes() -> None:
    """Forget the routes found so far (the next video looks again)."""
    with _LOCK:
        _ROUTES.clear()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def browser_route(
    video_url: str,
    *,
    env: Mapping[str, str] | None = None,
    server: Callable[[], JupyterServer | None] | None = None,
    colab: ColabDetector | None = None,
) -> Route:
    """How the browser reaches ``video_url``: looked up once per origin, then remembered.

    Not on the loopback, or the browser on this machine: ``direct``. Otherwise Colab's proxy,
    then jupyter-server-proxy (probed once), else ``embed`` with the reason.
    """
    origin = _origin(video_url)
    if not is_loopback_url(video_url):
        return Route("direct", origin, "")
    if not remote_browser(env):
        return Route(
            "direct",
            origin,
            f"Played from the demo sandbox at {urlsplit(video_url).netloc} "
            "(the browser is on the kernel's machine).",
        )
    with _LOCK:
        known = _ROUTES.get(origin)
    if known is not None:
        return known
    route = _look_up(video_url, env=env, server=server, colab=colab)
    with _LOCK:
        return _ROUTES.setdefault(origin, route)


def _look_up(
    video_url: str,
    *,
    env: Mapping[str, str] | None,
    server: Callable[[], JupyterServer | None] | None,
    colab: ColabDetector | None,
) -> Route:
    found_colab = colab_route(video_url, colab)
    if found_colab is not None:
        return found_colab
    jupyter = (server or (lambda: find_server(env)))()
    if jupyter is None:
        why = "the kernel found no Jupyter server to proxy through"
    else:
        answer = proxy_route(video_url, jupyter)
        if isinstance(answer, Route):
            return answer
        why = answer
    return Route(
        "embed",
        "",
        f"Embedded in the notebook: the browser has no route to the demo sandbox ({why}).",
    )
