"""The client: everything that talks to the service over time.

:class:`~luma_nb.client.client.LumaClient` sends requests (one choke point, typed errors, a
total deadline per exchange) and records paid submits in its journal; a submit returns a
:class:`~luma_nb.client.job.Job`, which waits for itself (``job.wait()``, ``await job``) or is
handed to the one background watcher thread (``job.watch()``). The webhook receiver and the
class gallery's feed live here too. Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

from .client import LumaClient
from .job import Job

__all__ = ("Job", "LumaClient")
