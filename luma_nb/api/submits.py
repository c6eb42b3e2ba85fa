"""The paid submits of :class:`~luma_nb.api.client.LumaClient`: extend, imagine, extend_many.

Every body is validated in full before anything is sent; the client's observers hear of each
submit before it leaves and of its outcome (see :mod:`luma_nb.api.hooks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..contract import validation as check
from ..contract.bodies import common_fields, extend_bodies, public
from ..contract.errors import ServerError, SubmitUncertainError
from ..contract.models import Task
from . import hooks
from .hooks import Submission

if TYPE_CHECKING:
    from ..jobs.job import Job

__all__ = ("Submits",)


class Submits:
    """The submit methods; mixed into the client, which provides ``_request`` and ``_emit``."""

    if TYPE_CHECKING:

        def _request(
            self,
            method: str,
            path: str,
            payload: Mapping[str, Any] | None = None,
            *,
            timeout: float | None = None,
        ) -> Any: ...

        def _emit(self, event: str, *args: Any) -> None: ...

    def extend(
        self,
        parent_task_id: str,
        prompt: str,
        *,
        image_url: str | None = None,
        end_image_url: str | None = None,
        enhance_prompt: bool = False,
        aspect_ratio: str = "1:1",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> Job:
        """Extend the video of task ``parent_task_id`` with ``prompt`` (``POST /luma-extend``).

        Costs credits. Raises :class:`ValidationError` before sending anything for bad input,
        :class:`SubmitUncertainError` if the answer was lost (never resent automatically).
        """
        payload = {"parent_task_id": check.task_id(parent_task_id, "parent_task_id")}
        payload.update(
            common_fields(
                prompt,
                image_url,
                end_image_url,
                enhance_prompt,
                aspect_ratio,
                webhook_url,
                webhook_secret,
            )
        )
        return self._submit("/luma-extend", payload)

    def imagine(
        self,
        prompt: str,
        *,
        image_url: str | None = None,
        end_image_url: str | None = None,
        enhance_prompt: bool = False,
        aspect_ratio: str = "1:1",
        loop: bool | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> Job:
        """Make a new video from ``prompt`` (``POST /luma-imagine``); a parent for extends."""
        payload = common_fields(
            prompt,
            image_url,
            end_image_url,
            enhance_prompt,
            aspect_ratio,
            webhook_url,
            webhook_secret,
        )
        if check.optional_flag(loop, "loop") is not None:
            payload["loop"] = loop
        return self._submit("/luma-imagine", payload)

    def extend_many(self, parent_task_id: str, prompts: Iterable[str], **options: Any) -> list[Job]:
        """Extend one parent with each prompt (one paid job each); for galleries of variations.

        Every prompt is validated before the first submit, so bad input costs nothing. A submit
        that fails stops the batch; the jobs already submitted are on the raised error's
        ``jobs`` attribute (and in the journal).
        """
        bodies = extend_bodies(parent_task_id, prompts, options)
        jobs: list[Job] = []
        for body in bodies:
            try:
                jobs.append(self._submit("/luma-extend", body))
            except Exception as error:
                error.jobs = jobs  # type: ignore[attr-defined]
                raise
        return jobs

    def _submit(self, path: str, payload: dict[str, Any]) -> Job:
        attempt = Submission(path, public(payload))
        self._emit("about_to_submit", attempt)
        try:
            body = self._request("POST", path, payload)
            task_id = body.get("task_id") if isinstance(body, Mapping) else None
            if not isinstance(task_id, str) or not task_id.strip():
                raise SubmitUncertainError(
                    path,
                    attempt.request,
                    ServerError(200, ["the answer carried no task_id"], endpoint=path),
                )
        except SubmitUncertainError as error:
            self._emit("answer_lost", attempt, str(error.cause or error), error)
            raise
        except Exception as error:
            # The service answered with a refusal, or nothing was sent (validation, no key).
            self._emit("refused", attempt, str(error))
            raise
        except BaseException as error:
            # Interrupted (Ctrl-C, kernel interrupt) while the request may have been on its way.
            reason = f"interrupted while submitting ({type(error).__name__})"
            self._emit("answer_lost", attempt, reason, None)
            raise
        attempt.task_id = task_id.strip()
        self._emit("submitted", attempt)
        kind = "luma-ext" if path == "/luma-extend" else "luma"
        task = Task(task_id=attempt.task_id, task_type=kind, status="pending", raw={})
        job: Job = hooks.make_job(
            self, attempt.task_id, task=task, request=attempt.request, fresh=True
        )
        return job
