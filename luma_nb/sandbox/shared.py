"""One sandbox per process (per kernel) for demo mode, started lazily and stopped at exit."""

from __future__ import annotations

import atexit
import threading

from .core import Sandbox

__all__ = ("shared_sandbox",)

_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared_sandbox(*, speed: float = 8.0) -> Sandbox:
    """The process-wide sandbox, started on first use and stopped at interpreter exit.

    ``speed`` applies only to the call that starts it; at the default a job takes 8-40 s.
    Thread-safe: concurrent first calls start one sandbox.
    """
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = Sandbox(speed=speed).start()
            atexit.register(_shared.stop)
        return _shared
