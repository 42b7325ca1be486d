"""Maximal learning rate of one cell (checkpoint, optimizer, batch size, seed): docs/validation.md §1, §3.

:func:`measure_threshold_cell` runs the divergence-trial bisection (:func:`networks.thresholds.find_max_lr`)
for the strict and the lenient criterion on one shared :class:`networks.stability.TrialRunner`, so a trial at
a given lr is run once and serves both searches, and returns the record (the store writes non-finite floats
as ``"nan"``/``"inf"``, see :mod:`validation.records`). All settings come in one
:class:`networks.trial_settings.TrialSettings`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from networks.options import Optimizer
from networks.stability import TrialRunner, TrialSettings
from networks.thresholds import find_max_lr
from networks.training import ArrayDataset
from validation import steps

__all__ = ["STEP", "measure_threshold_cell"]

STEP = steps.THRESHOLDS

RECORD_VERSION = 1


def _recorded_optimizer_kwargs(optimizer: Optimizer, settings: TrialSettings) -> dict[str, Any]:
    """The optimizer's hyper-parameters that differ from the package defaults (``networks.options``): the
    record field ``optimizer_kwargs`` keeps its meaning from record version 1 (the overrides given)."""
    defaults = TrialSettings().optimizer_kwargs(optimizer)
    return {k: v for k, v in settings.optimizer_kwargs(optimizer).items() if v != defaults[k]}


def measure_threshold_cell(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    pool: ArrayDataset,
    *,
    optimizer: Optimizer,
    batch_size: int,
    seed: int,
    settings: TrialSettings | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Local divergence thresholds η_div(B) of one cell, from the model's current weights (not modified).

    The cell is (``optimizer``, ``batch_size`` = B, ``seed``); everything else is ``settings``
    (:class:`networks.stability.TrialSettings`, default ``TrialSettings()``). Each trial: K = ``steps``
    steps at lr with fresh batches of B pool samples drawn by ``seed``, after ``warmup_steps`` lr-0 steps at
    the same B; the pool loss is evaluated on a fixed seed-0 subset of ``eval_size`` samples (None = whole
    pool) every ``eval_every`` steps. For each criterion in ``settings.criteria`` ("strict":
    L ≤ (1 + δ)·L(w_c) throughout; "lenient": final L ≤ 2·L(w_c)) a log-bisection from [``lr_low``,
    ``lr_high``] (expanded if needed) with ≥ ``halvings`` halvings to a bracket ratio ≤ ``resolution``,
    then the monotonicity check (``networks.thresholds.find_max_lr``).

    Record fields: ``lr_max_<criterion>``, ``monotone_<criterion>``, ``thresholds[<criterion>]`` (lr_max,
    bracket, monotone, bracket_found, halvings, unstable_below, num_trials), ``trials`` (every trial, by lr),
    ``initial_loss``, the settings (optimizer, optimizer_kwargs = the hyper-parameters that differ from the
    defaults, batch_size, seed, steps, delta, warmup_steps, eval_every, eval_size, pool_size, bn_mode,
    lr_low, lr_high, halvings, resolution, vectorised), ``num_trials``, ``wall_time`` (s), ``torch_version``,
    ``dtype``, ``device``, ``record_version``, plus ``extra`` (the caller's cell labels: model, checkpoint,
    ...). Non-finite floats are stored as None.
    """
    settings = TrialSettings() if settings is None else settings
    start = time.perf_counter()
    runner = TrialRunner(
        model, loss_fn, pool, optimizer=optimizer, batch_size=batch_size, seed=seed, settings=settings
    )
    results = {c: find_max_lr(runner, criterion=c, settings=settings) for c in settings.criteria}
    trials = [runner.cache[lr].to_dict() for lr in sorted(runner.cache)]
    param = next(iter(model.parameters()), None)
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "optimizer": optimizer,
        "optimizer_kwargs": _recorded_optimizer_kwargs(optimizer, settings),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "steps": settings.steps,
        "delta": settings.delta,
        "warmup_steps": settings.warmup_steps,
        "eval_every": settings.eval_every,
        "eval_size": runner.eval_size,
        "pool_size": len(pool),
        "bn_mode": settings.bn_mode,
        "lr_low": settings.lr_low,
        "lr_high": settings.lr_high,
        "halvings": settings.halvings,
        "resolution": settings.resolution,
        "vectorised": runner.vectorised,
        "initial_loss": trials[0]["initial_loss"] if trials else math.nan,
        "thresholds": {c: r.summary() for c, r in results.items()},
        "num_trials": runner.num_trials,
        "trials": trials,
        "wall_time": time.perf_counter() - start,
        "torch_version": torch.__version__,
        "dtype": str(param.dtype).removeprefix("torch.") if param is not None else "float32",
        "device": str(param.device) if param is not None else "cpu",
    }
    for criterion, result in results.items():
        record[f"lr_max_{criterion}"] = result.lr_max
        record[f"monotone_{criterion}"] = result.monotone
    if extra:
        record.update(extra)
    return record
