"""Late-bound services: a lower layer names what it needs, a higher layer fills it in.

This is how the arrows stay one-way while the public objects keep their conveniences: a
:class:`~luma_nb.Task` asks the notebook layer for its HTML through a slot, a client asks the
jobs layer to wrap a submitted task in a :class:`~luma_nb.Job`. The package ``__init__``
imports every layer, so the slots are filled before user code runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import LumaError

__all__ = ("Slot",)

F = TypeVar("F", bound=Callable[..., Any])


class Slot(Generic[F]):
    """One service, filled once by the layer that owns it; calling it calls that service."""

    def __init__(self, name: str, owner: str) -> None:
        self.name = name
        self.owner = owner
        self._service: F | None = None

    @property
    def filled(self) -> bool:
        """True once a service was filled in."""
        return self._service is not None

    def fill(self, service: F) -> F:
        """Use ``service`` from now on (the last fill wins, so tests may swap it)."""
        self._service = service
        return service

    @property
    def service(self) -> F:
        """The filled-in service; raises :class:`LumaError` when its layer was not loaded."""
        if self._service is None:
            raise LumaError(f"{self.name} needs {self.owner}; import luma_nb to load it.")
        return self._service

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.service(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Slot {self.name} ({'filled' if self.filled else 'empty'})>"
