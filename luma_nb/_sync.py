"""Run luma_nb's async API from synchronous code, in scripts and inside Jupyter kernels alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run_sync(work: Awaitable[T] | Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine (or a function making an awaitable) to completion and return its result.

    In a script there is no running event loop, so this is ``asyncio.run``. Inside a Jupyter
    kernel (a loop is already running in this thread) ``asyncio.run`` refuses to work; here, and
    only here, the kernel's loop is made re-entrant with ``nest_asyncio2`` at the moment of the
    call, never at import. Other tasks of that loop keep running while the caller blocks. In a
    notebook, a top-level ``await`` is simpler and needs none of this.

    Pass a function when the awaitable must be made inside the loop, as ``asyncio.gather`` must::

        tasks = run_sync(lambda: asyncio.gather(*(job.wait_async() for job in jobs)))
    """

    import asyncio  # on use: `import luma_nb` stays light

    async def main() -> T:
        awaitable = work() if callable(work) else work
        return await awaitable

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    return loop.run_until_complete(main())
