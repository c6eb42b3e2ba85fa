"""How tasks and jobs show themselves: slots the notebook layer fills (see :mod:`.slots`).

``Task._repr_html_``, ``Task.video()``, ``Job._repr_mimebundle_``, ``Job.video()`` and
``Job.show()`` call these, so the models know nothing of IPython, widgets or HTML layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .slots import Slot

__all__ = ("job_bundle", "job_show", "task_html", "video")

_OWNER = "the notebook layer (luma_nb.notebook)"

#: ``task_html(task) -> str``: the HTML of one snapshot.
task_html: Slot[Callable[[Any], str]] = Slot("Task display", _OWNER)
#: ``video(task_or_job, **options)``: an ``IPython.display.Video`` of the result.
video: Slot[Callable[..., Any]] = Slot("video()", _OWNER)
#: ``job_bundle(job) -> dict``: what a job shows as a cell's result.
job_bundle: Slot[Callable[[Any], dict[str, Any]]] = Slot("Job display", _OWNER)
#: ``job_show(job, wait=, timeout=)``: progress, then the video.
job_show: Slot[Callable[..., None]] = Slot("Job.show()", _OWNER)
