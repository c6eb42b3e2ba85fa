"""The jobs layer: Job, waiting, the watcher thread, the journal and the webhook receiver.

Importing it fills the client's borrowed services (:mod:`luma_nb.api.hooks`): a submit returns a
:class:`~luma_nb.Job`, a new client gets its journal as an event subscriber, and
``client.resume()`` reads the journal.
"""

from __future__ import annotations

from typing import Any

from ..api import hooks as _hooks
from .job import Job as _Job


# The journal (SQLite) loads with the first client, not with ``import luma_nb``.
def _setup_client(client: Any, journal: Any) -> None:
    from .recording import setup_client

    setup_client(client, journal)


def _resume_jobs(client: Any) -> list[Any]:
    from .recording import resume_jobs

    return list(resume_jobs(client))


_hooks.make_job.fill(_Job)
_hooks.setup_client.fill(_setup_client)
_hooks.resume_jobs.fill(_resume_jobs)
