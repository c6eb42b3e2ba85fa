"""luma_nb: extend Luma AI video tasks from Jupyter, watch them live, play them inline."""

from __future__ import annotations

# Inside a running IPython shell, importing the notebook layer registers how a Job is shown
# there (IPython's own display formatters); elsewhere it does nothing. It loads nothing heavy.
from . import notebook  # noqa: F401
from ._version import __version__
from .client.client import LumaClient
from .client.defaults import default_client, history, resume
from .client.job import Job
from .contract.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClassOnlyError,
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
from .contract.models import ASPECT_RATIOS, Account, Task
from .contract.polling import DefaultPolicy, FixedPolicy

# Notebook-facing names are imported on first use, so ``import luma_nb`` stays as light as
# ``import requests`` (ipywidgets and IPython load only when a widget or video is asked for).
_LAZY = {
    "ClassGallery": "luma_nb.notebook.widgets",
    "ExtendForm": "luma_nb.notebook.widgets",
    "Gallery": "luma_nb.notebook.widgets",
    "ProgressView": "luma_nb.notebook.widgets",
    "extend_form": "luma_nb.notebook.widgets",
    "storyboard": "luma_nb.notebook.widgets",
    "Journal": "luma_nb.client.journal",
    "class_gallery": "luma_nb.notebook.widgets",
    "show": "luma_nb.notebook.showing",
    "video": "luma_nb.notebook.media",
}
#: Modules reachable as attributes (``from luma_nb import media``), loaded on first use.
_LAZY_MODULES = {"media": "luma_nb.notebook.media"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY_MODULES:
        value: object = importlib.import_module(_LAZY_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'luma_nb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))


__all__ = (
    "ASPECT_RATIOS",
    "APIError",
    "Account",
    "AuthenticationError",
    "BadRequestError",
    "ClassGallery",
    "ClassOnlyError",
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
    "class_gallery",
    "default_client",
    "extend_form",
    "history",
    "resume",
    "show",
    "storyboard",
    "video",
)
