"""The main job, ``batchrmt run``: config → data + models → checkpoints → curvature → noise → sweep →
predictions → thresholds → learning-rate analysis → figures and report.

Each step writes records to the run's ``ResultStore``; with ``resume=True`` a cell whose record exists is
skipped, and every cell's randomness is derived from the run seed and the cell identity
(``validation.provenance.derived_seed``), so a resumed run produces the same records as an uninterrupted one
(up to timing fields). The analysis steps (predictions, learning-rate analysis) read only stored records and
are
recomputed at the end of every run; figures and report read only stored records.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from validation.config import ModelConfig, RunConfig, config_from_dict
from validation.experiments import checkpoints as ckpt_step
from validation.experiments import lr_analysis as lr_step
from validation.experiments import montecarlo as mc_step
from validation.experiments import noise as noise_step
from validation.experiments import spectra as spectra_step
from validation.experiments import spectrum_scoring as pred_step
from validation.experiments import sweep as sweep_step
from validation.provenance import environment
from validation.store import ResultStore, atomic_write_json, cell_key

T = TypeVar("T")

THRESHOLD_STEP = "thresholds"


@dataclass
class RunSummary:
    """What ``run_pipeline`` produced: the run folder, the summary table rows, written files."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


class Progress:
    """Step messages and tqdm bars, both silent with ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def bar(self, items: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
        if self.quiet:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, total=total, leave=False, file=sys.stderr)


def _prepare_folder(store: ResultStore, config: RunConfig, resume: bool) -> None:
    path = store.root / "config.json"
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if resume:
            if config_from_dict(_config_dict_for_compare(stored)).to_dict() != config.to_dict():
                raise ValueError(
                    f"--resume: the config differs from the one stored in {path}; use the same "
                    f"config or a new --out"
                )
            return
        if store.steps():
            raise ValueError(
                f"{store.root} already holds a run; pass --resume to continue it or choose a new --out"
            )
    atomic_write_json(path, config.to_dict())


def _config_dict_for_compare(stored: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stored.items()}


def threshold_batch_sizes(config: RunConfig, grid: list[int]) -> list[int]:
    """The configured threshold batch sizes, or at most ``max_batch_sizes`` values of the sweep grid spread
    evenly in log B (always including its smallest and largest)."""
    cfg = config.thresholds
    if cfg.batch_sizes:
        return sorted(set(cfg.batch_sizes))
    if len(grid) <= cfg.max_batch_sizes:
        return list(grid)
    picks = np.unique(np.round(np.linspace(0, len(grid) - 1, cfg.max_batch_sizes)).astype(int))
    return [grid[i] for i in picks]


def _noise_spectrum_sizes(config: RunConfig, grid: list[int]) -> list[int]:
    n = config.sweep.noise_spectrum_sizes
    if n == 0 or not grid:
        return []
    if n >= len(grid):
        return list(grid)
    picks = np.unique(np.round(np.linspace(0, len(grid) - 1, n + 2)[1:-1]).astype(int))
    return [grid[int(i)] for i in picks]


def _curvature_steps(
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: ckpt_step.Pool,
    store: ResultStore,
    ckpt_rec: dict[str, Any],
    *,
    resume: bool,
    env: dict[str, Any],
    progress: Progress,
) -> dict[str, Any] | None:
    """Steps 2–5 for one checkpoint; returns the predictions record (``None`` for a diverged checkpoint)."""
    name, ckpt = model_cfg.name, int(ckpt_rec["ckpt"])
    key = cell_key(model=name, ckpt=ckpt)
    if ckpt_rec.get("diverged") or not math.isfinite(float(ckpt_rec["loss"])):
        progress.say(f"[{name}] checkpoint {ckpt} diverged during pre-training: curvature steps skipped")
        return None
    loss_fn = ckpt_step.loss_function()
    model = ckpt_step.load_checkpoint(store, ckpt_rec, config, model_cfg, pool)

    def with_env(rec: dict[str, Any]) -> dict[str, Any]:
        rec["provenance"] = env
        return rec

    progress.say(f"[{name}] checkpoint {ckpt}: empirical curvature (top-{config.curvature.top_k}, SLQ)")
    spectra = store.get_or_compute(
        spectra_step.STEP,
        key,
        lambda: with_env(
            spectra_step.measure_spectra(
                config, model, loss_fn, pool, store, model_name=name, ckpt=ckpt, key=key
            )
        ),
        resume=resume,
    )
    progress.say(f"[{name}] checkpoint {ckpt}: per-sample noise")
    noise = store.get_or_compute(
        noise_step.STEP,
        key,
        lambda: with_env(
            noise_step.measure_noise(config, model, loss_fn, pool, store, model_name=name, ckpt=ckpt, key=key)
        ),
        resume=resume,
    )
    critical = pred_step.estimated_critical_batch(spectra, noise, len(pool))
    grid = sweep_step.batch_size_grid(config, critical, len(pool))
    top_vectors = torch.as_tensor(store.load_array(spectra["hessian_vectors"])).to(pool.x.device)
    cells = [(b, s) for b in grid for s in range(config.sweep.batches_per_size)]

    def sweep_cell(b: int, s: int) -> dict[str, Any]:
        rec = sweep_step.measure_batch_cell(
            config, model, loss_fn, pool, top_vectors, model_name=name, ckpt=ckpt, batch_size=b, batch_index=s
        )
        return with_env(rec)

    def noise_cell(b: int) -> dict[str, Any]:
        rec = sweep_step.measure_noise_spectrum(
            config, model, loss_fn, pool, model_name=name, ckpt=ckpt, batch_size=b
        )
        return with_env(rec)

    for b, s in progress.bar(cells, desc=f"{name} ckpt {ckpt} sweep"):
        key_bs = cell_key(model=name, ckpt=ckpt, B=b, s=s)
        store.get_or_compute(sweep_step.STEP, key_bs, partial(sweep_cell, b, s), resume=resume)
    for b in progress.bar(_noise_spectrum_sizes(config, grid), desc=f"{name} ckpt {ckpt} H_B - H"):
        key_b = cell_key(model=name, ckpt=ckpt, B=b)
        store.get_or_compute(sweep_step.NOISE_STEP, key_b, partial(noise_cell, b), resume=resume)
    record = pred_step.compute_predictions(store, config, model=name, ckpt=ckpt, grid=grid)
    return store.put(pred_step.STEP, key, record.to_dict())


def threshold_cell(
    model: Any,
    loss_fn: Any,
    data: Any,
    *,
    optimizer: str,
    batch_size: int,
    seed: int,
    config: RunConfig,
    bn_mode: str,
) -> dict[str, Any]:
    """One (optimizer, B, seed) threshold cell with the run's threshold settings:
    :func:`validation.experiments.thresholds.measure_threshold_cell` (bisection on log η with the
    monotonicity check, strict and lenient criteria sharing one runner's cached trials), plus
    ``diverged_any`` (did any trial of the cell diverge)."""
    from validation.experiments.thresholds import measure_threshold_cell

    cfg = config.thresholds
    record = measure_threshold_cell(
        model,
        loss_fn,
        data,
        optimizer=optimizer,
        batch_size=batch_size,
        seed=seed,
        steps=cfg.steps,
        lr_low=cfg.lr_low,
        lr_high=cfg.lr_high,
        halvings=cfg.halvings,
        delta=cfg.delta,
        warmup_steps=cfg.warmup_steps,
        eval_every=cfg.eval_every,
        eval_size=cfg.eval_size,
        bn_mode=bn_mode,
    )
    record["diverged_any"] = any(bool(t.get("diverged")) for t in record["trials"])
    return record


def _threshold_steps(
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: ckpt_step.Pool,
    store: ResultStore,
    ckpt_rec: dict[str, Any],
    predictions: dict[str, Any],
    *,
    resume: bool,
    env: dict[str, Any],
    progress: Progress,
) -> None:
    """Step 6: divergence thresholds per (optimizer, B, seed) at one checkpoint."""
    from validation.provenance import derived_seed, timed

    name, ckpt = model_cfg.name, int(ckpt_rec["ckpt"])
    cfg = config.thresholds
    sizes = threshold_batch_sizes(config, [int(b) for b in predictions["grid"]])
    loss_fn = ckpt_step.loss_function()
    data = ckpt_step.pool_dataset(pool)
    model = ckpt_step.load_checkpoint(store, ckpt_rec, config, model_cfg, pool)
    cells = [(o, b, s) for o in cfg.optimizers for b in sizes for s in range(cfg.seeds)]
    for opt, b, s in progress.bar(cells, desc=f"{name} ckpt {ckpt} thresholds"):
        key = cell_key(model=name, ckpt=ckpt, opt=opt, B=b, seed=s)

        def compute(opt: str = opt, b: int = b, s: int = s) -> dict[str, Any]:
            batch_seed = derived_seed(config.seed, name, ckpt, "threshold", opt, b, s)
            with timed() as timer:
                rec = threshold_cell(
                    model,
                    loss_fn,
                    data,
                    optimizer=opt,
                    batch_size=b,
                    seed=batch_seed,
                    config=config,
                    bn_mode=config.bn_mode,
                )
            rec.update(
                {
                    "model": name,
                    "ckpt": ckpt,
                    "optimizer": opt,
                    "B": b,
                    "seed": s,
                    "batch_seed": batch_seed,
                    "provenance": env,
                    **timer.fields(),
                }
            )
            return rec

        store.get_or_compute(THRESHOLD_STEP, key, compute, resume=resume)


def run_pipeline(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    draw: bool = True,
) -> RunSummary:
    """Run every step of ``config`` into the folder ``out`` and write the CSV summaries, figures and
    report."""
    from validation import figures, report

    config.validate()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    progress = Progress(quiet)
    store = ResultStore(out)
    summary = RunSummary(out=store.root)
    with store.locked():
        _prepare_folder(store, config, resume)
        env = environment()
        progress.say(f"loading {config.data} (pool of {config.pool_size})")
        pool = ckpt_step.load_pool(config)
        for model_cfg in config.models:
            progress.say(
                f"[{model_cfg.name}] checkpoints: small-lr SGD to loss levels "
                f"{config.checkpoint.loss_fractions}"
            )
            ckpts = ckpt_step.make_checkpoints(config, model_cfg, pool, store, resume=resume, env=env)
            preds: dict[int, dict[str, Any]] = {}
            for rec in ckpts:
                pred = _curvature_steps(
                    config, model_cfg, pool, store, rec, resume=resume, env=env, progress=progress
                )
                if pred is not None:
                    preds[int(rec["ckpt"])] = pred
            wanted = not config.thresholds.models or model_cfg.name in config.thresholds.models
            for c in config.thresholds.checkpoints if wanted else ():
                if c in preds:
                    progress.say(f"[{model_cfg.name}] checkpoint {c}: divergence thresholds")
                    _threshold_steps(
                        config,
                        model_cfg,
                        pool,
                        store,
                        ckpts[c],
                        preds[c],
                        resume=resume,
                        env=env,
                        progress=progress,
                    )
                    analysis = lr_step.analyse_thresholds(store, config, model=model_cfg.name, ckpt=c)
                    store.put(lr_step.LR_STEP, cell_key(model=model_cfg.name, ckpt=c), analysis.to_dict())
        store.get_or_compute(
            mc_step.STEP,
            cell_key(seed=config.seed),
            lambda: mc_step.monte_carlo_record(config.seed),
            resume=True,
        )
        for step in store.steps():
            path = store.write_csv(step)
            if path is not None:
                summary.files.append(path)
        if draw:
            summary.files.extend(figures.draw_all(store.root))
            summary.files.append(report.write_report(store.root))
        summary.rows = report.summary_rows(store.root)
    return summary
