"""``batchrmt report DIR``: rewrite a run's report.md from its stored records (no recomputation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="rewrite a run's report.md from stored records", description=__doc__
    )
    p.add_argument("run_dir", metavar="DIR", help="run folder written by `batchrmt run`")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from validation.report import format_table, summary_rows, write_report

    if not (Path(args.run_dir) / "config.json").is_file():
        print(f"batchrmt report: {args.run_dir} holds no run (config.json missing)", file=sys.stderr)
        return 2
    path = write_report(args.run_dir)
    print(format_table(summary_rows(args.run_dir)))
    print(path)
    return 0
