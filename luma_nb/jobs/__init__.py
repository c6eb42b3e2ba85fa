"""The jobs layer: Job, waiting, the watcher thread, the journal and the webhook receiver.

Importing it fills the client's borrowed services (:mod:`luma_nb.api.hooks`): a submit returns a
:class:`~luma_nb.Job`, a new client gets its journal as an event subscriber, and
``client.resume()`` reads the journal.
"""

from __future__ import annotations

from ..api import hooks as _hooks
from . import recording as _recording
from .job import Job as _Job

_hooks.make_job.fill(_Job)
_hooks.setup_client.fill(_recording.setup_client)
_hooks.resume_jobs.fill(_recording.resume_jobs)
