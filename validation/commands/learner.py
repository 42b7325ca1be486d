"""``batchrmt learner``: the SLQ on-the-fly learner against a tuned lineage SGD baseline."""

from __future__ import annotations

import argparse
import time
from typing import Any

from validation.commands.common import UsageError, check_device, check_out_folder, shell_command

IMAGE_DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")
CONFIG_NAMES = ("smoke", "default", "paper-cifar100")
"""``validation.experiments.learner.CONFIG_NAMES``, repeated so that ``--help`` does not import torch (a
test checks that the two agree)."""


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
        choices=IMAGE_DATASETS,
        default=None,
        help="image data set; default from the config",
    )
    parser.add_argument("--data-root", default=None, help="folder holding the dataset files")
    parser.add_argument("--out", default=None, help="run folder (default runs/learner-<config>)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (>= 3 for a verdict)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of every arm")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    parser.set_defaults(func=main, continue_command=continue_command)
    return parser


def continue_command(args: argparse.Namespace) -> str | None:
    """The same command with its run folder: finished (arm, seed) cells are skipped when rerun."""
    if getattr(args, "resolved_out", None) is None:
        return None
    words = ["batchrmt", "learner", "--config", args.config, "--out", args.resolved_out]
    for option, value in (("--data", args.data), ("--data-root", args.data_root), ("--seeds", args.seeds),
                          ("--epochs", args.epochs), ("--device", args.device)):  # fmt: skip
        if value is not None:
            words += [option, str(value)]
    return shell_command(words)


def main(args: argparse.Namespace) -> int:
    from validation.experiments.learner import learner_config

    try:
        config = learner_config(
            args.config, dataset=args.data, data_root=args.data_root, seeds=args.seeds, epochs=args.epochs
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    check_device(args.device)
    out = check_out_folder(args.out or f"runs/learner-{config.name}")
    args.resolved_out = str(out)

    from validation.experiments.learner import run_learner_experiment

    start = time.perf_counter()
    report = run_learner_experiment(config, out, device=args.device, log=None if args.quiet else print)
    if not args.quiet:
        print(f"[learner] report: {report} ({time.perf_counter() - start:.0f} s)")
    return 0
