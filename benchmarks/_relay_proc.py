"""One relay process for the benchmark: ``python -m benchmarks._relay_proc UPSTREAM DB [options]``.

It serves like ``luma-nb class serve`` (the key from ``APIFRAME_API_KEY``), prints ``ready URL``
once listening, and on SIGTERM stops the relay and prints one JSON line of what its poller did:
ticks, upstream polling requests, every task id it asked the upstream about, and the CPU time
the process used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("upstream")
    parser.add_argument("db")
    parser.add_argument("--class-budget", type=float)
    parser.add_argument("--student-budget", type=float)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--publish", action="append", default=[])
    parser.add_argument("--max-running", type=int)
    args = parser.parse_args(argv)

    from luma_nb.relay import Relay

    relay = Relay(
        args.upstream,
        api_key=os.environ["APIFRAME_API_KEY"],
        db=args.db,
        class_budget=args.class_budget,
        student_budget=args.student_budget,
        lease=args.lease,
        publish=args.publish,
        max_running=args.max_running,
    )
    polled: set[str] = set()
    upstream = relay.poller._upstream
    fetch_many = upstream.fetch_many

    def counting(ids: Any, **kwargs: Any) -> Any:
        ids = list(ids)
        polled.update(ids)
        return fetch_many(ids, **kwargs)

    upstream.fetch_many = counting  # type: ignore[method-assign]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    relay.start()
    print(f"ready {relay.base_url}", flush=True)
    done.wait()
    relay.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "ticks": relay.poller.ticks,
        "upstream_requests": relay.poller.upstream_requests,
        "polled": sorted(polled),
        "served": relay.served,
        "queue_forwarded": relay.queue.forwarded,
    }
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
