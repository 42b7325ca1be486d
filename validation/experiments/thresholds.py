"""Maximal learning rate of one cell (checkpoint, optimizer, batch size, seed): VALIDATION.md §1, §3.

:func:`measure_threshold_cell` runs the divergence-trial bisection (``networks.training.find_max_lr``) for the
strict and the lenient criterion on one shared :class:`networks.training.TrialRunner`, so a trial at a given
lr is run once and serves both searches, and returns a JSON-able record (non-finite floats become ``None``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from networks.training import CRITERIA, ArrayDataset, ThresholdResult, TrialRunner, find_max_lr

__all__ = ["measure_threshold_cell"]

RECORD_VERSION = 1


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats (diverged losses, an open bracket) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _summary(result: ThresholdResult) -> dict[str, Any]:
    return {
        "lr_max": result.lr_max,
        "bracket": list(result.bracket),
        "monotone": result.monotone,
        "bracket_found": result.bracket_found,
        "halvings": result.halvings,
        "unstable_below": result.unstable_below,
        "num_trials": result.num_trials,
    }


def measure_threshold_cell(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    pool: ArrayDataset,
    *,
    optimizer: str,
    batch_size: int,
    seed: int,
    steps: int = 100,
    criteria: Sequence[str] = CRITERIA,
    lr_low: float = 1e-3,
    lr_high: float = 10.0,
    halvings: int = 8,
    resolution: float = 1.05,
    delta: float = 0.5,
    warmup_steps: int = 0,
    eval_every: int = 1,
    eval_size: int | None = 256,
    bn_mode: str = "eval",
    optimizer_kwargs: dict[str, Any] | None = None,
    vectorise: bool | str = "auto",
    max_parallel: int = 8,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Local divergence thresholds η_div(B) of one cell, from the model's current weights (not modified).

    Each trial: ``steps`` = K steps at lr with fresh batches of ``batch_size`` pool samples drawn by ``seed``,
    after ``warmup_steps`` lr-0 steps at the same B (Adam's moments, the momentum buffer); the pool loss is
    evaluated on a fixed seed-0 subset of ``eval_size`` samples (None = whole pool) every ``eval_every``
    steps. For each criterion in ``criteria`` ("strict": L ≤ (1 + ``delta``)·L(w_c) throughout;
    "lenient": final L ≤ 2·L(w_c)) a log-bisection from [``lr_low``, ``lr_high``] (expanded if needed) with
    ≥ ``halvings`` halvings to a bracket ratio ≤ ``resolution``, then the monotonicity check.

    Record fields: ``lr_max_<criterion>``, ``monotone_<criterion>``, ``thresholds[<criterion>]`` (lr_max,
    bracket, monotone, bracket_found, halvings, unstable_below, num_trials), ``trials`` (every trial, by lr),
    ``initial_loss``, the settings (optimizer, optimizer_kwargs, batch_size, seed, steps, delta, warmup_steps,
    eval_every, eval_size, pool_size, bn_mode, lr_low, lr_high, halvings, resolution, vectorised),
    ``num_trials``, ``wall_time`` (s), ``torch_version``, ``dtype``, ``device``, ``record_version``, plus
    ``extra`` (the caller's cell labels: model, checkpoint, ...). Non-finite floats are stored as None.
    """
    if isinstance(criteria, str) or not criteria or any(c not in CRITERIA for c in criteria):
        raise ValueError(f"criteria must be a non-empty list drawn from {CRITERIA}, got {criteria!r}")
    start = time.perf_counter()
    runner = TrialRunner(
        model,
        loss_fn,
        pool,
        optimizer=optimizer,
        batch_size=batch_size,
        steps=steps,
        seed=seed,
        delta=delta,
        warmup_steps=warmup_steps,
        eval_every=eval_every,
        eval_size=eval_size,
        bn_mode=bn_mode,
        optimizer_kwargs=optimizer_kwargs,
        vectorise=vectorise,
        max_parallel=max_parallel,
    )
    results = {
        criterion: find_max_lr(
            runner,
            lr_low=lr_low,
            lr_high=lr_high,
            halvings=halvings,
            criterion=criterion,
            resolution=resolution,
        )
        for criterion in criteria
    }
    trials = [runner.cache[lr].to_dict() for lr in sorted(runner.cache)]
    param = next(iter(model.parameters()), None)
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "optimizer": optimizer,
        "optimizer_kwargs": dict(optimizer_kwargs or {}),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "steps": int(steps),
        "delta": float(delta),
        "warmup_steps": int(warmup_steps),
        "eval_every": int(eval_every),
        "eval_size": int(runner.setup.eval_x.shape[0]),
        "pool_size": len(pool),
        "bn_mode": bn_mode,
        "lr_low": float(lr_low),
        "lr_high": float(lr_high),
        "halvings": int(halvings),
        "resolution": float(resolution),
        "vectorised": runner.vectorised,
        "initial_loss": trials[0]["initial_loss"] if trials else math.nan,
        "thresholds": {c: _summary(r) for c, r in results.items()},
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
    return _json_safe(record)
