"""``python -m luma_nb.sandbox``: run the sandbox in the foreground (see ``--help``)."""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the sandbox until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m luma_nb.sandbox",
        description="Run the offline luma_nb sandbox (a stand-in of the APIFRAME Luma API).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
