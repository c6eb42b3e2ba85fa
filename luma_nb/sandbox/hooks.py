"""Webhook delivery: a background sender with retries, and the ticker that notices changes.

Statuses are computed lazily, so nothing would notice a task moving on while nobody fetches it.
The :class:`Ticker` looks at webhook-enabled tasks a few times a second, and only while one of
them is still in flight. The :class:`WebhookSender` posts in order from its own thread, so a slow
receiver never blocks the API. Only loopback receivers are contacted.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._net import is_loopback_url, loopback_post

__all__ = ("Delivery", "Ticker", "WebhookSender")

log = logging.getLogger("luma_nb.sandbox")


@dataclass
class Delivery:
    """One webhook call, as the sandbox made (or skipped) it."""

    url: str
    """Where it went."""
    body: dict[str, Any]
    """The fetch-shaped body."""
    attempts: int = 0
    """How many times it was posted (1 + retries)."""
    status: int | None = None
    """The HTTP status of the last attempt, if any answer came."""
    error: str | None = None
    """Why the last attempt failed, or why it was skipped."""
    delivered: bool = False
    """True once a 2xx answer came."""
    times: list[float] = field(default_factory=list)
    """``time.monotonic()`` of each attempt."""


class WebhookSender:
    """Posts webhook bodies in order from one daemon thread, retrying failures."""

    def __init__(
        self,
        *,
        retries: int = 3,
        backoff: tuple[float, ...] = (0.2, 0.5, 1.0),
        timeout: float = 5.0,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[Delivery, str | None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0

    def send(self, url: str, secret: str | None, body: dict[str, Any]) -> None:
        """Queue one webhook (non-loopback URLs are logged and skipped, never contacted)."""
        delivery = Delivery(url=url, body=body)
        with self._guard:
            self.deliveries.append(delivery)
            if not is_loopback_url(url):
                delivery.error = "not delivered: the sandbox only calls loopback webhook URLs"
                log.info("sandbox: webhook to %s skipped (not a loopback address)", url)
                return
            if self._stop.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="luma-sandbox-webhooks", daemon=True
                )
                self._thread.start()
        with self._idle:
            self._pending += 1
        self._queue.put((delivery, secret))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook was delivered or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending (queued webhooks are dropped) and join the thread."""
        self._stop.set()
        with self._guard:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                self._deliver(*item)
            except Exception as exc:  # one bad delivery must not stop every later one
                item[0].error = f"not delivered: {type(exc).__name__}: {exc}"
                log.warning("sandbox: webhook to %s failed: %s", item[0].url, item[0].error)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, delivery: Delivery, secret: str | None) -> None:
        data = json.dumps(delivery.body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "luma_nb-sandbox"}
        if secret is not None:
            headers["x-webhook-secret"] = secret
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff[min(attempt - 1, len(self.backoff) - 1)]
                if self._stop.wait(pause):
                    return
            delivery.attempts += 1
            delivery.times.append(time.monotonic())
            try:
                delivery.status = loopback_post(delivery.url, data, headers, timeout=self.timeout)
            except OSError as exc:
                delivery.status = getattr(exc, "code", None)
                delivery.error = str(exc)
                continue
            delivery.delivered, delivery.error = True, None
            return
        log.info(
            "sandbox: webhook to %s failed after %d attempts: %s",
            delivery.url,
            delivery.attempts,
            delivery.error,
        )


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds while it returns True; sleeps otherwise."""

    def __init__(self, tick: Callable[[], bool], *, interval: float = 0.02) -> None:
        self._tick = tick
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def wake(self) -> None:
        """Start ticking (a webhook-enabled task was submitted)."""
        with self._guard:
            if self._stop.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="luma-sandbox-ticker", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking and join the thread."""
        self._stop.set()
        self._wake.set()
        with self._guard:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                try:
                    busy = self._tick()
                except Exception:
                    log.exception("sandbox: webhook ticker failed")
                    busy = False
                if not busy:
                    break
                self._stop.wait(self._interval)
