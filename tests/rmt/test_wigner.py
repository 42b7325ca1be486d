"""Check values of the additive (Wigner) closed forms: docs/theory.md §1a/§1d and docs/reference-values.md
rows 1–7."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from rmt.wigner import (
    batch_hessian_extremal,
    critical_batch_size,
    kappa,
    noise_scale,
    outlier_fluctuation_sd,
    semicircle_density,
    semicircle_edge,
    wigner_outlier,
    wigner_overlap,
)


@pytest.mark.parametrize(
    ("theta", "nu", "outlier", "overlap", "sqrt_n_sd"),
    [
        (2.0, 1.0, 5 / 2, 3 / 4, math.sqrt(3 / 2)),  # row 1
        (3.0, 1.0, 10 / 3, 8 / 9, math.sqrt(16 / 9)),  # row 2
        (1.5, 1.0, 13 / 6, 5 / 9, 1.0540925533894598),  # row 3
        (0.5, 1.0, 2.0, 0.0, 0.0),  # row 4 (sub-critical: edge)
        (3.0, 2.0, 13 / 3, 5 / 9, math.sqrt(2 * 4 * 5 / 9)),  # row 5 (σ = 2)
        (-2.0, 1.0, -5 / 2, 3 / 4, math.sqrt(3 / 2)),  # row 6 (reflection)
    ],
)
def test_reference_rows_1_to_6(
    theta: float, nu: float, outlier: float, overlap: float, sqrt_n_sd: float
) -> None:
    assert wigner_outlier(theta, nu) == pytest.approx(outlier, rel=1e-14)
    assert wigner_overlap(theta, nu) == pytest.approx(overlap, rel=1e-14, abs=1e-15)
    assert outlier_fluctuation_sd(theta, nu, 1.0) == pytest.approx(sqrt_n_sd, rel=1e-7)
    # sd scales as P^{-1/2}
    assert outlier_fluctuation_sd(theta, nu, 400.0) == pytest.approx(sqrt_n_sd / 20.0, rel=1e-7)


def test_theory_1a_check_values() -> None:
    assert wigner_outlier(2.0, 1.0) == 2.5
    assert wigner_outlier(0.5, 1.0) == 2.0
    nu = noise_scale(1.0, 2000, 200)
    assert nu**2 == pytest.approx(10.0, rel=1e-14)
    assert batch_hessian_extremal(5.0, 1.0, 2000, 200) == pytest.approx(7.0, rel=1e-14)
    assert critical_batch_size(5.0, 1.0, 2000) == pytest.approx(2000 / 25, rel=1e-14)


def test_row_7_noise_scale_form_is_c1_with_second_derivative_jump() -> None:
    """λ(ε) = θ + ε/θ for ε < θ², 2√ε beyond: ε = 1 → 2.5, ε = 4 → 4, ε = 9 → 6; slope 1/2 both sides."""
    f = lambda eps: wigner_outlier(2.0, math.sqrt(eps))  # noqa: E731
    assert f(1.0) == pytest.approx(2.5)
    assert f(4.0) == pytest.approx(4.0)
    assert f(9.0) == pytest.approx(6.0)
    h = 1e-4
    left = (f(4.0) - f(4.0 - h)) / h
    right = (f(4.0 + h) - f(4.0)) / h
    assert left == pytest.approx(0.5, abs=1e-6)  # exact slope on the outlier branch
    assert right == pytest.approx(0.5, abs=h)  # edge branch: slope 1/√ε, error O(h)
    h2 = 1e-2
    second_left = (f(4.0) - 2 * f(4.0 - h2) + f(4.0 - 2 * h2)) / h2**2
    second_right = (f(4.0 + 2 * h2) - 2 * f(4.0 + h2) + f(4.0)) / h2**2
    assert second_left == pytest.approx(0.0, abs=1e-9)
    assert second_right == pytest.approx(-1 / 16, rel=2e-2)


def test_kappa_without_replacement_and_limits() -> None:
    assert kappa(10) == pytest.approx(0.1)
    assert kappa(10, np.inf) == pytest.approx(0.1)
    assert kappa(10, 100) == pytest.approx(90 / (10 * 99))
    assert kappa(100, 100) == 0.0  # full batch: no noise
    assert kappa(1, 100) == pytest.approx(1.0)  # a single sample: the full per-sample variance
    out = kappa(np.array([1.0, 10.0, 100.0]), np.array([100.0, 100.0, np.inf]))
    np.testing.assert_allclose(out, [1.0, 90 / 990, 0.01], rtol=1e-14)


def test_full_batch_has_no_noise_and_returns_lambda() -> None:
    assert noise_scale(3.0, 1000, 500, 500) == 0.0
    assert batch_hessian_extremal(2.5, 3.0, 1000, 500, 500) == 2.5
    assert batch_hessian_extremal(-1.5, 3.0, 1000, 500, 500) == -1.5


def test_critical_batch_size_solves_nu_equals_lambda() -> None:
    lam, s2, p, n = 3.0, 0.5, 5000.0, 1000.0
    b_inf = critical_batch_size(lam, s2, p)
    assert noise_scale(s2, p, b_inf) == pytest.approx(lam, rel=1e-12)
    b_fin = critical_batch_size(lam, s2, p, n)
    c = lam**2 / (p * s2)
    assert b_fin == pytest.approx(n / (1 + c * (n - 1)), rel=1e-14)
    assert noise_scale(s2, p, b_fin, n) == pytest.approx(lam, rel=1e-12)
    assert b_fin < b_inf  # sampling without replacement reduces the noise
    assert critical_batch_size(0.0, 1.0, 10.0) == math.inf
    assert critical_batch_size(0.0, 1.0, 10.0, 50) == pytest.approx(50.0)


def test_batch_extremal_switches_at_critical_batch_size() -> None:
    lam, s2, p = 2.0, 1.0, 400.0
    b_star = critical_batch_size(lam, s2, p)  # 100
    below = batch_hessian_extremal(lam, s2, p, 0.5 * b_star)
    above = batch_hessian_extremal(lam, s2, p, 2.0 * b_star)
    assert below == pytest.approx(2.0 * noise_scale(s2, p, 0.5 * b_star))
    assert above == pytest.approx(lam + lam**2 / 2 / lam)  # ν² = λ²/2
    assert batch_hessian_extremal(lam, s2, p, b_star) == pytest.approx(2 * lam)


def test_semicircle_density_is_a_probability_density_with_variance_nu2() -> None:
    nu = 1.7
    assert semicircle_edge(nu) == pytest.approx(3.4)
    mass = integrate.quad(lambda x: semicircle_density(x, nu), -2 * nu, 2 * nu)[0]
    var = integrate.quad(lambda x: x**2 * semicircle_density(x, nu), -2 * nu, 2 * nu)[0]
    assert mass == pytest.approx(1.0, abs=1e-9)
    assert var == pytest.approx(nu**2, rel=1e-9)
    assert semicircle_density(0.0, 1.0) == pytest.approx(1 / math.pi)
    np.testing.assert_array_equal(semicircle_density(np.array([-3.0, 2.0, 5.0]), 1.0), [0.0, 0.0, 0.0])


def test_scalar_returns_python_float_and_arrays_broadcast() -> None:
    assert type(wigner_outlier(2, 1)) is float
    assert type(noise_scale(1, 10, 2)) is float
    out = wigner_outlier(np.array([[2.0], [0.5]]), np.array([1.0, 2.0]))
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[2.5, 4.0], [2.0, 4.0]])
    assert np.asarray(batch_hessian_extremal(5.0, 1.0, 2000, np.array([100, 200, 400]))).shape == (3,)


def test_zero_noise_keeps_spike() -> None:
    assert wigner_outlier(1.3, 0.0) == 1.3
    assert wigner_overlap(1.3, 0.0) == 1.0
    assert wigner_outlier(0.0, 0.0) == 0.0
    assert wigner_outlier(0.0, 1.0) == 2.0  # θ = 0 sticks to the upper edge
