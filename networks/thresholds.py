"""The maximal stable learning rate: bisection on log η over divergence trials (docs/validation.md §1).

:func:`find_max_lr` brackets the threshold η_div between a stable and an unstable lr, refines the bracket on a
log scale until it is narrow, and checks that stability is monotone just below the answer. The trials come
from any callable ``lr -> TrialResult`` (usually a :class:`networks.stability.TrialRunner`, whose ``run_many``
lets a round of points run as one vectorised pass); the search settings are fields of
:class:`networks.stability.TrialSettings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from networks.options import CRITERIA, Criterion
from networks.stability import TrialResult, TrialSettings
from rmt.checks import check_choice

__all__ = ["ThresholdResult", "find_max_lr"]


@dataclass(frozen=True)
class ThresholdResult:
    """The largest stable learning rate found by :func:`find_max_lr`.

    ``lr_max`` is the largest lr verified stable (the lower end of ``bracket`` = (stable, unstable)), NaN if
    no stable lr was found; ``bracket_found`` is False when the bracket could not be closed (``bracket[1]`` is
    then inf: every lr tried was stable). ``monotone``: the two log-grid points below ``lr_max`` (spacing
    bracket[1]/bracket[0]) are stable too; ``unstable_below``: how many tried lrs below ``lr_max`` were
    unstable. ``trials``: every trial run, in order of lr."""

    lr_max: float
    bracket: tuple[float, float]
    criterion: str
    monotone: bool
    bracket_found: bool
    halvings: float
    unstable_below: int
    num_trials: int
    trials: tuple[TrialResult, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bracket"] = list(self.bracket)
        return d

    def summary(self) -> dict[str, Any]:
        """The search's outcome without the trials (lr_max, bracket, monotone, bracket_found, halvings,
        unstable_below, num_trials)."""
        return {
            "lr_max": self.lr_max,
            "bracket": list(self.bracket),
            "monotone": self.monotone,
            "bracket_found": self.bracket_found,
            "halvings": self.halvings,
            "unstable_below": self.unstable_below,
            "num_trials": self.num_trials,
        }


class _Search:
    """The trials run so far for one criterion (by lr) and the stability verdicts they give."""

    def __init__(self, trial: Callable[[float], TrialResult], criterion: Criterion) -> None:
        self.trial = trial
        self.many: Callable[[Sequence[float]], list[TrialResult]] | None = getattr(trial, "run_many", None)
        self.criterion = criterion
        self.seen: dict[float, TrialResult] = {}

    def stable(self, lrs: Sequence[float]) -> list[bool]:
        todo = [lr for lr in lrs if lr not in self.seen]
        if todo:
            results = self.many(todo) if self.many is not None else [self.trial(lr) for lr in todo]
            self.seen.update(zip(todo, results, strict=True))
        return [self.seen[lr].stable(self.criterion) for lr in lrs]

    def result(
        self, lr_max: float, lo: float, hi: float, found: bool, done: float, monotone: bool
    ) -> ThresholdResult:
        trials = tuple(self.seen[lr] for lr in sorted(self.seen))
        below = sum(1 for r in trials if r.lr < lr_max and not r.stable(self.criterion))
        return ThresholdResult(
            lr_max, (lo, hi), self.criterion, monotone, found, done, below, len(trials), trials
        )


def _bracket(search: _Search, settings: TrialSettings) -> tuple[float, float, bool, bool]:
    """(lo, hi, lo stable, hi stable) after moving [lr_low, lr_high] down until lo is stable, then up until
    hi is unstable, by ``expansion_factor`` at most ``max_expansions`` times each."""
    factor = settings.expansion_factor
    lo, hi = settings.lr_low, settings.lr_high
    lo_ok, hi_ok = search.stable([lo, hi])
    for _ in range(settings.max_expansions):
        if lo_ok:
            break
        hi, hi_ok = lo, False
        lo = lo / factor
        (lo_ok,) = search.stable([lo])
    if not lo_ok:
        return lo, hi, lo_ok, hi_ok
    for _ in range(settings.max_expansions):
        if not hi_ok:
            break
        lo = hi
        hi = hi * factor
        (hi_ok,) = search.stable([hi])
    return lo, hi, lo_ok, hi_ok


def find_max_lr(
    trial: Callable[[float], TrialResult],
    *,
    criterion: Criterion,
    settings: TrialSettings | None = None,
) -> ThresholdResult:
    """Bisection on log η for the largest lr stable under ``criterion``, then the monotonicity check.

    With the search fields of ``settings`` (default ``TrialSettings()``):

    1. Bracket: ``lr_low`` must be stable and ``lr_high`` unstable; otherwise the bracket is moved down / up
       by ``expansion_factor`` at most ``max_expansions`` times.
    2. Refine: each round tries k = ``points_per_round`` log-equispaced points inside (lo, hi) and keeps the
       interval around the first unstable one (k = 1 is plain bisection; k points = log2(k + 1) halvings in
       one vectorised pass when ``trial`` has ``run_many``, default k = its ``max_parallel`` − 2), until at
       least ``halvings`` halvings are done and hi/lo ≤ ``resolution``.
    3. Monotonicity: lo/ρ and lo/ρ² (ρ = hi/lo) must be stable as well.
    """
    criterion = check_choice(criterion, "criterion", CRITERIA)  # type: ignore[assignment]
    settings = TrialSettings() if settings is None else settings
    if not isinstance(settings, TrialSettings):
        raise TypeError(f"settings must be a TrialSettings, got {type(settings).__name__}")
    search = _Search(trial, criterion)
    k = settings.points_per_round
    if k is None:
        k = max(1, getattr(trial, "max_parallel", 1) - 2) if search.many is not None else 1

    lo, hi, lo_ok, hi_ok = _bracket(search, settings)
    if not lo_ok:
        return search.result(math.nan, 0.0, lo, False, 0.0, False)
    if hi_ok:
        return search.result(hi, hi, math.inf, False, 0.0, False)
    done = 0.0
    while done < settings.halvings or hi / lo > settings.resolution:
        ratio = hi / lo
        points = [lo * ratio ** (j / (k + 1)) for j in range(1, k + 1)]
        first_bad = next((j for j, s in enumerate(search.stable(points)) if not s), None)
        if first_bad is None:
            lo = points[-1]
        else:
            hi = points[first_bad]
            lo = points[first_bad - 1] if first_bad > 0 else lo
        done += math.log2(k + 1)
    rho = hi / lo
    monotone = all(search.stable([lo / rho, lo / rho**2]))
    return search.result(lo, lo, hi, True, done, monotone)
