"""Which way a remote browser gets a sandbox video: Jupyter's proxy, Colab's, or embedded.

The proxy route is checked against a real Jupyter server (jupyter_server with
jupyter-server-proxy, a token and a Hub-like base URL) in front of a real sandbox. Colab cannot
run here: its route is a function over an injected ``proxyPort`` stand-in.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from luma_nb import media
from luma_nb.notebook import frontend
from luma_nb.notebook.frontend import (
    JupyterServer,
    Route,
    browser_route,
    colab_route,
    find_server,
    proxy_route,
)

from .e2e.harness import free_port
from .support import eventually

REMOTE = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}


@pytest.fixture(autouse=True)
def _fresh_routes() -> Iterator[None]:
    frontend.forget_routes()
    yield
    frontend.forget_routes()


def _video_url(sandbox) -> str:
    url = f"{sandbox.base_url.rstrip('/')}/media/{sandbox.demo_parents[0].task_id}.mp4"
    assert requests.get(url, timeout=30).status_code == 200
    return url


def _jupyter(tmp_path: Path, *, token: str, base_url: str, proxy: bool) -> Iterator[Path]:
    runtime = tmp_path / "runtime"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY"))}
    env.update(
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    args = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={free_port()}",
        "--ServerApp.port_retries=0",
        "--allow-root",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={tmp_path}",
    ]
    if not proxy:
        args.append("--ServerApp.jpserver_extensions={'jupyter_server_proxy': False}")
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        info = runtime / f"jpserver-{process.pid}.json"

        def started() -> bool:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            return info.is_file() and bool(info.read_text().strip())

        eventually(started, timeout=90, what="jupyter_server started", every=0.2)
        yield info
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A token-protected Jupyter server at base URL /user/ada/ with jupyter-server-proxy."""
    token = secrets.token_hex(16)
    for info in _jupyter(tmp_path, token=token, base_url="/user/ada/", proxy=True):
        yield info, token


def _server_of(info: Path) -> JupyterServer:
    pid = int(info.stem.split("-")[1])
    found = find_server({}, runtime_dirs=[info.parent], parent_pid=pid)
    assert found is not None, info.read_text()
    return found


def test_the_kernel_finds_its_server_from_the_parent_pid_file(tmp_path):
    runtime = tmp_path / "rt"
    runtime.mkdir()
    info = {"url": "http://0.0.0.0:8888/user/ada/", "base_url": "/user/ada/", "token": "t1"}
    (runtime / "jpserver-4242.json").write_text(json.dumps(info))
    (runtime / "jpserver-99.json").write_text(json.dumps({**info, "token": "other"}))
    env = {"JUPYTERHUB_API_TOKEN": "hub-token"}
    found = find_server(env, runtime_dirs=[runtime], parent_pid=4242)
    assert found == JupyterServer(
        "http://127.0.0.1:8888/user/ada/", "/user/ada/", ("t1", "hub-token")
    )
    # Another pid: not this kernel's server. JPY_PARENT_PID names it when the parent differs.
    assert find_server({}, runtime_dirs=[runtime], parent_pid=1) is None
    assert find_server({"JPY_PARENT_PID": "99"}, runtime_dirs=[runtime], parent_pid=1) == (
        JupyterServer("http://127.0.0.1:8888/user/ada/", "/user/ada/", ("other",))
    )


def test_on_a_hub_without_a_server_file_the_service_url_is_used(tmp_path):
    env = {
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8890/user/grace/",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/grace/",
        "JUPYTERHUB_API_TOKEN": "hub-token",
    }
    assert find_server(env, runtime_dirs=[tmp_path], parent_pid=1) == JupyterServer(
        "http://127.0.0.1:8890/user/grace/", "/user/grace/", ("hub-token",)
    )


def test_the_proxy_route_is_used_only_after_the_server_answered_with_the_video(sandbox, hub_server):
    info, token = hub_server
    url = _video_url(sandbox)
    server = _server_of(info)
    assert server.base_url == "/user/ada/" and server.tokens == (token,)
    route = proxy_route(url, server)
    assert isinstance(route, Route) and route.how == "proxy", route
    port = url.split(":")[2].split("/")[0]
    shown = route.url_for(url)
    assert shown == f"/user/ada/proxy/{port}/media/{sandbox.demo_parents[0].task_id}.mp4"
    # What the browser will ask for streams and seeks through the proxy: Range gives 206.
    whole = requests.get(url, timeout=30).content
    through = requests.get(
        server.url.replace("/user/ada/", "") + shown,
        headers={"Range": "bytes=100-199", "Authorization": f"token {token}"},
        timeout=30,
    )
    assert through.status_code == 206 and through.content == whole[100:200]

    # A wrong token is not a route: the server answers with its login redirect / 403.
    wrong = JupyterServer(server.url, server.base_url, ("not-the-token",))
    answer = proxy_route(url, wrong)
    assert isinstance(answer, str) and "answered HTTP" in answer, answer
    # A port where nothing is served is not a route either.
    dead = proxy_route(f"http://127.0.0.1:{free_port()}/media/x.mp4", server)
    assert isinstance(dead, str) and "answered HTTP 5" in dead, dead


def test_without_jupyter_server_proxy_the_video_is_embedded_and_says_why(sandbox, tmp_path):
    token = secrets.token_hex(8)
    for info in _jupyter(tmp_path, token=token, base_url="/", proxy=False):
        server = _server_of(info)
        url = _video_url(sandbox)
        answer = proxy_route(url, server)
        assert isinstance(answer, str) and "HTTP 404" in answer, answer
        assert "jupyter-server-proxy" in answer
        route = browser_route(url, env=REMOTE, server=lambda s=server: s, colab=lambda port: None)
        assert route.how == "embed" and "jupyter-server-proxy" in route.detail


def test_colab_route_from_an_injected_proxy_port():
    url = "http://127.0.0.1:8123/media/abc.mp4?x=1"
    asked: list[int] = []

    def proxy_port(port: int) -> str:
        asked.append(port)
        return "https://8123-abc-colab.googleusercontent.com/"

    route = colab_route(url, proxy_port)
    assert asked == [8123] and route is not None and route.how == "colab"
    assert route.url_for(url) == "https://8123-abc-colab.googleusercontent.com/media/abc.mp4?x=1"
    # Not in Colab (no answer, an error from the page, or anything but https): no route.
    assert colab_route(url, lambda port: None) is None
    assert colab_route(url, lambda port: "http://insecure.example/") is None

    def broken(port: int) -> str:
        raise RuntimeError("no front-end attached")

    assert colab_route(url, broken) is None
    # The real detector outside Colab answers None without importing anything.
    assert "google.colab" not in sys.modules and frontend.colab_proxy_port(8123) is None


def test_browser_route_decides_once_per_video_server():
    url = "http://127.0.0.1:8123/media/abc.mp4"
    calls: list[int] = []

    def proxy_port(port: int) -> str:
        calls.append(port)
        return "https://colab.example/"

    local = browser_route(url, env={"LUMA_NB_REMOTE_BROWSER": "0"}, colab=proxy_port)
    assert local.how == "direct" and "on the kernel's machine" in local.detail and calls == []
    first = browser_route(url, env=REMOTE, colab=proxy_port)
    again = browser_route(url.replace("abc", "def"), env=REMOTE, colab=proxy_port)
    assert first.how == again.how == "colab" and calls == [8123]
    public = browser_route("https://cdn.example/a.mp4", env=REMOTE, colab=proxy_port)
    assert public.how == "direct" and public.detail == ""


def test_the_player_says_which_way_the_video_came(sandbox, client, monkeypatch):
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide comes in")
    job.wait(timeout=60)
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    local = media.video(job)
    assert local.route.how == "direct"  # type: ignore[attr-defined]
    html = local._repr_html_()
    assert f'src="{job.task.video_url}"' in html and 'data-route="direct"' in html
    assert repr(local).startswith(f"Video of task {job.task_id}: http://127.0.0.1:")

    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "1")
    frontend.forget_routes()
    monkeypatch.setattr(frontend, "find_server", lambda env=None: None)
    embedded = media.video(job)
    html = embedded._repr_html_()
    assert "data:video/mp4;base64," in html and 'data-route="embed"' in html
    assert "no Jupyter server" in html and "127.0.0.1" not in html
    assert "embedded in the notebook" in repr(embedded)


def test_a_kept_demo_video_plays_from_beside_the_notebook_where_a_server_serves_it(
    sandbox, client, tmp_path, monkeypatch
):
    notebook_dir = tmp_path / "work"
    notebook_dir.mkdir()
    monkeypatch.chdir(notebook_dir)
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "1")
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS", "1")
    served = JupyterServer("http://127.0.0.1:9/", "/", ("",), str(tmp_path))
    monkeypatch.setattr(media, "find_server", lambda: served)
    monkeypatch.setattr(frontend, "find_server", lambda env=None: None)
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide goes out")
    job.wait(timeout=60)
    clip = media.video(job)
    kept = f"luma_nb_videos/{job.task_id}.mp4"
    body = requests.get(job.task.video_url, timeout=30).content
    assert (notebook_dir / kept).read_bytes() == body
    html = clip._repr_html_()
    assert f'<video src="{kept}" controls' in html and 'data-route="file"' in html
    assert "127.0.0.1" not in html and "kept beside the notebook" in repr(clip)

    # The live widgets (not saved with the notebook) take the live route instead.
    live = media.video(job, keep=False)._repr_html_()
    assert 'data-route="embed"' in live and "data:video/mp4;base64," in live

    # A server that does not serve this folder, keeping off, or over the bound: no copy.
    monkeypatch.setattr(
        media, "find_server", lambda: JupyterServer("http://x/", "/", ("",), "/nowhere")
    )
    assert 'data-route="embed"' in media.video(job)._repr_html_()
    monkeypatch.setattr(media, "find_server", lambda: served)
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS", "0")
    assert 'data-route="embed"' in media.video(job)._repr_html_()
    (notebook_dir / kept).unlink()
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS", "1")
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS_MB", "0.001")
    assert 'data-route="embed"' in media.video(job)._repr_html_()
    assert list((notebook_dir / "luma_nb_videos").iterdir()) == []


def test_outside_a_kernel_nothing_is_kept_unless_asked(monkeypatch):
    monkeypatch.delenv("LUMA_NB_KEEP_VIDEOS", raising=False)
    assert media.keep_limit() is None
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS", "1")
    assert media.keep_limit() == media.DEFAULT_KEEP_MB * 1024 * 1024
    monkeypatch.setenv("LUMA_NB_KEEP_VIDEOS_MB", "5")
    assert media.keep_limit() == 5 * 1024 * 1024


def test_the_kept_folder_is_bounded_oldest_first(tmp_path):
    sizes = {"a.mp4": 400, "b.mp4": 300, "c.mp4": 300, "notes.txt": 5000}
    for age, (name, size) in enumerate(sizes.items()):
        path = tmp_path / name
        path.write_bytes(bytes(size))
        os.utime(path, (1000 + age, 1000 + age))
    newest = tmp_path / "a.mp4"  # the oldest file, but the one just saved
    removed = media.bound_folder(tmp_path, 700, keep=newest)
    assert [p.name for p in removed] == ["b.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "c.mp4", "notes.txt"]
    assert [p.name for p in media.bound_folder(tmp_path, 100)] == ["a.mp4", "c.mp4"]


def test_a_picker_poster_asked_first_leaves_the_videos_on_the_proxy(
    sandbox, client, hub_server, monkeypatch
):
    """The route is found once per sandbox, by probing for an MP4: a poster (a JPEG) asked for
    before any video must not settle it as "embed" for every video that follows."""
    from luma_nb.notebook import media
    from luma_nb.notebook.widgets.parents import poster_src

    info, _ = hub_server
    monkeypatch.delenv("LUMA_NB_REMOTE_BROWSER", raising=False)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(info.parent))
    monkeypatch.setenv("JPY_PARENT_PID", info.stem.split("-")[1])
    parent = sandbox.demo_parents[0].task_id
    port = sandbox.base_url.rstrip("/").rsplit(":", 1)[1]
    assert poster_src(client, parent) == f"/user/ada/proxy/{port}/media/{parent}.jpg"
    shown = media.video(client.fetch(parent), keep=False)
    assert shown.route.how == "proxy", shown.route
    assert shown.url == f"/user/ada/proxy/{port}/media/{parent}.mp4"
