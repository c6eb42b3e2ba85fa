"""Helpers for the measures that need a running sandbox (kept apart from the sandbox itself)."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ("FETCH_PATHS", "SandboxProcess", "fetches", "missing")

#: The paths a client polls on.
FETCH_PATHS = ("/fetch", "/fetch-many")


def missing(*modules_and_names: str) -> str | None:
    """What is not there yet among ``module`` or ``module:attribute`` specs, or None."""
    absent = []
    for spec in modules_and_names:
        module_name, _, attribute = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            absent.append(f"{module_name} ({exc})")
            continue
        if attribute and not hasattr(module, attribute):
            absent.append(f"{module_name}.{attribute}")
    return ", ".join(absent) if absent else None


def fetches(sandbox: Any) -> int:
    """Polling requests the sandbox has received so far."""
    return sum(sandbox.count(path) for path in FETCH_PATHS)


class SandboxProcess:
    """The sandbox in a child process at the lowest CPU priority (``nice 19``).

    It stands in for the remote service: its request handling and video synthesis then do not
    compete with the process being measured, as a remote service would not.
    """

    def __init__(
        self,
        speed: float,
        *,
        nice: int = 19,
        credits: str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.speed = speed
        self.nice = nice
        self.credits = credits
        self.options = tuple(options)
        """More of the sandbox's command-line options (``--max-running 10``)."""
        self.base_url = ""
        self.api_key = "sandbox-demo-key"
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        command = [
            sys.executable,
            "-m",
            "luma_nb.sandbox",
            "--port",
            "0",
            "--speed",
            str(self.speed),
            *(("--credits", self.credits) if self.credits else ()),
            *self.options,
        ]
        if shutil.which("nice"):
            command = ["nice", "-n", str(self.nice), *command]
        self._proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in self._proc.stdout:
            found = re.search(r"running at (http://\S+)", line)
            if found:
                self.base_url = found.group(1)
                break
            if time.monotonic() > deadline:
                break
        if not self.base_url:
            self.__exit__()
            raise RuntimeError("the sandbox process did not start")
        # Keep reading its output so a full pipe never blocks it.
        threading.Thread(target=self._proc.stdout.read, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
