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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from validation import cells as cells_mod
from validation.cells import RunContext
from validation.config import RunConfig, config_from_dict
from validation.execution import Cell, CellExecutor, limit_threads, resolve_workers
from validation.experiments import checkpoints as ckpt_step
from validation.experiments import lr_analysis as lr_step
from validation.experiments import montecarlo as mc_step
from validation.experiments import noise as noise_step
from validation.experiments import per_sample as per_sample_step
from validation.experiments import spectra as spectra_step
from validation.experiments import spectrum_scoring as pred_step
from validation.experiments import sweep as sweep_step
from validation.experiments import thresholds as threshold_step
from validation.progress import Progress
from validation.provenance import environment
from validation.store import ResultStore, atomic_write_json, cell_key

T = TypeVar("T")



@dataclass
class RunSummary:
    """What ``run_pipeline`` produced: the run folder, the summary table rows, written files."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


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


def _stage(
    executor: CellExecutor,
    store: ResultStore,
    cells: list[Cell],
    *,
    resume: bool,
    progress: Progress,
    desc: str,
) -> None:
    """Run the cells whose records are missing (all of them without ``resume``) and store each record as its
    cell finishes."""
    pending = [c for c in cells if not (resume and all(store.has(c.step, k) for k in c.record_keys))]
    if not pending:
        return
    progress.say(f"{desc}: {len(pending)} cell(s) on {min(executor.workers, len(pending))} worker(s)")
    for cell, result in progress.bar(executor.run(pending), desc=desc, total=len(pending)):
        if cell.produces:
            for key, rec in zip(cell.produces, result["records"], strict=True):
                store.put(cell.step, key, rec)
        else:
            store.put(cell.step, cell.key, result)


def _usable(rec: dict[str, Any]) -> bool:
    return not rec.get("diverged") and math.isfinite(float(rec["loss"]))


def _checkpoint_cells(ctx: RunContext) -> list[Cell]:
    return [
        Cell(
            ckpt_step.STEP,
            cell_key(model=m.name),
            cells_mod.checkpoints_cell,
            (ctx, m.name),
            cost=10.0,
            produces=tuple(ckpt_step.checkpoint_keys(ctx.config, m)),
        )
        for m in ctx.config.models
    ]


def _curvature_cells(ctx: RunContext, ckpts: list[tuple[str, int]]) -> list[Cell]:
    out = []
    for name, c in ckpts:
        key = cell_key(model=name, ckpt=c)
        out.append(Cell(spectra_step.STEP, key, cells_mod.spectra_cell, (ctx, name, c), cost=5.0))
        out.append(Cell(noise_step.STEP, key, cells_mod.noise_cell, (ctx, name, c), cost=3.0))
    return out


def _per_sample_cells(ctx: RunContext, ckpts: list[tuple[str, int]]) -> list[Cell]:
    return [
        Cell(
            per_sample_step.STEP,
            cell_key(model=name, ckpt=c),
            cells_mod.per_sample_cell,
            (ctx, name, c),
            cost=4.0,
        )
        for name, c in ckpts
    ]


def _sweep_cells(ctx: RunContext, name: str, ckpt: int, grid: list[int]) -> list[Cell]:
    config = ctx.config
    out = [
        Cell(
            sweep_step.STEP,
            cell_key(model=name, ckpt=ckpt, B=b, s=s),
            cells_mod.sweep_cell,
            (ctx, name, ckpt, b, s),
            cost=1.0 + b / len(grid),
        )
        for b in grid
        for s in range(config.sweep.batches_per_size)
    ]
    out += [
        Cell(
            sweep_step.NOISE_STEP,
            cell_key(model=name, ckpt=ckpt, B=b),
            cells_mod.noise_spectrum_cell,
            (ctx, name, ckpt, b),
            cost=2.0,
        )
        for b in _noise_spectrum_sizes(config, grid)
    ]
    return out


def _threshold_cells(ctx: RunContext, name: str, ckpt: int, sizes: list[int]) -> list[Cell]:
    cfg = ctx.config.thresholds
    return [
        Cell(
            threshold_step.STEP,
            cell_key(model=name, ckpt=ckpt, opt=o, B=b, seed=s),
            cells_mod.threshold_cell,
            (ctx, name, ckpt, o, b, s),
            cost=1.0 / b,
        )
        for o in cfg.optimizers
        for b in sizes
        for s in range(cfg.seeds)
    ]


def _threshold_targets(config: RunConfig, usable: dict[str, list[int]]) -> list[tuple[str, int]]:
    out = []
    for m in config.models:
        if config.thresholds.models and m.name not in config.thresholds.models:
            continue
        out += [(m.name, c) for c in config.thresholds.checkpoints if c in usable[m.name]]
    return out


def run_pipeline(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    draw: bool = True,
    workers: int | None = None,
    objects: dict[str, Any] | None = None,
) -> RunSummary:
    """Run every step of ``config`` into the folder ``out`` and write the CSV summaries, figures and
    report. Independent cells run on ``workers`` single-thread processes (default: one per available CPU,
    :func:`validation.execution.resolve_workers`); the records do not depend on the number of workers.
    ``objects`` are the live Python objects that ``object:NAME`` references in the config name (your model or
    data; they are pickled to the worker processes, so with ``workers > 1`` their classes must be importable —
    defined in a module, or in a script guarded by ``if __name__ == "__main__":``)."""
    from validation import figures, report

    config.validate()
    n_workers = resolve_workers(workers, config.device)
    limit_threads()
    progress = Progress(quiet)
    store = ResultStore(out)
    summary = RunSummary(out=store.root)
    with store.locked(), CellExecutor(n_workers) as executor:
        _prepare_folder(store, config, resume)
        env = {**environment(), "workers": n_workers}
        ctx = RunContext(config=config, root=str(store.root), env=env, objects=dict(objects or {}))
        progress.say(f"{config.name}: {config.data} pool of {config.pool_size}, {n_workers} worker(s)")

        def stage(cells: list[Cell], desc: str) -> None:
            _stage(executor, store, cells, resume=resume, progress=progress, desc=desc)

        stage(_checkpoint_cells(ctx), "checkpoints")
        usable: dict[str, list[int]] = {}
        for m in config.models:
            recs = [store.get(ckpt_step.STEP, k) for k in ckpt_step.checkpoint_keys(config, m)]
            usable[m.name] = [int(r["ckpt"]) for r in recs if _usable(r)]
            for r in recs:
                if not _usable(r):
                    progress.say(f"[{m.name}] checkpoint {r['ckpt']} diverged in pre-training: skipped")
        ckpts = [(m.name, c) for m in config.models for c in usable[m.name]]
        stage(_curvature_cells(ctx, ckpts), "spectra and noise")
        stage(_per_sample_cells(ctx, ckpts), "per-sample curvature")
        pool_size = config.pool_size
        grids: dict[tuple[str, int], list[int]] = {}
        for name, c in ckpts:
            key = cell_key(model=name, ckpt=c)
            critical = pred_step.estimated_critical_batch(
                store.get(spectra_step.STEP, key), store.get(noise_step.STEP, key), pool_size
            )
            grids[(name, c)] = sweep_step.batch_size_grid(config, critical, pool_size)
        stage([cell for (n, c), g in grids.items() for cell in _sweep_cells(ctx, n, c, g)], "sweep")
        preds: dict[tuple[str, int], dict[str, Any]] = {}
        for (name, c), grid in grids.items():
            record = pred_step.compute_predictions(store, config, model=name, ckpt=c, grid=grid)
            preds[(name, c)] = store.put(pred_step.STEP, cell_key(model=name, ckpt=c), record.to_dict())
        targets = _threshold_targets(config, usable)
        threshold_cells = [
            cell
            for name, c in targets
            for cell in _threshold_cells(
                ctx, name, c, threshold_batch_sizes(config, [int(b) for b in preds[(name, c)]["grid"]])
            )
        ]
        stage(threshold_cells, "thresholds")
        for name, c in targets:
            analysis = lr_step.analyse_thresholds(store, config, model=name, ckpt=c)
            store.put(lr_step.LR_STEP, cell_key(model=name, ckpt=c), analysis.to_dict())
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
