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

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from validation import cells as cells_mod
from validation import steps
from validation.cells import RunContext
from validation.config import RunConfig, config_from_dict
from validation.execution import Cell, CellExecutor, limit_threads, resolve_workers
from validation.experiments import checkpoints as ckpt_step
from validation.experiments import lr_analysis as lr_step
from validation.experiments import montecarlo as mc_step
from validation.experiments import noise as noise_step
from validation.experiments import per_sample as per_sample_step
from validation.experiments import preconditioned as precond_step
from validation.experiments import seed_aggregate as seed_step
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
            current = json.loads(json.dumps(config.to_dict()))
            if config_from_dict(stored).to_dict() != config.to_dict():
                raise ValueError(
                    f"--resume: the config differs from the one stored in {path}; use the same "
                    f"config or a new --out"
                )
            added = _added_fields(stored, current)
            if added:  # a field the stored config lacks: written by an older version with other defaults
                raise ValueError(
                    f"--resume: {path} was written by an older batchrmt without the config field(s) "
                    f"{', '.join(added[:4])}, so its records may follow other defaults; start a new --out"
                )
            return
        if store.steps():
            raise ValueError(
                f"{store.root} already holds a run; pass --resume to continue it or choose a new --out"
            )
    atomic_write_json(path, config.to_dict())


def _added_fields(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields of ``current`` (a config dict) that ``stored`` lacks."""
    if not isinstance(current, dict) or not isinstance(stored, dict):
        return []
    out: list[str] = []
    for key, value in current.items():
        name = f"{prefix}{key}"
        out += [name] if key not in stored else _added_fields(stored[key], value, f"{name}.")
    return out


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
    for m in config.models:  # thresholds.models names base models: all replicas (docs/validation.md §4b)
        if config.thresholds.models and m.base not in config.thresholds.models:
            continue
        out += [(m.name, c) for c in config.thresholds.checkpoints if c in usable[m.name]]
    return out


@dataclass
class RunState:
    """What the stages of one run share: the cells' context, the store (the only record writer), the
    executor, progress output, and what earlier stages found (usable checkpoints, sweep grids,
    predictions)."""

    ctx: RunContext
    store: ResultStore
    executor: CellExecutor
    progress: Progress
    resume: bool
    usable: dict[str, list[int]] = field(default_factory=dict)
    grids: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    predictions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    @property
    def config(self) -> RunConfig:
        return self.ctx.config

    @property
    def checkpoints(self) -> list[tuple[str, int]]:
        """(model, checkpoint) pairs whose pre-training did not diverge, in config order."""
        return [(m.name, c) for m in self.config.models for c in self.usable.get(m.name, [])]

    def run(self, cells: list[Cell], desc: str) -> None:
        _stage(self.executor, self.store, cells, resume=self.resume, progress=self.progress, desc=desc)


def _checkpoints_stage(run: RunState) -> None:
    """Step 1: pre-train each model to the loss levels; note which checkpoints are usable."""
    run.run(_checkpoint_cells(run.ctx), "checkpoints")
    for m in run.config.models:
        recs = [run.store.get(ckpt_step.STEP, k) for k in ckpt_step.checkpoint_keys(run.config, m)]
        run.usable[m.name] = [int(r["ckpt"]) for r in recs if _usable(r)]
        for r in recs:
            if not _usable(r):
                run.progress.say(f"[{m.name}] checkpoint {r['ckpt']} diverged in pre-training: skipped")


def _curvature_stage(run: RunState) -> None:
    """Steps 2–3: spectra and noise of every usable checkpoint."""
    run.run(_curvature_cells(run.ctx, run.checkpoints), "spectra and noise")


def _sweep_stage(run: RunState) -> None:
    """Step 4: the batch-size grid of each checkpoint (from its spectra and noise), then every batch; the
    per-sample curvature (it needs the spectra's top eigenvectors) runs in the same stage."""
    for name, c in run.checkpoints:
        key = cell_key(model=name, ckpt=c)
        critical = pred_step.estimated_critical_batch(
            run.store.get(spectra_step.STEP, key), run.store.get(noise_step.STEP, key), run.config.pool_size
        )
        run.grids[(name, c)] = sweep_step.batch_size_grid(run.config, critical, run.config.pool_size)
    cells = [cell for (n, c), g in run.grids.items() for cell in _sweep_cells(run.ctx, n, c, g)]
    run.run(_per_sample_cells(run.ctx, run.checkpoints) + cells, "sweep and per-sample curvature")


def _predictions_stage(run: RunState) -> None:
    """Step 5: every registered spectrum model scored against the sweep, one cell per checkpoint (always
    recomputed from the stored records, also on --resume)."""
    cells = [
        Cell(pred_step.STEP, cell_key(model=name, ckpt=c), cells_mod.predictions_cell, (run.ctx, name, c, g))
        for (name, c), g in run.grids.items()
    ]
    _stage(run.executor, run.store, cells, resume=False, progress=run.progress, desc="predictions")
    for name, c in run.grids:
        run.predictions[(name, c)] = run.store.get(pred_step.STEP, cell_key(model=name, ckpt=c))


def _thresholds_stage(run: RunState) -> None:
    """Step 6: divergence thresholds at the configured checkpoints, then their learning-rate analysis."""
    targets = _threshold_targets(run.config, run.usable)
    cells = []
    for name, c in targets:
        grid = [int(b) for b in run.predictions[(name, c)]["grid"]]
        cells += _threshold_cells(run.ctx, name, c, threshold_batch_sizes(run.config, grid))
    run.run(cells, "thresholds")
    for name, c in targets:
        analysis = lr_step.analyse_thresholds(run.store, run.config, model=name, ckpt=c)
        run.store.put(lr_step.LR_STEP, cell_key(model=name, ckpt=c), analysis.to_dict())


def _threshold_inputs_stage(run: RunState) -> None:
    """Steps 6b and 6c, the threshold predictors' own measurements (read by step 6), in one parallel batch:
    Adam's warm-up preconditioner and λ_max(P⁻¹H_B) at the threshold cells, and the pool's gradient and
    curvature moments along the top eigenvectors at each threshold checkpoint (SGD, momentum)."""
    th, targets = run.config.thresholds, _threshold_targets(run.config, run.usable)
    cells = []
    if "adam" in th.optimizers and th.preconditioned_batches > 0:
        cells += [
            Cell(precond_step.STEP, cell_key(model=name, ckpt=c, B=b), cells_mod.preconditioned_cell,
                 (run.ctx, name, c, b), cost=2.0)
            for name, c in targets
            for b in threshold_batch_sizes(run.config, [int(g) for g in run.predictions[(name, c)]["grid"]])
        ]  # fmt: skip
    if {"sgd", "momentum"} & set(th.optimizers):
        cells += [
            Cell(steps.FINITE_HORIZON, cell_key(model=name, ckpt=c), cells_mod.finite_horizon_cell,
                 (run.ctx, name, c), cost=1.0)
            for name, c in targets
        ]  # fmt: skip
    if cells:
        run.run(cells, "threshold predictors' inputs")


def _montecarlo_stage(run: RunState) -> None:
    """The theory layer's predictions against its exact samplers (one record per run seed)."""
    seed = run.config.seed
    run.store.get_or_compute(
        mc_step.STEP, cell_key(seed=seed), lambda: mc_step.monte_carlo_record(seed), resume=True
    )


def _seed_aggregate_stage(run: RunState) -> None:
    """Steps 5–6 over training seeds (docs/validation.md §4b): one record per configured model and checkpoint,
    recomputed from stored records; only with ≥ 2 training seeds (one seed: nothing to aggregate)."""
    if run.config.replicas_per_model < 2:
        return
    for key, record in seed_step.aggregate_run(run.store, run.config).items():
        run.store.put(seed_step.STEP, key, record.to_dict())


STAGES: tuple[Callable[[RunState], None], ...] = (
    _checkpoints_stage,
    _curvature_stage,
    _sweep_stage,
    _predictions_stage,
    _threshold_inputs_stage,
    _thresholds_stage,
    _montecarlo_stage,
    _seed_aggregate_stage,
)
"""The run, in order. A new measurement is a cell function in :mod:`validation.cells` plus a stage here that
declares its cells; a new random-matrix model is one function registered in
:mod:`validation.experiments.spectrum_models` (step 5 scores every registered model)."""


def run_pipeline(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    draw: bool = True,
    workers: int | None = None,
    objects: dict[str, Any] | None = None,
    executor: CellExecutor | None = None,
) -> RunSummary:
    """Run every stage of ``config`` (:data:`STAGES`) into the folder ``out`` and write the CSV summaries,
    figures and report. Independent cells run on ``workers`` single-thread processes (default: one per
    available CPU, :func:`validation.execution.resolve_workers`); the records do not depend on the number of
    workers. ``objects`` are the live Python objects that ``object:NAME`` references in the config name (your
    model or data; they are pickled to the worker processes, so with ``workers > 1`` their classes must be
    importable — defined in a module, or in a script guarded by ``if __name__ == "__main__":``).
    ``executor``: run the cells on this executor instead (e.g. a
    :class:`validation.distributed_execution.DistributedCellExecutor`; the caller closes it, ``workers`` is
    then unused)."""
    config.validate()
    n_workers = resolve_workers(workers, config.device) if executor is None else executor.workers
    limit_threads()
    progress = Progress(quiet)
    store = ResultStore(out)
    own: contextlib.AbstractContextManager[CellExecutor] = (
        CellExecutor(n_workers) if executor is None else contextlib.nullcontext(executor)
    )
    with store.locked(), own as executor:
        _prepare_folder(store, config, resume)
        env = {**environment(), "workers": n_workers}
        ctx = RunContext(config=config, root=str(store.root), env=env, objects=dict(objects or {}))
        progress.say(f"{config.name}: {config.data} pool of {config.pool_size}, {n_workers} worker(s)")
        run = RunState(ctx=ctx, store=store, executor=executor, progress=progress, resume=resume)
        for stage in STAGES:
            stage(run)
        return _write_outputs(store, executor, draw=draw)


def _write_outputs(store: ResultStore, executor: CellExecutor, *, draw: bool) -> RunSummary:
    """CSV summaries of every step, then (``draw``) figures — drawn in parallel on the executor's workers, one
    cell per figure (``validation.figures.FIGURES``) — and the report, all from stored records."""
    from validation import figures, report

    summary = RunSummary(out=store.root)
    for step in store.steps():
        path = seed_step.write_summary(store) if step == seed_step.STEP else store.write_csv(step)
        if path is not None:
            summary.files.append(path)
    if draw:
        root, cost = str(store.root), figures.FIGURE_COST
        cells = [
            Cell("figures", name, figures.draw_figure, (root, name), cost.get(name, 1.0))
            for name in figures.FIGURES
        ]
        drawn = {cell.key: result["paths"] for cell, result in executor.run(cells)}
        summary.files.extend(Path(p) for name in figures.FIGURES for p in drawn[name])
    summary.files.append(report.write_report(store.root))  # also without figures (it links those that exist)
    summary.rows = report.summary_rows(store.root)
    return summary
