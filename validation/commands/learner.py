"""``batchrmt learner``: the SLQ on-the-fly learner against a tuned lineage SGD baseline."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from validation.experiments.learner import CONFIG_NAMES, learner_config, run_learner_experiment


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "learner",
        help="train with the SLQ learning-rate / momentum learner and compare with tuned SGD",
        description=(
            "Train PreResNet with the SLQ learner (no momentum; Polyak heavy ball), SGD with the lineage "
            "schedule on a small lr grid (tuned baseline = best of the grid) and fixed-lr SGD at the "
            "learner's "
            "initial rate; write one JSON record per (arm, seed), report.md and figures/learner.{png,pdf}. "
            "Finished cells are skipped when rerun into the same folder."
        ),
    )
    parser.add_argument(
        "--config",
        choices=CONFIG_NAMES,
        default="default",
        help="smoke (≈40 s), default (≈4 CPU-min), paper-cifar100 (PreResNet-110, GPU)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="dataset name (fashion-mnist, mnist, cifar10, cifar100); default from the config",
    )
    parser.add_argument("--data-root", default=None, help="folder holding the dataset files")
    parser.add_argument("--out", default=None, help="run folder (default runs/learner-<config>)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (>= 3 for a verdict)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of every arm")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        config = learner_config(
            args.config, dataset=args.data, data_root=args.data_root, seeds=args.seeds, epochs=args.epochs
        )
    except (TypeError, ValueError) as exc:
        print(f"batchrmt learner: {exc}", file=sys.stderr)
        return 2
    out = args.out or f"runs/learner-{config.name}"
    start = time.perf_counter()
    try:
        report = run_learner_experiment(config, out, device=args.device, log=None if args.quiet else print)
    except FileNotFoundError as exc:  # networks.data.DatasetNotFoundError says how to provide the data
        print(f"batchrmt learner: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"[learner] report: {report} ({time.perf_counter() - start:.0f} s)")
    return 0
