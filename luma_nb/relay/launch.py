"""A rehearsal class: a relay in front of its own offline sandbox, started in one call.

A launcher, like ``luma-nb demo``: the one place of the relay that starts a sandbox (the
sandbox is a separate program; the relay itself only speaks HTTP to whatever upstream it has).
Used by ``luma-nb class serve --upstream sandbox`` and the class notebook.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ..contract.environment import environment
from ..contract.polling import DefaultPolicy
from .core import Relay

__all__ = ("Rehearsal", "rehearsal")


class Rehearsal:
    """A started :class:`Relay` (``relay``) and the sandbox behind it (``sandbox``)."""

    def __init__(self, relay: Relay, sandbox: Any) -> None:
        self.relay = relay
        self.sandbox = sandbox

    def stop(self) -> None:
        """Stop the relay, then the sandbox."""
        self.relay.stop()
        self.sandbox.stop()

    def __enter__(self) -> Rehearsal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Rehearsal {self.relay!r} upstream=sandbox>"


def rehearsal(*, speed: float | None = None, **options: Any) -> Rehearsal:
    """Start a sandbox (``speed``, else ``LUMA_NB_SANDBOX_SPEED``, else 10) and a relay on it.

    ``options`` go to :class:`Relay` (``db``, ``class_name``, budgets, ``host``, ``port``...).
    The sandbox's ready-made parent videos are published to the class, so students can extend
    them at once. Unless ``poll`` is given, the class's poller paces itself at the sandbox's
    speed (:meth:`~luma_nb.DefaultPolicy.at_speed`), so the dashboard sees jobs move.
    """
    from ..sandbox import Sandbox

    if speed is None:
        speed = environment().speed(10.0)
    options.setdefault("poll", DefaultPolicy.at_speed(speed))
    sandbox = Sandbox(speed=speed).start()
    try:
        publish = [*options.pop("publish", ()), *(p.task_id for p in sandbox.demo_parents)]
        relay = Relay(sandbox.base_url, api_key=sandbox.api_key, publish=publish, **options)
        relay.start()
    except BaseException:
        sandbox.stop()
        raise
    return Rehearsal(relay, sandbox)
