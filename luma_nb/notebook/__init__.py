"""The notebook layer: display, media and widgets (the only code importing IPython/ipywidgets).

Importing it fills the rendering slots of :mod:`luma_nb.contract.rendering`, so ``Task`` and
``Job`` display themselves (HTML, video, live progress). Nothing heavy loads here: IPython and
ipywidgets are imported when something is first shown.
"""

from __future__ import annotations

from typing import Any

from ..contract import rendering as _rendering
from .display import task_html as _task_html


def _video(source: Any, **options: Any) -> Any:
    from .media import video

    return video(source, **options)


def _job_bundle(job: Any) -> dict[str, Any]:
    from .showing import job_bundle

    return job_bundle(job)


def _job_show(job: Any, *, wait: bool | None = None, timeout: float = 1800) -> None:
    from .showing import show

    show(job, wait=wait, timeout=timeout)


_rendering.task_html.fill(_task_html)
_rendering.video.fill(_video)
_rendering.job_bundle.fill(_job_bundle)
_rendering.job_show.fill(_job_show)
