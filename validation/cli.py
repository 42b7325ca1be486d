"""The ``batchrmt`` command line: ``predict``, ``run``, ``figures``, ``report``, ``compare``, ``learner``,
``config``.

Each subcommand lives in ``validation/commands/<name>.py`` and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returning an exit code) and optionally
``continue_command`` (the shell command that continues an interrupted run). Building the parser imports no
torch: commands import what they compute with inside ``func``.

Every user error is one line on stderr and a non-zero exit code (2: usage, 1: runtime, 130: Ctrl-C, see
``validation.commands.common``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

SUBCOMMAND_MODULES = ("predict", "run", "figures", "report", "compare", "learner", "config")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``PROG: error: MESSAGE (see PROG --help)``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="batchrmt",
        description=(
            "Predict and measure how loss curvature and the maximal learning rate change with batch size."
        ),
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"validation.commands.{name}").register(subparsers)
    for sub in subparsers.choices.values():
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from validation.commands.common import EXIT_INTERRUPTED, describe_error

    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"batchrmt {args.command}"
    continue_command = getattr(args, "continue_command", None)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        again = continue_command(args) if continue_command is not None else None
        tail = f"; continue with: {again}" if again else ""
        print(f"{prog}: interrupted{tail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        again = continue_command(args) if continue_command is not None else None
        message, code = describe_error(exc, again)
        print(f"{prog}: {printable(message)}", file=sys.stderr)
        return code


def printable(message: str) -> str:
    """``message`` on one line: control characters (a newline or carriage return inside a user's path, say)
    are shown escaped, as Python writes them in a string literal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
