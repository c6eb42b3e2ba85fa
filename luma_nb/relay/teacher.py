"""The teacher's hands on a running class: pause, budgets, approve mode, uncertain submits.

:class:`Teacher` is what the dashboard (and a script) calls; everything it changes is in the
store, so it holds across restarts and across relay processes sharing the class database.
:meth:`Teacher.snapshot` is the class as the dashboard shows it, from the store only (never
from the upstream), with no token or key in it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .settings import (
    budget_view,
    budgets_for,
    read_settings,
    set_approve,
    set_class_budget,
    set_class_paused,
    set_student_budget,
)
from .store import Budgets, Controls, RelayStore, Student

__all__ = ("APPROVAL_NOTE", "PAUSED_CLASS", "PAUSED_STUDENT", "Admission", "Outcome", "Teacher")

#: The note a held submit's fetches carry (shown by the progress view beside ``pending``).
APPROVAL_NOTE = "waiting for your teacher's approval"
PAUSED_CLASS = (
    "Your teacher paused submits for the whole class. Nothing was sent or charged; your "
    "videos can still be fetched. Try again when your teacher resumes the class."
)
PAUSED_STUDENT = (
    "Your teacher paused your submits. Nothing was sent or charged; your videos can still be "
    "fetched. Try again when your teacher resumes you."
)
_KINDS = {"/luma-extend": "luma-ext", "/luma-imagine": "luma"}


@dataclass(frozen=True)
class Outcome:
    """What one of the teacher's actions did: ``ok``, and a sentence for the page."""

    ok: bool
    message: str
    task_id: str | None = None


@dataclass(frozen=True)
class Admission:
    """What a student's submit meets: the teacher's pause, the budgets, approve mode."""

    paused: str | None
    """Why the student may not submit now (the teacher paused them or the class), or None."""
    budgets: Budgets
    """The budgets the submit is checked against."""
    approve: bool
    """Approve mode: the submit waits for the teacher's approval."""


@dataclass
class Teacher:
    """The teacher's controls of one class.

    Parameters:
        store: the class's store.
        defaults: the relay's start-up budgets (until the teacher sets others).
        forward: sends one submit upstream, once, or puts it in the class's queue; the
            relay's own (returns a Forwarded).
        watch: hands a task to the class's poller.
        max_running: the class's limit of jobs running upstream at once (None: none).
    """

    store: RelayStore
    defaults: Budgets
    forward: Callable[[str, dict[str, Any], int], Awaitable[Any]]
    watch: Callable[[str], None]
    max_running: int | None = None
    refusals: dict[str, tuple[float, str]] = field(default_factory=dict)
    """The last refusal the relay gave each student (by name), in this process."""
    on_queue_change: Callable[[], None] = lambda: None
    """Called when the teacher changed the class's queue (the relay's dispatcher looks)."""

    # -- what a submit meets ---------------------------------------------------------------

    def admission(self, student: Student) -> Admission:
        """What ``student``'s next submit meets, in two reads of the store (the class's
        settings, the student's controls)."""
        meta = self.store.meta()
        own = self.store.controls_of(student)
        switches = read_settings(self.store, meta)
        paused = PAUSED_CLASS if switches.paused else PAUSED_STUDENT if own.paused else None
        budgets = budgets_for(self.store, student, self.defaults, meta, own)
        return Admission(paused, budgets, switches.approve)

    def budgets(self, student: Student) -> Budgets:
        """The budgets ``student``'s next submit is checked against."""
        return budgets_for(self.store, student, self.defaults)

    def remaining(self, student: Student) -> float | None:
        """The credits ``student`` may still spend (the smaller of both budgets)."""
        budgets = self.budgets(student)
        lefts = []
        if budgets.student_budget is not None:
            lefts.append(budgets.student_budget - self.store.spent(student))
        if budgets.class_budget is not None:
            lefts.append(budgets.class_budget - self.store.spent())
        return max(0.0, min(lefts)) if lefts else None

    def refused(self, student: Student, message: str) -> None:
        """Remember the last refusal, for the teacher's table."""
        self.refusals[student.name] = (time.time(), message)

    def hold(self, submit_id: int, endpoint: str) -> str:
        """Keep a reserved submit for approval; the relay-made task id the student gets."""
        task_id = str(uuid.uuid4())
        body = {
            "task_id": task_id,
            "task_type": _KINDS.get(endpoint),
            "status": "pending",
            "progress_note": APPROVAL_NOTE,
        }
        self.store.hold(submit_id, task_id, body)
        return task_id

    # -- the teacher's actions -------------------------------------------------------------

    def pause(self, paused: bool, name: str | None = None) -> Outcome:
        """Pause (or resume) the class, or one student by ``name``."""
        word = "paused" if paused else "resumed"
        if name is None:
            set_class_paused(self.store, paused)
            if not paused:
                self._forget_refusals(PAUSED_CLASS)
            return Outcome(True, f"The class is {word}.")
        if not self.store.set_paused(name, paused):
            return Outcome(False, f"There is no student named {name!r}.")
        if not paused:
            self._forget_refusals(PAUSED_STUDENT, name)
        return Outcome(True, f"{name} is {word}.")

    def _forget_refusals(self, message: str, name: str | None = None) -> None:
        """A pause that ended is no error of a student's any more (their last one goes)."""
        for who, (_, said) in list(self.refusals.items()):
            if said == message and name in (None, who):
                del self.refusals[who]

    def set_budget(self, scope: str, budget: float | None, name: str | None = None) -> Outcome:
        """Set a budget: ``scope`` is ``class``, ``student`` (each student's) or ``one``
        (the student ``name``'s own; None gives them the class's rule again)."""
        text = "no limit" if budget is None else f"{budget:g} credits"
        try:
            if scope == "class":
                set_class_budget(self.store, budget)
                return Outcome(True, f"The class budget is {text}.")
            if scope == "student":
                set_student_budget(self.store, budget)
                return Outcome(True, f"Each student's budget is {text}.")
        except ValueError as error:
            return Outcome(False, str(error))
        if scope != "one" or not name:
            return Outcome(False, "Choose the class, every student, or one student.")
        if budget is not None and not (budget >= 0 and budget != float("inf")):
            return Outcome(False, "A budget is a number of credits, 0 or more.")
        if not self.store.set_budget(name, budget):
            return Outcome(False, f"There is no student named {name!r}.")
        own = "the class's rule" if budget is None else text
        return Outcome(True, f"{name}'s budget is {own}.")

    def approve_mode(self, on: bool) -> Outcome:
        """Turn approve mode on or off."""
        set_approve(self.store, on)
        return Outcome(True, "Approve mode is " + ("on." if on else "off."))

    async def approve(self, submit_id: int) -> Outcome:
        """Forward a held submit (once); its student's task id maps to the upstream task."""
        record = await asyncio.get_running_loop().run_in_executor(
            None, self.store.take_held, submit_id
        )
        if record is None:
            return Outcome(False, f"Submit #{submit_id} is not waiting for approval.")
        result = await self.forward(record.endpoint, dict(record.request), submit_id)
        if result.task_id is None:
            return Outcome(False, f"Submit #{submit_id} was not accepted: {result.message}")
        if result.queued:
            return Outcome(
                True,
                f"Submit #{submit_id} of {record.student} waits in the class's queue.",
                result.task_id,
            )
        self.watch(result.task_id)
        return Outcome(True, f"Submit #{submit_id} of {record.student} was sent.", result.task_id)

    def cancel(self, submit_id: int) -> Outcome:
        """Take a submit out of the class's queue: it fails for its student, its credits are
        released."""
        text = "Your teacher cancelled this submit while it waited in the class's queue."
        if not self.store.cancel_queued(submit_id, text):
            return Outcome(False, f"Submit #{submit_id} is not waiting in the queue.")
        self.on_queue_change()
        return Outcome(True, f"Submit #{submit_id} was taken out of the queue.")

    def reject(self, submit_id: int, reason: str) -> Outcome:
        """Refuse a held submit: it fails with the reason, its credits are released."""
        reason = " ".join(reason.split())[:300]
        text = "Your teacher did not approve this prompt" + (f": {reason}" if reason else ".")
        if not self.store.reject(submit_id, text):
            return Outcome(False, f"Submit #{submit_id} is not waiting for approval.")
        return Outcome(True, f"Submit #{submit_id} was rejected.")

    def resolve(self, submit_id: int, task_id: str | None) -> Outcome:
        """Settle an uncertain submit: the task it made (charged, watched), or None when it
        never ran (credits released)."""
        if task_id is not None:
            task_id = task_id.strip()
            if not task_id or len(task_id) > 200 or any(c.isspace() for c in task_id):
                return Outcome(False, "Give the task id exactly as the provider shows it.")
            reason = f"the teacher found its task {task_id}"
        else:
            reason = "the teacher found it never ran"
        if not self.store.resolve(submit_id, task_id, reason):
            return Outcome(False, f"Submit #{submit_id} is not uncertain.")
        if task_id is not None:
            self.watch(self.store.upstream_of(task_id) or task_id)
            return Outcome(True, f"Submit #{submit_id} is charged as task {task_id}.")
        return Outcome(True, f"Submit #{submit_id}'s credits are released.")

    def hide(self, task_id: str, hidden: bool) -> Outcome:
        """Hide a video from the class gallery (or show it again)."""
        if not self.store.set_hidden(task_id, hidden):
            return Outcome(False, "There is no such video.")
        return Outcome(True, "The video is " + ("hidden." if hidden else "shown again."))

    # -- what the dashboard shows ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The class now: settings, one row per student, held, queued and uncertain submits,
        and the gallery's finished videos. Names and prompts are as typed (escape them to show)."""
        store = self.store
        settings = read_settings(store)
        view = budget_view(store, self.defaults)
        budgets = view.budgets
        controls = store.controls()
        spent_class = store.spent()
        tasks = store.class_tasks()
        submits = store.submits()
        # Held for approval or queued at the relay: waiting, not running upstream.
        held = {s.task_id for s in submits if s.state in ("held", "queued")}
        rows = []
        for student in store.students():
            own = controls.get(student.name, Controls())
            mine = [t for t in tasks if t.student == student.name and t.task_id not in held]
            used = store.spent(student)
            budget = own.budget if own.budget is not None else budgets.student_budget
            lefts = [] if budget is None else [budget - used]
            if budgets.class_budget is not None:
                lefts.append(budgets.class_budget - spent_class)
            rows.append(
                {
                    "name": student.name,
                    "revoked": student.revoked,
                    "paused": own.paused,
                    "own_budget": own.budget,
                    "budget": budget,
                    "used": used,
                    "left": max(0.0, min(lefts)) if lefts else None,
                    "held": sum(
                        1
                        for s in submits
                        if s.student == student.name and s.state in ("held", "queued")
                    ),
                    "running": sum(1 for t in mine if t.status not in ("finished", "failed")),
                    "finished": sum(1 for t in mine if t.status == "finished"),
                    "failed": sum(1 for t in mine if t.status == "failed"),
                    "last_error": self._last_error(student.name, tasks, submits),
                }
            )
        _, items = store.gallery()
        order = {t.task_id: n for n, t in enumerate(tasks)}  # stable: by submit, not by change
        return {
            "class_paused": settings.paused,
            "approve": settings.approve,
            "class_budget": budgets.class_budget,
            "student_budget": budgets.student_budget,
            "class_budget_from": view.class_from,
            "student_budget_from": view.student_from,
            "spent": spent_class,
            "students": rows,
            "held": [_submit(s) for s in submits if s.state == "held"],
            "queue": [
                _submit(s) | {"position": n}
                for n, s in enumerate((s for s in submits if s.state == "queued"), 1)
            ],
            "max_running": self.max_running,
            "running": store.running(),
            "uncertain": [
                _submit(s) | {"note": s.note or ""} for s in submits if s.state == "uncertain"
            ],
            "gallery": [
                {
                    "task_id": i.task_id,
                    "student": i.student,
                    "prompt": i.prompt,
                    "video_url": i.video_url,
                    "hidden": i.hidden,
                    "shared": i.shared,
                }
                for i in sorted(items, key=lambda i: order.get(i.task_id, 0))
                if i.finished and i.video_url
            ],
        }

    def _last_error(self, name: str, tasks: list[Any], submits: list[Any]) -> str:
        found: list[tuple[float, str]] = []
        found += [
            (t.updated, t.error or "failed")
            for t in tasks
            if t.student == name and t.status == "failed"
        ]
        found += [
            (s.created, s.note or s.state)
            for s in submits
            if s.student == name and s.state in ("refused", "uncertain") and s.note
        ]
        if name in self.refusals:
            found.append(self.refusals[name])
        return max(found)[1] if found else ""


def _submit(record: Any) -> dict[str, Any]:
    prompt = record.request.get("prompt") if isinstance(record.request, dict) else None
    return {
        "submit_id": record.id,
        "student": record.student,
        "endpoint": record.endpoint,
        "prompt": prompt if isinstance(prompt, str) else "",
        "task_id": record.task_id,
        "cost": record.cost,
    }
