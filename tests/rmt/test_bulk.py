"""Spikes over a bulk: docs/theory.md §1c / §2 Bai–Yao check values (docs/reference-values.md rows 13–16,
24) and
solver checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmt.bulk import (
    bulk_spike_outlier,
    bulk_spike_overlap,
    critical_noise_variance,
    free_convolution_density,
    free_convolution_edges,
    free_convolution_stieltjes,
    free_convolution_subordination,
    wishart_bulk_atom,
    wishart_bulk_density,
    wishart_bulk_edges,
    wishart_bulk_spike_outlier,
    wishart_bulk_spike_overlap,
    wishart_critical_ratio,
)
from rmt.wigner import semicircle_density, wigner_outlier, wigner_overlap
from rmt.wishart import (
    marchenko_pastur_atom,
    marchenko_pastur_density,
    marchenko_pastur_edges,
    wishart_outlier,
)

TWO_ATOMS = np.array([-1.0, 1.0])


def integrate_components(density, edges: np.ndarray, n: int = 400, powers=(0, 1, 2)) -> np.ndarray:  # type: ignore[no-untyped-def]
    """∫ x^k ρ(x) dx over the support components, midpoint rule in x = c − r cos t (smooth at √ edges)."""
    t = (np.arange(n) + 0.5) * np.pi / n
    out = np.zeros(len(powers))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        x = 0.5 * (a + b) - 0.5 * (b - a) * np.cos(t)
        dx = 0.5 * (b - a) * np.sin(t) * np.pi / n
        rho = np.asarray(density(x))
        out += [np.sum(rho * x**k * dx) for k in powers]
    return out


# ------------------------------------------------------------------ row 14: edges of ½(δ₋₁ + δ₁) ⊞ sc(ε)
def _row14_edges(eps: float) -> list[float]:
    u_plus = ((2 + eps) + math.sqrt(eps**2 + 8 * eps)) / 2
    u_minus = ((2 + eps) - math.sqrt(eps**2 + 8 * eps)) / 2
    H = lambda w: w + eps * w / (w * w - 1)  # noqa: E731
    out = [H(math.sqrt(u_plus))]
    if u_minus > 0:
        out.append(H(math.sqrt(u_minus)))
    return sorted([-e for e in out] + out)


@pytest.mark.parametrize(
    ("eps", "expected"),
    [
        (1.0, [-2.598076, 2.598076]),
        (0.5, [-2.099798, -0.168375, 0.168375, 2.099798]),
        (2.0, [-3.330191, 3.330191]),
    ],
)
def test_row_14_edges(eps: float, expected: list[float]) -> None:
    edges = free_convolution_edges(math.sqrt(eps), TWO_ATOMS)
    np.testing.assert_allclose(edges, expected, atol=1e-6)
    np.testing.assert_allclose(edges, _row14_edges(eps), rtol=1e-12)
    if eps == 1.0:
        assert edges[-1] == pytest.approx(3 * math.sqrt(3) / 2, rel=1e-12)


def test_row_14_density_value() -> None:
    assert free_convolution_density(1.0, 1.0, TWO_ATOMS) == pytest.approx(0.2370969, abs=1e-7)


# ------------------------------------------------------------------ row 15: spike over the row-14 bulk
@pytest.mark.parametrize(
    ("theta", "eps", "outlier", "overlap"),
    [(3.0, 1.0, 27 / 8, 27 / 32), (3.0, 0.5, 51 / 16, 59 / 64), (2.0, 1.0, 8 / 3, 4 / 9)],
)
def test_row_15_spike_over_bulk(theta: float, eps: float, outlier: float, overlap: float) -> None:
    nu = math.sqrt(eps)
    assert bulk_spike_outlier(theta, nu, TWO_ATOMS) == pytest.approx(outlier, rel=1e-14)
    assert bulk_spike_overlap(theta, nu, TWO_ATOMS) == pytest.approx(overlap, rel=1e-13)


def test_row_15_critical_noise_and_edge_meet() -> None:
    assert critical_noise_variance(2.0, TWO_ATOMS) == pytest.approx(9 / 5, rel=1e-14)
    nu_c = math.sqrt(9 / 5)
    assert free_convolution_edges(nu_c, TWO_ATOMS)[-1] == pytest.approx(3.2, rel=1e-10)
    assert bulk_spike_outlier(2.0, nu_c * (1 - 1e-12), TWO_ATOMS) == pytest.approx(3.2, rel=1e-9)
    # just above critical noise the spike is absorbed and sticks to the top edge
    above = math.sqrt(9 / 5 * 1.01)
    assert bulk_spike_outlier(2.0, above, TWO_ATOMS) == pytest.approx(
        free_convolution_edges(above, TWO_ATOMS)[-1]
    )
    assert bulk_spike_overlap(2.0, above, TWO_ATOMS) == 0.0


def test_generic_spike_formula_is_not_used() -> None:
    """docs/theory.md §1c: the Benaych-Georges–Nadakuditi value 3.636 (g_{μ⊞sc}(z) = 1/θ) is wrong for the
    Hessian case.
    """
    value = bulk_spike_outlier(3.0, 1.0, TWO_ATOMS)
    assert abs(value - 3.636) > 0.2


# ------------------------------------------------------------------ row 16: semigroup
def test_row_16_semigroup() -> None:
    theta, e1, e2 = 3.0, 0.4, 0.7
    direct = bulk_spike_outlier(theta, math.sqrt(e1 + e2), TWO_ATOMS)
    assert direct == pytest.approx(3.4125, rel=1e-14)
    y = bulk_spike_outlier(theta, math.sqrt(e1), TWO_ATOMS)
    # second step over the bulk ν ⊞ sc(ε₁), whose Stieltjes transform comes from the subordination solver
    g_mid = free_convolution_stieltjes(y, math.sqrt(e1), TWO_ATOMS)
    assert abs(g_mid.imag) < 1e-12
    assert y + e2 * g_mid.real == pytest.approx(3.4125, rel=1e-12)


# ------------------------------------------------------------------ row 13: Bai–Yao
def test_row_13_bai_yao() -> None:
    bulk = [1.0, 2.0]
    assert wishart_bulk_spike_outlier(6.0, 0.25, bulk) == pytest.approx(6.525, rel=1e-14)
    assert wishart_bulk_spike_overlap(6.0, 0.25, bulk) == pytest.approx(0.886207, abs=1e-6)
    assert wishart_bulk_spike_outlier(4.0, 0.25, bulk) == pytest.approx(14 / 3, rel=1e-14)
    assert wishart_bulk_spike_overlap(4.0, 0.25, bulk) == pytest.approx(31 / 42, rel=1e-13)
    edges = wishart_bulk_edges(0.25, bulk)
    assert edges[-1] == pytest.approx(3.862110, abs=1e-6)
    alpha_c = 2.722490
    assert wishart_critical_ratio(alpha_c, bulk) == pytest.approx(0.25, rel=1e-5)
    assert wishart_bulk_spike_outlier(alpha_c, 0.25, bulk) == pytest.approx(3.862110, abs=1e-6)
    assert wishart_bulk_spike_overlap(2.5, 0.25, bulk) == 0.0
    assert wishart_bulk_spike_outlier(2.5, 0.25, bulk) == pytest.approx(edges[-1], rel=1e-14)


# ------------------------------------------------------------------ row 24: moments of the densities
def test_row_24_free_convolution_moments() -> None:
    nu = math.sqrt(0.5)
    edges = free_convolution_edges(nu, TWO_ATOMS)
    mass, mean, second = integrate_components(lambda x: free_convolution_density(x, nu, TWO_ATOMS), edges)
    assert mass == pytest.approx(1.0, abs=1e-5)
    assert mean == pytest.approx(0.0, abs=1e-8)
    assert second == pytest.approx(1.5, abs=1e-5)  # Var ν + ε


def test_row_24_wishart_bulk_moments() -> None:
    bulk = [1.0, 2.0]
    edges = wishart_bulk_edges(0.25, bulk)
    mass, mean, second = integrate_components(lambda x: wishart_bulk_density(x, 0.25, bulk), edges)
    assert wishart_bulk_atom(0.25, bulk) == 0.0
    assert mass == pytest.approx(1.0, abs=1e-5)
    assert mean == pytest.approx(1.5, abs=1e-5)  # E t
    assert second == pytest.approx(3.0625, abs=1e-5)  # E t² + q (E t)²


@pytest.mark.parametrize("q", [0.5, 2.0, 4.0])
def test_wishart_bulk_reduces_to_marchenko_pastur(q: float) -> None:
    s2 = 0.7
    edges = wishart_bulk_edges(q, [s2])
    np.testing.assert_allclose(edges, marchenko_pastur_edges(s2, q), rtol=1e-12)
    x = np.linspace(edges[0], edges[1], 9)[1:-1]
    np.testing.assert_allclose(
        wishart_bulk_density(x, q, [s2]), marchenko_pastur_density(x, s2, q), rtol=1e-9
    )
    assert wishart_bulk_atom(q, [s2]) == pytest.approx(marchenko_pastur_atom(q))
    mass = integrate_components(lambda x: wishart_bulk_density(x, q, [s2]), edges, powers=(0,))[0]
    assert mass + wishart_bulk_atom(q, [s2]) == pytest.approx(1.0, abs=1e-5)
    # above the bulk atom the spike's eigenvalue is the top one (wishart_outlier's convention)
    ells = np.array([1.05 * s2, *(np.array([1.5, 3.0, 10.0]) * (1 + math.sqrt(q)) * s2)])
    np.testing.assert_allclose(
        wishart_bulk_spike_outlier(ells, q, [s2]), wishart_outlier(ells, s2, q), rtol=1e-12
    )


def test_wishart_zero_eigenvalues_only_rescale_q() -> None:
    """H = ½δ₀ + ½δ₁ with q acts like H = δ₁ with q/2; the atom at 0 is 1 − min(½, 1/q) (rank ≤
    min(P/2, n)).
    """
    q = 3.0
    assert wishart_bulk_spike_outlier(5.0, q, [0.0, 1.0]) == pytest.approx(wishart_outlier(5.0, 1.0, q / 2))
    np.testing.assert_allclose(
        wishart_bulk_edges(q, [0.0, 1.0]), marchenko_pastur_edges(1.0, q / 2), rtol=1e-12
    )
    assert wishart_bulk_atom(q, [0.0, 1.0]) == pytest.approx(2 / 3)
    assert wishart_bulk_atom(1.5, [0.0, 1.0]) == pytest.approx(0.5)
    assert wishart_bulk_atom(4.0, [0.0, 1.0]) == pytest.approx(0.75)


# ------------------------------------------------------------------ reductions and solver checks
def test_delta_zero_bulk_reduces_to_wigner() -> None:
    thetas = np.array([-3.0, -0.7, 0.3, 1.01, 2.0, 5.0])
    np.testing.assert_allclose(
        bulk_spike_outlier(thetas, 1.0, [0.0]), wigner_outlier(thetas, 1.0), rtol=1e-14
    )
    np.testing.assert_allclose(
        bulk_spike_overlap(thetas, 1.0, [0.0]), wigner_overlap(thetas, 1.0), atol=1e-15
    )
    np.testing.assert_allclose(free_convolution_edges(1.3, [0.0]), [-2.6, 2.6], rtol=1e-13)
    x = np.linspace(-2.5, 2.5, 11)
    np.testing.assert_allclose(
        free_convolution_density(x, 1.3, [0.0]), semicircle_density(x, 1.3), atol=1e-12
    )


def test_subordination_identity_against_an_independent_pastur_solve() -> None:
    """G_{μ⊞sc}(h(θ)) = g_μ(θ); G from a monotone fixed-point iteration of Pastur's G = g_μ(z − ν²G)."""
    atoms = np.array([-0.8, -0.1, 0.4, 0.9])
    weights = np.array([0.1, 0.4, 0.3, 0.2])
    nu, theta = 0.6, 2.0
    z = bulk_spike_outlier(theta, nu, atoms, weights)
    g = lambda w: float(np.sum(weights / (w - atoms)))  # noqa: E731
    pastur = 0.0
    for _ in range(
        2000
    ):  # increasing iteration from 0 converges to the smallest fixed point (physical branch)
        pastur = g(z - nu**2 * pastur)
    assert pastur == pytest.approx(g(theta), rel=1e-12)
    assert free_convolution_stieltjes(z, nu, atoms, weights).real == pytest.approx(g(theta), rel=1e-10)
    assert free_convolution_subordination(z, nu, atoms, weights).real == pytest.approx(theta, rel=1e-10)


def test_stieltjes_transform_in_upper_half_plane_matches_quadrature() -> None:
    nu = math.sqrt(0.5)
    z = 0.3 + 0.5j
    edges = free_convolution_edges(nu, TWO_ATOMS)
    real = integrate_components(
        lambda x: free_convolution_density(x, nu, TWO_ATOMS) * (1 / (z - x)).real, edges, n=2000, powers=(0,)
    )[0]
    imag = integrate_components(
        lambda x: free_convolution_density(x, nu, TWO_ATOMS) * (1 / (z - x)).imag, edges, n=2000, powers=(0,)
    )[0]
    assert complex(real, imag) == pytest.approx(free_convolution_stieltjes(z, nu, TWO_ATOMS), abs=1e-5)


def test_edges_agree_with_density_thresholding() -> None:
    atoms = np.array([-1.0, 0.2, 1.0])
    weights = np.array([0.3, 0.3, 0.4])
    nu = 0.35
    edges = free_convolution_edges(nu, atoms, weights)
    assert edges.size == 6
    delta = 1e-4
    inside = np.concatenate([edges[::2] + delta, edges[1::2] - delta])
    outside = np.concatenate([edges[::2] - delta, edges[1::2] + delta])
    assert (free_convolution_density(inside, nu, atoms, weights) > 1e-3).all()
    assert (free_convolution_density(outside, nu, atoms, weights) < 1e-9).all()


def test_absorbed_spike_inside_a_gap_goes_to_the_nearer_edge() -> None:
    nu = math.sqrt(0.5)
    edges = free_convolution_edges(nu, TWO_ATOMS)  # four edges: the gap around 0 is open
    assert bulk_spike_overlap(0.0, nu, TWO_ATOMS) > 0  # θ = 0 sits in the open gap: an in-gap outlier
    assert bulk_spike_outlier(0.0, nu, TWO_ATOMS) == pytest.approx(0.0, abs=1e-15)
    # absorbed points of the right component: w in [w₂, w₃] ≈ [0.468, 1.510] (critical points of h)
    assert bulk_spike_outlier(0.6, nu, TWO_ATOMS) == pytest.approx(edges[2])  # nearer w₂
    assert bulk_spike_outlier(1.0, nu, TWO_ATOMS) == pytest.approx(edges[3])  # on an atom, nearer w₃
    assert bulk_spike_outlier(1.2, nu, TWO_ATOMS) == pytest.approx(edges[3])  # above the bulk: the top edge
    assert bulk_spike_outlier(-1.05, nu, TWO_ATOMS) == pytest.approx(edges[0])


def test_vectorised_over_theta_and_nu() -> None:
    out = bulk_spike_outlier(np.array([[3.0], [2.0]]), np.array([1.0, math.sqrt(0.5)]), TWO_ATOMS)
    np.testing.assert_allclose(out, [[27 / 8, 51 / 16], [8 / 3, 2 + 0.5 * 2 / 3]], rtol=1e-13)
    assert type(bulk_spike_outlier(3.0, 1.0, TWO_ATOMS)) is float
    assert type(free_convolution_density(0.0, 1.0, TWO_ATOMS)) is float


def test_weights_are_normalised_and_duplicates_merged() -> None:
    a = bulk_spike_outlier(2.5, 0.7, [-1.0, 1.0, 1.0], [2.0, 1.0, 1.0])
    b = bulk_spike_outlier(2.5, 0.7, TWO_ATOMS)
    assert a == pytest.approx(b, rel=1e-14)
