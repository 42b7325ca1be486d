"""Tests for networks.thresholds.find_max_lr: exact thresholds on quadratics, bracket expansion, the
monotonicity check, and a search whose upper end overflows float32."""

from __future__ import annotations

import math

import pytest
from torch import nn

from networks.stability import TrialResult, TrialRunner, TrialSettings
from networks.thresholds import find_max_lr
from tests.networks.fixtures.trials import blobs, mlp, quadratic


@pytest.mark.parametrize("vectorise", [True, False])
def test_full_batch_gd_threshold_is_two_over_lambda(vectorise: bool) -> None:
    model, pool, lam = quadratic()
    k = 60
    settings = TrialSettings(steps=k, warmup_steps=0, lr_low=0.01, lr_high=10.0, vectorise=vectorise)
    runner = TrialRunner(
        model, nn.MSELoss(), pool, optimizer="sgd", batch_size=len(pool), seed=0, settings=settings
    )
    res = find_max_lr(runner, criterion="strict", settings=settings)
    lo, hi = res.bracket
    assert res.bracket_found and res.monotone and res.halvings >= 8 and hi / lo <= 1.05
    # Every lr below 2/λ is stable (GD on a quadratic: each mode contracts), so hi ≥ 2/λ; above 2/λ the top
    # mode grows like |1 − ηλ|^(2K), so any lr with (ηλ − 1)^(2K)·L_top/L ≥ 1.5 is unstable: lo < that bound.
    assert hi >= 2.0 / lam
    assert lo >= 2.0 / lam / 1.05
    assert lo <= (1.0 + (1.5 / 0.5) ** (1 / (2 * k))) / lam  # L_top / L(w_c) > 0.5 for this start


def test_heavy_ball_threshold_lenient() -> None:
    """Heavy ball's asymptotic threshold is 2(1+β)/λ; the lenient criterion (final loss ≤ 2·L(w_c))
    recovers it within the bisection resolution plus the O(1/K) transient; strict (δ = 0.5) is far lower
    because one heavy-ball step near the threshold overshoots the top mode by (1 + 2β)."""
    model, pool, lam = quadratic()
    beta = 0.9
    settings = TrialSettings(steps=100, warmup_steps=0, momentum=beta, lr_low=0.01, lr_high=10.0)
    runner = TrialRunner(
        model, nn.MSELoss(), pool, optimizer="momentum", batch_size=len(pool), seed=0, settings=settings
    )
    lenient = find_max_lr(runner, criterion="lenient", settings=settings)
    target = 2 * (1 + beta) / lam
    assert lenient.bracket[1] >= target * 0.97  # transient: the slow mode |r| ≈ 1 − O(1/K) not yet decayed
    assert lenient.lr_max <= target * 1.03
    strict = find_max_lr(runner, criterion="strict", settings=settings)
    assert strict.lr_max < 0.8 * target
    assert runner.num_trials < strict.num_trials + lenient.num_trials  # the runner's cache is shared


def _step_trial(threshold: float):
    def trial(lr: float) -> TrialResult:
        ok = lr < threshold
        return TrialResult(lr, ok, ok, not ok, 1.0, 1.0 if ok else math.inf, 1.0 if ok else math.inf, 10)

    return trial


def test_find_max_lr_expands_the_bracket_and_rejects_bad_input() -> None:
    threshold = 0.37
    step_trial = _step_trial(threshold)
    res = find_max_lr(
        step_trial, criterion="strict", settings=TrialSettings(lr_low=1.0, lr_high=2.0)
    )  # expand down
    assert res.bracket_found and res.bracket[0] < threshold <= res.bracket[1]
    assert res.bracket[1] / res.bracket[0] <= 1.05 and res.monotone
    res_up = find_max_lr(
        step_trial, criterion="strict", settings=TrialSettings(lr_low=1e-4, lr_high=1e-3)
    )  # up
    assert res_up.bracket[0] < threshold <= res_up.bracket[1]
    never = find_max_lr(
        step_trial, criterion="strict", settings=TrialSettings(lr_low=1e3, lr_high=1e4, max_expansions=1)
    )
    assert not never.bracket_found and math.isnan(never.lr_max)
    always = find_max_lr(
        _step_trial(math.inf),
        criterion="lenient",
        settings=TrialSettings(lr_low=1.0, lr_high=2.0, max_expansions=2),
    )
    assert not always.bracket_found and always.lr_max == 200.0 and always.bracket == (200.0, math.inf)
    with pytest.raises(ValueError, match="criterion"):
        find_max_lr(step_trial, criterion="loose")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="settings"):
        find_max_lr(step_trial, criterion="strict", settings={"lr_low": 0.1})  # type: ignore[arg-type]


def test_find_max_lr_flags_non_monotone_stability() -> None:
    def islands(lr: float) -> TrialResult:  # stable below 0.2 and in [0.3, 0.5): the grid below 0.5 is not
        ok = lr < 0.2 or 0.3 <= lr < 0.5
        return TrialResult(lr, ok, ok, False, 1.0, 1.0, 1.0, 10)

    res = find_max_lr(
        islands, criterion="strict", settings=TrialSettings(lr_low=0.01, lr_high=0.25, halvings=8)
    )
    assert 0.2 / 1.05 <= res.lr_max < 0.2 and res.monotone
    res2 = find_max_lr(
        islands, criterion="strict", settings=TrialSettings(lr_low=0.305, lr_high=1.0, halvings=8)
    )
    assert 0.5 / 1.05 <= res2.lr_max < 0.5 and res2.monotone  # the two points just below are in the island

    def hole(lr: float) -> TrialResult:  # stable below 0.3 and in [0.49, 0.5)
        ok = lr < 0.3 or 0.49 <= lr < 0.5
        return TrialResult(lr, ok, ok, False, 1.0, 1.0, 1.0, 10)

    # ρ ends near 1.045 after 4 halvings of [0.495, 1], so lo/ρ < 0.49 falls in the unstable band
    res3 = find_max_lr(
        hole, criterion="strict", settings=TrialSettings(lr_low=0.495, lr_high=1.0, halvings=1)
    )
    assert 0.495 <= res3.lr_max < 0.5 and not res3.monotone and res3.unstable_below >= 1


def test_float32_sequential_search_up_to_1e300_finds_a_finite_threshold() -> None:
    """The upper end lr = 1e300 overflows float32; the search records it as unstable and bisects down."""
    data = blobs(n=64)
    settings = TrialSettings(steps=5, warmup_steps=0, lr_low=1e-3, lr_high=1e300, halvings=4, vectorise=False)
    runner = TrialRunner(
        mlp(), nn.CrossEntropyLoss(), data, optimizer="sgd", batch_size=8, seed=0, settings=settings
    )
    res = find_max_lr(runner, criterion="lenient", settings=settings)
    assert res.bracket_found and 1e-3 <= res.lr_max < 1e300
    assert runner(1e300).diverged
