"""``luma-nb demo``: the main job end to end, offline: imagine a parent, extend it, save the MP4."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .client.client import LumaClient
from .contract.polling import DefaultPolicy

DEFAULT_PARENT_PROMPT = "A paper boat drifting down a rainy city street"
DEFAULT_PROMPT = "The boat sails out into a sunlit harbour full of seagulls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``demo`` sub-command."""
    parser.add_argument(
        "--parent-prompt", default=DEFAULT_PARENT_PROMPT, help="prompt of the parent"
    )
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt of the extension")
    parser.add_argument("--aspect-ratio", default="16:9")
    parser.add_argument("--out", default="luma_nb_demo", help="folder for the MP4s")
    parser.add_argument(
        "--speed",
        type=float,
        default=20.0,
        help="sandbox speed-up (jobs take 1-5 simulated minutes; 20 makes that 3-15 s)",
    )
    parser.add_argument("--seed", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    """Start a sandbox, imagine a parent, extend it, show progress, save both MP4s."""
    from ._terminal import ProgressLine
    from .notebook.media import save
    from .sandbox import Sandbox

    out = Path(args.out)
    print("Demo mode: offline sandbox on this machine, no API key and no credits used.")
    with (
        Sandbox(speed=args.speed, seed=args.seed) as sandbox,
        LumaClient(
            sandbox.api_key,
            base_url=sandbox.base_url,
            journal=None,
            service="sandbox",
            poll=DefaultPolicy.at_speed(args.speed, seed=args.seed),
        ) as client,
    ):
        print(f"sandbox at {sandbox.base_url}")
        parent = client.imagine(args.parent_prompt, aspect_ratio=args.aspect_ratio)
        print(f"1/2 imagine {args.parent_prompt!r} -> task {parent.task_id}")
        parent_task = parent.wait(on_progress=ProgressLine(sys.stderr, parent.task_id))
        parent_file = save(parent_task, out, session=client.session, journal=None)
        print(f"    parent video: {parent_file}")

        # The extension keeps its parent's frame shape: ask for it, not the API's 1:1 default.
        job = client.extend(parent.task_id, args.prompt, aspect_ratio=args.aspect_ratio)
        print(f"2/2 extend with {args.prompt!r} -> task {job.task_id}")
        task = job.wait(on_progress=ProgressLine(sys.stderr, job.task_id))
        path = save(task, out, session=client.session, journal=None)
        print(f"    extended video: {path}")
    print(f"\nDone. Play it: {path.resolve()}")
    return 0
