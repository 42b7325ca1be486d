"""``batchrmt learner``: the SLQ on-the-fly learner against a tuned lineage SGD baseline."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from validation.commands.common import UsageError, check_device, check_out_folder, shell_command
from validation.experiments.learner_config import available_learner_configs, load_learner_config

IMAGE_DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "learner",
        help="train with the SLQ learning-rate / momentum learner and compare with tuned SGD",
        description=(
            "Train PreResNet with the SLQ learner (no momentum; Polyak heavy ball), SGD with the lineage "
            "schedule on a small lr grid (tuned baseline = best of the grid) and fixed-lr SGD at the "
            "learner's initial rate; write one JSON record per (arm, seed), report.md and "
            "figures/learner.{png,pdf}. Rerun into the same folder with --resume to skip finished cells."
        ),
    )
    parser.add_argument(
        "--config",
        default="default",
        help=f"built-in learner config ({', '.join(available_learner_configs())}; smoke ≈ 1 min, default "
        "≈ 4 CPU-min, paper-cifar100 = PreResNet-110 for a GPU) or a .toml/.json file "
        "(start from `batchrmt config show learner-default`)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field, e.g. --set baseline_lrs='[0.05,0.1]' --set lanczos_steps=20 "
        "(values are read as JSON, else as text); repeatable",
    )
    parser.add_argument(
        "--data",
        choices=IMAGE_DATASETS,
        default=None,
        help="image data set; default from the config",
    )
    parser.add_argument("--data-root", default=None, help="folder holding the dataset files")
    parser.add_argument("--out", default=None, help="run folder (default runs/learner-<config name>)")
    parser.add_argument("--resume", action="store_true", help="skip the (arm, seed) cells stored in --out")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (>= 3 for a verdict)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of every arm")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    parser.set_defaults(func=main, continue_command=continue_command)
    return parser


def continue_command(args: argparse.Namespace) -> str | None:
    """The same command with ``--resume``: finished (arm, seed) cells are skipped."""
    if getattr(args, "resolved_out", None) is None:
        return None
    words = ["batchrmt", "learner", "--config", args.config, "--out", args.resolved_out]
    for override in args.overrides:
        words += ["--set", override]
    for option, value in (("--data", args.data), ("--data-root", args.data_root), ("--seeds", args.seeds),
                          ("--epochs", args.epochs), ("--device", args.device)):  # fmt: skip
        if value is not None:
            words += [option, str(value)]
    return shell_command([*words, "--resume"])


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides, then the shortcut options (``--data`` is ``--set dataset=...``)."""
    shortcuts = {
        "dataset": args.data,
        "data_root": args.data_root,
        "seeds": args.seeds,
        "epochs": args.epochs,
    }
    return [*args.overrides, *(f"{k}={json.dumps(v)}" for k, v in shortcuts.items() if v is not None)]


def main(args: argparse.Namespace) -> int:
    try:
        config = load_learner_config(args.config, _overrides(args))
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    check_device(args.device)
    out = check_out_folder(args.out or f"runs/learner-{config.name}")
    args.resolved_out = str(out)

    from validation.experiments.learner import run_learner_experiment

    start = time.perf_counter()
    report = run_learner_experiment(
        config, out, device=args.device, resume=args.resume, log=None if args.quiet else print
    )
    if not args.quiet:
        print(f"[learner] report: {report} ({time.perf_counter() - start:.0f} s)")
    return 0
