"""Relay processes for the tests: ``luma-nb class serve`` in a child process, on port 0.

``RelayProcess(upstream_url, api_key, db, *options)`` starts ``python -m luma_nb.cli class
serve --upstream URL --db DB --port 0 ...`` with the key in its environment, waits for the line
that gives its URL, and ``kill()`` (SIGKILL: a crash, leases left behind) or ``stop()``
(SIGTERM: a clean stop) ends it. Its output is kept for the test to check (``output()``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from typing import Any

from luma_nb.relay.core import POLLER_HEADER


class RelayProcess:
    """One ``luma-nb class serve`` child process."""

    def __init__(self, upstream_url: str, api_key: str, db: str, *options: str) -> None:
        env = dict(os.environ, APIFRAME_API_KEY=api_key, PYTHONUNBUFFERED="1")
        self._out = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        command = [
            sys.executable, "-m", "luma_nb.cli", "class", "serve",
            "--upstream", upstream_url, "--db", db, "--port", "0", *options,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._out, text=True, env=env
        )
        self.url = ""
        self._final = ""
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while not self.url:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the relay process did not start:\n{self.output()}")
            self.lines.append(line)
            found = re.search(r" on (http://\S+) ->", line)
            if found:
                self.url = found.group(1)
            if time.monotonic() > deadline:
                raise RuntimeError("the relay process took over 60 s to start")
        # Keep reading its stdout so it never blocks on a full pipe.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        """Everything it printed (stdout and stderr) so far."""
        if self._out.closed:
            return self._final
        self._out.seek(0)
        return "".join(self.lines) + self._out.read()

    def kill(self) -> None:
        """SIGKILL: the process dies at once, its leases stay in the database until they expire."""
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (a clean stop), or SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._out.closed:
            self._reader.join(10)
            self._final = self.output()
            self._out.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def polls_by_task(records: Iterable[Any]) -> dict[str, list[tuple[str, float]]]:
    """From a sandbox's request log: task id -> [(polling relay, arrival time)], in order.

    A poll is a ``/fetch`` or ``/fetch-many`` carrying the relay's poller header (students'
    requests go to their relay, never to the sandbox).
    """
    polls: dict[str, list[tuple[str, float]]] = {}
    for record in records:
        if record.path not in ("/fetch", "/fetch-many") or not isinstance(record.body, dict):
            continue
        holder = next(
            (v for k, v in record.headers.items() if k.lower() == POLLER_HEADER.lower()), None
        )
        if holder is None:
            continue
        ids = record.body.get("task_ids") or [record.body.get("task_id")]
        for task_id in ids:
            if isinstance(task_id, str):
                polls.setdefault(task_id, []).append((holder, record.time))
    return polls


def runs(holders: Iterable[str]) -> list[str]:
    """The holders in order with repeats collapsed: ``a a b b`` -> ``[a, b]``."""
    out: list[str] = []
    for holder in holders:
        if not out or out[-1] != holder:
            out.append(holder)
    return out
