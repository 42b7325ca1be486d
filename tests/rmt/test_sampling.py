"""Samplers: conventions, seeding, exactness of the O(P) models, and extremal_eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from rmt.sampling import (
    as_generator,
    discrete_bulk,
    extremal_eigenvalues,
    sample_bulk_spike,
    sample_goe,
    sample_profile_wigner,
    sample_spiked_wigner,
    spiked_wigner_top_eigenvalues,
    spiked_wishart_top_eigenvalues,
)
from rmt.testing import assert_matches_monte_carlo


def test_goe_entry_variances() -> None:
    """Off-diagonal variance ν²/P, diagonal 2ν²/P (pooled over many entries: relative se ~ 1e-3)."""
    p, nu = 400, 1.5
    a = sample_goe(p, nu, seed=0)
    assert np.array_equal(a, a.T)
    off = a[np.triu_indices(p, 1)]
    assert np.var(off) * p / nu**2 == pytest.approx(1.0, rel=0.02)
    assert np.var(np.diag(a)) * p / nu**2 == pytest.approx(2.0, rel=0.3)


def test_profile_sampler_reduces_to_goe_and_follows_profile() -> None:
    p = 300
    s = np.full((p, p), 1.0 / p)
    s[: p // 2, : p // 2] *= 4.0
    a = sample_profile_wigner(s, seed=1)
    assert np.array_equal(a, a.T)
    block1 = a[: p // 2, : p // 2][np.triu_indices(p // 2, 1)]
    block2 = a[p // 2 :, p // 2 :][np.triu_indices(p // 2, 1)]
    assert np.var(block1) / np.var(block2) == pytest.approx(4.0, rel=0.05)
    flat = np.full((p, p), 1.0 / p)
    goe_like = sample_profile_wigner(flat, seed=2)
    assert np.var(goe_like[np.triu_indices(p, 1)]) * p == pytest.approx(1.0, rel=0.03)  # GOE convention
    assert np.var(np.diag(goe_like)) * p == pytest.approx(2.0, rel=0.35)
    spike = sample_profile_wigner(flat, [5.0], seed=2) - goe_like
    assert spike[0, 0] == pytest.approx(5.0) and np.abs(spike).sum() == pytest.approx(5.0)


def test_seeding_is_reproducible() -> None:
    assert np.array_equal(
        sample_spiked_wigner(50, [2.0], 1.0, seed=3), sample_spiked_wigner(50, [2.0], 1.0, seed=3)
    )
    rng = np.random.default_rng(4)
    assert as_generator(rng) is rng
    x = spiked_wigner_top_eigenvalues(2.0, 1.0, 100, 5, seed=7)
    assert np.array_equal(x, spiked_wigner_top_eigenvalues(2.0, 1.0, 100, 5, seed=7))
    with pytest.raises(TypeError, match="seed"):
        as_generator("0")  # type: ignore[arg-type]


def test_tridiagonal_model_matches_dense_sampler() -> None:
    """Dumitriu–Edelman with the spike on e₁: same law of the top eigenvalue and overlap as the dense GOE."""
    p, reps = 80, 600
    dense_vals, dense_ovs = [], []
    rng = np.random.default_rng(5)
    for _ in range(reps):
        vals, vecs = extremal_eigenvalues(sample_spiked_wigner(p, [1.5], 1.0, seed=rng), return_vectors=True)
        dense_vals.append(vals[0])
        dense_ovs.append(vecs[0, 0] ** 2)
    fast = spiked_wigner_top_eigenvalues(1.5, 1.0, p, 4000, seed=6, return_overlaps=True)
    assert_matches_monte_carlo(
        fast.eigenvalues.mean(), np.array(dense_vals), n_params=p, bias_per_param=0.0, z=4.5
    )
    assert_matches_monte_carlo(
        fast.overlaps.mean(), np.array(dense_ovs), n_params=p, bias_per_param=0.0, z=4.5
    )


def test_wishart_bidiagonal_small_exact_case() -> None:
    """P = 2, n = 1: the matrix is x xᵀ with x = (√ℓ z1, z2): top eigenvalue ℓ z1² + z2², mean ℓ + 1."""
    vals = spiked_wishart_top_eigenvalues(3.0, 1.0, 2, 1, 4000, seed=8)
    assert_matches_monte_carlo(4.0, vals, n_params=2, bias_per_param=0.0)


def test_discrete_bulk_counts() -> None:
    d = discrete_bulk(10, [-1.0, 1.0], [0.25, 0.75])
    assert np.array_equal(d, np.r_[-np.ones(2), np.ones(8)] if (d == -1).sum() == 2 else d)
    assert (d == -1).sum() in (2, 3) and d.size == 10
    a = sample_bulk_spike(20, [4.0], 0.0, [0.5])
    assert np.array_equal(np.diag(a), np.r_[4.0, np.full(19, 0.5)])


@pytest.mark.parametrize("p", [50, 900])
@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_extremal_eigenvalues_match_full_eigh(p: int, which: str) -> None:
    a = sample_spiked_wigner(p, [3.0, -4.0], 1.0, seed=9)
    full = np.linalg.eigvalsh(a)
    k = 3
    expected = {"LA": full[::-1][:k], "SA": full[:k], "LM": full[np.argsort(-np.abs(full))][:k]}[which]
    vals, vecs = extremal_eigenvalues(a, k=k, which=which, return_vectors=True)
    np.testing.assert_allclose(vals, expected, atol=1e-8)
    np.testing.assert_allclose(a @ vecs, vecs * vals, atol=1e-7)


def test_extremal_eigenvalues_sparse_and_errors() -> None:
    a = scipy.sparse.diags(np.arange(1.0, 1001.0)).tocsr()
    np.testing.assert_allclose(extremal_eigenvalues(a, k=2), [1000.0, 999.0])
    with pytest.raises(ValueError, match="which"):
        extremal_eigenvalues(np.eye(3), which="BE")
    with pytest.raises(ValueError, match="A"):
        extremal_eigenvalues(np.ones((2, 3)))
    with pytest.raises(ValueError, match="k"):
        extremal_eigenvalues(np.eye(3), k=4)


def test_sampler_argument_errors() -> None:
    with pytest.raises(ValueError, match="nu"):
        spiked_wigner_top_eigenvalues(2.0, -1.0, 10, 2)
    with pytest.raises(ValueError, match="vectors"):
        sample_spiked_wigner(4, [1.0], 1.0, vectors=np.ones(4))
    with pytest.raises(ValueError, match="S"):
        sample_profile_wigner(-np.ones((3, 3)))
    with pytest.raises(ValueError, match="n_params"):
        spiked_wishart_top_eigenvalues(2.0, 1.0, 1, 10, 2)
