"""Statistics of the SLQ learner experiment: per-arm final test accuracy over seeds (mean and 95% Student-t
interval, :func:`validation.intervals.student_t_interval`), costs, the tuned baseline (the lineage grid point
with the best mean accuracy) and the paired, per-seed difference of every other arm to it with its verdict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from validation.experiments.learner_config import FIXED_ARM, SLQ_ARMS, LearnerConfig
from validation.intervals import student_t_interval

Record = dict[str, Any]


def record_float(value: Any) -> float:
    """A number read from a record: ``None`` (no value) and ``"nan"`` (the store's NaN) read as NaN."""
    return float(value) if value is not None else math.nan


def seed_interval(values: list[float]) -> tuple[float, float]:
    """The 95% Student-t interval of the mean of the finite ``values`` ((nan, nan) with fewer than two)."""
    ci = student_t_interval([v for v in values if math.isfinite(v)])
    return ci.low, ci.high


def _mean(values: list[float], empty: float = math.nan) -> float:
    return float(np.mean(values)) if values else empty


def _nanmean(values: list[float]) -> float:
    return float(np.nanmean(values)) if values else math.nan


def arm_summary(cells: list[Record]) -> dict[str, Any]:
    """Final accuracy (per seed, mean, interval), final / last-epoch train loss, costs and divergences of the
    cells (one per seed) of one arm."""
    acc = [record_float(c["final_accuracy"]) for c in cells]
    return {
        "seeds": sorted(int(c["seed"]) for c in cells),
        "accuracy": acc,
        "accuracy_mean": _nanmean(acc),
        "accuracy_ci": seed_interval(acc),
        "loss_mean": _nanmean([record_float(c["final_loss"]) for c in cells]),
        "train_loss_mean": _nanmean([record_float(c["curve"][-1]["train_loss"]) for c in cells]),
        "wall_time_mean": _mean([c["wall_time"] for c in cells]),
        "curvature_time_mean": _mean([c["curvature_time"] for c in cells], 0.0),
        "products_mean": _mean([c["total_products"] for c in cells], 0.0),
        "initial_lr_mean": _mean([record_float(c["initial_lr"]) for c in cells]),
        "diverged": int(sum(bool(c["diverged"]) for c in cells)),
    }


def verdict(differences: list[float], low: float, high: float) -> str:
    """The outcome of a paired comparison with the tuned baseline from its interval [low, high]."""
    if not differences:
        return "not run"
    if math.isnan(low):
        return "too few seeds for an interval"
    if high < 0:
        return "worse than the tuned baseline"
    if low > 0:
        return "better than the tuned baseline"
    return "not distinguishable from the tuned baseline at this number of seeds"


def paired_comparison(arm: dict[int, Record], tuned: dict[int, Record]) -> dict[str, Any]:
    """arm − tuned baseline in final test accuracy on their common seeds: per-seed differences, mean,
    95% Student-t interval and verdict."""
    seeds = sorted(set(arm) & set(tuned))
    diffs = [record_float(arm[s]["final_accuracy"]) - record_float(tuned[s]["final_accuracy"]) for s in seeds]
    low, high = seed_interval(diffs)
    return {
        "seeds": seeds,
        "differences": diffs,
        "mean": _mean(diffs),
        "ci": (low, high),
        "verdict": verdict(diffs, low, high),
    }


def summarize(config: LearnerConfig, records: list[Record]) -> dict[str, Any]:
    """``{"arms": per-arm summaries, "tuned_baseline": arm name or None, "comparisons": paired differences
    of the SLQ and fixed-lr arms to the tuned baseline}`` (written as ``summary.json``)."""
    by_arm: dict[str, dict[int, Record]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], {})[int(r["seed"])] = r
    arms = {arm: arm_summary(list(by_arm.get(arm, {}).values())) for arm in config.arm_names()}
    lineage = [a for a in arms if a.startswith("lineage-") and arms[a]["seeds"]]
    tuned = max(lineage, key=lambda a: np.nan_to_num(arms[a]["accuracy_mean"], nan=-1.0)) if lineage else None
    comparisons: dict[str, Any] = {}
    if tuned is not None:
        for arm in (*SLQ_ARMS, FIXED_ARM):
            comparisons[arm] = paired_comparison(by_arm.get(arm, {}), by_arm[tuned])
    return {"arms": arms, "tuned_baseline": tuned, "comparisons": comparisons}
