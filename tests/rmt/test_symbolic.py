"""The sympy derivations are the source of truth: the numpy closed forms must agree with them at
many points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmt.bulk import (
    bulk_spike_outlier,
    bulk_spike_overlap,
    critical_noise_variance,
    free_convolution_edges,
    wishart_bulk_spike_outlier,
    wishart_bulk_spike_overlap,
)
from rmt.symbolic import TOPICS, Derivation, derivation
from rmt.wigner import (
    batch_hessian_extremal,
    critical_batch_size,
    kappa,
    noise_scale,
    outlier_fluctuation_sd,
    wigner_outlier,
    wigner_overlap,
)
from rmt.wishart import (
    batch_ggn_extremal,
    marchenko_pastur_edges,
    wishart_outlier,
    wishart_outlier_fluctuation_sd,
    wishart_overlap,
)

RNG = np.random.default_rng(20240601)
N_POINTS = 300


@pytest.fixture(scope="module")
def wig() -> Derivation:
    return derivation("wigner")


@pytest.fixture(scope="module")
def wis() -> Derivation:
    return derivation("wishart")


def test_wigner_expressions_match_numpy(wig: Derivation) -> None:
    nu = RNG.uniform(0.01, 5.0, N_POINTS)
    theta = nu * RNG.uniform(1.0 + 1e-6, 20.0, N_POINTS) * RNG.choice([-1.0, 1.0], N_POINTS)
    p = RNG.uniform(1.0, 1e6, N_POINTS)
    np.testing.assert_allclose(
        wigner_outlier(theta, nu), wig.function("outlier", "theta", "nu")(theta, nu), rtol=1e-13
    )
    np.testing.assert_allclose(
        wigner_overlap(theta, nu), wig.function("overlap", "theta", "nu")(theta, nu), rtol=1e-12
    )
    var = wig.function("fluctuation_variance", "theta", "nu", "P")(theta, nu, p)
    np.testing.assert_allclose(np.asarray(outlier_fluctuation_sd(theta, nu, p)) ** 2, var, rtol=1e-12)
    np.testing.assert_allclose(wig.function("threshold", "nu")(nu), nu, rtol=0)
    np.testing.assert_allclose(wig.function("edge", "nu")(nu), wigner_outlier(0.5 * nu, nu), rtol=1e-15)
    assert str(wig["outlier_slope_at_threshold"]) == "0"


def test_noise_scale_and_kappa_match(wig: Derivation) -> None:
    n = RNG.uniform(2.0, 1e6, N_POINTS)
    b = 1.0 + (n - 1.0) * RNG.uniform(0.0, 1.0, N_POINTS)
    p, s2 = RNG.uniform(1.0, 1e6, N_POINTS), RNG.uniform(1e-4, 10.0, N_POINTS)
    np.testing.assert_allclose(kappa(b, n), wig.function("kappa", "B", "N")(b, n), rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(
        noise_scale(s2, p, b, n),
        wig.function("noise_scale", "sigma2", "P", "B", "N")(s2, p, b, n),
        rtol=1e-10,
    )
    np.testing.assert_allclose(kappa(b), wig.function("kappa_infinite_pool", "B")(b), rtol=1e-15)


def test_stieltjes_solution_is_the_physical_branch(wig: Derivation) -> None:
    """g_sc(θ + ν²/θ) = 1/θ above threshold (the solved root lies on the branch g ~ 1/z)."""
    nu = RNG.uniform(0.1, 3.0, 50)
    theta = nu * RNG.uniform(1.01, 10.0, 50)
    g = wig.function("g_sc", "z", "nu")(theta + nu**2 / theta, nu)
    np.testing.assert_allclose(g, 1.0 / theta, rtol=1e-9)


def test_wishart_expressions_match_numpy(wis: Derivation) -> None:
    q = RNG.uniform(1e-3, 10.0, N_POINTS)
    s2 = RNG.uniform(0.1, 5.0, N_POINTS)
    ell = s2 * (1 + np.sqrt(q)) * RNG.uniform(1.0 + 1e-6, 20.0, N_POINTS)
    n = RNG.uniform(1.0, 1e5, N_POINTS)
    args = ("ell", "sigma2", "q")
    np.testing.assert_allclose(
        wishart_outlier(ell, s2, q), wis.function("outlier", *args)(ell, s2, q), rtol=1e-12
    )
    np.testing.assert_allclose(
        wishart_overlap(ell, s2, q), wis.function("overlap", *args)(ell, s2, q), rtol=1e-9
    )
    var = wis.function("fluctuation_variance", "ell", "sigma2", "q", "n")(ell, s2, q, n)
    np.testing.assert_allclose(
        np.asarray(wishart_outlier_fluctuation_sd(ell, s2, q, n)) ** 2, var, rtol=1e-10
    )
    low, high = marchenko_pastur_edges(s2, q)
    np.testing.assert_allclose(high, wis.function("edge", "sigma2", "q")(s2, q), rtol=1e-13)
    np.testing.assert_allclose(low, wis.function("lower_edge", "sigma2", "q")(s2, q), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(
        wis.function("threshold", "sigma2", "q")(s2, q), s2 * (1 + np.sqrt(q)), rtol=1e-14
    )
    assert str(wis["large_spike_shift"]) == "q*sigma2"


def test_critical_batch_size_matches() -> None:
    d = derivation("critical_batch_size")
    lam = RNG.uniform(0.01, 10.0, N_POINTS)
    s2, p = RNG.uniform(1e-3, 10.0, N_POINTS), RNG.uniform(1.0, 1e6, N_POINTS)
    n = RNG.uniform(2.0, 1e6, N_POINTS)
    np.testing.assert_allclose(
        critical_batch_size(lam, s2, p),
        d.function("critical_batch_size_infinite", "lam", "sigma2", "P")(lam, s2, p),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        critical_batch_size(lam, s2, p, n),
        d.function("critical_batch_size_finite", "lam", "sigma2", "P", "N")(lam, s2, p, n),
        rtol=1e-10,
    )


def _local_exponent(eta, b: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    h = 1e-5
    return (np.log(eta(b * math.exp(h))) - np.log(eta(b * math.exp(-h)))) / (2 * h)


def test_exponents_match_finite_differences_of_the_numeric_laws() -> None:
    d = derivation("exponents")
    assert str(d["exponent_additive_edge"]) == "1/2"
    assert str(d["exponent_additive_outlier_at_threshold"]) == "1/2"
    assert str(d["mccandlish_identity"]) == "0"
    assert str(d["exponent_multiplicative_outlier_P_large"]) == "1"
    assert str(d["exponent_multiplicative_edge_P_large"]) == "1"
    lam, s2, p, c_out = 2.0, 1.0, 1e4, 10.0
    b_star = critical_batch_size(lam, s2, p)  # 2500
    b_edge = np.array([10.0, 100.0, 1000.0])
    b_out = np.array([3000.0, 1e4, 1e5])
    eta_add = lambda b: 2.0 / np.asarray(batch_hessian_extremal(lam, s2, p, b))  # noqa: E731
    np.testing.assert_allclose(_local_exponent(eta_add, b_edge), 0.5, rtol=1e-6)
    expo = d.function("exponent_additive_outlier", "P", "sigma2", "lam", "B")(p, s2, lam, b_out)
    np.testing.assert_allclose(_local_exponent(eta_add, b_out), expo, rtol=1e-6)
    np.testing.assert_allclose(expo, b_star / (b_out + b_star), rtol=1e-12)
    n_data = 5e4
    eta_fin = lambda b: 2.0 / np.asarray(batch_hessian_extremal(0.01, s2, p, b, n_data))  # noqa: E731
    expo_fin = d.function("exponent_additive_edge_finite", "N", "B")(n_data, b_edge)
    np.testing.assert_allclose(_local_exponent(eta_fin, b_edge), expo_fin, rtol=1e-6)
    # multiplicative model, outlier and edge regimes
    lam_big = 50.0
    eta_mul = lambda b: 2.0 / np.asarray(batch_ggn_extremal(lam_big, s2, p, b, c_out))  # noqa: E731
    b_mul = np.array([1e3, 1e4])  # q = 1 and 0.1: λ = 50 is above threshold
    expo_mul = d.function("exponent_multiplicative_outlier", "P", "sigma2", "lam", "B", "C")(
        p, s2, lam_big, b_mul, c_out
    )
    np.testing.assert_allclose(_local_exponent(eta_mul, b_mul), expo_mul, rtol=1e-6)
    eta_mul_edge = lambda b: 2.0 / np.asarray(batch_ggn_extremal(1.5, s2, p, b, c_out))  # noqa: E731
    b_small = np.array([1.5, 20.0, 500.0])  # q ≥ 2: λ = 1.5 < 1 + √q, absorbed at the MP edge
    expo_edge = d.function("exponent_multiplicative_edge", "P", "B", "C")(p, b_small, c_out)
    np.testing.assert_allclose(_local_exponent(eta_mul_edge, b_small), expo_edge, rtol=1e-6)


def test_bulk_two_atom_expressions_match_the_solver() -> None:
    d = derivation("bulk")
    atoms = np.array([-1.0, 1.0])
    eps = RNG.uniform(0.05, 4.0, 40)
    theta = RNG.uniform(1.2, 10.0, 40)
    out = d.function("outlier_two_atoms", "theta", "eps")(theta, eps)
    ov = d.function("overlap_two_atoms", "theta", "eps")(theta, eps)
    eps_c = d.function("critical_noise_two_atoms", "theta")(theta)
    np.testing.assert_allclose(critical_noise_variance(theta, atoms), eps_c, rtol=1e-12)
    above = eps < eps_c
    np.testing.assert_allclose(bulk_spike_outlier(theta, np.sqrt(eps), atoms)[above], out[above], rtol=1e-12)
    np.testing.assert_allclose(bulk_spike_overlap(theta, np.sqrt(eps), atoms)[above], ov[above], rtol=1e-10)
    for e in (0.3, 1.7):
        u_minus, u_plus = (float(u.subs(d.symbols["eps"], e)) for u in d["critical_points_two_atoms"])
        h = lambda w, e=e: w + e * w / (w * w - 1)  # noqa: E731
        assert free_convolution_edges(math.sqrt(e), atoms)[-1] == pytest.approx(
            h(math.sqrt(u_plus)), rel=1e-12
        )
        if u_minus > 0:
            assert free_convolution_edges(math.sqrt(e), atoms)[2] == pytest.approx(
                h(math.sqrt(u_minus)), rel=1e-10
            )
    alpha = RNG.uniform(3.0, 10.0, 40)
    q = RNG.uniform(0.01, 0.5, 40)
    psi = d.function("psi_two_atoms", "alpha", "q")(alpha, q)
    dpsi = d.function("psi_prime_two_atoms", "alpha", "q")(alpha, q)
    assert (dpsi > 0).all()
    np.testing.assert_allclose(wishart_bulk_spike_outlier(alpha, q, [1.0, 2.0]), psi, rtol=1e-12)
    np.testing.assert_allclose(
        wishart_bulk_spike_overlap(alpha, q, [1.0, 2.0]), alpha * dpsi / psi, rtol=1e-10
    )


def test_printing_and_structure() -> None:
    full = derivation()
    assert full is derivation("all")  # cached
    for topic in TOPICS:
        d = derivation(topic)
        assert d.names() and all(name in full for name in d.names())
        text, latex, pretty = d.text(), d.latex(), d.text(pretty=True)
        assert text.startswith(f"Derivation: {topic}") and all(f"[{n}]" in text for n in d.names())
        assert latex.count("\\quad") == len(d.steps)
        assert len(pretty) > 0 and str(d) == text
    assert "theta + nu**2/theta" in derivation("wigner").text().replace(
        "nu**2/theta + theta", "theta + nu**2/theta"
    )
    assert "\\frac{\\nu^{2}}{\\theta}" in derivation("wigner").latex()
    with pytest.raises(KeyError, match="no step named"):
        derivation("wigner")["nope"]


def test_bad_topic() -> None:
    with pytest.raises(ValueError, match="topic must be one of"):
        derivation("wigners")
    with pytest.raises(TypeError, match="topic must be a string"):
        derivation(3)  # type: ignore[arg-type]
