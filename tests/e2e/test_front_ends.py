"""More front-ends in headless Chromium: Notebook 7, and JupyterLab as a Hub runs it.

- **Notebook 7** (``/tree``, ``/notebooks/01-quickstart.ipynb``): the file list shows the
  notebook; run all, type a prompt, Submit, run another cell meanwhile, progress, the video
  loads, outlasts its parent, plays and seeks.
- **JupyterLab under a base URL with jupyter-server-proxy** (as a JupyterHub single-user
  server: ``/user/ada/``, a token, ``JUPYTERHUB_SERVICE_PREFIX``): the browser counts as remote,
  so the video must come through ``/user/ada/proxy/<port>/...``: its ``currentSrc`` is the
  proxied URL, every MP4 request went through the proxy (none to the sandbox's own port), Range
  answers 206 through it, seeking works, and the player's title says it was streamed through the
  proxy (the view's text names no address).
  Then the notebook is saved, the server restarted (the kernel and its sandbox are gone), the
  notebook's trust forgotten, and the notebook reopened: its video still plays and seeks, from
  the copy kept beside it (``/user/ada/files/luma_nb_videos/<id>.mp4``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from .driver import (
    Shots,
    another_cell_runs,
    check_the_view_reads_well,
    code_cells_trusted,
    extend_through_the_form,
    find_form,
    login,
    open_in_lab,
    open_in_notebook7,
    play_and_seek,
    run_all_cells,
    save_notebook,
    tidy_lab,
)
from .harness import ServerProcess, hub_lab_server, require_notebook

#: Jupyter's /files/ URL of a kept copy (the page adds an ``_xsrf`` query).
KEPT = re.compile(r"/user/ada/files/luma_nb_videos/[0-9a-f-]{36}\.mp4(\?|$)")

pytestmark = pytest.mark.e2e

QUICKSTART = "01-quickstart.ipynb"
HUB_BASE = "/user/ada/"
PROXIED = re.compile(r"^http://127\.0\.0\.1:(\d+)/user/ada/proxy/(\d+)/media/[0-9a-f-]{36}\.mp4$")


@pytest.fixture
def hub_lab(notebook_root: Path, e2e_home: Path) -> Iterator[ServerProcess]:
    """JupyterLab as a Hub's single-user server (base URL, token, jupyter-server-proxy)."""
    token = secrets.token_hex(16)
    server = hub_lab_server(notebook_root, e2e_home, HUB_BASE, token)
    try:
        yield server.start(f"api/status?token={token}")
    finally:
        server.stop()


def test_quickstart_in_notebook7(
    page: Any, page_log: Any, lab: ServerProcess, notebook_root: Path
) -> None:
    """01-quickstart in the Notebook 7 interface: file list, form, progress, video, seeking."""
    require_notebook(notebook_root, QUICKSTART)
    started = time.monotonic()
    shots = Shots("notebook7-quickstart")
    page.goto(f"{lab.url}tree")
    page.get_by_text(QUICKSTART).first.wait_for(timeout=120_000)
    assert "/tree" in page.url and page.locator("#jp-NotebookLogo, .jp-NotebookLogo").count() + (
        page.locator(".jp-DirListing").count()
    ), "this is not Notebook 7's file browser"

    open_in_notebook7(page, lab.url, QUICKSTART)
    assert "/notebooks/" in page.url and page.locator("#jp-top-panel, .jp-LabShell").count() <= 1
    assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    run_all_cells(page)
    form = find_form(page)
    check_the_view_reads_well(form)
    result = extend_through_the_form(page, form, shots, page_log, meanwhile=another_cell_runs(page))
    assert result["src"].startswith("http://127.0.0.1:"), result["src"]  # local: by URL
    assert result["route"] == "direct", result
    print(f"quickstart in Notebook 7: {time.monotonic() - started:.1f} s, video {_brief(result)}")


def test_quickstart_in_jupyterlab_under_a_hub_base_url_streams_through_the_proxy(
    page: Any, page_log: Any, hub_lab: ServerProcess, notebook_root: Path, e2e_home: Path
) -> None:
    """On a Hub-like server the video loads through jupyter-server-proxy, not from the
    sandbox's own port (which a remote browser could not reach)."""
    require_notebook(notebook_root, QUICKSTART)
    started = time.monotonic()
    shots = Shots("hub-lab-quickstart")
    login(page, hub_lab.url, hub_lab.token)
    open_in_lab(page, hub_lab.url, QUICKSTART)
    assert page.url.startswith(hub_lab.url + "lab/"), page.url
    tidy_lab(page)
    run_all_cells(page)
    form = find_form(page)
    check_the_view_reads_well(form)
    result = extend_through_the_form(
        page,
        form,
        shots,
        page_log,
        meanwhile=another_cell_runs(page),
        headers={"Authorization": f"token {hub_lab.token}"},
    )

    src = result["src"]
    match = PROXIED.match(src)
    assert match, f"the video did not come through {HUB_BASE}proxy/<port>/: {src}"
    assert int(match.group(1)) == hub_lab.port and int(match.group(2)) != hub_lab.port
    sandbox_origin = f"http://127.0.0.1:{match.group(2)}/"
    assert page_log.media, "no MP4 response seen"
    direct = [m for m in page_log.media if m[2].startswith(sandbox_origin)]
    assert not direct, f"the browser asked the sandbox directly: {direct}"
    proxied = [m for m in page_log.media if m[2].startswith(f"{hub_lab.url}proxy/")]
    assert any(status == 206 for status, _, _ in proxied), page_log.media
    # The way the video came is told in the player's attributes, not in the view's text.
    assert result["route"] == "proxy", result
    assert "through the Jupyter server's proxy" in result["route_title"], result
    check_the_view_reads_well(form)
    print(f"Hub-like JupyterLab: {time.monotonic() - started:.1f} s, video {_brief(result)}")

    # Saved, the server restarted (kernel and sandbox gone), trust forgotten, reopened.
    kept = sorted((notebook_root / "luma_nb_videos").glob("*.mp4"))
    assert kept, "no demo video was kept beside the notebook"
    save_notebook(page)
    hub_lab.stop()
    for signatures in e2e_home.rglob("nbsignatures.db"):
        signatures.unlink()
    hub_lab.start(f"api/status?token={hub_lab.token}")
    reopened = time.monotonic()
    page_log.media.clear()
    login(page, hub_lab.url, hub_lab.token)
    open_in_lab(page, hub_lab.url, QUICKSTART)
    tidy_lab(page)
    assert not any(code_cells_trusted(page)), "the reopened notebook is trusted"
    video = page.locator(".jp-OutputArea-output video").first
    video.wait_for(state="attached", timeout=60_000)
    video.evaluate("v => v.scrollIntoView({block: 'center'})")
    state = play_and_seek(page, video)
    assert KEPT.search(state["src"]), f"the reopened video did not play the kept copy: {state}"
    seekable = state["seek"]["seekable"]
    assert seekable and seekable[-1][1] >= state["duration"] - 0.1, state
    # The browser may have buffered the whole (small) file; ask for a range as it would.
    part = requests.get(
        hub_lab.origin + urlsplit(state["src"]).path,
        headers={"Range": "bytes=100-199", "Authorization": f"token {hub_lab.token}"},
        timeout=30,
    )
    assert part.status_code == 206 and len(part.content) == 100, part.status_code
    shots.take(page, "reopened-playing")
    print(
        f"reopened after a restart: {time.monotonic() - reopened:.1f} s, "
        f"played {state['src']}, seeked to {state['seek']['currentTime']:.2f} s"
    )


def _brief(result: dict[str, Any]) -> str:
    return (
        f"{result['duration']:.2f} s from {result['src']}, "
        f"seeked to {result['seek']['currentTime']:.2f} s"
    )
