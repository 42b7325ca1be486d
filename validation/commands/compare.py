"""``batchrmt compare RUN_A RUN_B``: do two runs of one config reach the same verdicts? (docs/validation.md
§4c) Prints every disagreement (or the whole table with ``--all``) and a one-line summary; exit code 0 when
every verdict agrees, 1 when one differs (intervals that do not overlap are listed but do not fail)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from validation.commands.common import UsageError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two runs' verdicts and intervals", description=__doc__
    )
    p.add_argument("run_a", metavar="RUN_A", help="run folder written by `batchrmt run`")
    p.add_argument("run_b", metavar="RUN_B", help="another run folder of the same config")
    p.add_argument("--all", action="store_true", help="print every compared item, not only disagreements")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from validation.compare import compare_runs

    for run in (args.run_a, args.run_b):
        if not (Path(run) / "records").is_dir():
            raise UsageError(f"{run} holds no run records")
    comparison = compare_runs(args.run_a, args.run_b)
    shown = [f for f in comparison.findings if args.all or not f.agree]
    if shown:
        lines = comparison.table().splitlines()
        keep = set(id(f) for f in shown)
        rows = sorted(comparison.findings, key=lambda f: (f.agree, f.kind != "verdict"))
        print("\n".join(lines[:2] + [line for f, line in zip(rows, lines[2:], strict=True) if id(f) in keep]))
    print(comparison.summary())
    return 0 if comparison.verdicts_agree else 1
