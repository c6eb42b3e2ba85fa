"""Hostile requests against the real sandbox: each gets a documented answer, never a dead socket.

Nested JSON bombs, Range numbers past Python's int() digit limit, huge demo frame numbers and
secrets that cannot travel in an HTTP header; the request log never keeps a webhook secret.
"""

from __future__ import annotations

import socket

import pytest
import requests

from luma_nb import ValidationError
from luma_nb.contract import validation as check
from luma_nb.sandbox import DEMO_PARENTS, Sandbox
from luma_nb.sandbox.hooks import WebhookSender
from tests.support import SandboxHTTP, WebhookReceiver


def _errors_msg(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    msg = body["errors"][0]["msg"]
    assert isinstance(msg, str) and msg
    return msg


def test_deeply_nested_json_gets_the_documented_400(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    depth = 30_000  # far past the interpreter's recursion limit, and under the 64 KiB cap
    raw = ("[" * depth + "]" * depth).encode()
    credits = sandbox.credits
    for path in ("/luma-imagine", "/fetch"):
        response = sandbox_http.session.post(
            sandbox.base_url + path,
            data=raw,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert "nested" in _errors_msg(response, 400)
    assert sandbox.credits == credits and sandbox.task_ids == []
    # The connection still serves the next request.
    assert sandbox_http.get("/account").status_code == 200


def test_the_request_log_redacts_a_webhook_secret(
    sandbox: Sandbox, sandbox_http: SandboxHTTP
) -> None:
    sandbox_http.imagine(
        "a secret garden",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret="s3cr3t-never-logged",
    )
    logged = [r for r in sandbox.requests if r.path == "/luma-imagine"]
    assert logged and logged[-1].body["webhook_secret"] == "<redacted>"
    assert logged[-1].body["prompt"] == "a secret garden"
    assert "s3cr3t-never-logged" not in repr(sandbox.requests)
    assert logged[-1].headers["Authorization"] == "<redacted>"


def _raw_get(sandbox: Sandbox, path: str, extra: str = "") -> bytes:
    """One GET over a raw socket; returns the whole answer head (b"" if the server hung up)."""
    with socket.create_connection((sandbox.host, sandbox.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


def test_a_range_number_past_the_int_digit_limit_is_a_416(sandbox: Sandbox) -> None:
    name = "demo-frame-1.png"
    huge = "9" * 5000
    answer = _raw_get(sandbox, f"/media/{name}", f"Range: bytes={huge}-\r\n")
    assert answer.startswith(b"HTTP/1.1 416 "), answer[:200]
    assert b"Content-Range: bytes */" in answer
    # An open end past the file is fine (RFC 9110): the range is cut to the file.
    whole = requests.get(f"{sandbox.base_url}/media/{name}", timeout=10)
    response = requests.get(
        f"{sandbox.base_url}/media/{name}", headers={"Range": f"bytes=0-{huge}"}, timeout=10
    )
    assert response.status_code == 206 and response.content == whole.content
    response = requests.get(
        f"{sandbox.base_url}/media/{name}", headers={"Range": f"bytes=-{huge}"}, timeout=10
    )
    assert response.status_code == 206 and response.content == whole.content


def test_a_huge_demo_frame_number_is_a_404(sandbox: Sandbox) -> None:
    response = requests.get(f"{sandbox.base_url}/media/demo-frame-{'7' * 5000}.png", timeout=10)
    msg = _errors_msg(response, 404)
    assert "digits" not in msg and "int" not in msg


@pytest.mark.parametrize("secret", ["caf\u00e9-ok", "\u5bc6\u94a5", "snow\u2603man"])
def test_header_unsafe_secrets_are_refused_by_the_shared_validation(secret: str) -> None:
    if all(ord(ch) < 256 for ch in secret):
        assert check.secret(secret) == secret
        return
    with pytest.raises(ValidationError, match="Latin-1"):
        check.secret(secret)


def test_the_sandbox_refuses_a_non_latin1_secret_before_charging(
    sandbox: Sandbox, sandbox_http: SandboxHTTP, webhook_receiver: WebhookReceiver
) -> None:
    credits = sandbox.credits
    response = sandbox_http.post(
        "/luma-extend",
        {
            "parent_task_id": DEMO_PARENTS[0].task_id,
            "prompt": "x",
            "webhook_url": webhook_receiver.url,
            "webhook_secret": "\u5bc6\u94a5",
        },
    )
    assert "Latin-1" in _errors_msg(response, 400)
    assert sandbox.credits == credits and sandbox.task_ids == []


def test_the_webhook_sender_survives_a_delivery_that_cannot_be_sent(
    webhook_receiver: WebhookReceiver,
) -> None:
    sender = WebhookSender(retries=0)
    try:
        # Past validation (e.g. a task file from an older version): the header cannot be encoded.
        sender.send(webhook_receiver.url, "\u5bc6\u94a5", {"task_id": "a"})
        sender.send(webhook_receiver.url, "fine", {"task_id": "b"})
        assert sender.wait_idle(10)
    finally:
        sender.stop()
    first, second = sender.deliveries
    assert not first.delivered and first.error
    assert second.delivered
    assert [p.body["task_id"] for p in webhook_receiver.received] == ["b"]
