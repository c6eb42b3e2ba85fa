"""luma_nb: extend Luma AI video tasks from Jupyter, watch them live, play them inline."""

from __future__ import annotations

from ._version import __version__
from .client import LumaClient
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    LumaError,
    MissingAPIKeyError,
    RateLimitError,
    ServerError,
    SubmitUncertainError,
    TaskFailedError,
    TransportError,
    ValidationError,
    WaitTimeout,
)
from .jobs import Job
from .models import ASPECT_RATIOS, Account, Task
from .polling import DefaultPolicy, FixedPolicy

__all__ = (
    "ASPECT_RATIOS",
    "APIError",
    "Account",
    "AuthenticationError",
    "BadRequestError",
    "DefaultPolicy",
    "FixedPolicy",
    "InsufficientCreditsError",
    "Job",
    "LumaClient",
    "LumaError",
    "MissingAPIKeyError",
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
