"""``batchrmt run``: the main job (checkpoints, curvature, noise, sweep, predictions, thresholds, figures,
report)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from validation.commands.common import (
    UsageError,
    check_device,
    check_out_folder,
    check_workers,
    load_run_config,
    shell_command,
)
from validation.config import DATASETS, RunConfig, available_configs, load_config

FALLBACK = "gaussian-mixture"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the validation pipeline",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--config",
        default="default",
        help=f"built-in config ({', '.join(available_configs())}) or a .toml/.json file "
        "(start from `batchrmt config show default`)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override any config field, e.g. --set sweep.batch_sizes='[1,2,4]' --set thresholds.seeds=3 "
        "(values are read as JSON, else as text); repeatable",
    )
    p.add_argument("--data", choices=DATASETS, default=None, help="override the config's data set")
    p.add_argument("--data-root", default=None, help="folder holding the data set files")
    p.add_argument("--model", default=None, help="run only this model spec (e.g. vgg11, wrn-10-1, mlp-64x2)")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="skip cells whose record exists in --out")
    p.add_argument(
        "--allow-mixed-settings",
        action="store_true",
        help="with --resume: accept records made under another thread count, CPU capability or version",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes for independent cells, one intra-op thread each "
        "(default: one per available CPU; 1 on cuda); results do not depend on it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or step messages")
    p.add_argument(
        "--no-figures",
        action="store_true",
        help="records and CSVs only (draw later: batchrmt figures DIR)",
    )
    p.set_defaults(func=main, continue_command=continue_command)


def continue_command(args: argparse.Namespace) -> str | None:
    """The ``batchrmt run ... --resume`` command that continues this run (``None`` before ``--out`` is
    known)."""
    if getattr(args, "resolved_out", None) is None:
        return None
    words = ["batchrmt", "run", "--config", args.config, "--out", args.resolved_out]
    for override in args.overrides:
        words += ["--set", override]
    if args.workers is not None:
        words += ["--workers", str(args.workers)]
    for option, value in (("--data", args.data), ("--data-root", args.data_root), ("--model", args.model),
                          ("--device", args.device), ("--seed", args.seed)):  # fmt: skip
        if value is not None:
            words += [option, str(value)]
    words.append("--resume")
    for flag, on in (("--allow-mixed-settings", args.allow_mixed_settings), ("--quiet", args.quiet),
                     ("--no-figures", args.no_figures)):  # fmt: skip
        if on:
            words.append(flag)
    return shell_command(words)


def configure(args: argparse.Namespace) -> RunConfig:
    """The run's config: the named or given config with the command-line overrides, checked before any
    work (a config error is a :class:`UsageError` naming the file or field)."""
    from validation.config import ModelConfig

    config = load_run_config(load_config, args.config, args.overrides)
    changes: dict[str, Any] = {
        "data": args.data,
        "data_root": args.data_root,
        "device": args.device,
        "seed": args.seed,
    }
    if args.data is not None and args.data != config.data:
        changes["data_kwargs"] = {}
    if args.model is not None:
        known = [m for m in config.models if m.spec == args.model or m.name == args.model]
        changes["models"] = tuple(known) or (ModelConfig(name="model", spec=args.model),)
    try:
        config = config.replace_fields(**changes).validate()
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return config


def main(args: argparse.Namespace) -> int:
    from validation.report import format_table

    if args.allow_mixed_settings and not args.resume:
        raise UsageError("--allow-mixed-settings only applies with --resume")
    config = configure(args)
    check_device(config.device, "--device" if args.device else "config field 'device'")
    out = check_out_folder(args.out or f"runs/{config.name}")
    args.resolved_out = str(out)

    from networks.data.errors import DatasetNotFoundError
    from validation.pipeline import run_pipeline
    from validation.store import permit_mixed_settings

    start = time.perf_counter()
    try:
        with permit_mixed_settings(args.allow_mixed_settings):
            summary = run_pipeline(
                config,
                out,
                resume=args.resume,
                quiet=args.quiet,
                draw=not args.no_figures,
                workers=check_workers(args.workers),
            )
    except DatasetNotFoundError as exc:
        fix = "sudo apt-get install -y dataset-fashion-mnist, " if config.data == "fashion-mnist" else ""
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(
            f"batchrmt run: data set {config.data!r} not found ({detail}); install it ({fix}or pass "
            f"--data-root DIR), or use synthetic data: batchrmt run --config {args.config} --data {FALLBACK} "
            "--model mlp-64x2",
            file=sys.stderr,
        )
        return 1
    print(format_table(summary.rows))
    print(
        f"\nwrote {summary.out}/report.md, figures/ and {len(summary.files)} files "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0
