"""The class's submit queue at the relay: submits the upstream cannot take now wait here.

A submit waits in line when the class has ``max_running`` jobs running upstream already (the
provider's plans limit generations running at once), when others wait before it, or when the
upstream refused it with 429 (the job was not accepted, so sending it later is safe; a 5xx, a
timeout or a lost answer is never sent again). Its student gets a relay-made task id at once,
and its fetches say ``pending`` with ``queued at the class relay: 4th in line``.

:class:`Dispatcher` is one thread per relay that forwards the line in arrival order as room
opens: when a running job ends (the poller sees it), when the upstream's ``Retry-After`` has
passed, and after a restart (the line is in the store). Relays sharing one database share one
line (see :mod:`luma_nb.relay.sql_queue`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .store import RelayStore, SubmitRecord

__all__ = ("DEFAULT_RETRY_AFTER", "Dispatcher")

log = logging.getLogger("luma_nb.relay")

#: Seconds the line waits after a 429 that did not say how long (no ``Retry-After``).
DEFAULT_RETRY_AFTER = 5.0
#: Seconds between two looks for room while nothing wakes the dispatcher (a job ending is
#: seen by the poller, possibly another relay's, so it is looked for).
_LOOK = 0.5


class Dispatcher:
    """Forwards queued submits, first in line first, while the class has room.

    Parameters:
        store: the class's store (where the line is).
        max_running: jobs the class may have running upstream at once (None: no limit).
        send: forwards one taken submit upstream, once (the relay's own); returns the task id
            to watch, or None (refused, uncertain, or back in line after another 429).
    """

    def __init__(
        self,
        store: RelayStore,
        max_running: int | None,
        send: Callable[[SubmitRecord], Any],
    ) -> None:
        if max_running is not None and max_running < 1:
            raise ValueError("max_running must be 1 or more, or None for no limit")
        self.store = store
        self.max_running = max_running
        self._send = send
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.forwarded = 0
        """Submits this dispatcher took from the line and sent upstream."""

    def start(self) -> None:
        """Start forwarding (the line kept in the store from before is forwarded too)."""
        self._thread = threading.Thread(target=self._run, name="luma-relay-queue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread (a submit being sent is sent to the end)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(60)

    def wake(self) -> None:
        """Look for room now (a submit joined the line, or the teacher changed it)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                record = self.store.next_queued(self.max_running)
            except Exception:  # the database may be away for a moment
                log.warning("relay: could not look at the class's queue", exc_info=True)
                record = None
            if record is None:
                self._wake.wait(_LOOK)
                self._wake.clear()
                continue
            try:
                self._send(record)
                self.forwarded += 1
            except Exception:  # never let the class's line stop
                log.exception("relay: forwarding a queued submit failed")
