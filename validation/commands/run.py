"""``batchrmt run``: the main job (checkpoints, curvature, noise, sweep, predictions, thresholds, figures,
report)."""

from __future__ import annotations

import argparse
import contextlib
import os
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
from validation.distributed_execution import (
    DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
    DistributedCellExecutor,
    DistributedRunError,
    distributed_executor,
    in_distributed_env,
)

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
    p.add_argument(
        "--distributed",
        action="store_true",
        help="spread the independent cells over the ranks of a torchrun job: torchrun --nproc-per-node N "
        "-m validation.cli run --distributed ... (gloo on cpu, nccl on cuda with one GPU per rank); rank 0 "
        "writes every record; --out must be on a filesystem every rank sees; --workers is per rank",
    )
    p.add_argument(
        "--distributed-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="with --distributed: longest wait for another rank (must exceed one rank's share of a stage)",
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
    if getattr(args, "distributed", False):
        ranks = os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or "N"
        words = ["torchrun", f"--nproc-per-node={ranks}", "-m", "validation.cli", *words[1:], "--distributed"]
        if args.distributed_timeout != DEFAULT_TIMEOUT_S:
            words += ["--distributed-timeout", str(args.distributed_timeout)]
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
        known = [m for m in config.models if args.model in (m.spec, m.name, m.base)]
        changes["models"] = tuple(known) or (ModelConfig(name="model", spec=args.model),)
    try:
        config = config.replace_fields(**changes).validate()
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return config


def _executor(
    args: argparse.Namespace, device: str, workers: int | None
) -> contextlib.AbstractContextManager[DistributedCellExecutor | None]:
    """With ``--distributed``: this rank's :class:`DistributedCellExecutor` (it joins torchrun's process
    group); otherwise nothing (``run_pipeline`` makes its own executor)."""
    if not args.distributed:
        return contextlib.nullcontext()
    return distributed_executor(
        args.resolved_out,
        workers=workers,
        device=device,
        timeout_s=args.distributed_timeout,
        allow_mixed_settings=args.allow_mixed_settings,
    )


def main(args: argparse.Namespace) -> int:
    from validation.cli import printable
    from validation.report import format_table

    if args.allow_mixed_settings and not args.resume:
        raise UsageError("--allow-mixed-settings only applies with --resume")
    if args.distributed and not in_distributed_env():
        raise UsageError(
            "--distributed runs under torchrun, which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; "
            "launch it with: torchrun --nproc-per-node N -m validation.cli run --distributed ..."
        )
    if not 0 < args.distributed_timeout <= MAX_TIMEOUT_S:
        raise UsageError(
            f"--distributed-timeout must be in (0, {MAX_TIMEOUT_S:g}] seconds, got {args.distributed_timeout}"
        )
    config = configure(args)
    check_device(config.device, "--device" if args.device else "config field 'device'")
    out = check_out_folder(args.out or f"runs/{config.name}")
    args.resolved_out = str(out)

    from networks.data.errors import DatasetNotFoundError
    from validation.pipeline import run_pipeline
    from validation.store import permit_mixed_settings

    start = time.perf_counter()
    workers = check_workers(args.workers)
    try:
        with permit_mixed_settings(args.allow_mixed_settings), _executor(args, config.device, workers) as ex:
            if ex is not None and ex.rank != 0:
                ex.serve()  # this rank computes its share of every stage; rank 0 writes the records
                return 0
            summary = run_pipeline(
                config,
                out,
                resume=args.resume,
                quiet=args.quiet,
                draw=not args.no_figures,
                workers=workers,
                executor=ex,
            )
    except DistributedRunError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"batchrmt run: {printable(str(exc))}", file=sys.stderr)
        return 1
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
