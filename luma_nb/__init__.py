"""luma_nb: extend Luma AI video tasks from Jupyter, watch them live, play them inline."""

from __future__ import annotations

from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    LumaError,
    RateLimitError,
    ServerError,
    SubmitUncertainError,
    TaskFailedError,
    TransportError,
    ValidationError,
    WaitTimeout,
)
from .models import ASPECT_RATIOS, Account, Task

__all__ = (
    "ASPECT_RATIOS",
    "APIError",
    "Account",
    "AuthenticationError",
    "BadRequestError",
    "InsufficientCreditsError",
    "LumaError",
    "RateLimitError",
    "ServerError",
    "SubmitUncertainError",
    "Task",
    "TaskFailedError",
    "TransportError",
    "ValidationError",
    "WaitTimeout",
    "__version__",
)
