"""The sandbox's API over real HTTP with plain requests: bodies, statuses, errors, credits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from luma_nb.contract.models import ASPECT_RATIOS
from luma_nb.sandbox import DEMO_API_KEY, DEMO_PARENTS, Sandbox, TaskFault
from luma_nb.sandbox.lifecycle import make_plan, progress
from tests.support import SandboxHTTP

STATUS_ORDER = ["pending", "staged", "starting", "processing"]


def _error_msg(response: requests.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"errors"}
    assert isinstance(body["errors"], list) and len(body["errors"]) == 1
    msg = body["errors"][0]["msg"]
    assert isinstance(msg, str) and msg
    return msg


# -- submit and life cycle ---------------------------------------------------------------------


def test_imagine_runs_the_documented_life_cycle(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    task_id = sandbox_http.imagine("a lighthouse in fog", aspect_ratio="16:9")
    assert uuid.UUID(task_id).version == 4
    bodies: list[dict[str, Any]] = []
    final = sandbox_http.wait(task_id, on_body=bodies.append)

    assert final == {
        "task_id": task_id,
        "task_type": "luma",
        "video_url": f"{sandbox.base_url}/media/{task_id}.mp4",
    }
    progress_bodies = [b for b in bodies if "video_url" not in b]
    statuses = [b["status"] for b in progress_bodies]
    assert "processing" in statuses
    ranks = [STATUS_ORDER.index(s) for s in statuses]
    assert ranks == sorted(ranks), statuses
    percentages = []
    for body in progress_bodies:
        if body["status"] == "processing":
            assert set(body) == {"task_id", "task_type", "status", "percentage"}
            assert isinstance(body["percentage"], str)
            percentages.append(int(body["percentage"]))
        else:
            assert set(body) == {"task_id", "task_type", "status"}
    assert percentages == sorted(percentages)
    assert all(0 <= p <= 100 for p in percentages)


def test_every_phase_of_the_plan_in_order() -> None:
    import random

    plan = make_plan(random.Random(7))
    seen: list[str] = []
    steps = 4000
    for i in range(steps + 1):
        state = progress(plan, plan.total * 1.01 * i / steps)
        if not seen or seen[-1] != state.status:
            seen.append(state.status)
    assert seen == [*STATUS_ORDER, "finished"]
    assert 60 <= plan.total <= 300


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), a=st.floats(0, 400), b=st.floats(0, 400))
def test_percentage_never_goes_back(seed: int, a: float, b: float) -> None:
    import random

    plan = make_plan(random.Random(seed))
    low, high = sorted((a, b))
    p_low, p_high = progress(plan, low), progress(plan, high)
    if p_low.status == "processing" and p_high.status == "processing":
        assert p_low.percentage is not None and p_high.percentage is not None
        assert p_low.percentage <= p_high.percentage


def test_task_faults_in_the_plan() -> None:
    import random

    failing = make_plan(random.Random(1), TaskFault(fail="boom"))
    assert progress(failing, failing.total + 1).message == "boom"
    stalled = make_plan(random.Random(1), TaskFault(stall=True))
    assert progress(stalled, 10 * stalled.total).status == "processing"
    odd = make_plan(random.Random(1), TaskFault(unknown_status="queued_elsewhere"))
    assert "queued_elsewhere" in [name for name, _ in odd.phases]


def test_extend_a_demo_parent_at_once(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    assert sandbox.demo_parents == DEMO_PARENTS and len(DEMO_PARENTS) == 3
    for parent in DEMO_PARENTS:
        assert sandbox_http.fetch(parent.task_id) == {
            "task_id": parent.task_id,
            "task_type": "luma",
            "video_url": f"{sandbox.base_url}/media/{parent.task_id}.mp4",
        }
    task_id = sandbox_http.extend(str(DEMO_PARENTS[0]), "the lighthouse beam sweeps the sea")
    final = sandbox_http.wait(task_id)
    assert final["task_type"] == "luma-ext" and final["video_url"].endswith(f"{task_id}.mp4")
    view = sandbox.task(task_id)
    assert view["parent_task_id"] == DEMO_PARENTS[0].task_id
    assert view["aspect_ratio"] == DEMO_PARENTS[0].aspect_ratio


def test_extend_an_extension(sandbox_http: SandboxHTTP) -> None:
    first = sandbox_http.imagine("a kite")
    sandbox_http.wait(first)
    second = sandbox_http.extend(first)
    sandbox_http.wait(second)
    third = sandbox_http.extend(second, "it flies away")
    assert sandbox_http.wait(third)["task_type"] == "luma-ext"


def test_demo_parent_ids_are_stable_across_sandboxes(make_sandbox: Callable[..., Sandbox]) -> None:
    one, two = make_sandbox(), make_sandbox()
    assert [p.task_id for p in one.demo_parents] == [p.task_id for p in two.demo_parents]


def test_seed_makes_ids_reproducible(make_sandbox: Callable[..., Sandbox]) -> None:
    ids = []
    for _ in range(2):
        http = SandboxHTTP(make_sandbox(seed=42))
        ids.append([http.imagine(), http.imagine()])
        http.close()
    assert ids[0] == ids[1] and ids[0][0] != ids[0][1]


def test_finished_status_switch(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(finished_status=True)
    http = SandboxHTTP(sandbox)
    task_id = http.imagine()
    sandbox.complete(task_id)
    body = http.fetch(task_id)
    assert body["status"] == "finished" and "video_url" in body
    sandbox.finished_status = False
    assert "status" not in http.fetch(task_id)
    http.close()


def test_percentage_as_number_switch(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.next_task(stall=True)
    sandbox.percentage_as_number = True
    task_id = sandbox_http.imagine()
    sandbox.advance(10_000)
    body = sandbox_http.fetch(task_id)
    assert body["status"] == "processing" and isinstance(body["percentage"], int)


def test_unknown_fields_are_ignored(sandbox_http: SandboxHTTP) -> None:
    body = {"prompt": "x", "frobnicate": [1, 2], "loop": True}
    response = sandbox_http.post("/luma-imagine", body)
    assert response.status_code == 200 and set(response.json()) == {"task_id"}
    response = sandbox_http.post(
        "/luma-extend", {"parent_task_id": DEMO_PARENTS[1].task_id, "prompt": "y", "loop": "?"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_every_aspect_ratio_is_accepted(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, ratio: str
) -> None:
    task_id = sandbox_http.imagine(aspect_ratio=ratio)
    assert sandbox.task(task_id)["aspect_ratio"] == ratio


def test_default_aspect_ratio_is_square(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    assert sandbox.task(sandbox_http.imagine())["aspect_ratio"] == "1:1"


# -- credits and account -----------------------------------------------------------------------


def test_each_submit_costs_six_credits(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    account = sandbox_http.get("/account").json()
    assert set(account) == {"email", "credits", "total_images", "plan"}
    sandbox_http.imagine()
    sandbox_http.extend(DEMO_PARENTS[0].task_id)
    after = sandbox_http.get("/account").json()
    assert after["credits"] == account["credits"] - 12 == sandbox.credits
    assert after["total_images"] == account["total_images"] + 2


def test_insufficient_credits_is_402(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.credits = 5
    response = sandbox_http.post("/luma-imagine", {"prompt": "x"})
    assert _error_msg(response, 402) == "Insufficient credits"
    assert sandbox.credits == 5 and sandbox.task_ids == []


# -- errors ------------------------------------------------------------------------------------

PARENT = DEMO_PARENTS[0].task_id
BAD_SUBMITS = [
    ("/luma-imagine", {}, "prompt is required"),
    ("/luma-imagine", {"prompt": ""}, "prompt must not be empty"),
    ("/luma-imagine", {"prompt": "   "}, "prompt must not be empty"),
    ("/luma-imagine", {"prompt": 5}, "prompt must be a string"),
    ("/luma-imagine", {"prompt": "x", "enhance_prompt": "yes"}, "enhance_prompt must be a boolean"),
    ("/luma-imagine", {"prompt": "x", "loop": 1}, "loop must be a boolean"),
    ("/luma-imagine", {"prompt": "x", "aspect_ratio": "2:1"}, "Invalid aspect_ratio"),
    ("/luma-imagine", {"prompt": "x", "aspect_ratio": 1}, "aspect_ratio must be a string"),
    ("/luma-imagine", {"prompt": "x", "image_url": "ftp://host/a.png"}, "image_url must be"),
    ("/luma-imagine", {"prompt": "x", "end_image_url": "a.png"}, "end_image_url must be"),
    ("/luma-imagine", {"prompt": "x", "webhook_url": "/hook"}, "webhook_url must be"),
    ("/luma-imagine", {"prompt": "x", "webhook_secret": 3}, "webhook_secret must be a string"),
    ("/luma-imagine", ["prompt"], "must be a JSON object"),
    ("/luma-extend", {"prompt": "x"}, "parent_task_id is required"),
    ("/luma-extend", {"parent_task_id": PARENT}, "prompt is required"),
    ("/luma-extend", {"parent_task_id": str(uuid.uuid4()), "prompt": "x"}, "Parent task not found"),
    ("/luma-extend", {"parent_task_id": PARENT, "prompt": "x", "image_url": "nope"}, "image_url"),
    (
        "/luma-extend",
        {"parent_task_id": PARENT, "prompt": "x", "aspect_ratio": "5:4"},
        "Invalid aspect_ratio",
    ),
]


@pytest.mark.parametrize(("path", "body", "expected"), BAD_SUBMITS)
def test_bad_submits_are_400_and_free(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, path: str, body: Any, expected: str
) -> None:
    credits = sandbox.credits
    assert expected in _error_msg(sandbox_http.post(path, body))
    assert sandbox.credits == credits and sandbox.task_ids == []


def test_parent_not_finished_is_400(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox.faults.next_task(stall=True)
    pending = sandbox_http.imagine()
    response = sandbox_http.post("/luma-extend", {"parent_task_id": pending, "prompt": "x"})
    assert "Parent task is not finished" in _error_msg(response)


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe", b"null", b"42"])
def test_non_json_bodies_are_400(sandbox_http: SandboxHTTP, data: bytes) -> None:
    response = sandbox_http.session.post(
        sandbox_http.base_url + "/luma-imagine",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    _error_msg(response)


def test_oversized_body_is_413_with_the_errors_shape(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    response = sandbox_http.post("/luma-imagine", {"prompt": "x" * (70 * 1024)})
    assert "too large" in _error_msg(response, 413)
    assert sandbox.task_ids == []
    assert sandbox_http.get("/account").status_code == 200  # the server is fine afterwards


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}])
def test_missing_key_is_401_empty(sandbox: Sandbox, headers: dict[str, str]) -> None:
    response = requests.post(
        f"{sandbox.base_url}/luma-imagine", json={"prompt": "x"}, headers=headers, timeout=10
    )
    assert response.status_code == 401 and response.json() == {}
    assert (
        requests.get(f"{sandbox.base_url}/account", headers=headers, timeout=10).status_code == 401
    )


def test_any_non_empty_key_works_without_a_configured_key(sandbox: Sandbox) -> None:
    assert sandbox.api_key == DEMO_API_KEY
    for key in ("anything", "Bearer xyz", DEMO_API_KEY):
        response = requests.get(
            f"{sandbox.base_url}/account", headers={"Authorization": key}, timeout=10
        )
        assert response.status_code == 200


def test_a_configured_key_is_the_only_one(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(api_key="s3cret")
    assert sandbox.api_key == "s3cret"
    url = f"{sandbox.base_url}/account"
    assert requests.get(url, headers={"Authorization": "s3cret"}, timeout=10).status_code == 200
    for key in ("wrong", "Bearer s3cret", DEMO_API_KEY):
        response = requests.get(url, headers={"Authorization": key}, timeout=10)
        assert response.status_code == 401 and response.json() == {}


def test_unknown_path_is_404_and_wrong_method_405(sandbox_http: SandboxHTTP) -> None:
    assert "Not found" in _error_msg(sandbox_http.post("/luma-generate", {"prompt": "x"}), 404)
    response = sandbox_http.get("/fetch")
    assert "not allowed" in _error_msg(response, 405) and response.headers["Allow"] == "POST"
    response = sandbox_http.post("/account", {})
    assert _error_msg(response, 405) and response.headers["Allow"] == "GET"
    response = sandbox_http.session.delete(sandbox_http.base_url + "/luma-extend", timeout=10)
    _error_msg(response, 405)


# -- fetch -------------------------------------------------------------------------------------


def test_fetch_unknown_or_missing_id_is_400(sandbox_http: SandboxHTTP) -> None:
    assert (
        _error_msg(sandbox_http.post("/fetch", {"task_id": str(uuid.uuid4())})) == "Task not found"
    )
    assert "task_id is required" in _error_msg(sandbox_http.post("/fetch", {}))
    assert "task_id must be a string" in _error_msg(sandbox_http.post("/fetch", {"task_id": 1}))


def test_fetch_many_bounds_and_unknown_ids(sandbox_http: SandboxHTTP) -> None:
    ids = [sandbox_http.imagine() for _ in range(3)]
    unknown = str(uuid.uuid4())
    response = sandbox_http.post("/fetch-many", {"task_ids": [ids[0], unknown, ids[2]]})
    assert response.status_code == 200
    tasks = response.json()["tasks"]
    assert [t["task_id"] for t in tasks] == [ids[0], ids[2]]

    demo = [p.task_id for p in DEMO_PARENTS]
    twenty = (demo * 7)[:20]
    assert len(sandbox_http.post("/fetch-many", {"task_ids": twenty}).json()["tasks"]) == 20
    for bad in ([ids[0]], [], (demo * 7)[:21], "abc", [1, 2], None):
        _error_msg(sandbox_http.post("/fetch-many", {"task_ids": bad}))


# -- transport and inspection ------------------------------------------------------------------


def test_keep_alive_connections_are_reused(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    for _ in range(3):
        response = sandbox_http.get("/account")
        assert response.raw.version == 11
        assert response.headers.get("Connection", "").lower() != "close"
    clients = {r.client for r in sandbox.requests}
    assert len(clients) == 1


def test_request_log_redacts_the_key(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    sandbox_http.session.headers["Authorization"] = "my-private-key"
    sandbox_http.post("/luma-imagine", {"prompt": "logged"})
    entry = sandbox.requests[-1]
    assert (entry.method, entry.path, entry.body, entry.status) == (
        "POST",
        "/luma-imagine",
        {"prompt": "logged"},
        200,
    )
    assert entry.headers["Authorization"] == "<redacted>"
    assert "my-private-key" not in repr(sandbox.requests)
    assert sandbox.count("/luma-imagine") == 1 and sandbox.count("/luma-imagine", "GET") == 0


def test_fifty_threads_polling_at_once(sandbox: Sandbox) -> None:
    http = SandboxHTTP(sandbox)
    ids = [http.imagine(f"task {n}") for n in range(5)]
    http.close()
    failures: list[str] = []
    start = threading.Barrier(50)

    def poll(n: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = "k"
            start.wait()
            for _ in range(20):
                r = session.post(
                    f"{sandbox.base_url}/fetch", json={"task_id": ids[n % 5]}, timeout=10
                )
                if r.status_code != 200 or r.json()["task_id"] != ids[n % 5]:
                    failures.append(r.text)

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert sandbox.count("/fetch") == 50 * 20


def test_start_and_stop_are_idempotent() -> None:
    sandbox = Sandbox(speed=100)
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url
    assert sandbox.start() is sandbox.start()
    url = sandbox.base_url
    assert url.startswith("http://127.0.0.1:")
    sandbox.stop()
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/account", headers={"Authorization": "k"}, timeout=2)
    with pytest.raises(RuntimeError):
        sandbox.start()


def test_shared_sandbox_is_one_per_process() -> None:
    from luma_nb.sandbox import shared_sandbox

    found: list[Sandbox] = []
    threads = [
        threading.Thread(target=lambda: found.append(shared_sandbox(speed=300))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(s) for s in found}) == 1 and found[0].running
    assert shared_sandbox() is found[0]
    assert (
        requests.get(
            f"{found[0].base_url}/account", headers={"Authorization": found[0].api_key}, timeout=10
        ).status_code
        == 200
    )
