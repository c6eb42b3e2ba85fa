"""Faults survived, against a real sandbox over HTTP: what the user sees, what the journal keeps.

Each wait-time fault is injected after the task is already finished at the sandbox, so the
number of fetches is exact: the faulted ones, then the one that sees the finished task.
(A download cut halfway belongs to the media tests.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from luma_nb import (
    ServerError,
    SubmitUncertainError,
    TaskFailedError,
    WaitTimeout,
)


def finished_job(sandbox, client, prompt="a quiet harbour"):
    """A fresh job whose task is already finished at the sandbox (nothing fetched yet)."""
    job = client.extend(sandbox.demo_parents[0].task_id, prompt)
    sandbox.complete(job.task_id)
    sandbox.clear_requests()
    return job


def fetches(sandbox):
    return [r for r in sandbox.requests if r.path == "/fetch"]


@pytest.mark.parametrize(
    ("kind", "times", "extra"),
    [
        ("500", 2, {}),
        ("502", 2, {}),  # an HTML page, not JSON
        ("503", 3, {"retry_after": 0.05}),
        ("reset", 2, {}),  # the connection is closed under the request
        ("malformed", 2, {}),  # 200 with broken JSON
    ],
)
def test_transient_fetch_faults_are_retried_until_the_task_is_seen(
    sandbox, kind, times, extra, make_client
):
    client = make_client(sandbox)
    job = finished_job(sandbox, client)
    sandbox.faults.add(path="/fetch", kind=kind, times=times, **extra)
    task = job.wait(timeout=30)
    assert task.is_finished and task.video_url
    assert len(fetches(sandbox)) == times + 1
    assert client.journal.entries()[0].status == "finished"


def test_429_retry_after_is_honoured(sandbox, make_client):
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the client's injected sleep, on its injected clock
        slept.append(seconds)
        now[0] += seconds

    client = make_client(sandbox, clock=lambda: now[0], sleep=sleep)
    job = finished_job(sandbox, client)
    sandbox.faults.add(path="/fetch", kind="429", times=4, retry_after=7)
    assert job.wait(timeout=30).is_finished
    *limited, ok = fetches(sandbox)
    assert [r.status for r in limited] == [429] * 4 and ok.status == 200
    # One poll interval before the first look, then the service's 7 s before each retry.
    assert slept == pytest.approx([0.02, 7.0, 7.0, 7.0, 7.0])


def test_read_timeout_is_retried(sandbox, make_client):
    client = make_client(sandbox, timeout=0.3)
    job = finished_job(sandbox, client)
    sandbox.faults.add(path="/fetch", kind="slow", times=1, seconds=1.5)
    assert job.wait(timeout=30).is_finished
    assert len(fetches(sandbox)) == 2


def test_errors_past_the_deadline_end_in_a_clear_timeout(sandbox, make_client):
    client = make_client(sandbox)
    job = finished_job(sandbox, client)
    sandbox.faults.add(path="/fetch", kind="502", times=None)
    with pytest.raises(WaitTimeout) as caught:
        job.wait(timeout=0.5)
    assert caught.value.task_id == job.task_id
    assert job.task_id in str(caught.value) and "keeps running" in str(caught.value)
    assert len(fetches(sandbox)) >= 2  # it kept trying until the deadline
    sandbox.faults.clear()
    assert [j.task_id for j in client.resume()] == [job.task_id]


def test_stuck_task_times_out_naming_task_and_status_and_stays_unfinished(sandbox, make_client):
    client = make_client(sandbox)
    sandbox.faults.next_task(stall=True)
    job = client.imagine("a clock with no hands")
    with pytest.raises(WaitTimeout) as caught:
        job.wait(timeout=1.0)
    error = caught.value
    assert error.task_id == job.task_id and error.last_status == "processing"
    assert job.task_id in str(error) and "processing" in str(error)
    (entry,) = client.journal.unfinished()
    assert entry.task_id == job.task_id and entry.status == "processing"
    assert [j.task_id for j in make_client(sandbox).resume()] == [job.task_id]


def test_failed_task_raises_with_its_reason_and_the_journal_says_failed(sandbox, make_client):
    client = make_client(sandbox)
    sandbox.faults.next_task(fail="GPU quota exceeded")
    job = client.imagine("a doomed comet")
    with pytest.raises(TaskFailedError) as caught:
        job.wait(timeout=30)
    assert str(caught.value) == f"Task {job.task_id} failed: GPU quota exceeded"
    assert caught.value.task.error == "GPU quota exceeded"
    (entry,) = client.journal.entries()
    assert entry.status == "failed" and entry.error == "GPU quota exceeded"
    assert client.journal.unfinished() == []


def test_unknown_status_is_shown_as_it_came_and_polling_goes_on(sandbox, make_client):
    client = make_client(sandbox)
    sandbox.faults.next_task(unknown_status="Queued_For_GPU")
    job = client.imagine("a patient robot")
    seen = []
    task = job.wait(timeout=30, on_progress=seen.append)
    assert task.is_finished
    odd = [t for t in seen if not t.is_known_status]
    assert odd and odd[0].status == "queued_for_gpu" and odd[0].describe() == "queued_for_gpu"
    assert odd[0].raw["status"] == "Queued_For_GPU"
    assert seen.index(odd[0]) < len(seen) - 1  # it went on polling after it


def test_lost_submit_answer_is_uncertain_sent_once_and_recorded(sandbox, make_client):
    client = make_client(sandbox)
    parent = sandbox.demo_parents[1].task_id
    credits = sandbox.credits
    sandbox.faults.add(path="/luma-extend", kind="drop")
    with pytest.raises(SubmitUncertainError) as caught:
        client.extend(parent, "the answer never comes", aspect_ratio="16:9")
    message = str(caught.value)
    assert "sent but its answer was lost" in message and "did not send it again" in message
    assert "luma_nb.history()" in message
    assert sandbox.count("/luma-extend") == 1
    # The sandbox really created (and charged) the job.
    assert sandbox.credits == credits - 6
    (created,) = sandbox.task_ids
    assert sandbox.task(created)["prompt"] == "the answer never comes"
    (entry,) = client.journal.uncertain()
    assert caught.value.journal_id == entry.id
    assert entry.request["prompt"] == "the answer never comes"
    assert entry.request["parent_task_id"] == parent and entry.request["aspect_ratio"] == "16:9"
    assert entry.task_id is None and "may have been charged" in entry.explanation
    assert client.resume() == []  # nothing to wait for, nothing resent
    assert sandbox.count("/luma-extend") == 1


def test_reset_submit_is_uncertain_too_even_though_nothing_was_created(sandbox, make_client):
    client = make_client(sandbox)
    credits = sandbox.credits
    sandbox.faults.add(path="/luma-imagine", kind="reset")
    with pytest.raises(SubmitUncertainError):
        client.imagine("cut before processing")
    # The client cannot tell a reset from a lost answer: it never guesses, never resends.
    assert sandbox.count("/luma-imagine") == 1 and sandbox.credits == credits
    assert len(client.journal.uncertain()) == 1


def test_server_error_on_submit_is_rejected_not_resent(sandbox, make_client):
    client = make_client(sandbox)
    sandbox.faults.add(path="/luma-imagine", kind="500")
    with pytest.raises(ServerError):
        client.imagine("refused")
    assert sandbox.count("/luma-imagine") == 1
    (entry,) = client.journal.entries()
    assert entry.state == "rejected" and "HTTP 500" in (entry.reason or "")


_KERNEL = textwrap.dedent(
    """
    import sys
    from luma_nb import FixedPolicy, LumaClient
    base_url, key, parent = sys.argv[1:4]
    client = LumaClient(key, base_url=base_url, poll=FixedPolicy(60))
    job = client.extend(parent, "a kernel that dies mid-job")
    print(job.task_id, flush=True)
    job.wait(timeout=600)  # the kernel is busy waiting when it is killed
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kernel_killed_mid_job_then_resume_gets_the_finished_task(
    sandbox, _luma_nb_home, make_client
):
    parent = sandbox.demo_parents[0].task_id
    env = {**os.environ, "LUMA_NB_HOME": str(_luma_nb_home)}
    kernel = subprocess.Popen(
        [sys.executable, "-c", _KERNEL, sandbox.base_url, sandbox.api_key, parent],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert kernel.stdout is not None
        task_id = kernel.stdout.readline().strip()
        assert task_id, kernel.stderr.read() if kernel.stderr else ""
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
    assert kernel.returncode == -signal.SIGKILL

    client = make_client(sandbox)  # the new kernel
    (job,) = client.resume()
    assert job.task_id == task_id and job.prompt == "a kernel that dies mid-job"
    assert job.parent_task_id == parent
    task = job.wait(timeout=30)
    assert task.is_finished and task.video_url
    assert sandbox.count("/luma-extend") == 1  # resumed, never resubmitted
    assert client.journal.entries()[0].status == "finished"
    assert client.resume() == []
