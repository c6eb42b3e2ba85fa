"""``luma-nb class``: serve a class, make its tokens, see its ledger, revoke a token.

The teacher's three commands::

    luma-nb class tokens --count 30 --html tokens.html > tokens.csv
    APIFRAME_API_KEY=... luma-nb class serve --host 0.0.0.0 --port 8765 --student-budget 36
    # students: LUMA_NB_CLASS_URL=http://<teacher>:8765 LUMA_NB_CLASS_TOKEN=<token>
    luma-nb class teacher-token        # then log in at http://<teacher>:8765/teacher

On JupyterHub, ``luma-nb class serve --hub`` is the ``command`` of a Hub-managed service: it
listens at the service's ``url``, under ``/services/<name>/``, and students need no token (their
server's own Hub token says who they are); see README, "Teaching a class on JupyterHub".
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..contract.environment import environment

__all__ = ("add_arguments", "parse_rate", "run")

DEFAULT_DB = "luma-class.sqlite"
DEFAULT_PORT = 8765


def parse_rate(text: str) -> float:
    """``"10/min"`` or ``"10"`` -> 10.0 submits per minute per student."""
    value = text.strip().lower().removesuffix("/min").strip()
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must look like 10/min, got {text!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError("rate must be positive")
    return number


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _cost(text: str) -> tuple[str, float]:
    path, _, value = text.partition("=")
    path = "/" + path.strip().lstrip("/")
    try:
        return path, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cost must look like luma-extend=6, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``class`` command and its subcommands."""
    sub = parser.add_subparsers(dest="class_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("serve", help="run the class relay in the foreground (holds the key)")
    p.add_argument(
        "--upstream",
        default=None,
        help="the API to forward to: a URL (default APIFRAME_BASE_URL or APIFRAME), or "
        "'sandbox' to rehearse offline behind a shared sandbox",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0 for the room)")
    p.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT}")
    p.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"the class file (default {DEFAULT_DB}), or a postgresql:// URL that several "
        "relay processes share",
    )
    p.add_argument("--name", help="the class's name, shown in the students' form")
    p.add_argument("--class-budget", type=float, metavar="N", help="credits for the whole class")
    p.add_argument("--student-budget", type=float, metavar="N", help="credits per student")
    p.add_argument("--rate", type=parse_rate, metavar="N/min", help="submits per student/minute")
    p.add_argument(
        "--max-running",
        type=_positive_int,
        metavar="N",
        help="at most N of the class's jobs running at the provider at once (its plan's limit); "
        "further submits wait in the class's queue at the relay (default: no limit)",
    )
    p.add_argument(
        "--cost",
        type=_cost,
        action="append",
        default=[],
        metavar="ENDPOINT=N",
        help="credits per submit (default luma-extend=6 and luma-imagine=6)",
    )
    p.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="TASK_ID",
        help="let every student fetch (and extend) this task, e.g. the class's start video",
    )
    p.add_argument("--sandbox-speed", type=float, default=10.0, help="with --upstream sandbox")
    p.add_argument(
        "--hub",
        action="store_true",
        help="run as a JupyterHub-managed service: listen where the Hub says, and let Hub "
        "users in with their own Hub token (class tokens keep working)",
    )
    p.add_argument(
        "--teacher-group",
        metavar="GROUP",
        help="with --hub: members of this Hub group are teachers (Hub admins always are)",
    )
    p.add_argument(
        "--hub-cache",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --hub: how long the Hub's answer about a token is trusted (default 30)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        metavar="SECONDS",
        help="look at open tasks this often (default: the adaptive default policy)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a relay's claim to poll a task lasts unless renewed (default 15): "
        "another relay on the same database takes its tasks over after that",
    )
    p.set_defaults(class_run=_serve)

    p = sub.add_parser("tokens", help="make student tokens: CSV on stdout, an HTML sheet")
    p.add_argument("--count", type=int, help="how many students (named student-01, ...)")
    p.add_argument("--names", type=Path, help="a file with one student name a line")
    p.add_argument("--db", default=DEFAULT_DB, help="the class file, or a postgresql:// URL")
    p.add_argument("--html", type=Path, help="also write a printable sheet of cards here")
    p.add_argument("--url", help="the relay's URL, printed on the sheet")
    p.add_argument("--name", help="the class's name (stored for the relay)")
    p.set_defaults(class_run=_tokens)

    p = sub.add_parser("status", help="credits spent, per student, and uncertain submits")
    p.add_argument("--db", default=DEFAULT_DB, help="the class file, or a postgresql:// URL")
    p.set_defaults(class_run=_status)

    p = sub.add_parser(
        "teacher-token", help="make the token of the dashboard at /teacher (replaces the last)"
    )
    p.add_argument("--db", default=DEFAULT_DB)
    p.set_defaults(class_run=_teacher_token)

    p = sub.add_parser("revoke", help="refuse a student's token from now on")
    p.add_argument("student", help="the student's name")
    p.add_argument("--db", default=DEFAULT_DB, help="the class file, or a postgresql:// URL")
    p.set_defaults(class_run=_revoke)


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``class`` subcommand; returns the exit code."""
    try:
        code: int = args.class_run(args)
        return code
    except (ValueError, OSError, ImportError) as error:
        # bad settings, a port in use, an unreadable file, an unreachable database (its
        # message never holds the DSN's password), psycopg missing for a postgresql:// URL
        print(f"luma-nb class: {error}", file=sys.stderr)
        return 2


def _store(db: str) -> Any:
    from .backends import open_store

    return open_store(db)


def _tokens(args: argparse.Namespace) -> int:
    from .backends import describe
    from .tokens import html_sheet, issue, to_csv

    names = None
    if args.names is not None:
        names = args.names.read_text(encoding="utf-8").splitlines()
    store = _store(args.db)
    try:
        if args.name:
            store.set_meta("class_name", args.name)
        issued = issue(store, args.count, names)
        class_name = store.get_meta("class_name") or "Class"
    finally:
        store.close()
    sys.stdout.write(to_csv(issued))
    if args.html is not None:
        args.html.write_text(html_sheet(issued, class_name=class_name, url=args.url), "utf-8")
        print(f"sheet written to {args.html}", file=sys.stderr)
    print(
        f"{len(issued)} token(s) added to {describe(args.db)}; only their hashes are kept "
        "there, so keep this output safe (it is the only copy).",
        file=sys.stderr,
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    store = _store(args.db)
    try:
        from .settings import budget_view, read_settings
        from .store import Controls

        settings = read_settings(store)
        controls = store.controls()
        print(f"class: {store.get_meta('class_name') or 'Class'}")
        switches = [
            s for s, on in (("paused", settings.paused), ("approve mode", settings.approve)) if on
        ]
        if switches:
            print(f"settings: {', '.join(switches)}")
        print(f"budgets: {budget_view(store).describe()}")
        print(f"credits spent: {store.spent():g}")
        for student in store.students():
            own = controls.get(student.name, Controls())
            flags = [f"own budget {own.budget:g}"] if own.budget is not None else []
            flags += ["paused"] if own.paused else []
            flags += ["revoked"] if student.revoked else []
            flag = f" ({', '.join(flags)})" if flags else ""
            print(f"  {student.name}: {store.spent(student):g}{flag}")
        held = store.submits("held")
        if held:
            print(f"waiting for approval: {len(held)}")
        queued = store.submits("queued")
        if queued:
            print(f"waiting in the class's queue: {len(queued)}")
        uncertain = store.submits("uncertain")
        print(f"uncertain submits: {len(uncertain)}")
        for record in uncertain:
            print(f"  #{record.id} {record.student} {record.endpoint}: {record.note}")
    finally:
        store.close()
    return 0


def _teacher_token(args: argparse.Namespace) -> int:
    from .settings import issue_teacher_token

    store = _store(args.db)
    try:
        token = issue_teacher_token(store)
    finally:
        store.close()
    print(token)
    print(
        f"teacher token stored (hashed) in {args.db}; it replaces any earlier one. Log in at "
        "<relay URL>/teacher with it. It is shown only this once: keep it to yourself.",
        file=sys.stderr,
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    store = _store(args.db)
    try:
        known = store.revoke(args.student)
    finally:
        store.close()
    if not known:
        print(f"luma-nb class: no student named {args.student!r}", file=sys.stderr)
        return 2
    print(f"{args.student}: token revoked")
    return 0


def _hub_options(args: argparse.Namespace) -> dict[str, Any]:
    """Where the Hub wants the service, and the Hub identity check (ValueError outside a Hub)."""
    from .hub import CACHE_SECONDS, HubIdentity, service_from_env

    try:
        import jupyterhub  # noqa: F401 - the teachers' login through the Hub's OAuth
    except ImportError:
        raise ValueError("--hub needs jupyterhub: pip install 'luma_nb[hub]'") from None
    service = service_from_env()
    cache = CACHE_SECONDS if args.hub_cache is None else args.hub_cache
    identity = HubIdentity(service.api_url, teacher_group=args.teacher_group, cache_seconds=cache)
    if args.port is not None and args.port != service.port:
        raise ValueError(f"--port {args.port} is not the service's Hub port ({service.port})")
    return {
        "host": service.host,
        "port": service.port,
        "hub": identity,
        "base_path": service.prefix,
        "hub_login": True,
    }


def _serve(args: argparse.Namespace) -> int:
    try:
        from .core import Relay
    except ImportError:
        print(
            "luma-nb class serve needs Tornado: pip install 'luma_nb[classroom]'", file=sys.stderr
        )
        return 2
    options: dict[str, Any] = {
        "db": args.db,
        "class_name": args.name,
        "class_budget": args.class_budget,
        "student_budget": args.student_budget,
        "rate": args.rate,
        "max_running": args.max_running,
        "costs": dict(args.cost),
        "host": args.host,
        "port": DEFAULT_PORT if args.port is None else args.port,
        "publish": list(args.publish),
    }
    if args.hub:
        options.update(_hub_options(args))
    elif args.teacher_group or args.hub_cache is not None:
        print("luma-nb class serve: --teacher-group and --hub-cache need --hub", file=sys.stderr)
        return 2
    if args.poll_interval is not None:
        from ..contract.polling import FixedPolicy

        options["poll"] = FixedPolicy(args.poll_interval)
    if args.lease is not None:
        options["lease"] = args.lease
    rehearsal = None
    if args.upstream == "sandbox":
        from .launch import rehearsal as start_rehearsal

        rehearsal = start_rehearsal(speed=args.sandbox_speed, **options)
        relay = rehearsal.relay
    else:
        upstream = args.upstream or environment().base_url or "https://api.apiframe.pro"
        if not environment().api_key:
            print(
                "luma-nb class serve: set APIFRAME_API_KEY (or use --upstream sandbox)",
                file=sys.stderr,
            )
            return 2
        relay = Relay(upstream, **options).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        print(f"class relay {relay.class_name!r} on {relay.base_url} -> {relay.upstream_url}")
        if relay.hub is not None:
            print(f"JupyterHub mode: Hub users are students (asked of {relay.hub.api_url})")
            print(
                f"teacher's dashboard: {relay.base_url}/teacher "
                "(Hub admins and the teacher group sign in through the Hub)"
            )
        else:
            print(
                f"teacher's dashboard: {relay.base_url}/teacher "
                "(its token: luma-nb class teacher-token)"
            )
        print(f"students set LUMA_NB_CLASS_URL={relay.base_url} (Ctrl-C stops)", flush=True)
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if rehearsal is not None:
            rehearsal.stop()
        else:
            relay.stop()
    return 0
