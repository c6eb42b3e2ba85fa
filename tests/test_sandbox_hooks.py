"""Webhooks from the sandbox to a real receiver on 127.0.0.1, and the sandbox CLI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pytest
import requests

from luma_nb.sandbox import DEMO_PARENTS, Sandbox
from luma_nb.sandbox.cli import add_arguments
from tests.support import Received, SandboxHTTP, WebhookReceiver

ORDER = ["pending", "staged", "starting", "processing", "finished", "failed"]


def _final(posts: list[Received]) -> bool:
    return any("video_url" in p.body or p.body.get("status") == "failed" for p in posts)


def test_webhooks_with_a_secret(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, webhook_receiver: WebhookReceiver
) -> None:
    task_id = sandbox_http.extend(
        DEMO_PARENTS[1].task_id, webhook_url=webhook_receiver.url, webhook_secret="abc123"
    )
    posts = webhook_receiver.wait_for(_final)
    assert sandbox.wait_webhooks()
    posts = webhook_receiver.received
    for post in posts:
        assert post.path == "/hook"
        assert post.headers["x-webhook-secret"] == "abc123"
        assert post.headers["Content-Type"] == "application/json"
        assert post.body["task_id"] == task_id and post.body["task_type"] == "luma-ext"
    # Fetch-shaped bodies, in life-cycle order, ending with the documented finished body.
    statuses = [p.body.get("status", "finished") for p in posts]
    assert statuses == sorted(statuses, key=ORDER.index)
    assert statuses.count("finished") == 1
    assert posts[-1].body == {
        "task_id": task_id,
        "task_type": "luma-ext",
        "video_url": f"{sandbox.base_url}/media/{task_id}.mp4",
    }
    steps = [p.body for p in posts if p.body.get("status") == "processing"]
    assert steps and all(
        set(b) == {"task_id", "task_type", "status", "percentage"}
        and isinstance(b["percentage"], str)
        for b in steps
    )
    assert len(steps) <= 11  # throttled to steps of 10 %
    assert len(posts) >= 3


def test_webhooks_without_a_secret(
    sandbox_http: SandboxHTTP, webhook_receiver: WebhookReceiver
) -> None:
    sandbox_http.imagine(webhook_url=webhook_receiver.url)
    posts = webhook_receiver.wait_for(_final)
    assert all("x-webhook-secret" not in {k.lower() for k in p.headers} for p in posts)


def test_a_failed_delivery_is_retried(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.fail_next = 1
    sandbox_http.imagine(webhook_url=webhook_receiver.url)
    webhook_receiver.wait_for(_final)
    assert sandbox.wait_webhooks()
    posts = webhook_receiver.received
    assert posts[0].body == posts[1].body  # the first body, posted again after the 500
    first = sandbox.webhooks[0]
    assert first.attempts == 2 and first.delivered
    assert all(d.delivered for d in sandbox.webhooks)


def test_a_failed_task_posts_its_failure(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.faults.next_task(fail="content policy")
    task_id = sandbox_http.imagine(webhook_url=webhook_receiver.url)
    posts = webhook_receiver.wait_for(_final)
    assert posts[-1].body == {
        "task_id": task_id,
        "task_type": "luma",
        "status": "failed",
        "message": "content policy",
    }


def test_webhooks_arrive_without_anyone_polling(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, webhook_receiver: WebhookReceiver
) -> None:
    sandbox_http.imagine(webhook_url=webhook_receiver.url)
    webhook_receiver.wait_for(_final)
    assert sandbox.count("/fetch") == 0


def test_non_loopback_webhooks_are_never_sent(sandbox: Sandbox, sandbox_http: SandboxHTTP) -> None:
    task_id = sandbox_http.imagine(webhook_url="https://hooks.example.com/luma")
    sandbox.complete(task_id)
    assert sandbox.wait_webhooks()
    deliveries = sandbox.webhooks
    assert deliveries and all(d.attempts == 0 and not d.delivered for d in deliveries)
    assert "loopback" in (deliveries[0].error or "")


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_prints_the_base_url_and_stops_cleanly(tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "luma_nb.sandbox",
            "--port",
            "0",
            "--speed",
            "100",
            "--fault",
            "/account:500:1",
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        base_url = lines[0].split(" at ")[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")
        assert f"export APIFRAME_BASE_URL={base_url} APIFRAME_API_KEY=sandbox-demo-key" in text
        assert all(p.task_id in text for p in DEMO_PARENTS)
        headers = {"Authorization": "k"}
        assert requests.get(f"{base_url}/account", headers=headers, timeout=5).status_code == 500
        assert requests.get(f"{base_url}/account", headers=headers, timeout=5).status_code == 200
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_cli_rejects_a_bad_fault_spec() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--fault", "/fetch:teapot"])
    args = parser.parse_args(["--fault", "task:stall", "--finished-status", "--seed", "3"])
    assert args.fault == ["task:stall"] and args.finished_status and args.seed == 3
    assert "PATH:KIND" in (parser.epilog or "")
