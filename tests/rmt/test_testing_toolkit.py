"""rmt.testing: the Monte-Carlo assertion must pass on truth, fail on a wrong prediction, and say why."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt.sampling import spiked_wigner_top_eigenvalues
from rmt.testing import (
    assert_matches_monte_carlo,
    batch_sizes,
    critical_window,
    discrete_measures,
    supercritical_spikes,
    variance_profiles,
)
from rmt.wigner import noise_scale, outlier_fluctuation_sd, wigner_outlier


def test_passes_on_exact_mean_and_reports() -> None:
    result = assert_matches_monte_carlo(
        1.0, lambda rng: rng.normal(1.0, 2.0), n_params=10**6, n_reps=400, params={"mu": 1.0}
    )
    assert result.z_score < 4 and result.n_reps == 400
    assert "mu=1.0" in str(result)


def test_fails_with_readable_message() -> None:
    draws = np.random.default_rng(0).normal(0.0, 1.0, size=200)
    with pytest.raises(AssertionError) as info:
        assert_matches_monte_carlo(0.5, draws, n_params=10**6, sd=1.0, params={"theta": 2.0})
    msg = str(info.value)
    for piece in ("prediction 0.5", "MC mean", "tolerance", "z-score", "theta=2.0"):
        assert piece in msg


def test_wrong_wigner_formula_is_caught() -> None:
    """The helper distinguishes θ + ν²/θ from a plausible wrong formula (θ + ν²/(2θ)) at P = 10⁴."""
    p, theta, nu = 10_000, 2.0, 1.0
    vals = spiked_wigner_top_eigenvalues(theta, nu, p, 100, seed=1)
    sd = outlier_fluctuation_sd(theta, nu, p)
    assert_matches_monte_carlo(wigner_outlier(theta, nu), vals, n_params=p, sd=sd)
    with pytest.raises(AssertionError):
        assert_matches_monte_carlo(theta + nu**2 / (2 * theta), vals, n_params=p, sd=sd)


def test_vector_predictions_and_shape_errors() -> None:
    draws = np.random.default_rng(2).normal([1.0, 2.0], 0.1, size=(100, 2))
    res = assert_matches_monte_carlo([1.0, 2.0], draws, n_params=10**6)
    assert res.mc_mean.shape == (2,)
    with pytest.raises(ValueError, match="components"):
        assert_matches_monte_carlo([1.0, 2.0, 3.0], draws, n_params=10**6)
    with pytest.raises(TypeError, match="n_reps"):
        assert_matches_monte_carlo(1.0, lambda rng: 1.0, n_params=10)
    with pytest.raises(ValueError, match="sample"):
        assert_matches_monte_carlo(1.0, np.array([1.0]), n_params=10)


@settings(max_examples=25)
@given(data=st.data())
def test_batch_sizes_avoid_the_critical_window(data: st.DataObject) -> None:
    p, lam, s2 = 5000, 3.0, 1.0
    b = data.draw(batch_sizes(lam, s2, p, max_batch=20_000, regime="any"))
    nu = noise_scale(s2, p, b)
    assert abs(lam - nu) >= nu * 5 * p ** (-1 / 3) * (1 - 1e-9)
    sup = data.draw(batch_sizes(lam, s2, p, regime="super"))
    assert lam >= noise_scale(s2, p, sup) * (1 + 5 * p ** (-1 / 3)) - 1e-12


@settings(max_examples=25)
@given(
    theta=supercritical_spikes(1.0, 10_000), measure=discrete_measures(), prof=variance_profiles(n_params=7)
)
def test_strategies_generate_valid_objects(theta: float, measure: tuple, prof: np.ndarray) -> None:
    assert theta >= 1.0 + critical_window(1.0, 10_000)
    atoms, weights = measure
    assert np.all(np.diff(atoms) > 0) and weights.sum() == pytest.approx(1.0) and np.all(weights > 0)
    assert np.allclose(prof, prof.T) and np.all(prof >= 0) and prof.sum(axis=1).max() <= 1.0 + 1e-12
