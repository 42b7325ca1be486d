"""Hypothesis property tests of the closed forms (docs/reference-values.md "Property-based invariants" 1–19).

Notation as there: F(θ; ε, ν) the additive map (ε = ν_noise², ν the bulk measure), ψ(α; c, H) the
multiplicative map. Strategies: bulks of 1–20 atoms in [−1, 1] (additive) or (0.1, 3)
(multiplicative), θ ∈ (1.2, 10), ε ∈ (1e-3, 5), c ∈ (1e-3, 10). Tolerances: closed forms are
evaluated in float64 (relative 1e-10); finite differences use the step h with an O(h) or O(√h)
allowance as stated.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rmt.bulk import (
    bulk_spike_outlier,
    bulk_spike_overlap,
    critical_noise_variance,
    free_convolution_density,
    free_convolution_edges,
    free_convolution_stieltjes,
    wishart_bulk_edges,
    wishart_bulk_spike_outlier,
    wishart_bulk_spike_overlap,
    wishart_critical_ratio,
)
from rmt.wigner import batch_hessian_extremal, kappa, wigner_outlier, wigner_overlap
from rmt.wishart import wishart_outlier, wishart_overlap

EXAMPLES = settings(max_examples=40)
FEW = settings(max_examples=12)

thetas = st.floats(1.2, 10.0)
epsilons = st.floats(1e-3, 5.0)
ratios = st.floats(1e-3, 10.0)


@st.composite
def bulks(draw: st.DrawFn, low: float = -1.0, high: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 20))
    atoms = np.array(draw(st.lists(st.floats(low, high), min_size=n, max_size=n, unique=True)))
    weights = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n)))
    return atoms, weights / weights.sum()


def g_mu(w: float, atoms: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(weights / (w - atoms)))


def top_edge(eps: float, atoms: np.ndarray, weights: np.ndarray) -> float:
    return float(free_convolution_edges(math.sqrt(eps), atoms, weights)[-1])


# ================================================================= additive model
@EXAMPLES
@given(bulks(), thetas, epsilons)
def test_1_outside_the_bulk_and_above_the_spike(bulk, theta, eps) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    f = bulk_spike_outlier(theta, math.sqrt(eps), atoms, weights)
    e_plus = top_edge(eps, atoms, weights)
    assert f >= e_plus * (1 - 1e-12) - 1e-12
    assert f > theta  # θ > max supp: batch outliers exceed the empirical ones
    is_outlier = bulk_spike_overlap(theta, math.sqrt(eps), atoms, weights) > 0
    if is_outlier:  # equality F = E₊ only at the tangency θ = w_c
        assert math.isclose(f, theta + eps * g_mu(theta, atoms, weights), rel_tol=1e-12)
        assert eps <= critical_noise_variance(theta, atoms, weights)
    else:
        assert f == e_plus
        assert eps >= critical_noise_variance(theta, atoms, weights) * (1 - 1e-12)


@EXAMPLES
@given(bulks(), thetas, thetas, epsilons)
def test_2_monotone_in_theta(bulk, t1, t2, eps) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    lo, hi = min(t1, t2), max(t1, t2)
    f_lo, f_hi = bulk_spike_outlier(np.array([lo, hi]), math.sqrt(eps), atoms, weights)
    assert f_lo <= f_hi * (1 + 1e-13) + 1e-13
    o_lo, o_hi = bulk_spike_overlap(np.array([lo, hi]), math.sqrt(eps), atoms, weights)
    assert o_lo <= o_hi + 1e-13
    if o_lo > 0 and hi > lo * (1 + 1e-6):
        assert f_hi > f_lo


@EXAMPLES
@given(bulks(), thetas, epsilons, epsilons)
def test_3_monotone_in_noise(bulk, theta, e1, e2) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    lo, hi = min(e1, e2), max(e1, e2)
    nus = np.sqrt([lo, hi])
    f_lo, f_hi = bulk_spike_outlier(theta, nus, atoms, weights)
    assert f_lo <= f_hi * (1 + 1e-12)
    assert top_edge(lo, atoms, weights) <= top_edge(hi, atoms, weights) * (1 + 1e-12)
    o_lo, o_hi = bulk_spike_overlap(theta, nus, atoms, weights)
    assert o_hi <= o_lo + 1e-13
    # ∂F/∂ε = g_μ(θ) > 0 above threshold
    if o_lo > 1e-3:
        h = 1e-6 * lo
        d = (bulk_spike_outlier(theta, math.sqrt(lo + h), atoms, weights) - f_lo) / h
        assert math.isclose(d, g_mu(theta, atoms, weights), rel_tol=1e-4)


@EXAMPLES
@given(bulks(), thetas)
def test_4_and_9_c1_at_the_threshold_in_noise(bulk, theta) -> None:  # type: ignore[no-untyped-def]
    """F(θ; ε_c) = E₊(ε_c) and the outlier/edge branches have equal slope g_μ(θ) at ε_c (envelope)."""
    atoms, weights = bulk
    eps_c = critical_noise_variance(theta, atoms, weights)
    assume(1e-3 < eps_c < 50)
    e_plus = top_edge(eps_c, atoms, weights)
    outlier_branch = theta + eps_c * g_mu(theta, atoms, weights)
    assert math.isclose(outlier_branch, e_plus, rel_tol=1e-9)
    assert math.isclose(bulk_spike_outlier(theta, math.sqrt(eps_c), atoms, weights), e_plus, rel_tol=1e-9)
    h = 1e-4 * eps_c
    slope_edge = (top_edge(eps_c + h, atoms, weights) - e_plus) / h
    assert math.isclose(slope_edge, g_mu(theta, atoms, weights), rel_tol=1e-2)  # O(h) one-sided difference
    # an outlier exists iff ε < ε_c
    assert bulk_spike_overlap(theta, math.sqrt(eps_c * 0.99), atoms, weights) > 0
    assert bulk_spike_overlap(theta, math.sqrt(eps_c * 1.01), atoms, weights) == 0


@EXAMPLES
@given(bulks(), epsilons)
def test_4_c1_at_the_threshold_in_theta(bulk, eps) -> None:  # type: ignore[no-untyped-def]
    """At w_c (h'(w_c) = 0) F is flat: F(w_c + δ) − E₊ = O(δ²)."""
    atoms, weights = bulk
    nu = math.sqrt(eps)
    e_plus = top_edge(eps, atoms, weights)
    # w_c: the largest θ with ε_c(θ) = ε (ε_c increases above the bulk); bisection on the public ε_c
    lo, hi = float(atoms.max()), float(atoms.max()) + 2 * nu + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if critical_noise_variance(mid, atoms, weights) < eps else (lo, mid)
    w_c = hi
    # With d = w_c − max supp: ε Σ m/(w_c − x)² = 1 and 1/(w_c − x) ≤ 1/d give 0 < h''(w_c) ≤ 2/d, so
    # F(w_c + δ) − E₊ ≈ ½ h''(w_c) δ² ≤ δ²/d and the overlap h'(w_c + δ) ≈ h''(w_c) δ ≤ 2δ/d.
    d = w_c - float(atoms.max())
    for delta in (1e-3 * d, 1e-4 * d):
        gap = bulk_spike_outlier(w_c + delta, nu, atoms, weights) - e_plus
        assert -1e-12 * abs(e_plus) <= gap <= 1.01 * delta**2 / d + 1e-12 * abs(e_plus)
        overlap = bulk_spike_overlap(w_c + delta, nu, atoms, weights)
        assert 0 < overlap <= 2.02 * delta / d  # O → 0 continuously at the threshold


@EXAMPLES
@given(bulks(), thetas, epsilons)
def test_5_overlap_range_and_limits(bulk, theta, eps) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    o = bulk_spike_overlap(theta, math.sqrt(eps), atoms, weights)
    assert 0.0 <= o <= 1.0
    assert bulk_spike_overlap(theta, 1e-6, atoms, weights) > 1 - 1e-9  # ε → 0
    assert bulk_spike_overlap(1e6 * theta, math.sqrt(eps), atoms, weights) > 1 - 1e-9  # θ → ∞


@EXAMPLES
@given(bulks(), thetas, epsilons, st.floats(0.1, 10.0))
def test_6_scaling_covariance(bulk, theta, eps, s) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    nu = math.sqrt(eps)
    f = bulk_spike_outlier(theta, nu, atoms, weights)
    assert math.isclose(bulk_spike_outlier(s * theta, s * nu, s * atoms, weights), s * f, rel_tol=1e-9)
    # s = −1 maps to the bottom outlier
    assert math.isclose(bulk_spike_outlier(-theta, nu, -atoms, weights), -f, rel_tol=1e-9)
    # the same covariance for the Wigner closed form: (λ, ν) → (cλ, cν)
    assert math.isclose(wigner_outlier(s * theta, s * nu), s * wigner_outlier(theta, nu), rel_tol=1e-13)


@EXAMPLES
@given(bulks(), thetas, epsilons, st.floats(-5.0, 5.0))
def test_7_shift(bulk, theta, eps, t) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    nu = math.sqrt(eps)
    f = bulk_spike_outlier(theta, nu, atoms, weights)
    scale = abs(f) + abs(t) + 1
    assert math.isclose(bulk_spike_outlier(theta + t, nu, atoms + t, weights), f + t, abs_tol=1e-9 * scale)


@EXAMPLES
@given(bulks(), epsilons)
def test_8_limits_small_noise_and_large_spike(bulk, eps) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    theta = 3.0
    assert math.isclose(bulk_spike_outlier(theta, 1e-7, atoms, weights), theta, rel_tol=1e-12)
    big = 1e3
    m1, m2 = float(weights @ atoms), float(weights @ atoms**2)
    f = bulk_spike_outlier(big, math.sqrt(eps), atoms, weights)
    expansion = big + eps / big + eps * m1 / big**2
    assert abs(f - expansion) <= 2 * eps * m2 / big**3 + 1e-12 * big


@FEW
@given(bulks(), thetas, epsilons)
def test_10_subordination_identity(bulk, theta, eps) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    nu = math.sqrt(eps)
    assume(bulk_spike_overlap(theta, nu, atoms, weights) > 1e-3)
    z = bulk_spike_outlier(theta, nu, atoms, weights)
    g = free_convolution_stieltjes(z, nu, atoms, weights)
    assert math.isclose(g.real, g_mu(theta, atoms, weights), rel_tol=1e-8)
    assert abs(g.imag) <= 1e-10


@FEW
@given(bulks(), thetas, epsilons, epsilons)
def test_11_semigroup(bulk, theta, e1, e2) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    assume(bulk_spike_overlap(theta, math.sqrt(e1 + e2), atoms, weights) > 1e-3)
    y = bulk_spike_outlier(theta, math.sqrt(e1), atoms, weights)
    g_mid = free_convolution_stieltjes(y, math.sqrt(e1), atoms, weights).real
    direct = bulk_spike_outlier(theta, math.sqrt(e1 + e2), atoms, weights)
    assert math.isclose(y + e2 * g_mid, direct, rel_tol=1e-9)


@EXAMPLES
@given(st.floats(-10.0, 10.0), epsilons)
def test_12_delta_zero_special_case(theta, eps) -> None:  # type: ignore[no-untyped-def]
    nu = math.sqrt(eps)
    assume(abs(abs(theta) - nu) > 1e-9)
    assert math.isclose(bulk_spike_outlier(theta, nu, [0.0]), wigner_outlier(theta, nu), rel_tol=1e-12)
    assert math.isclose(bulk_spike_overlap(theta, nu, [0.0]), wigner_overlap(theta, nu), abs_tol=1e-12)
    assert math.isclose(free_convolution_edges(nu, [0.0])[-1], 2 * nu, rel_tol=1e-12)
    if abs(theta) > nu:
        assert math.isclose(wigner_outlier(theta, nu), theta + eps / theta, rel_tol=1e-14)
        assert math.isclose(wigner_overlap(theta, nu), 1 - eps / theta**2, rel_tol=1e-12, abs_tol=1e-15)


@settings(max_examples=8)
@given(bulks(), st.floats(0.05, 2.0))
def test_13_density_is_a_probability_density_with_the_right_moments(bulk, eps) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    nu = math.sqrt(eps)
    edges = free_convolution_edges(nu, atoms, weights)
    n = 300
    t = (np.arange(n) + 0.5) * np.pi / n
    moments = np.zeros(3)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        x = 0.5 * (a + b) - 0.5 * (b - a) * np.cos(t)
        dx = 0.5 * (b - a) * np.sin(t) * np.pi / n
        rho = free_convolution_density(x, nu, atoms, weights)
        assert (rho >= 0).all()
        moments += [np.sum(rho * dx), np.sum(rho * x * dx), np.sum(rho * x * x * dx)]
    mean = float(weights @ atoms)
    var = float(weights @ atoms**2) - mean**2
    # midpoint rule error is small except near (almost) closed gaps, where the density has a cusp
    assert abs(moments[0] - 1) < 2e-3
    assert abs(moments[1] - mean) < 2e-3
    assert abs(moments[2] - mean**2 - var - eps) < 5e-3 * (1 + eps)


# ================================================================= multiplicative model
@EXAMPLES
@given(bulks(0.1, 3.0), ratios, st.floats(1.0, 5.0))
def test_14_bai_yao_map(bulk, c, factor) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    alpha = float(atoms.max()) * (1 + factor)
    psi = wishart_bulk_spike_outlier(alpha, c, atoms, weights)
    e_plus = float(wishart_bulk_edges(c, atoms, weights)[-1])
    assert psi > alpha
    assert psi >= e_plus * (1 - 1e-12)
    assert wishart_bulk_spike_outlier(alpha * 1.1, c, atoms, weights) >= psi
    assert wishart_bulk_spike_outlier(alpha, c * 1.1, atoms, weights) >= psi


@EXAMPLES
@given(bulks(0.1, 3.0), st.floats(1.01, 20.0))
def test_15_16_threshold_is_c1_and_matches_the_edge(bulk, factor) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    alpha = float(atoms.max()) * factor
    c_c = wishart_critical_ratio(alpha, atoms, weights)
    assume(1e-3 < c_c < 1e3)
    e_plus = float(wishart_bulk_edges(c_c, atoms, weights)[-1])
    psi_branch = alpha + c_c * alpha * float(weights @ (atoms / (alpha - atoms)))
    assert math.isclose(psi_branch, e_plus, rel_tol=1e-9)
    assert wishart_bulk_spike_overlap(alpha, c_c * 0.99, atoms, weights) > 0
    assert wishart_bulk_spike_overlap(alpha, c_c * 1.01, atoms, weights) == 0


@EXAMPLES
@given(ratios)
def test_16_delta_one(c) -> None:  # type: ignore[no-untyped-def]
    assert math.isclose(wishart_critical_ratio(1 + math.sqrt(c), [1.0]), c, rel_tol=1e-12)
    assert math.isclose(wishart_bulk_edges(c, [1.0])[-1], (1 + math.sqrt(c)) ** 2, rel_tol=1e-12)


@EXAMPLES
@given(bulks(0.1, 3.0), ratios, st.floats(1.0, 5.0), st.floats(0.1, 10.0))
def test_17_scaling(bulk, c, factor, s) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    alpha = float(atoms.max()) * (1 + factor)
    psi = wishart_bulk_spike_outlier(alpha, c, atoms, weights)
    assert math.isclose(wishart_bulk_spike_outlier(s * alpha, c, s * atoms, weights), s * psi, rel_tol=1e-9)
    assert math.isclose(wishart_outlier(s * alpha, s, c), s * wishart_outlier(alpha, 1.0, c), rel_tol=1e-13)


@EXAMPLES
@given(bulks(0.1, 3.0), st.floats(1.0, 5.0))
def test_18_limits(bulk, factor) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    alpha = float(atoms.max()) * (1 + factor)
    assert math.isclose(wishart_bulk_spike_outlier(alpha, 1e-9, atoms, weights), alpha, rel_tol=1e-8)
    assert wishart_bulk_spike_overlap(alpha, 1e-9, atoms, weights) > 1 - 1e-7
    c, big = 0.5, 1e7
    shift = wishart_bulk_spike_outlier(big, c, atoms, weights) - big
    assert math.isclose(shift, c * float(weights @ atoms), rel_tol=1e-5)  # ψ − α → c E_H[t] ≠ 0


@EXAMPLES
@given(bulks(0.1, 3.0), ratios, st.floats(0.0, 5.0), st.floats(1.01, 10.0))
def test_19_overlap(bulk, c, factor, ell) -> None:  # type: ignore[no-untyped-def]
    atoms, weights = bulk
    o = wishart_bulk_spike_overlap(float(atoms.max()) * (1 + factor), c, atoms, weights)
    assert 0.0 <= o <= 1.0
    expected = (1 - c / (ell - 1) ** 2) / (1 + c / (ell - 1)) if ell > 1 + math.sqrt(c) else 0.0
    assert math.isclose(wishart_bulk_spike_overlap(ell, c, [1.0]), expected, rel_tol=1e-10, abs_tol=1e-14)
    assert math.isclose(wishart_overlap(ell, 1.0, c), expected, rel_tol=1e-12, abs_tol=1e-14)


# ================================================================= batch-size laws
@EXAMPLES
@given(
    st.floats(0.1, 10.0),
    st.floats(0.01, 10.0),
    st.floats(10.0, 1e5),
    st.floats(1.0, 1e4),
    st.floats(1.0, 1e4),
)
def test_batch_extremal_monotone_in_batch_size(lam, s2, p, b1, b2) -> None:  # type: ignore[no-untyped-def]
    lo, hi = min(b1, b2), max(b1, b2)
    assert batch_hessian_extremal(lam, s2, p, hi) <= batch_hessian_extremal(lam, s2, p, lo) * (1 + 1e-14)
    assert batch_hessian_extremal(lam, s2, p, hi) >= lam
    n = 2 * hi
    assert batch_hessian_extremal(lam, s2, p, hi, n) <= batch_hessian_extremal(lam, s2, p, hi) * (1 + 1e-14)
    assert kappa(hi, n) <= kappa(hi)


@EXAMPLES
@given(st.floats(0.1, 10.0), st.floats(0.01, 10.0), st.floats(10.0, 1e5), st.floats(2.0, 1e5))
def test_batch_extremal_limits(lam, s2, p, n) -> None:  # type: ignore[no-untyped-def]
    assert batch_hessian_extremal(lam, s2, p, n, n) == lam  # B = N: κ = 0, no noise
    assert math.isclose(batch_hessian_extremal(lam, s2, p, 1e15), lam, rel_tol=1e-6 * (1 + p * s2 / lam**2))
