"""The stopping rules of the Krylov solvers (docs/theory.md §5b) against dense eigh (hypothesis).

Random symmetric matrices Q diag(λ) Qᵀ with a controlled gap below the wanted eigenvalues: with the default
rule ("eigenvalue") the returned eigenvalue error is within the reported bound min(r, r²/δ) and the bound is
within tol · max|θ| when the gaps are resolved; in clustered or exactly degenerate spectra the Ritz value is
within the residual of an eigenvalue (the guard's fallback) and within the bound of the cluster's hull — the
gap theorem for the cluster as a whole: a Krylov method from one start vector cannot see inside a cluster
that it has not resolved, so the error against λ₁ is at most the bound plus the cluster's width.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from networks.lanczos import eigenvalue_error_bounds, lanczos, top_eigenpairs

N = 150


def _matrix(top: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Q diag(spectrum) Qᵀ: ``top`` over a bulk uniform on [−1, min(top) − 0.1]; spectrum descending."""
    rng = np.random.default_rng(seed)
    bulk = rng.uniform(-1.0, float(np.min(top)) - 0.1, N - top.size)
    spectrum = np.sort(np.concatenate([top, bulk]))[::-1]
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    return (q * spectrum) @ q.T, spectrum


@settings(max_examples=25, deadline=None)
@given(
    k=st.sampled_from([1, 3]),
    log_gap=st.floats(-1.5, np.log10(0.5)),
    tol=st.sampled_from([1e-4, 1e-7, 1e-10]),
    seed=st.integers(0, 2**16),
)
def test_resolved_gaps_error_within_bound_within_tol(k: int, log_gap: float, tol: float, seed: int) -> None:
    gap = 10.0**log_gap
    top = 2.0 - gap * np.arange(k + 1)  # k wanted, one more below: every gap is `gap`
    a, spectrum = _matrix(top, seed)
    result = top_eigenpairs(a, k, "LA", tol=tol, seed=seed, return_eigenvectors=False)
    assert result.converged.all() and result.stopping == "eigenvalue"
    error = np.abs(result.eigenvalues - spectrum[:k])
    scale = np.max(np.abs(result.eigenvalues))
    assert np.all(error <= result.error_bounds * (1 + 1e-6) + 1e-13 * scale), (error, result.error_bounds)
    assert np.all(result.error_bounds <= tol * scale * (1 + 1e-12))
    assert np.all(result.error_bounds <= result.residuals * (1 + 1e-12))


@settings(max_examples=25, deadline=None)
@given(
    cluster=st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 1e-4]),
    tol=st.sampled_from([1e-4, 1e-8]),
    seed=st.integers(0, 2**16),
)
def test_clusters_and_degenerate_top_guard_falls_back_to_the_residual(
    cluster: float, tol: float, seed: int
) -> None:
    """Top eigenvalue 2 in a cluster {2, 2 − c, 2 − 2c} (c = 0: a triple eigenvalue)."""
    a, spectrum = _matrix(2.0 - cluster * np.arange(3), seed)
    result = top_eigenpairs(a, 1, "LA", tol=tol, seed=seed, return_eigenvectors=False)
    theta, bound = result.eigenvalues[0], result.error_bounds[0]
    scale = abs(theta)
    assert result.converged.all() and bound <= tol * scale * (1 + 1e-12)
    slack = 1e-13 * scale
    assert np.min(np.abs(spectrum - theta)) <= result.residuals[0] * (1 + 1e-6) + slack  # the fallback
    hull = max(0.0, spectrum[2] - theta, theta - spectrum[0])  # distance to [λ₃, λ₁], the cluster
    assert hull <= bound * (1 + 1e-6) + slack
    assert abs(spectrum[0] - theta) <= bound * (1 + 1e-6) + 2 * cluster + slack


def test_gap_guard_of_the_bound() -> None:
    """min(r, r²/δ), δ = min_j (|θ_i − θ_j| − r_j): second order only where the gap is resolved."""
    theta = np.array([0.0, 1.0, 1.0 + 1e-3])
    r = np.array([1e-2, 1e-4, 1e-4])
    bounds = eigenvalue_error_bounds(theta, r)
    # θ_0: δ = 1 − 1e-4 > r → r²/δ; θ_1, θ_2: δ = 1e-3 − 1e-4 = 9e-4 > r → r²/9e-4
    np.testing.assert_allclose(bounds, [1e-4 / (1 - 1e-4), 1e-8 / 9e-4, 1e-8 / 9e-4], rtol=1e-12)
    unresolved = eigenvalue_error_bounds(np.array([1.0, 1.0 + 1e-5]), np.array([1e-4, 1e-4]))
    np.testing.assert_allclose(unresolved, [1e-4, 1e-4])  # neighbour within its residual: fall back to r
    degenerate = eigenvalue_error_bounds(np.array([2.0, 2.0]), np.array([0.0, 1e-3]))
    np.testing.assert_allclose(degenerate, [0.0, 1e-3])
    np.testing.assert_allclose(eigenvalue_error_bounds(np.array([3.0]), np.array([0.5])), [0.5])
    with pytest.raises(ValueError, match="residuals"):
        eigenvalue_error_bounds(np.array([1.0, 2.0]), np.array([-1.0, 0.0]))
    with pytest.raises(ValueError, match="theta and residuals"):
        eigenvalue_error_bounds(np.array([1.0, 2.0]), np.array([1.0]))


def test_lanczos_flags_follow_the_named_rule() -> None:
    a, spectrum = _matrix(np.array([2.0, 1.9]), 0)
    by_value = lanczos(a, 25, tol=1e-8)
    by_vector = lanczos(a, 25, tol=1e-8, stopping="residual")
    assert by_value.stopping == "eigenvalue" and by_vector.stopping == "residual"
    np.testing.assert_array_equal(by_value.ritz_values, by_vector.ritz_values)
    assert by_value.converged.sum() >= by_vector.converged.sum()
    top = by_value.ritz_values[-1]
    assert abs(top - spectrum[0]) <= by_value.error_bounds[-1] * (1 + 1e-6) + 1e-13
    with pytest.raises(ValueError, match="stopping"):
        top_eigenpairs(a, 1, stopping="vector")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), bottom=st.sampled_from([-0.3, -0.05]))
def test_relative_rule_finds_a_small_negative_eigenvalue_below_a_null_space(seed: int, bottom: float) -> None:
    """A nearly PSD batch-Hessian-like spectrum (top 30, a 90% null space, a small negative outlier): the
    "relative" rule bounds the error by tol·|λ_min| (not tol·max|θ|, which a null-space Ritz value θ ≈ 0
    passes first), so λ_min comes out to relative accuracy whenever the rule reports convergence."""
    rng = np.random.default_rng(seed)
    n_null = int(0.9 * N)
    positive = rng.uniform(0.5, 30.0, N - n_null - 2)
    spectrum = np.sort(np.concatenate([[30.0], positive, np.zeros(n_null), [bottom]]))[::-1]
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    a = (q * spectrum) @ q.T
    tol = 1e-3
    result = top_eigenpairs(
        a, 1, "SA", tol=tol, seed=seed, return_eigenvectors=False, stopping="relative", max_products=N
    )
    assert result.converged.all() and result.stopping == "relative"
    assert abs(result.eigenvalues[0] - bottom) <= result.error_bounds[0] * (1 + 1e-6) + 1e-12
    assert result.error_bounds[0] <= tol * abs(result.eigenvalues[0]) * (1 + 1e-12)
