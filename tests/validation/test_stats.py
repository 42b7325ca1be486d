"""Tests for validation.stats on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmt.learning_rates import mccandlish_max_lr
from validation.baselines import (
    batch_sharpness_baseline,
    constant_baseline,
    fit_mccandlish_constant,
    linear_rule_baseline,
    mccandlish_baseline,
    sqrt_rule_baseline,
)
from validation.stats import (
    ConfidenceInterval,
    bootstrap_ci,
    classify_exponent,
    compare_shapes,
    fit_offset_power_law,
    fit_power_law,
    fit_saturating_shape,
    holm_correction,
    leave_one_b_out,
    leave_one_b_out_median_error,
    leave_one_out_error,
    median_abs_log_ratio,
    median_over_b_error,
    median_over_b_null,
    paired_wilcoxon_holm,
)

B_GRID = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)


def _power_law_sweep(exponent: float, n_seeds: int = 6, noise: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    b = np.tile(B_GRID[:6], n_seeds)
    seeds = np.repeat(np.arange(n_seeds), 6)
    # a per-seed offset plus per-point noise: the seed-level bootstrap must account for both
    eta = (
        0.01 * b**exponent * np.exp(rng.normal(0, noise, b.size) + np.repeat(rng.normal(0, 0.05, n_seeds), 6))
    )
    return b, eta, seeds


def test_bootstrap_ci_coverage_of_a_mean() -> None:
    """A 90% percentile CI of a normal mean (n = 40) covers the truth in ≈ 90% of 200 data sets; the binomial
    sd of the coverage is √(0.9·0.1/200) ≈ 0.021 and the percentile interval under-covers by O(1/n), so
    [0.80, 0.97] is a > 3-sd window."""
    rng = np.random.default_rng(1)
    covered = 0
    for rep in range(200):
        x = rng.normal(3.0, 2.0, 40)
        covered += bootstrap_ci(x, n_resamples=200, confidence=0.9, seed=rep).contains(3.0)
    assert 0.80 <= covered / 200 <= 0.97


def test_bootstrap_ci_is_seeded_and_groups_resample_units() -> None:
    x = np.arange(20.0)
    a = bootstrap_ci(x, n_resamples=100, seed=3)
    assert a == bootstrap_ci(x, n_resamples=100, seed=3)
    assert a.estimate == pytest.approx(9.5) and a.low < 9.5 < a.high
    # two groups with constant values: a group resample only ever sees whole groups (means 0, 0.5 or 1)
    ci = bootstrap_ci(np.r_[np.zeros(5), np.ones(5)], groups=np.repeat([0, 1], 5), n_resamples=200, seed=0)
    assert ci.low == 0.0 and ci.high == 1.0
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(x, confidence=1.5)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(x, groups=[0, 1])


@pytest.mark.parametrize("truth", [1.0, 0.5])
def test_power_law_exponent_ci_covers_truth_and_classifies(truth: float) -> None:
    b, eta, seeds = _power_law_sweep(truth)
    fit = fit_power_law(b, eta, groups=seeds, n_resamples=500, seed=0)
    assert fit.ci.contains(truth)
    assert not fit.ci.contains(1.5 - truth)  # the other hypothesis (0.5 or 1) is excluded
    assert classify_exponent(fit) == ("linear" if truth == 1.0 else "square root")
    assert fit.n_groups == 6 and fit.n_points == 36


def test_power_law_max_batch_and_classify_undecided() -> None:
    b = B_GRID
    eta = 0.01 * b / (1 + b / 16)  # linear below, flat above B* = 16
    fit = fit_power_law(b, eta, max_batch=8, n_resamples=200)
    assert fit.exponent == pytest.approx(1.0, abs=0.25) and fit.n_points == 4
    assert classify_exponent(ConfidenceInterval(0.7, 0.3, 1.2, 0.95)) == "undecided"
    assert classify_exponent(ConfidenceInterval(0.1, 0.0, 0.2, 0.95)) == "constant"  # the saturated law
    assert classify_exponent(ConfidenceInterval(0.1, -0.6, 0.75, 0.95)) == "undecided"  # contains 0 and 0.5
    assert classify_exponent(ConfidenceInterval(0.6, 0.3, 0.8, 0.95)) == "square root"
    assert classify_exponent(ConfidenceInterval(1.8, 1.5, 2.0, 0.95)) == "undecided"  # contains none
    with pytest.raises(ValueError, match="two distinct"):
        fit_power_law(b, eta, max_batch=1)


@pytest.mark.parametrize("true_s", [1.0, 0.5])
def test_saturating_shape_recovers_parameters_and_aic_picks_truth(true_s: float) -> None:
    rng = np.random.default_rng(2)
    b = np.repeat(B_GRID, 3)
    eta = 0.2 / (1 + 20.0 / b) ** true_s * np.exp(rng.normal(0, 0.03, b.size))
    fit = fit_saturating_shape(b, eta, s=true_s)
    assert fit.eta_inf == pytest.approx(0.2, rel=0.1)
    assert fit.b_star == pytest.approx(20.0, rel=0.3)
    table = compare_shapes(b, eta, exponents=(1.0, 0.5))
    assert table[0]["model"] == f"s={true_s:g}" and table[1]["delta_aic"] > 10
    free = fit_saturating_shape(b, eta, s=None)
    assert free.s == pytest.approx(true_s, abs=0.15) and not free.s_fixed
    assert fit.loo_error < 0.1 < table[1]["loo_error"]


def test_leave_one_out_error_small_for_exact_shape() -> None:
    eta = np.asarray(mccandlish_max_lr(B_GRID, 0.3, 10.0))
    assert leave_one_out_error(B_GRID, eta, 1.0) < 1e-4
    assert math.isnan(leave_one_out_error(B_GRID[:2], eta[:2], 1.0))


def test_holm_correction_against_hand_computation() -> None:
    # p sorted: 0.01 (×4 = 0.04), 0.02 (×3 = 0.06), 0.03 (×2 = 0.06), 0.2 (×1 = 0.2); running max keeps order
    p = np.array([0.03, 0.2, 0.01, 0.02])
    np.testing.assert_allclose(holm_correction(p), [0.06, 0.2, 0.04, 0.06])
    # sorted (0.04, 0.045, 0.5) → scaled (0.12, 0.09, 0.5) → running max (0.12, 0.12, 0.5)
    np.testing.assert_allclose(holm_correction([0.045, 0.5, 0.04]), [0.12, 0.5, 0.12])
    np.testing.assert_allclose(holm_correction([0.6, 0.9]), [1.0, 1.0])


def test_median_abs_log_ratio() -> None:
    meas = np.ones(8)
    pred = np.array([1.0, 1.1, 1.2, 1.3, 1 / 1.4, 1.6, 2.0, 1 / 1.1])
    acc = median_abs_log_ratio(pred, meas, n_resamples=200)
    abs_r = np.abs(np.log(pred))
    assert acc.median_abs.estimate == pytest.approx(np.median(abs_r))
    assert acc.within_1_25 == pytest.approx(4 / 8)
    assert acc.within_1_5 == pytest.approx(6 / 8)
    assert acc.median_abs.low <= acc.median_abs.estimate <= acc.median_abs.high


def test_paired_wilcoxon_holm_detects_a_better_reference() -> None:
    rng = np.random.default_rng(4)
    ref = np.abs(rng.normal(0, 0.1, 30))
    methods = {
        "ours": ref,
        "much worse": ref + np.abs(rng.normal(0.5, 0.1, 30)),
        "same": ref + rng.normal(0, 0.01, 30),
    }
    rows = {r["method"]: r for r in paired_wilcoxon_holm(methods, "ours")}
    assert rows["much worse"]["reject"] and rows["much worse"]["p_value"] < 1e-6
    assert not rows["same"]["reject"]
    p = [rows["much worse"]["p_value"], rows["same"]["p_value"]]
    np.testing.assert_allclose([rows["much worse"]["p_holm"], rows["same"]["p_holm"]], holm_correction(p))
    with pytest.raises(ValueError, match="reference"):
        paired_wilcoxon_holm(methods, "theirs")


def test_baselines() -> None:
    b = np.array([2.0, 8.0, 32.0])
    np.testing.assert_allclose(constant_baseline(b, 4.0), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(linear_rule_baseline(b, 0.01, 2.0), [0.01, 0.04, 0.16])
    np.testing.assert_allclose(sqrt_rule_baseline(b, 0.01, 2.0), [0.01, 0.02, 0.04])
    np.testing.assert_allclose(batch_sharpness_baseline([4.0, 8.0]), [0.5, 0.25])
    # McCandlish: the constant fitted on one checkpoint's exact curve is recovered, then transfers
    eta = mccandlish_baseline(b, lambda_1=5.0, b_noise=10.0, constant=1.7)
    assert fit_mccandlish_constant(b, eta, lambda_1=5.0, b_noise=10.0) == pytest.approx(1.7)
    np.testing.assert_allclose(eta, 1.7 / 5.0 / (1 + 10.0 / b))


def test_leave_one_b_out_fixed_and_refitted_predictors() -> None:
    b = np.repeat([2.0, 4.0, 8.0], [1, 2, 3])  # unequal cells per B: each B weighs the same
    y = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])

    def fixed(_b: np.ndarray, _y: np.ndarray, held: float) -> float:
        return 2.0 if held == 8.0 else 1.0

    assert leave_one_b_out(b, y, fixed) == 0.0
    # off by a factor e at B = 4 only: that B's MSE is 1, the mean over the 3 B is 1/3
    off = {2.0: 1.0, 4.0: math.e, 8.0: 2.0}
    assert leave_one_b_out(b, y, lambda _b, _y, h: off[h]) == pytest.approx(1 / 3)
    # a predictor undefined (NaN or <= 0) at a B drops that B; nothing left gives NaN
    assert leave_one_b_out(b, y, lambda _b, _y, h: math.nan if h == 2.0 else fixed(_b, _y, h)) == 0.0
    assert math.isnan(leave_one_b_out(b, y, lambda *_: -1.0))

    def refit_mean(b_train: np.ndarray, y_train: np.ndarray, _held: float) -> float:
        return float(np.exp(np.mean(np.log(y_train))))

    # refitting sees only the other batch sizes: held B = 8 is predicted from four 1's → log error log 2
    expected = np.mean(
        [np.mean(np.log(np.exp(np.mean(np.log(y[b != h]))) / y[b == h]) ** 2) for h in (2.0, 4.0, 8.0)]
    )
    assert leave_one_b_out(b, y, refit_mean) == pytest.approx(expected)
    with pytest.raises(ValueError, match="values"):
        leave_one_b_out(b, y[:3], fixed)


def test_median_over_b_error_uses_the_measured_median_per_b() -> None:
    # 3 batches per B, one outlier each: the median per B is 1, 2, 4; the per-cell median |r| would see them
    b = np.repeat([2.0, 4.0, 8.0], 3)
    y = np.array([1.0, 1.0, 50.0, 2.0, 0.01, 2.0, 4.0, 4.0, 900.0])
    exact = np.repeat([1.0, 2.0, 4.0], 3)
    ci = median_over_b_error(b, y, exact, n_resamples=200, seed=1)
    assert ci.estimate == 0.0
    assert ci.low == 0.0 and ci.high > 0.0  # resampling 3 batches can pick the outlier twice
    # a factor e at B = 2 and B = 8, exact at B = 4: |r| per B = 1, 0, 1 → median 1
    off = exact * np.repeat([math.e, 1.0, 1 / math.e], 3)
    assert median_over_b_error(b, y, off, n_resamples=50).estimate == pytest.approx(1.0)
    # undefined predictions (NaN, <= 0) drop their B; nothing left is NaN
    part = np.where(b == 4.0, math.nan, exact)
    assert median_over_b_error(b, y, part, n_resamples=50).estimate == 0.0
    assert math.isnan(median_over_b_error(b, y, -exact, n_resamples=50).estimate)
    with pytest.raises(ValueError, match="measured and predicted"):
        median_over_b_error(b, y[:3], exact)


def test_median_over_b_error_interval_covers_a_correct_model() -> None:
    # a correct model (pred = the true median of a log-normal at each B) lies inside the stratified
    # bootstrap CI's reach: over 200 repetitions with 15 batches per B the estimate is small and the
    # 95% interval has positive width
    rng = np.random.default_rng(3)
    b = np.repeat(np.array([1.0, 2.0, 4.0, 8.0]), 15)
    truth = 10.0 / np.sqrt(b)
    estimates = []
    for _ in range(200):
        y = truth * np.exp(0.3 * rng.standard_normal(b.size))
        estimates.append(median_over_b_error(b, y, truth, n_resamples=20, seed=0).estimate)
    # the sample median of 15 log-normals has sd ≈ 1.2533·0.3/√15 ≈ 0.097 in log: |r| has median ≈ 0.065,
    # the median over 4 B is smaller than 3 sd in almost every repetition
    assert np.median(estimates) < 0.1
    assert np.quantile(estimates, 0.95) < 3 * 0.097


def test_median_over_b_null_is_calibrated_when_the_model_is_true() -> None:
    # measurements drawn from the predicted distribution (log-normal, σ = 0.8, 3 batches per B): the design
    # check's p-value is uniform, so P(p ≤ 0.1) ≈ 0.1 (binomial sd over 300 sweeps ≈ 0.017; the cut tails
    # beyond the 1% / 99% levels barely move a median of 3)
    from scipy import stats as sps

    levels = np.round(np.arange(1, 100) * 0.01, 2)
    sizes = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    medians = 20.0 / np.sqrt(sizes)
    sigma = 0.8
    quantiles = medians[:, None] * np.exp(sigma * sps.norm.ppf(levels))[None, :]
    counts = np.full(sizes.size, 3)
    rng = np.random.default_rng(11)
    p_values, expected = [], []
    for rep in range(300):
        b = np.repeat(sizes, 3)
        y = np.repeat(medians, 3) * np.exp(sigma * rng.standard_normal(b.size))
        observed = median_over_b_error(b, y, np.repeat(medians, 3), n_resamples=10).estimate
        check = median_over_b_null(levels, quantiles, counts, observed, math.log(1.15), n_rep=400, seed=rep)
        p_values.append(check.p_value)
        expected.append(check.expected)
    assert abs(np.mean(np.array(p_values) <= 0.1) - 0.1) < 0.06
    assert abs(np.mean(np.array(p_values) <= 0.5) - 0.5) < 0.09
    # the expected E: median over 5 B of |log median-of-3| with sd of the log median ≈ 0.67·σ → ≈ 0.3
    assert 0.2 < np.median(expected) < 0.45
    # a narrow distribution meets the target almost surely, a wide one almost never
    narrow = median_over_b_null(levels, quantiles ** 0.05 * medians[:, None] ** 0.95, counts, 0.0, 0.14)
    assert narrow.target_probability > 0.99 and narrow.p_value == 1.0
    wide = median_over_b_null(levels, quantiles, counts, 5.0, 0.14, n_rep=500)
    assert wide.target_probability < 0.2 and wide.p_value == 1 / 501  # the Monte-Carlo p-value's floor


def test_median_over_b_null_refuses_bad_input() -> None:
    levels = np.array([0.25, 0.5, 0.75])
    q = np.array([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="levels"):
        median_over_b_null([0.5, 0.25, 0.75], q, [3], 0.1, 0.14)
    with pytest.raises(ValueError, match="median level"):
        median_over_b_null([0.25, 0.75], q[:, :2], [3], 0.1, 0.14)
    with pytest.raises(ValueError, match="quantiles"):
        median_over_b_null(levels, -q, [3], 0.1, 0.14)
    with pytest.raises(ValueError, match="counts"):
        median_over_b_null(levels, q, [0], 0.1, 0.14)
    with pytest.raises(ValueError, match="observed"):
        median_over_b_null(levels, q, [3], math.nan, 0.14)


def test_leave_one_b_out_median_error_refits_without_each_b() -> None:
    b = np.repeat([2.0, 4.0, 8.0], 3)
    y = np.array([1.0, 1.0, 9.0, 2.0, 2.0, 0.1, 4.0, 4.0, 4.0])

    def fixed(_b: np.ndarray, _y: np.ndarray, held: float) -> float:
        return {2.0: 1.0, 4.0: 2.0, 8.0: 4.0}[held]

    assert leave_one_b_out_median_error(b, y, fixed) == 0.0

    def refit_median(b_train: np.ndarray, y_train: np.ndarray, _held: float) -> float:
        return float(np.median(y_train))

    held = (2.0, 4.0, 8.0)
    expected = np.median([abs(math.log(np.median(y[b != h]) / np.median(y[b == h]))) for h in held])
    assert leave_one_b_out_median_error(b, y, refit_median) == pytest.approx(expected)
    assert math.isnan(leave_one_b_out_median_error(b, y, lambda *_: 0.0))
    with pytest.raises(ValueError, match="values"):
        leave_one_b_out_median_error(b, y[:2], fixed)


@pytest.mark.parametrize(("a", "b", "s"), [(1.2, 4.0, 0.9), (0.5, 10.0, 1.5), (3.0, 1.0, 0.5)])
def test_offset_power_law_recovers_exact_curves(a: float, b: float, s: float) -> None:
    batch = np.repeat(B_GRID[:7], 2)
    fit = fit_offset_power_law(batch, a + b * batch**-s)
    assert (fit.a, fit.b, fit.s) == pytest.approx((a, b, s), rel=1e-4)
    np.testing.assert_allclose(fit.predict([3.0]), a + b * 3.0**-s, rtol=1e-5)
    assert fit.degenerate() == []
    assert fit.to_dict() == {"a": fit.a, "b": fit.b, "s": fit.s}


def test_offset_power_law_ignores_bad_points_and_flags_degenerate_fits() -> None:
    batch = B_GRID[:6]
    y = 1.0 + 2.0 / batch
    noisy = y.copy()
    noisy[[1, 4]] = [np.nan, -1.0]  # ignored
    fit = fit_offset_power_law(batch, noisy)
    assert (fit.a, fit.b, fit.s) == pytest.approx((1.0, 2.0, 1.0), rel=1e-4)
    few = fit_offset_power_law(batch[:3], [1.0, np.nan, 0.0])
    assert math.isnan(few.a) and few.degenerate() == ["too few points to fit"]
    flat = fit_offset_power_law(batch, np.full(6, 2.0))  # no B-dependence at all
    assert flat.predict(batch) == pytest.approx(np.full(6, 2.0), rel=1e-6)
    assert flat.degenerate(), flat
    steep = fit_offset_power_law(batch, 1.0 + 50.0 * batch**-6.0)  # steeper than the bound s <= 3
    assert any("bound" in reason for reason in steep.degenerate())
