"""The tests' shared helpers (their fixtures are in tests/conftest.py, which imports these).

- ``FAST``: the one fast polling policy of the tests' clients.
- ``KEY``: the API key of the clients that talk to the scripted server.
- ``eventually(predicate, timeout=..., what=...)``: wait until something holds.
- ``SandboxHTTP``: plain ``requests`` against one sandbox.
- ``WebhookReceiver`` (and ``Received``): what the ``webhook_receiver`` fixture records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from luma_nb import FixedPolicy
from luma_nb.sandbox import Sandbox

T = TypeVar("T")

#: The one fast policy: a look every 20 ms. The sandbox fixtures run at speed 200 (a job takes
#: 0.3-1.5 s), so a wait sees a few progress steps and ends soon after the job does; the scripted
#: server answers at once, so its tests barely wait either.
FAST = FixedPolicy(0.02)

#: The key of the clients made for the scripted server (its requests can be checked for it).
KEY = "test-key-4b1d9c77e0a24f5f"


def eventually(
    predicate: Callable[[], T],
    *,
    timeout: float = 20.0,
    what: str = "the condition",
    every: float = 0.02,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate()`` until it returns something truthy, and return that.

    ``timeout`` only stops a hang (it is no speed check); after it, AssertionError names
    ``what`` and the last value seen. Exceptions of the types in ``ignoring`` count as "not
    yet" (a server still starting); any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: Any = predicate()
        except ignoring as error:
            last = error
        else:
            if last:
                return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")
        time.sleep(every)


class SandboxHTTP:
    """A thin ``requests`` helper for one sandbox: auth header, JSON in and out, waiting."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.base_url = sandbox.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = sandbox.api_key

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """POST ``body`` as JSON (``timeout`` defaults to 10 s)."""
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.base_url + path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET ``path`` (``timeout`` defaults to 10 s)."""
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.base_url + path, **kwargs)

    def imagine(self, prompt: str = "a red fox in snow", **fields: Any) -> str:
        """Submit an imagine task; returns its id."""
        response = self.post("/luma-imagine", {"prompt": prompt, **fields})
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def extend(
        self, parent_task_id: str, prompt: str = "the camera pulls back", **fields: Any
    ) -> str:
        """Submit an extend task; returns its id."""
        body = {"parent_task_id": parent_task_id, "prompt": prompt, **fields}
        response = self.post("/luma-extend", body)
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def fetch(self, task_id: str) -> dict[str, Any]:
        """The fetch body of a task (asserts a 200)."""
        response = self.post("/fetch", {"task_id": task_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self,
        task_id: str,
        timeout: float = 30.0,
        *,
        on_body: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the task is finished (has ``video_url``) or failed; returns the last body."""

        def ended() -> dict[str, Any] | None:
            body = self.fetch(task_id)
            if on_body is not None:
                on_body(body)
            return body if "video_url" in body or body.get("status") == "failed" else None

        return eventually(ended, timeout=timeout, what=f"task {task_id} ended", every=0.005)

    def close(self) -> None:
        """Close the session."""
        self.session.close()


@dataclass
class Received:
    """One webhook post the receiver got."""

    path: str
    headers: dict[str, str]
    body: Any
    time: float


@dataclass
class WebhookReceiver:
    """A loopback HTTP server recording POSTs; ``fail_next`` answers that many with 500."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        """The JSON bodies received so far."""
        with self.lock:
            return [r.body for r in self.received]

    def posts(self) -> list[Received]:
        """The posts received so far (a copy)."""
        with self.lock:
            return list(self.received)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """Wait until ``predicate(received)`` holds; returns the posts so far."""

        def met() -> tuple[list[Received]] | None:
            seen = self.posts()
            return (seen,) if predicate(seen) else None  # a tuple: true even when seen is []

        try:
            (seen,) = eventually(met, timeout=timeout, every=0.01)
        except AssertionError:
            raise AssertionError(f"webhook condition not met; got {self.bodies()}") from None
        return seen
