"""Every theory-layer prediction against Monte Carlo (docs/reference-values.md "MC-test hygiene").

Tolerances: ``4 sd/√reps + 3/P`` via :func:`rmt.testing.assert_matches_monte_carlo`, sd from theory where it
is known (docs/theory.md §1d for Wigner outliers, Paul's formula for Wishart outliers), else the sample sd.
Spikes sit
outside the critical window |θ − θ_c| ≲ 5θ_c P^{-1/3} unless stated. Fixed seeds; several seeds per case.
"""

from __future__ import annotations

import numpy as np
import pytest

from rmt.bulk import bulk_spike_outlier, free_convolution_edges, wishart_bulk_spike_outlier
from rmt.profile import wigner_type_edges, wigner_type_outliers
from rmt.sampling import (
    TopEigen,
    discrete_bulk,
    extremal_eigenvalues,
    sample_bulk_spike,
    sample_profile_wigner,
    sample_spiked_wishart,
    spiked_wigner_top_eigenvalues,
    spiked_wishart_top_eigenvalues,
)
from rmt.testing import assert_matches_monte_carlo, critical_window
from rmt.wigner import (
    batch_hessian_extremal,
    noise_scale,
    outlier_fluctuation_sd,
    wigner_outlier,
    wigner_overlap,
)
from rmt.wishart import batch_ggn_extremal, wishart_outlier, wishart_outlier_fluctuation_sd

pytestmark = pytest.mark.slow

P_TRIDIAG = 10_000


@pytest.mark.parametrize(
    ("theta", "nu", "seed"), [(2.0, 1.0, 0), (3.0, 1.0, 1), (1.5, 1.0, 2), (-2.0, 1.0, 3)]
)
def test_wigner_outlier_mean_and_sd(theta: float, nu: float, seed: int) -> None:
    """docs/reference-values.md rows 1–3, 6: outlier mean θ + ν²/θ and √P·sd = √(2ν²(1 − ν²/θ²)) (GOE)."""
    reps = 300
    # the bottom outlier of θ e1e1ᵀ + W is minus the top one of −θ e1e1ᵀ − W (W and −W have the same law)
    res = spiked_wigner_top_eigenvalues(abs(theta), nu, P_TRIDIAG, reps, seed, return_overlaps=True)
    assert isinstance(res, TopEigen)
    vals = np.sign(theta) * res.eigenvalues
    sd = outlier_fluctuation_sd(theta, nu, P_TRIDIAG)
    assert_matches_monte_carlo(
        wigner_outlier(theta, nu), vals, n_params=P_TRIDIAG, sd=sd, params={"theta": theta, "nu": nu}
    )
    # sample sd vs theory: the sd of a Gaussian sample has relative se 1/√(2 reps) ≈ 4%; allow 4 se
    assert np.std(vals, ddof=1) == pytest.approx(sd, rel=4 / np.sqrt(2 * reps))
    # overlap: mean converges at O(P^-1/2); per-replicate sd from the sample
    assert_matches_monte_carlo(
        wigner_overlap(theta, nu), res.overlaps, n_params=P_TRIDIAG, params={"theta": theta}
    )


def test_wigner_subcritical_sticks_to_edge() -> None:
    """docs/reference-values.md row 4: θ = 0.5 < ν: E λ = 2ν − 1.2065 ν P^{-2/3} (Tracy–Widom mean), overlap
    → 0."""
    reps, p = 400, P_TRIDIAG
    vals = spiked_wigner_top_eigenvalues(0.5, 1.0, p, reps, 4)
    tw_mean, tw_sd = -1.2065336, np.sqrt(1.6077810)
    assert_matches_monte_carlo(
        wigner_outlier(0.5, 1.0) + tw_mean * p ** (-2 / 3),
        vals,
        n_params=p,
        sd=tw_sd * p ** (-2 / 3),
        params={"theta": 0.5},
    )
    assert wigner_overlap(0.5, 1.0) == 0.0


@pytest.mark.parametrize("seed", [5, 6])
def test_batch_hessian_extremal_and_noise_scale(seed: int) -> None:
    """docs/theory.md §1a check value: P = 2000, σ² = 1, B = 200 ⇒ ν² = 10; λ = 5 ⇒ 7.0 — at P = 2000 and
    10⁴."""
    for p, b in ((2000, 200), (P_TRIDIAG, 1000)):
        nu = float(noise_scale(1.0, p, b))
        assert nu**2 == pytest.approx(10.0)
        vals = spiked_wigner_top_eigenvalues(5.0, nu, p, 200, seed)
        assert_matches_monte_carlo(
            batch_hessian_extremal(5.0, 1.0, p, b),
            vals,
            n_params=p,
            sd=outlier_fluctuation_sd(5.0, nu, p),
            params={"P": p, "B": b},
        )


def test_wigner_near_threshold_widened() -> None:
    """θ just outside the critical window (θ = ν(1 + 5P^{-1/3})): the finite-P mean is biased upward by
    O(P^{-2/3}) and the fluctuations are non-Gaussian, so we add P^{-2/3}·ν·3 to the tolerance."""
    p, nu = P_TRIDIAG, 1.0
    theta = nu + critical_window(nu, p)
    vals = spiked_wigner_top_eigenvalues(theta, nu, p, 300, 7)
    assert_matches_monte_carlo(
        wigner_outlier(theta, nu),
        vals,
        n_params=p,
        extra_tolerance=3 * nu * p ** (-2 / 3),
        params={"theta": theta},
    )


@pytest.mark.parametrize(
    ("ell", "q", "seed"), [(3.0, 0.5, 10), (4.0, 2.0, 11), (3.0, 1.0, 12), (2.0, 0.25, 13)]
)
def test_wishart_outlier(ell: float, q: float, seed: int) -> None:
    """docs/reference-values.md rows 8–11 (Baik–Silverstein) with Paul's sd, bidiagonal model, n = 4000."""
    n = 4000
    p = int(q * n)
    vals = spiked_wishart_top_eigenvalues(ell, 1.0, p, n, 300, seed)
    assert_matches_monte_carlo(
        wishart_outlier(ell, 1.0, q),
        vals,
        n_params=min(p, n),
        sd=wishart_outlier_fluctuation_sd(ell, 1.0, q, n),
        params={"ell": ell, "q": q},
    )


def test_batch_ggn_extremal() -> None:
    """batch_ggn_extremal(λ, σ², P, B, C) = wishart_outlier with q = P/(B·C): P = 3000, B = 500, C = 2."""
    p, b, c, lam, s2 = 3000, 500, 2, 6.0, 0.5
    vals = spiked_wishart_top_eigenvalues(lam, s2, p, b * c, 300, 14)
    q = p / (b * c)
    assert_matches_monte_carlo(
        batch_ggn_extremal(lam, s2, p, b, outputs_per_sample=c),
        vals,
        n_params=b * c,
        sd=wishart_outlier_fluctuation_sd(lam, s2, q, b * c),
        params={"q": q},
    )


def test_bidiagonal_wishart_matches_dense() -> None:
    """The O(P) bidiagonal model has the law of the dense Σ^{1/2} Z Zᵀ Σ^{1/2}/n (mean and sd)."""
    p, n, reps = 150, 100, 150
    pop = np.r_[3.0, np.ones(p - 1)]
    dense = np.array([extremal_eigenvalues(sample_spiked_wishart(p, n, pop, seed=s))[0] for s in range(reps)])
    fast = spiked_wishart_top_eigenvalues(3.0, 1.0, p, n, 2000, 99)
    # compare the dense mean with the fast-model mean (se of the difference from both samples)
    assert_matches_monte_carlo(fast.mean(), dense, n_params=p, bias_per_param=0.0, z=4.5)
    assert np.std(dense, ddof=1) == pytest.approx(np.std(fast, ddof=1), rel=4 / np.sqrt(2 * reps))


def test_bulk_spike_outlier_free_convolution() -> None:
    """docs/theory.md §1c / docs/reference-values.md row 15: μ = ½(δ₋₁ + δ₁), ν = 1, θ = 3 → 27/8 (not the
    generic-spike 3.636);
    also the upper edge of μ ⊞ sc (row 14: 3√3/2). Dense P = 1500, sd from the sample."""
    p, reps = 1500, 12
    atoms = np.array([-1.0, 1.0])

    def top_two(rng: np.random.Generator) -> np.ndarray:
        a = sample_bulk_spike(p, [3.0], 1.0, atoms, seed=rng)
        return extremal_eigenvalues(a, k=2)

    pred = [bulk_spike_outlier(3.0, 1.0, atoms), free_convolution_edges(1.0, atoms)[-1]]
    assert pred[0] == pytest.approx(27 / 8)
    # the second eigenvalue is the bulk edge: TW mean shift −1.2065·c·P^{-2/3} (c ~ edge scale ≈ 1) allowed
    assert_matches_monte_carlo(
        pred, top_two, n_params=p, n_reps=reps, seed=20, extra_tolerance=1.5 * p ** (-2 / 3), params={"P": p}
    )


def test_wishart_bulk_spike_outlier_bai_yao() -> None:
    """docs/theory.md §2 / docs/reference-values.md row 13: H = ½δ₁ + ½δ₂, q = 1/4, α = 6 → 6.525
    (bidiagonal model not applicable:
    dense, P = 500, n = 2000)."""
    p, n = 500, 2000
    pop = np.r_[6.0, discrete_bulk(p - 1, [1.0, 2.0])]

    def top(rng: np.random.Generator) -> float:
        return float(extremal_eigenvalues(sample_spiked_wishart(p, n, pop, seed=rng))[0])

    pred = wishart_bulk_spike_outlier(6.0, p / n, [1.0, 2.0])
    assert pred == pytest.approx(6.525, abs=1e-6)
    assert_matches_monte_carlo(pred, top, n_params=p, n_reps=10, seed=21, params={"alpha": 6.0})


def _sample_profile_top(s: np.ndarray, thetas: list[float], vectors: np.ndarray | None, a: np.ndarray | None):
    def top(rng: np.random.Generator) -> float:
        return float(extremal_eigenvalues(sample_profile_wigner(s, thetas, vectors, seed=rng, a=a))[0])

    return top


def test_profile_tau_row() -> None:
    """docs/reference-values.md row 17: (τ, θ) = (2, 3) → √13 with the spike on the τ-row (dense P = 1500)."""
    p = 1500
    s = np.full((p, p), 1.0 / p)
    s[0, :] = s[:, 0] = 2.0 / p
    pred = wigner_type_outliers(s, [3.0], np.eye(p)[:, 0])[0]
    assert pred == pytest.approx(np.sqrt(13), abs=1e-3)
    assert_matches_monte_carlo(
        pred, _sample_profile_top(s, [3.0], None, None), n_params=p, n_reps=10, seed=30
    )


def test_profile_block_row19() -> None:
    """docs/reference-values.md row 19: block profile [[2, .5], [.5, 1]]/P, θ = 2.5 with the spike inside
    block 1."""
    p = 1500
    s = np.kron(np.array([[2.0, 0.5], [0.5, 1.0]]), np.ones((p // 2, p // 2))) / p
    v = np.r_[np.ones(p // 2), np.zeros(p // 2)] / np.sqrt(p / 2)
    pred = wigner_type_outliers(s, [2.5], v)[0]
    assert_matches_monte_carlo(
        pred, _sample_profile_top(s, [2.5], v[:, None], None), n_params=p, n_reps=10, seed=31
    )


def test_lognormal_rank_one_profile_beats_average_variance() -> None:
    """docs/theory.md §1b: S_jk ∝ a_j a_k with log-normal a. The QVE (rank-one path) predicts the top
    eigenvalue;
    replacing S by its average variance (ν² = mean row sum, edge 2ν) is far off."""
    p = 1500
    rng = np.random.default_rng(40)
    g = np.exp(rng.normal(0.0, 0.5, size=p))
    s = 2.0 * np.outer(g, g) / (p * np.mean(g) ** 2)  # mean row sum ≈ 2
    _, edge = wigner_type_edges(s)
    avg_edge = 2.0 * np.sqrt(s.sum(axis=1).mean())
    top = _sample_profile_top(s, [], None, None)
    # the top eigenvalue of a noise matrix sits below the edge by O(P^{-2/3}) (Tracy–Widom scale; its constant
    # depends on the profile, measured ≈ 3·E₊·P^{-2/3} here), so 2·E₊·P^{-2/3} is added to the tolerance
    result = assert_matches_monte_carlo(
        edge, top, n_params=p, n_reps=10, seed=41, extra_tolerance=2 * edge * p ** (-2 / 3)
    )
    assert abs(avg_edge - result.mc_mean[0]) > 5 * result.tolerance[0], str(result)
