"""``luma-nb sandbox`` / ``python -m luma_nb.sandbox``: run the sandbox in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._net import is_http_url
from .core import Sandbox
from .faults import FAULT_SPEC_HELP, parse_fault_spec

__all__ = ("DEFAULT_PORT", "add_arguments", "run")

#: The port the command binds unless told otherwise (``--port 0`` picks a free one).
DEFAULT_PORT = 8765


def _fault_spec(text: str) -> str:
    try:
        parse_fault_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _credits(text: str) -> int | None:
    if text.strip().lower() == "unlimited":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of credits or 'unlimited', got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("credits must be 0 or more")
    return value


def _public_url(text: str) -> str:
    if not is_http_url(text):
        raise argparse.ArgumentTypeError(f"expected an http(s) URL, got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to ``parser`` (and the fault syntax to its help)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, loopback only)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to bind (default: {DEFAULT_PORT}; 0 picks a free port)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second; jobs take 60-300 s divided by "
        "this (default: 1, realistic)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="keep tasks and videos in this folder across restarts "
        "(default: a temporary folder, removed at exit)",
    )
    parser.add_argument(
        "--credits",
        type=_credits,
        default=1200,
        metavar="N",
        help="credits the account starts with (each submit costs 6), or 'unlimited' "
        "(default: 1200; with --data-dir, what the last run left)",
    )
    parser.add_argument(
        "--reset-credits",
        action="store_true",
        help="with --data-dir: start a new lesson with --credits again (tasks are kept)",
    )
    parser.add_argument(
        "--public-url",
        type=_public_url,
        default=None,
        metavar="URL",
        help="base of the video links (e.g. the relay's address); fixed, links survive "
        "restarts on another port (default: the sandbox's own address)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="make task ids, durations and videos reproducible"
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this API key (default: any non-empty key)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault_spec,
        metavar="SPEC",
        help="inject a fault (repeatable; syntax below)",
    )
    parser.add_argument(
        "--finished-status",
        action="store_true",
        help='add "status": "finished" to finished tasks (the docs show none)',
    )
    parser.add_argument(
        "--percentage-as-number",
        action="store_true",
        help="send percentage as a number (the Luma docs show a string)",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        default=None,
        metavar="N",
        help="at most N tasks running at once; a submit past that gets 429 with Retry-After "
        "(uncharged), as the provider's plans limit generations running at once",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    if not parser.epilog:
        parser.epilog = FAULT_SPEC_HELP
        parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """Start the sandbox, print where it is and how to use it, serve until Ctrl-C; returns 0."""
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        speed=args.speed,
        data_dir=args.data_dir,
        seed=args.seed,
        credits=args.credits,
        reset_credits=args.reset_credits,
        public_url=args.public_url,
        finished_status=args.finished_status,
        percentage_as_number=args.percentage_as_number,
        max_running=args.max_running,
        verbose=args.verbose,
    )
    for spec in args.fault:
        sandbox.faults.apply_spec(spec)
    try:
        sandbox.start()
    except OSError as exc:
        print(f"luma-nb sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(f"luma_nb sandbox running at {sandbox.base_url} (speed {sandbox.speed:g})")
        credits = "unlimited" if sandbox.credits is None else str(sandbox.credits)
        print(f"Credits: {credits} (each submit costs 6)")
        print("Demo parent tasks, finished and ready to extend:")
        for parent in sandbox.demo_parents:
            print(f"  {parent.task_id}  {parent.aspect_ratio:>5}  {parent.prompt}")
        for fault in sandbox.faults.pending:
            print(f"Fault scheduled: {fault}")
        print("Point a client at it:")
        # A key given with --api-key is not echoed back (it may be one the user reuses).
        key = sandbox.api_key if args.api_key is None else "<the key given with --api-key>"
        print(f"  export APIFRAME_BASE_URL={sandbox.base_url} APIFRAME_API_KEY={key}")
        print("Press Ctrl-C to stop.", flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        print("luma_nb sandbox stopped.", flush=True)
    return 0
