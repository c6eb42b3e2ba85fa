"""``luma-nb``: the command line for scripts and terminals.

Exit codes (for scripts): 0 done; 2 bad input (nothing was sent); 3 the API refused the request
(400/401/402/404...); 4 the service failed or could not be reached; 5 the task failed; 6 the wait
timed out (the task goes on); 7 a submit's answer was lost (the job may exist: check
``luma_nb.history()``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._terminal import ProgressLine
from ._version import __version__
from .client.client import LumaClient
from .client.job import Job
from .contract import errors
from .contract.environment import environment
from .contract.models import ASPECT_RATIOS, Task
from .contract.printable import printable

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_REFUSED = 3
EXIT_SERVICE = 4
EXIT_FAILED = 5
EXIT_TIMEOUT = 6
EXIT_UNCERTAIN = 7
EXIT_INTERRUPTED = 130

_EPILOG = (
    "environment: APIFRAME_API_KEY (the key), APIFRAME_BASE_URL (another service, e.g. a "
    "sandbox), APIFRAME_WEBHOOK_SECRET (webhook secret without putting it on the command line).\n"
    "exit codes: 0 done, 2 bad input (nothing sent), 3 refused by the API, 4 service failure or "
    "unreachable, 5 task failed, 6 wait timed out, 7 submit answer lost (job may exist), "
    "130 interrupted."
)

#: What bare ``luma-nb`` adds under the list of commands.
_START_HERE = (
    "\nstart here: `luma-nb demo` runs the whole story offline (no key, no credits); "
    "`luma-nb COMMAND -h` explains one command.\n"
    'notebooks: pip install "luma_nb[notebook,sandbox]" (in a checkout: '
    'pip install -e ".[notebook,sandbox]"), then `jupyter lab notebooks/`.'
)


def exit_code(error: BaseException) -> int:
    """The exit code for an error (see the module docstring)."""
    table: tuple[tuple[type[BaseException], int], ...] = (
        (errors.ValidationError, EXIT_INVALID),
        (errors.MissingAPIKeyError, EXIT_INVALID),
        (errors.SubmitUncertainError, EXIT_UNCERTAIN),
        (errors.TaskFailedError, EXIT_FAILED),
        (errors.WaitTimeout, EXIT_TIMEOUT),
        (errors.ServerError, EXIT_SERVICE),
        (errors.RateLimitError, EXIT_SERVICE),
        (errors.TransportError, EXIT_SERVICE),
        (errors.APIError, EXIT_REFUSED),
    )
    for kind, code in table:
        if isinstance(error, kind):
            return code
    return 1


def _task_json(task: Task, saved: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_type": task.task_type,
        "status": task.status,
        "percentage": task.percentage,
        "video_url": task.video_url,
        "error": task.error,
    }
    if saved is not None:
        data["file"] = saved
    return data


def _emit(args: argparse.Namespace, human: str, data: Any) -> None:
    if args.json:  # JSON escapes every control character itself
        print(json.dumps(data, indent=2, sort_keys=True))
    else:  # what came from a server must not drive the terminal
        print(printable(human, newlines=True))


def _finish(args: argparse.Namespace, client: LumaClient, job: Job) -> int:
    """Wait (when asked), save (when asked), and report one job."""
    if not (getattr(args, "wait", False) or getattr(args, "out", None)):
        _emit(args, job.task_id, {"task_id": job.task_id})
        return EXIT_OK
    progress = None if args.quiet else ProgressLine(sys.stderr, job.task_id)
    task = job.wait(timeout=args.wait_timeout, on_progress=progress)
    saved = None
    if args.out:
        from .notebook.media import save

        saved = str(save(job, args.out))
    human = f"{task.task_id} finished: {task.video_url}"
    if saved:
        human += f"\nsaved to {saved}"
    _emit(args, human, _task_json(task, saved))
    return EXIT_OK


def _submit_options(args: argparse.Namespace) -> dict[str, Any]:
    secret = args.webhook_secret or environment().webhook_secret or None
    return {
        "image_url": args.image_url,
        "end_image_url": args.end_image_url,
        "enhance_prompt": args.enhance_prompt,
        "aspect_ratio": args.aspect_ratio,
        "webhook_url": args.webhook_url,
        "webhook_secret": secret if args.webhook_url else None,
    }


def _cmd_extend(args: argparse.Namespace, client: LumaClient) -> int:
    job = client.extend(args.parent, args.prompt, **_submit_options(args))
    return _finish(args, client, job)


def _cmd_imagine(args: argparse.Namespace, client: LumaClient) -> int:
    job = client.imagine(args.prompt, loop=args.loop, **_submit_options(args))
    return _finish(args, client, job)


def _cmd_fetch(args: argparse.Namespace, client: LumaClient) -> int:
    tasks = (
        client.fetch_many(args.task_ids)
        if len(args.task_ids) > 1
        else [client.fetch(args.task_ids[0])]
    )
    lines = [
        f"{t.task_id}: {t.describe()}" + (f" {t.video_url}" if t.video_url else "") for t in tasks
    ]
    _emit(args, "\n".join(lines), [_task_json(t) for t in tasks])
    return EXIT_OK


def _cmd_wait(args: argparse.Namespace, client: LumaClient) -> int:
    args.wait = True
    return _finish(args, client, client.job(args.task_id))


def _cmd_account(args: argparse.Namespace, client: LumaClient) -> int:
    account = client.account()
    data = {
        "email": account.email,
        "credits": account.credits,
        "total_images": account.total_images,
        "plan": account.plan,
    }
    human = "\n".join(f"{k}: {v}" for k, v in data.items())
    _emit(args, human, data)
    return EXIT_OK


def _add_submit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-url", help="URL of an image for the first frame")
    parser.add_argument("--end-image-url", help="URL of an image for the last frame")
    parser.add_argument("--enhance-prompt", action="store_true", help="let Luma enhance the prompt")
    parser.add_argument("--aspect-ratio", default="1:1", choices=ASPECT_RATIOS)
    parser.add_argument("--webhook-url", help="URL the service posts updates to")
    parser.add_argument(
        "--webhook-secret",
        help="sent back as x-webhook-secret (prefer APIFRAME_WEBHOOK_SECRET: command lines are "
        "visible to other users)",
    )
    _add_wait_options(parser, optional=True)


def _add_wait_options(parser: argparse.ArgumentParser, *, optional: bool) -> None:
    if optional:
        parser.add_argument("--wait", action="store_true", help="wait until the video is ready")
    parser.add_argument("--out", help="save the MP4 to this file or folder (implies --wait)")
    parser.add_argument("--wait-timeout", type=float, default=1800.0, metavar="SECONDS")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``luma-nb``."""
    parser = argparse.ArgumentParser(
        prog="luma-nb",
        description="Extend Luma AI video tasks through APIFRAME, or try it all offline.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"luma_nb {__version__}")
    parser.add_argument("--base-url", help="API base URL (default: APIFRAME_BASE_URL or APIFRAME)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    # Not required: bare ``luma-nb`` lists the commands (a newcomer's first try).
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("extend", help="extend a task's video with a new prompt (costs credits)")
    p.add_argument("parent", help="the id of the task to extend")
    p.add_argument("prompt", help="what happens next")
    _add_submit_options(p)
    p.set_defaults(handler=_cmd_extend)

    p = sub.add_parser("imagine", help="make a new video from a prompt (costs credits)")
    p.add_argument("prompt")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None)
    _add_submit_options(p)
    p.set_defaults(handler=_cmd_imagine)

    p = sub.add_parser("fetch", help="show the state of one or more tasks")
    p.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    p.set_defaults(handler=_cmd_fetch)

    p = sub.add_parser("wait", help="wait for a task to finish")
    p.add_argument("task_id")
    _add_wait_options(p, optional=False)
    p.set_defaults(handler=_cmd_wait)

    p = sub.add_parser("account", help="show credits and plan")
    p.set_defaults(handler=_cmd_account)

    _add_offline_commands(sub)
    return parser


def _add_offline_commands(sub: Any) -> None:
    # The launcher is the one place outside the sandbox that may import it.
    from . import _demo
    from .sandbox import cli as sandbox_cli

    p = sub.add_parser("sandbox", help="run the offline sandbox of the API in the foreground")
    sandbox_cli.add_arguments(p)
    p.set_defaults(standalone=sandbox_cli.run)

    p = sub.add_parser("demo", help="the whole story offline: imagine, extend, watch, save")
    _demo.add_arguments(p)
    p.set_defaults(standalone=_demo.run)

    # The classroom relay is a separate program too (Tornado loads only for `class serve`).
    from .relay import cli as relay_cli

    p = sub.add_parser("class", help="teach a class: a relay that holds the key, student tokens")
    relay_cli.add_arguments(p)
    p.set_defaults(standalone=relay_cli.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``luma-nb``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        print(_START_HERE)
        return EXIT_OK
    standalone: Callable[[argparse.Namespace], int] | None = getattr(args, "standalone", None)
    try:
        if standalone is not None:
            return standalone(args)
        with LumaClient(base_url=args.base_url, timeout=args.timeout) as client:
            code: int = args.handler(args, client)
            return code
    except KeyboardInterrupt:
        print("\ninterrupted (a submitted job keeps running at the service)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except errors.LumaError as error:
        print(f"luma-nb: {printable(error, newlines=True)}", file=sys.stderr)
        return exit_code(error)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
