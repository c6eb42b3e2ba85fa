"""The client against the real sandbox: the whole story, and the contract's quirks as served."""

from __future__ import annotations

import asyncio

import pytest
import requests

from luma_nb import (
    AuthenticationError,
    BadRequestError,
    LumaClient,
    RateLimitError,
    SubmitUncertainError,
)
from luma_nb.sandbox import Sandbox
from luma_nb.sandbox.video import probe


def test_imagine_then_extend_gives_a_longer_video(sandbox, client, tmp_path):
    parent = client.imagine("a lighthouse at dusk", aspect_ratio="16:9")
    seen = []
    parent_task = parent.wait(on_progress=seen.append)
    statuses = [t.status for t in seen]
    assert statuses[-1] == "finished"
    assert "processing" in statuses
    # The documented finished payload has no status; the client still knows it finished.
    assert "status" not in parent_task.raw and parent_task.percentage == 100.0
    assert [t.percentage for t in seen if t.status == "processing"] == sorted(
        t.percentage for t in seen if t.status == "processing"
    )

    job = client.extend(parent.task_id, "the lamp turns on", aspect_ratio="16:9")
    task = job.wait()
    assert task.task_type == "luma-ext" and task.video_url.startswith(sandbox.base_url)

    def download(url, name):
        path = tmp_path / name
        path.write_bytes(requests.get(url, timeout=30).content)
        return probe(path)

    before, after = download(parent_task.video_url, "p.mp4"), download(task.video_url, "e.mp4")
    assert (after.width, after.height) == (before.width, before.height)
    assert after.duration > before.duration + 4


def test_percentage_strings_and_numbers_parse(sandbox, client):
    job = client.extend(sandbox.demo_parents[0].task_id, "slow tide")
    raw_types = set()

    def note(task):
        if task.status == "processing":
            raw_types.add(type(task.raw.get("percentage")).__name__)
            assert task.percentage is not None

    job.wait(on_progress=note)
    assert raw_types == {"str"}
    sandbox.percentage_as_number = True
    try:
        raw_types.clear()
        client.extend(sandbox.demo_parents[0].task_id, "numbers now").wait(on_progress=note)
        assert raw_types <= {"int", "float"} and raw_types
    finally:
        sandbox.percentage_as_number = False


def test_fetch_many_over_twenty_real_tasks():
    # A sandbox of its own (slow, so nothing renders): 21 renders would hold up other tests.
    with Sandbox(speed=1) as box, LumaClient(box.api_key, base_url=box.base_url) as client:
        jobs = client.extend_many(box.demo_parents[1].task_id, [f"take {i}" for i in range(21)])
        box.clear_requests()
        ids = [j.task_id for j in jobs] + ["00000000-0000-0000-0000-000000000000"]
        tasks = client.fetch_many(ids)
        assert sorted(t.task_id for t in tasks) == sorted(j.task_id for j in jobs)
        assert box.count("/fetch-many") == 2 and box.count("/fetch") == 0


def test_account_credits_follow_submits(sandbox, client):
    before = client.account().credits
    client.imagine("one more")
    assert client.account().credits == before - 6


def test_service_errors_arrive_typed(sandbox, client):
    with pytest.raises(BadRequestError) as info:
        client.extend("00000000-0000-0000-0000-000000000001", "orphan")
    assert info.value.messages and "parent" in str(info.value).lower()
    with Sandbox(api_key="right") as strict, pytest.raises(AuthenticationError):
        LumaClient("wrong", base_url=strict.base_url).account()
    sandbox.faults.add(path="/account", kind="429", retry_after=3)
    with pytest.raises(RateLimitError) as info:
        client.account()
    assert info.value.retry_after == 3


def test_lost_submit_really_exists_and_is_not_resent(sandbox, client):
    sandbox.clear_requests()
    before = sandbox.credits
    sandbox.faults.add(path="/luma-extend", kind="drop")
    with pytest.raises(SubmitUncertainError):
        client.extend(sandbox.demo_parents[0].task_id, "did it go through?")
    assert sandbox.count("/luma-extend") == 1
    assert sandbox.credits == before - 6  # the job exists and was charged: the uncertainty is real


def test_wait_async_keeps_the_loop_free(sandbox, client):
    job = client.extend(sandbox.demo_parents[2].task_id, "balloon lands")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main():
        beat = asyncio.create_task(ticker())
        try:
            return await job.wait_async()
        finally:
            beat.cancel()

    assert asyncio.run(main()).is_finished
    assert ticks > 5
