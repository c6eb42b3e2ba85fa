"""luma_nb: extend Luma AI video tasks from Jupyter, watch them live, play them inline."""

from __future__ import annotations

from ._sync import run_sync
from ._version import __version__
from .client import LumaClient
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    JournalError,
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

# Notebook-facing names are imported on first use, so ``import luma_nb`` stays as light as
# ``import requests`` (ipywidgets and IPython load only when a widget or video is asked for).
_LAZY = {
    "ExtendForm": "luma_nb.widgets",
    "Gallery": "luma_nb.widgets",
    "ProgressView": "luma_nb.widgets",
    "extend_form": "luma_nb.widgets",
    "storyboard": "luma_nb.widgets",
    "default_client": "luma_nb.defaults",
    "Journal": "luma_nb.journal",
    "history": "luma_nb.journal",
    "resume": "luma_nb.journal",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'luma_nb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = (
    "ASPECT_RATIOS",
    "APIError",
    "Account",
    "AuthenticationError",
    "BadRequestError",
    "DefaultPolicy",
    "ExtendForm",
    "FixedPolicy",
    "Gallery",
    "InsufficientCreditsError",
    "Job",
    "Journal",
    "JournalError",
    "LumaClient",
    "LumaError",
    "MissingAPIKeyError",
    "ProgressView",
    "RateLimitError",
    "ServerError",
    "SubmitUncertainError",
    "Task",
    "TaskFailedError",
    "TransportError",
    "ValidationError",
    "WaitTimeout",
    "__version__",
    "default_client",
    "extend_form",
    "history",
    "resume",
    "run_sync",
    "storyboard",
)
