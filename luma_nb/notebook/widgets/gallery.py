"""Gallery: many jobs side by side, each with its own live progress and video."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...client.watcher import DEFAULT_TIMEOUT, Watcher
from ..display import job_html
from .progress import ProgressView

if TYPE_CHECKING:
    from ...client.job import Job
    from ...contract.models import Task

__all__ = ("Gallery",)


class Gallery(widgets.GridBox):  # type: ignore[misc]
    """A grid of :class:`ProgressView` s, for batches such as ``client.extend_many(...)``.

    Parameters:
        jobs: the jobs (or one job).
        columns: views per row.
        video_width: width of each player in pixels.
        timeout: seconds each job is watched.
    """

    def __init__(
        self,
        jobs: Job | Iterable[Job],
        *,
        columns: int = 3,
        video_width: int = 300,
        timeout: float = DEFAULT_TIMEOUT,
        watcher: Watcher | None = None,
        **kwargs: Any,
    ) -> None:
        from ...client.job import Job

        self.jobs: list[Job] = [jobs] if isinstance(jobs, Job) else list(jobs)
        self._view_options: dict[str, Any] = {
            "video_width": video_width,
            "timeout": timeout,
            "watcher": watcher,
        }
        self.views = [ProgressView(job, **self._view_options) for job in self.jobs]
        layout = widgets.Layout(
            grid_template_columns=f"repeat({max(1, int(columns))}, minmax(0, 1fr))",
            grid_gap="12px",
        )
        super().__init__(children=self.views, layout=layout, **kwargs)

    def add(self, job: Job) -> ProgressView:
        """Append ``job`` (e.g. ``form.on_submit(gallery.add)``); returns its new view."""
        view = ProgressView(job, **self._view_options)
        self.jobs.append(job)
        self.views.append(view)
        self.children = (*self.views,)
        return view

    @property
    def value(self) -> list[Task | None]:
        """The last snapshot of every job, in order."""
        return [job.task for job in self.jobs]

    def wait(self, timeout: float | None = None) -> list[Task]:
        """Block until every job ended; the finished tasks (raises the first failure)."""
        return [view.watch.wait(timeout) for view in self.views]

    async def wait_async(self) -> list[Task]:
        """Await every job without polling; the finished tasks (raises the first failure)."""
        return [await view.watch for view in self.views]

    def __repr__(self) -> str:
        return f"Gallery({len(self.jobs)} jobs)"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:
            return None
        data["text/plain"] = repr(self)
        data["text/html"] = "".join(job_html(job, width=300) for job in self.jobs) or (
            "<div><em>Gallery: no jobs yet.</em> Jobs added while the notebook runs appear "
            "here, each with its progress and video.</div>"
        )
        return dict(data)
