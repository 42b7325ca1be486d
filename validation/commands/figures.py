"""``batchrmt figures DIR``: redraw a run's figures from its stored records (no recomputation)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from validation.commands.common import UsageError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "figures", help="redraw a run's figures from stored records", description=__doc__
    )
    p.add_argument("run_dir", metavar="DIR", help="run folder written by `batchrmt run`")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from validation.figures import draw_all

    if not (Path(args.run_dir) / "records").is_dir():
        raise UsageError(f"{args.run_dir} holds no run records")
    for path in draw_all(args.run_dir):
        print(path)
    return 0
