"""``batchrmt report DIR``: rewrite a run's report.md from its stored records (no recomputation)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from validation.commands.common import UsageError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="rewrite a run's report.md from stored records", description=__doc__
    )
    p.add_argument("run_dir", metavar="DIR", help="run folder written by `batchrmt run`")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from validation.report import format_table, summary_rows, write_report

    if not (Path(args.run_dir) / "config.json").is_file():
        raise UsageError(f"{args.run_dir} holds no run (config.json missing)")
    path = write_report(args.run_dir)
    print(format_table(summary_rows(args.run_dir)))
    print(path)
    return 0
