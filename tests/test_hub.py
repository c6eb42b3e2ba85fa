"""A class on a real JupyterHub: the relay as a Hub-managed service, two students' kernels.

JupyterHub (PyPI) runs in a temporary folder on free loopback ports, with DummyAuthenticator,
SimpleLocalProcessSpawner and configurable-http-proxy (npm; the test fails, never skips, without
it). Its config is the README's ``jupyterhub_config.py`` snippet, with only the ports, the class
file and the student budget changed, plus what a test Hub needs (an admin token, the upstream).
The relay's upstream is a sandbox. Two students' servers each run the classroom notebook's cells
in a kernel of their own server, submit through its form, and their budgets stay separate;
each notebook's live class gallery shows both students' videos.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from luma_nb.relay.hub import HubIdentity
from luma_nb.relay.sqlite import SQLiteStore
from luma_nb.relay.tokens import issue
from luma_nb.sandbox import Sandbox

from ._notebooks import ROOT
from .hub_support import ADMIN_TOKEN, Hub, free_port, proxy_command, wait_for
from .test_readme import BLOCKS

pytestmark = pytest.mark.hub

STUDENTS = ("alice", "bob")
BUDGET = 12  # two submits of 6 each


def readme_snippet() -> str:
    """The README's jupyterhub_config.py block (exactly one)."""
    (block,) = [b for b in BLOCKS if "c.JupyterHub.services" in b.code]
    assert block.lang == "python" and "tests/test_hub.py" in block.marker
    return block.code


def _replace(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the README snippet no longer has exactly one {old!r}"
    return text.replace(old, new)


def hub_config(folder: Path, sandbox: Sandbox, ports: dict[str, int]) -> str:
    """The README snippet on this test's ports and files, then the test Hub's own settings."""
    snippet = readme_snippet()
    snippet = _replace(snippet, "http://127.0.0.1:10101", f"http://127.0.0.1:{ports['relay']}")
    snippet = _replace(snippet, "http://127.0.0.1:8000", f"http://127.0.0.1:{ports['public']}")
    snippet = _replace(snippet, "/srv/luma-class/class.sqlite", str(folder / "class.sqlite"))
    snippet = _replace(snippet, '"--student-budget", "36"', f'"--student-budget", "{BUDGET}"')
    parent = sandbox.demo_parents[0].task_id
    test_settings = f"""
# -- the test Hub: loopback ports, no real users, servers as this user, an admin token ------
c.JupyterHub.bind_url = "http://127.0.0.1:{ports["public"]}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{ports["hub"]}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.command = [{proxy_command()!r}]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{folder / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = "{folder / "cookie_secret"}"
c.JupyterHub.pid_file = "{folder / "hub.pid"}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"head"}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{folder / "home"}/{{username}}"
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"]  # CI runs as root
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {ADMIN_TOKEN!r}}})
c.JupyterHub.load_roles.append(
    {{"name": "test-admin", "scopes": ["admin:users", "admin:servers", "tokens",
      "admin:groups", "access:servers", "read:services"], "services": ["test-admin"]}}
)
relay = c.JupyterHub.services[0]
relay["environment"]["APIFRAME_BASE_URL"] = {sandbox.base_url!r}
relay["command"] += ["--publish", {parent!r}, "--hub-cache", "1"]
"""
    return snippet + test_settings


@pytest.fixture(scope="module")
def upstream() -> Iterator[Sandbox]:
    with Sandbox(speed=200) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def hub(upstream: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp("hub")
    ports = {name: free_port() for name in ("public", "hub", "proxy_api", "relay")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "LUMA_NB_"))}
    env.pop("APIFRAME_BASE_URL", None)
    env.update(
        APIFRAME_API_KEY=upstream.api_key,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    started = Hub(folder, hub_config(folder, upstream, ports), env, ports["public"])
    try:
        started.api("POST", "/users", {"usernames": [*STUDENTS, "head", "ms-lee"]})
        started.api("POST", "/groups/teachers/users", {"users": ["ms-lee"]})
        for name in STUDENTS:
            started.start_server(name)

        def relay_up() -> bool:  # the Hub started the service and its proxy routes to it
            answer = _account(started, "")
            return answer.status_code == 401 and answer.headers.get("X-Luma-NB-Service") == "relay"

        wait_for("the relay as a Hub service", relay_up, 120, log=started.log)
        for name in STUDENTS:
            started.wait_server(name)
        yield started
    finally:
        started.stop()  # the Hub stops the servers (all at once), the relay and the proxy


def relay_url(hub: Hub) -> str:
    return hub.url + "/services/luma-class"


def _account(hub: Hub, token: str) -> requests.Response:
    return requests.get(relay_url(hub) + "/account", headers={"Authorization": token}, timeout=30)


def notebook_cells(parent: str) -> list[str]:
    """The code cells of 04-classroom, its parameters set as papermill would."""
    notebook = json.loads((ROOT / "notebooks" / "04-classroom.ipynb").read_text("utf-8"))
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = "".join(cell["source"])
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            code = _replace(code, "PARENT_TASK_ID = None", f"PARENT_TASK_ID = {parent!r}")
        cells.append(code)
    assert len(cells) >= 3
    return cells


SUBMIT = """
import time
form.prompt = {prompt!r}
time.sleep(1.1)  # the form's double-click guard: one submit per second
job = form.submit()
assert job is not None, form.message
job.wait(timeout=120)
print("job", job.status)
"""

GALLERY = """
import json
assert class_gallery.wait_for({count}, timeout=120), class_gallery.value
print(json.dumps(sorted([v.student, v.task_id] for v in class_gallery.value)))
"""

JOB_IDS = """
print(json.dumps([[j.task_id] for j in form.jobs]))
"""

REPORT = """
import json
account = form.client.account()
print(json.dumps({"service": form.client.service, "class": form.client.class_name,
                  "email": account.raw["email"], "credits": account.credits,
                  "banner": form.status_line.startswith("Class: Year 9 Art")}))
"""

OVER_BUDGET = """
try:
    form.client.extend(PARENT_TASK_ID, "one video too many")
except luma_nb.InsufficientCreditsError as error:
    print("refused:", error)
"""


def _report(kernel: Any) -> dict[str, Any]:
    return json.loads(kernel.run(REPORT).strip().splitlines()[-1])


def test_two_students_run_the_classroom_notebook_with_separate_budgets(
    hub: Hub, upstream: Sandbox
) -> None:
    parent = upstream.demo_parents[0].task_id
    plans = {"alice": ["the tide comes in", "a storm rolls in"], "bob": ["a whale surfaces"]}

    def lesson(name: str) -> dict[str, Any]:
        """One student's lesson in a kernel of their own server; what they saw."""
        kernel = kernels[name]
        env = kernel.run(
            "import os; print(os.environ['JUPYTERHUB_USER'], 'LUMA_NB_CLASS_TOKEN' in os.environ)"
        )
        outputs = [kernel.run(cell) for cell in notebook_cells(parent)]
        seen: dict[str, Any] = {"env": env.split(), "form": outputs[1], "gallery": outputs[2]}
        seen["before"] = _report(kernel)
        seen["jobs"] = [kernel.run(SUBMIT.format(prompt=p)).strip() for p in plans[name]]
        if name == "alice":
            seen["refused"] = kernel.run(OVER_BUDGET)
        seen["after"] = _report(kernel)
        seen["ids"] = json.loads(kernel.run(JOB_IDS))
        return seen

    def gallery(name: str) -> list[list[str]]:
        """The class gallery in the student's notebook, once every video of the class is in."""
        videos: list[list[str]] = json.loads(kernels[name].run(GALLERY.format(count=3)))
        return videos

    kernels = {name: hub.kernel(name) for name in STUDENTS}
    try:
        # Both students at once, each in their own server and kernel.
        with ThreadPoolExecutor(len(STUDENTS)) as pool:
            seen = dict(zip(STUDENTS, pool.map(lesson, STUDENTS), strict=True))
            galleries = dict(zip(STUDENTS, pool.map(gallery, STUDENTS), strict=True))
    finally:
        for kernel in kernels.values():
            kernel.shutdown()
    for name in STUDENTS:
        assert seen[name]["env"] == [name, "False"]  # the Hub's server environment, no token
        assert "ExtendForm" in seen[name]["form"]
        assert "ClassGallery('Year 9 Art')" in seen[name]["gallery"]  # the class's, live
        assert seen[name]["before"] == {
            "service": "relay",
            "class": "Year 9 Art",
            "email": name,
            "credits": BUDGET,
            "banner": True,  # the form says it is the class relay's, as with a class token
        }
        made = len(plans[name])
        assert seen[name]["jobs"] == ["job finished"] * made
        assert seen[name]["after"]["credits"] == BUDGET - 6 * made
    # alice spent her whole budget: refused; bob's budget is his own.
    refused = seen["alice"]["refused"]
    assert refused.startswith("refused:") and "budget" in refused.lower()
    # Each notebook's live class gallery (server-sent events through the Hub's proxy) shows
    # every student's videos, by the student who made them.
    made = sorted([name, ids[0]] for name in STUDENTS for ids in seen[name]["ids"])
    assert galleries == {"alice": made, "bob": made}

    # The ledger (the relay's class file): charges per Hub user, nothing else.
    store = SQLiteStore(hub.folder / "class.sqlite")
    try:
        charged: dict[str | None, float] = {}
        for entry in store.ledger():
            if entry.kind == "charge":
                charged[entry.student] = charged.get(entry.student, 0) + entry.credits
        assert charged == {"alice": 12, "bob": 6}
        assert [s.name for s in store.students()][:2] in (["alice", "bob"], ["bob", "alice"])
    finally:
        store.close()
    # Every submit reached the sandbox once, with the relay's key, never a student's token.
    submits = [r for r in upstream.requests if r.method == "POST" and r.path == "/luma-extend"]
    assert len(submits) == 3


def test_unknown_and_revoked_hub_tokens_get_401_and_class_tokens_still_work(hub: Hub) -> None:
    assert _account(hub, "not-a-hub-token").status_code == 401

    token, token_id = hub.user_token("bob", "a token bob will revoke")
    answer = _account(hub, token)
    assert answer.status_code == 200 and answer.json()["email"] == "bob"
    hub.api("DELETE", f"/users/bob/tokens/{token_id}", ok=(204,))
    assert token not in hub.log.read_text("utf-8", "replace")
    # The relay trusts an answer for --hub-cache (1 s here), then asks again.
    wait_for("the revoked token refused", lambda: _account(hub, token).status_code == 401, 60)

    # A class token made by `luma-nb class tokens` on the same class file works beside them.
    store = SQLiteStore(hub.folder / "class.sqlite")
    try:
        (carol,) = issue(store, names=["carol"])
    finally:
        store.close()
    answer = _account(hub, carol.token)
    assert answer.status_code == 200 and answer.json()["email"] == "carol"


def test_teachers_are_hub_admins_and_the_teacher_group(hub: Hub) -> None:
    identity = HubIdentity(hub.url + "/hub/api", teacher_group="teachers", cache_seconds=0)
    tokens = {name: hub.user_token(name, "teacher check")[0] for name in ("head", "ms-lee", "bob")}

    async def decide() -> dict[str, bool]:
        return {name: await identity.teacher(t) is not None for name, t in tokens.items()}

    assert asyncio.run(decide()) == {"head": True, "ms-lee": True, "bob": False}


def test_the_service_is_routed_by_the_proxy_under_its_prefix(hub: Hub) -> None:
    model = hub.api("GET", "/services/luma-class")
    assert model["prefix"] == "/services/luma-class/"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", model["url"])
    # Straight at the relay's own port, outside the prefix, there is nothing.
    direct = requests.get(model["url"] + "/account", timeout=30)
    assert direct.status_code == 404
    # The relay's log (the Hub's) never shows a token.
    log = hub.log.read_text("utf-8", "replace")
    assert ADMIN_TOKEN not in log
    assert "class relay 'Year 9 Art'" in log and "JupyterHub mode" in log
    conn = sqlite3.connect(hub.folder / "class.sqlite")
    try:
        hashes = [row[0] for row in conn.execute("SELECT token_hash FROM students")]
    finally:
        conn.close()
    assert all(h.startswith("name:") or re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)


def browser_login(
    hub: Hub, user: str, page: str, session: requests.Session | None = None
) -> requests.Response:
    """A browser's visit of ``page`` (under the service), signing in as ``user`` on the Hub."""
    browser = session or requests.Session()
    try:
        first = browser.get(hub.url + page, timeout=60)
        assert first.status_code == 200 and "/hub/login" in first.url, (
            first.status_code,
            first.url,
        )
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', first.text)
        data = {"username": user, "password": "any"}
        if xsrf:
            data["_xsrf"] = xsrf.group(1)
        return browser.post(first.url, data=data, timeout=60)
    finally:
        if session is None:
            browser.close()


def test_teachers_sign_in_through_the_hubs_oauth(hub: Hub) -> None:
    login = "/services/luma-class/hub-login"
    for teacher in ("ms-lee", "head"):
        answer = browser_login(hub, teacher, login)
        assert answer.status_code == 200, (answer.url, answer.text[:500])
        assert answer.json() == {"name": teacher, "teacher": True}
        assert answer.headers["X-Luma-NB-Service"] == "relay"
    # After the login, a teacher is sent on to a page of the relay, never to another site.
    answer = browser_login(hub, "ms-lee", login + "?next=/services/luma-class/account")
    assert answer.url == hub.url + "/services/luma-class/account"
    answer = browser_login(hub, "ms-lee", login + "?next=//example.org/")
    assert answer.url.startswith(hub.url + login) and answer.json()["teacher"] is True
    # A student may not even use the relay's pages: the Hub refuses the OAuth (no role).
    answer = browser_login(hub, "bob", login)
    assert answer.status_code == 403 and answer.url.startswith(hub.url + "/hub/"), answer.url


def test_a_hub_teacher_uses_the_dashboard_and_pauses_a_student(hub: Hub, upstream: Sandbox) -> None:
    dashboard = "/services/luma-class/teacher"
    with requests.Session() as browser:
        # The dashboard sends a browser to the Hub's login, and back to the dashboard.
        page = browser_login(hub, "ms-lee", dashboard, browser)
        assert page.status_code == 200 and page.url == hub.url + dashboard, page.url
        assert "Year 9 Art" in page.text and "bob" in page.text
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert xsrf is not None
        paused = browser.post(
            hub.url + dashboard + "/act/pause",
            data={"paused": "1", "name": "bob", "_xsrf": xsrf.group(1)},
            timeout=60,
        )
        assert paused.status_code == 200 and paused.url == hub.url + dashboard
        # Without the form's XSRF token nothing is done.
        forged = browser.post(
            hub.url + dashboard + "/act/pause", data={"paused": "0", "name": "bob"}, timeout=60
        )
        assert forged.status_code == 403
    token, _ = hub.user_token("bob", "a submit while paused")
    body = {"parent_task_id": upstream.demo_parents[0].task_id, "prompt": "one more"}
    refused = requests.post(
        relay_url(hub) + "/luma-extend", json=body, headers={"Authorization": token}, timeout=60
    )
    assert refused.status_code == 403, refused.text
    # A student is refused the dashboard: the Hub does not let them through its OAuth.
    answer = browser_login(hub, "alice", dashboard)
    assert answer.status_code == 403 and answer.url.startswith(hub.url + "/hub/"), answer.url
