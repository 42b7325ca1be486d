"""``batchrmt run``: the main job (checkpoints, curvature, noise, sweep, predictions, thresholds, figures,
report)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from validation.config import DATASETS, available_configs, load_config

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
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from networks.data.errors import DatasetNotFoundError
    from validation.config import ModelConfig
    from validation.pipeline import run_pipeline
    from validation.report import format_table

    try:
        config = load_config(args.config, args.overrides)
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
        config = config.replace_fields(**changes)
    except (ValueError, TypeError) as exc:
        print(f"batchrmt run: {exc}", file=sys.stderr)
        return 2
    out = args.out or f"runs/{config.name}"
    start = time.perf_counter()
    try:
        summary = run_pipeline(
            config,
            out,
            resume=args.resume,
            quiet=args.quiet,
            draw=not args.no_figures,
            workers=args.workers,
        )
    except DatasetNotFoundError as exc:
        print(f"batchrmt run: data set {config.data!r} not found.\n{exc}", file=sys.stderr)
        if config.data == "fashion-mnist":
            print("Install it with:  sudo apt-get install -y dataset-fashion-mnist", file=sys.stderr)
        print(
            f"Or use synthetic data (vectors, so with an MLP):  batchrmt run --config {args.config} "
            f"--data {FALLBACK} --model mlp-64x2",
            file=sys.stderr,
        )
        return 3
    except ValueError as exc:
        print(f"batchrmt run: {exc}", file=sys.stderr)
        return 2
    print(format_table(summary.rows))
    print(
        f"\nwrote {summary.out}/report.md, figures/ and {len(summary.files)} files "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0
