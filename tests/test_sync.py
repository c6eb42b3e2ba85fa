"""run_sync: asyncio.run in scripts; nest-asyncio2 only when called inside a running loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from luma_nb import FixedPolicy, LumaClient, run_sync


def test_import_does_not_patch_or_import_nest_asyncio():
    code = (
        "import sys, asyncio, luma_nb; "
        "print('nest_asyncio2' in sys.modules, hasattr(asyncio, '_nest_patched'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_run_sync_in_a_script_waits_for_many_jobs_at_once(sandbox):
    client = LumaClient(sandbox.api_key, base_url=sandbox.base_url, poll=FixedPolicy(0.05))
    jobs = client.extend_many(sandbox.demo_parents[0].task_id, ["one", "two", "three"])
    tasks = run_sync(lambda: asyncio.gather(*(job.wait_async() for job in jobs)))
    assert [t.task_id for t in tasks] == [j.task_id for j in jobs]
    assert all(t.is_finished for t in tasks)


def test_run_sync_inside_a_running_loop_blocks_until_done():
    code = (
        "import asyncio, sys\n"
        "sys.path.insert(0, '.')\n"
        "from tests.test_sync import _outer_for_subprocess\n"
        "print(*asyncio.run(_outer_for_subprocess()))\n"
    )
    # A fresh process: patching asyncio must not leak into this test session's other tests.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    value, beats = out.stdout.split()
    assert value == "inner" and int(beats) > 3  # the loop's other tasks ran while run_sync blocked


async def _outer_for_subprocess():
    beats = []

    async def heartbeat():
        while True:
            beats.append(1)
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(heartbeat())
    value = run_sync(asyncio.sleep(0.1, result="inner"))
    beat.cancel()
    return value, len(beats)
