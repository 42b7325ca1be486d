"""The sample-spike model of docs/theory.md §1e against its exact sampler and against its definition.

Tolerances (stated per test, derived from finite-size theory):
* algebraic identities (secular equation, Gram reduction, brackets): float round-off, 1e-9 relative;
* quantile predictions vs Monte Carlo: the fraction of MC batches below a predicted p-quantile is Binomial, so
  it must lie within ``p ± 4 √(p(1−p)(1/n_mc + 1/n_pred))`` (the second term: the predicted quantile's own
  resampling error); the orthogonal-direction prediction's finite-P bias is O(B·C/P) ≤ 0.7% here, far below
  the quantiles' spacing, and is covered by that band;
* means: :func:`rmt.testing.assert_matches_monte_carlo` (4 se + 3/P);
* bulk edge: the top eigenvalue of an m×m sample covariance sits below the edge by a Tracy–Widom amount of
  scale ``σ_rel = (P^{-1/2} + m^{-1/2})^{1/3} / (√P + √m)`` (white MP), so ``0 ≤ 1 − MC/edge ≤ 4 σ_rel``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.optimize import brentq

from rmt.sample_spikes import (
    PerSampleCurvature,
    SampleSpikeModel,
    batch_brackets,
    crossover_batch_size,
    draw_batches,
    effective_dimension,
    large_batch_bulk_edge,
    large_batch_extremal,
    orthogonal_extremal,
    pareto_crossover_batch_size,
    predict_batch_extremal,
    subordinated_extremal,
)
from rmt.sample_spikes_sampling import batch_matrix, sample_batch_extremal
from rmt.symbolic import derivation
from rmt.testing import assert_matches_monte_carlo


def _heavy_pool(seed: int = 1, n: int = 4000) -> PerSampleCurvature:
    """Issue-like pool: Pareto(α = 2) tops with median ≈ 2.5 λ for λ = 1, small overlaps with u."""
    return PerSampleCurvature.parametric(n, shape=2.0, scale=1.8, overlap2_mean=0.05, n_spikes=1, seed=seed)


def _random_model(rng: np.random.Generator, k: int, rank: int, n_params: float) -> SampleSpikeModel:
    n = 30
    scales = rng.pareto(2.0, (n, rank)) + 0.1
    scales *= rng.choice([1.0, -0.4], size=(n, rank), p=[0.7, 0.3])
    c = rng.normal(0.0, 0.4, (n, rank, k))
    norm = np.sqrt((c**2).sum(axis=2, keepdims=True))
    c = np.where(norm > 0.95, 0.95 * c / np.maximum(norm, 1e-300), c)
    a = rng.normal(0.0, 1.0, (k, k))
    return SampleSpikeModel(PerSampleCurvature(scales, c), a + a.T, n_params)


# ------------------------------------------------------------------------------------------------------------
# Exact algebra.


def test_gram_reduction_equals_dense_eigendecomposition() -> None:
    """The (k + m)-dimensional reduction gives the P×P spectrum's extremes (indefinite, k = 2, C = 2)."""
    rng = np.random.default_rng(0)
    model = _random_model(rng, k=2, rank=2, n_params=120)
    rows = np.array([[3, 7, 7, 11, 20, 29]])
    dense = np.linalg.eigvalsh(batch_matrix(model, rows[0], seed=5))
    res = sample_batch_extremal(model, 6, 1, seed=5, method="vectors", rows=rows)
    scale = float(np.abs(dense).max())
    assert res.top[0] == pytest.approx(dense[-1], abs=1e-9 * scale)
    assert res.bottom[0] == pytest.approx(dense[0], abs=1e-9 * scale)


@settings(max_examples=25)
@given(
    k=st.integers(0, 3),
    rank=st.integers(1, 2),
    batch=st.integers(1, 12),
    seed=st.integers(0, 10_000),
)
def test_secular_equation_equals_bordered_matrix(k: int, rank: int, batch: int, seed: int) -> None:
    """Orthogonal directions: the secular-equation root is the top (bottom) eigenvalue of the explicit
    bordered-diagonal matrix ``[[A + Σ t c cᵀ, (b_j)], [(b_jᵀ), diag(d)]]`` (Schur complement, exact)."""
    rng = np.random.default_rng(seed)
    model = _random_model(rng, k=k, rank=rank, n_params=math.inf)
    rows = draw_batches(model.per_sample.n_samples, batch, 8, rng)
    top, bottom = orthogonal_extremal(model, rows)
    exact = sample_batch_extremal(model, batch, 8, rng, rows=rows)
    scale = 1.0 + np.abs(exact.top).max() + np.abs(exact.bottom).max()
    np.testing.assert_allclose(top, exact.top, atol=1e-9 * scale)
    np.testing.assert_allclose(bottom, exact.bottom, atol=1e-9 * scale)


def test_bartlett_gram_has_the_law_of_explicit_vectors() -> None:
    """Bartlett-sampled Gram matrices and explicit random unit vectors give the same law of λ_max
    (two-sample KS, false-alarm rate 1e-3; B·C/P = 0.13 so finite-P effects are present)."""
    pool = PerSampleCurvature.parametric(500, distribution="exponential", overlap2_mean=0.2, seed=3)
    model = SampleSpikeModel.from_full_spikes([0.3], pool, n_params=300)
    gram = sample_batch_extremal(model, 40, 300, seed=1)
    vectors = sample_batch_extremal(model, 40, 300, seed=2, method="vectors")
    assert stats.ks_2samp(gram.top, vectors.top).pvalue > 1e-3


@settings(max_examples=15)
@given(batch=st.integers(1, 40), n_params=st.integers(90, 400), seed=st.integers(0, 10_000))
def test_weyl_rayleigh_brackets_hold_for_every_batch(batch: int, n_params: int, seed: int) -> None:
    """max(max_i μ_i/B, uᵀM_B u) ≤ λ_max(M_B) ≤ λ_max(A)⁺ + Σ t⁺ at finite P (PSD GGN, docs/theory.md §1e)."""
    pool = PerSampleCurvature.parametric(200, shape=1.5, overlap2_mean=0.1, rank=2, seed=seed)
    model = SampleSpikeModel.from_full_spikes([4.0], pool, n_params=n_params)
    assert np.linalg.eigvalsh(model.shared)[0] >= 0
    res = sample_batch_extremal(model, batch, 10, seed)
    lower, upper = batch_brackets(model, res.rows)
    assert (lower <= res.top * (1 + 1e-10)).all() and (res.top <= upper * (1 + 1e-10)).all()
    assert (lower >= pool.tops[res.rows].max(axis=1) / batch * (1 - 1e-12)).all()


def test_full_matrix_has_the_requested_spikes() -> None:
    """E[u_kᵀ M_B u_k] = λ_k (dense matrices, mean over batches within 4 se) and the full block's spectrum."""
    pool = PerSampleCurvature.parametric(300, distribution="lognormal", shape=0.8, overlap2_mean=0.2,
                                         n_spikes=2, seed=4)  # fmt: skip
    model = SampleSpikeModel.from_full_spikes([3.0, 1.5], pool, n_params=150)
    np.testing.assert_allclose(np.linalg.eigvalsh(model.full_block), [1.5, 3.0], rtol=1e-12)
    rng = np.random.default_rng(5)
    rows = draw_batches(300, 4, 200, rng)
    diag = np.array([np.diag(batch_matrix(model, r, rng))[:2] for r in rows])
    assert_matches_monte_carlo([3.0, 1.5], diag, n_params=150, bias_per_param=0.0)


def test_pool_blocks_are_exactly_symmetric_with_cross_couplings() -> None:
    """Measured per-sample overlaps with several shared directions (docs/theory.md §1f): the pool's k×k blocks
    are symmetric to the bit (einsum's summation order alone breaks that), so the model accepts them."""
    rng = np.random.default_rng(11)
    n, rank, k = 128, 10, 6
    c = rng.normal(0.0, 0.3, (n, rank, k))
    c /= np.maximum(1.0, np.sqrt((c**2).sum(axis=2, keepdims=True)) / 0.99)
    pool = PerSampleCurvature(rng.pareto(1.5, (n, rank)) * 100.0, c)
    for block in (pool.shared_block, pool.coupling):
        assert np.array_equal(block, block.T)
    spikes = np.linspace(600.0, 100.0, k)
    model = SampleSpikeModel.from_full_spikes(spikes, pool)
    np.testing.assert_allclose(np.linalg.eigvalsh(model.full_block), spikes[::-1], rtol=1e-12)


def test_from_summary_reproduces_the_measured_statistics() -> None:
    rng = np.random.default_rng(6)
    top = rng.uniform(1.0, 5.0, 50)
    trace = top + rng.uniform(0.0, 2.0, 50) * top
    bottom = -rng.uniform(0.0, 1.0, 50)
    ray = top[:, None] * rng.uniform(0.0, 0.2, (50, 3))
    # a negative quotient (e.g. along H's bottom eigenvector) is carried by the sample's bottom direction
    ray[:, 2] = bottom * rng.uniform(0.0, 0.3, 50)
    pool = PerSampleCurvature.from_summary(top, trace=trace + bottom, rank=4, bottom=bottom, rayleigh=ray)
    np.testing.assert_allclose(pool.tops, top, rtol=1e-12)
    np.testing.assert_allclose(pool.bottoms, bottom, rtol=1e-12)
    np.testing.assert_allclose(pool.traces, trace + bottom, rtol=1e-12)
    np.testing.assert_allclose(pool.rayleigh, ray, rtol=1e-12, atol=1e-15)
    # without a bottom direction a negative quotient has nowhere to go: it is dropped (not mis-signed)
    no_bottom = PerSampleCurvature.from_summary(top, trace=trace, rank=4, rayleigh=ray)
    np.testing.assert_allclose(no_bottom.rayleigh[:, 2], 0.0, atol=1e-15)


def test_decoupled_spike_is_the_maximum_of_the_levels() -> None:
    """No overlaps, P = ∞: M_B = λuuᵀ ⊕ diag(s_i/B), so λ_max = max(λ, max_i s_i/B) exactly, λ_min = 0."""
    pool = PerSampleCurvature.parametric(100, shape=1.5, seed=3)
    model = SampleSpikeModel.from_full_spikes([2.0], pool)
    rows = draw_batches(100, 5, 40, seed=4, replace=False)
    assert all(len(set(r)) == 5 for r in rows.tolist())
    top, bottom = orthogonal_extremal(model, rows)
    np.testing.assert_allclose(top, np.maximum(2.0, pool.tops[rows].max(axis=1) / 5), rtol=1e-12)
    assert (bottom == 0).all()


# ------------------------------------------------------------------------------------------------------------
# Predictions against the exact sampler.


def _coverage_check(pred: np.ndarray, levels: np.ndarray, mc: np.ndarray, n_pred: int) -> None:
    for p, q in zip(levels, pred, strict=True):
        frac = float((mc < q).mean())
        tol = 4.0 * math.sqrt(p * (1 - p) * (1.0 / mc.size + 1.0 / n_pred))
        assert abs(frac - p) <= tol, f"level {p}: {frac:.3f} of MC below the predicted quantile {q:.4g}"


@pytest.mark.parametrize(
    ("regime", "batch"), [("sample-spike", 2), ("crossover", 5), ("shared-spike", 64)]
)
def test_predicted_quantiles_cover_monte_carlo(regime: str, batch: int) -> None:
    """10/50/90% quantiles over resampled batches (orthogonal secular equation) vs the exact sampler at
    P = 10⁴; B_× ≈ 5 for this pool (checked below), so the three B span both regimes and the crossover."""
    model = SampleSpikeModel.from_full_spikes([1.0], _heavy_pool(), n_params=10_000)
    n_pred, n_mc = 4000, 300
    pred = predict_batch_extremal(model, [batch], n_batches=n_pred, seed=11)
    mc = sample_batch_extremal(model, batch, n_mc, seed=12)
    _coverage_check(pred.top_quantiles[0], pred.levels, mc.top, n_pred)
    if regime == "crossover":
        assert 3.0 < crossover_batch_size(model) < 8.0


def test_indefinite_model_top_and_bottom_quantiles() -> None:
    """Hessian-like: each sample adds a negative direction; both extremes against the sampler (P = 5000)."""
    rng = np.random.default_rng(7)
    top = 1.8 * (1.0 - rng.random(3000)) ** -0.5
    bottom = -0.5 * top * rng.uniform(0.2, 1.0, 3000)
    pool = PerSampleCurvature.from_summary(top, rank=2, bottom=bottom, rayleigh=0.05 * top)
    model = SampleSpikeModel.from_full_spikes([1.0], pool, n_params=5000)
    pred = predict_batch_extremal(model, [4], n_batches=4000, seed=13)
    mc = sample_batch_extremal(model, 4, 300, seed=14)
    _coverage_check(pred.top_quantiles[0], pred.levels, mc.top, 4000)
    _coverage_check(pred.bottom_quantiles[0], pred.levels, mc.bottom, 4000)
    assert (pred.bottom_quantiles < 0).all()


def test_exact_method_at_infinite_dimension_equals_orthogonal_method() -> None:
    model = SampleSpikeModel.from_full_spikes([1.0], _heavy_pool(n=500), n_params=math.inf)
    a = predict_batch_extremal(model, [1, 3, 16], n_batches=50, seed=3)
    b = predict_batch_extremal(model, [1, 3, 16], n_batches=50, seed=3, method="exact")
    np.testing.assert_allclose(a.top_quantiles, b.top_quantiles, rtol=1e-9)
    np.testing.assert_allclose(a.bottom_mean, b.bottom_mean, atol=1e-12)


def test_large_batch_deterministic_equivalent() -> None:
    """Light-tailed pool, B = 256, P = 2000 (q = 0.13): the deterministic equivalent matches the MC mean
    (4 se + 3/P), and at P = ∞ it tends to the §1a form λ + ν²/λ with the measured ν² = E‖(G_i u)_⊥‖²/B
    (difference O(ν⁴/λ³) = 1e-6 here)."""
    pool = PerSampleCurvature.parametric(4000, distribution="exponential", overlap2_mean=0.2, seed=2)
    model = SampleSpikeModel.from_full_spikes([1.0], pool, n_params=2000)
    mc = sample_batch_extremal(model, 256, 60, seed=8)
    de = float(large_batch_extremal(model, [256])[0])
    assert_matches_monte_carlo(de, mc.top, n_params=2000)
    inf_model = SampleSpikeModel.from_full_spikes([1.0], pool)
    nu2 = pool.coupling[0, 0] / 4096
    assert large_batch_extremal(inf_model, [4096])[0] == pytest.approx(1.0 + nu2, abs=1e-5)


def test_bulk_edge_in_the_wishart_regime_and_where_orthogonality_fails() -> None:
    """B·C/P = 0.25 with a light-tailed pool and no shared spike: the top follows the Bai–Yao edge of the
    sample-heteroscedastic complement (within the Tracy–Widom window below it); the orthogonal formula
    (largest atom) is off by > 30% there — it needs P ≫ B·C."""
    rng = np.random.default_rng(9)
    pool = PerSampleCurvature(rng.uniform(1.0, 2.0, 3000))
    p, batch = 400, 100
    model = SampleSpikeModel(pool, None, n_params=p)
    mc = sample_batch_extremal(model, batch, 40, seed=10)
    edge = float(large_batch_bulk_edge(model, [batch])[0])
    sigma_rel = (p**-0.5 + batch**-0.5) ** (1 / 3) / (math.sqrt(p) + math.sqrt(batch))
    gap = 1.0 - float(mc.top.mean()) / edge
    assert 0.0 <= gap <= 4.0 * sigma_rel
    ortho = predict_batch_extremal(SampleSpikeModel(pool, None), [batch], n_batches=200, seed=1)
    assert ortho.top_mean[0] < 0.7 * mc.top.mean()


def test_finite_dimension_shift_against_paired_exact_draws() -> None:
    """Same batches, exact sampler at finite P vs the orthogonal solution and its second-order finite-P shift.

    Per-sample-dominated pool (exponential, rank 4, no shared coupling), B·C/P = 0.256: the orthogonal
    formula is biased low (measured −6%); the shifted one must be unbiased within 4 se plus 1% (the neglected
    third-order terms, measured ≤ 0.5% at these ratios). Indefinite model at P = 300: top and bottom likewise.
    """
    rng = np.random.default_rng(15)
    pool = PerSampleCurvature(np.column_stack([rng.exponential(1.0, 4000) * w for w in (1, 0.6, 0.4, 0.2)]))
    model = SampleSpikeModel(pool, None, n_params=500)
    rows = draw_batches(4000, 32, 200, seed=3)
    exact = sample_batch_extremal(model, 32, 200, seed=4, rows=rows)
    ortho = orthogonal_extremal(model, rows)[0] / exact.top - 1.0
    shifted = subordinated_extremal(model, rows)[0] / exact.top - 1.0
    assert ortho.mean() < -0.03
    assert abs(shifted.mean()) <= 4 * shifted.std(ddof=1) / math.sqrt(200) + 0.01
    top = 1.8 * (1.0 - rng.random(3000)) ** -0.5
    pool2 = PerSampleCurvature.from_summary(
        top, rank=2, bottom=-0.5 * top * rng.uniform(0.2, 1.0, 3000), rayleigh=0.05 * top
    )
    model2 = SampleSpikeModel.from_full_spikes([1.0], pool2, n_params=300)
    rows2 = draw_batches(3000, 32, 200, seed=5)
    exact2 = sample_batch_extremal(model2, 32, 200, seed=6, rows=rows2)
    for got, want in zip(subordinated_extremal(model2, rows2), (exact2.top, exact2.bottom), strict=True):
        rel = got / want - 1.0
        assert abs(rel.mean()) <= 4 * rel.std(ddof=1) / math.sqrt(200) + 0.01
    inf_model = SampleSpikeModel(pool2, model2.shared)
    pairs = zip(subordinated_extremal(inf_model, rows2), orthogonal_extremal(inf_model, rows2), strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    decoupled = SampleSpikeModel.from_full_spikes([50.0], pool, n_params=500)
    assert (subordinated_extremal(decoupled, rows)[0] == 50.0).all()
    assert large_batch_extremal(decoupled, [64])[0] == pytest.approx(50.0, rel=1e-12)


# ------------------------------------------------------------------------------------------------------------
# Crossover batch size.


def test_crossover_closed_form_matches_sympy() -> None:
    f = derivation("sample_spikes").function("crossover_batch_size", "x_min", "lam", "alpha", "L")
    rng = np.random.default_rng(12)
    lam, xm = rng.uniform(0.1, 5.0, 200), rng.uniform(0.1, 20.0, 200)
    alpha, level = rng.uniform(1.05, 6.0, 200), rng.uniform(0.05, 0.95, 200)
    np.testing.assert_allclose(
        pareto_crossover_batch_size(lam, xm, alpha, level), f(xm, lam, alpha, np.log(1 / level)), rtol=1e-10
    )
    assert pareto_crossover_batch_size(1.0, 2.0, 0.9) == math.inf
    assert derivation("sample_spikes")["secular_term_identity"] == 0


@pytest.mark.parametrize(("alpha", "x_min"), [(2.0, 5.0), (3.0, 8.0), (1.5, 2.5)])
def test_empirical_crossover_tends_to_the_closed_form(alpha: float, x_min: float) -> None:
    """A pool of 2·10⁵ exact Pareto quantiles: :func:`crossover_batch_size` solves the exact quantile equation
    ``x_min (1 − p^{1/B})^{−1/α} / B = λ`` (checked to 1e-3, the pool's quantisation), and the closed form
    differs from it by the first-order correction ``L/(2(α − 1)B_×)`` (L = ln 2) of the large-B quantile,
    to within 25% of that correction (the next order is O(1/B_×²))."""
    u = (np.arange(200_000) + 0.5) / 200_000
    pool = PerSampleCurvature(x_min * (1.0 - u) ** (-1.0 / alpha))
    model = SampleSpikeModel.from_full_spikes([1.0], pool)
    closed = float(pareto_crossover_batch_size(1.0, x_min, alpha))
    exact = brentq(lambda b: x_min * (1.0 - 0.5 ** (1.0 / b)) ** (-1.0 / alpha) / b - 1.0, 1.0 + 1e-9, 1e6)
    empirical = crossover_batch_size(model)
    assert empirical == pytest.approx(exact, rel=1e-3)
    first_order = math.log(2.0) / (2.0 * (alpha - 1.0) * closed)
    assert exact / closed - 1.0 == pytest.approx(first_order, rel=0.25)


def test_effective_dimension_of_random_directions() -> None:
    """E cos² = 1/P for independent uniform unit vectors; sd(cos²) ≈ √2/P, so 4 se = 4√(2/n) relative."""
    rng = np.random.default_rng(13)
    g = rng.standard_normal((400, 500))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    cos2 = (g[::2] * g[1::2]).sum(axis=1) ** 2
    assert effective_dimension(cos2) == pytest.approx(500, rel=4 * math.sqrt(2 / cos2.size))


# ------------------------------------------------------------------------------------------------------------
# Bad input.


def test_bad_input_names_the_argument() -> None:
    pool = _heavy_pool(n=50)
    model = SampleSpikeModel.from_full_spikes([1.0], pool, n_params=100)
    with pytest.raises(ValueError, match="overlaps must satisfy"):
        PerSampleCurvature([[1.0]], [[[0.8, 0.8]]])
    with pytest.raises(ValueError, match="scales must be a non-empty"):
        PerSampleCurvature(np.zeros((0, 2)))
    with pytest.raises(TypeError, match="scales must be a real number"):
        PerSampleCurvature("big")
    with pytest.raises(ValueError, match="n_params must be >= n_spikes"):
        SampleSpikeModel(pool, [[0.0]], n_params=1)
    with pytest.raises(ValueError, match="shared must be 1×1"):
        SampleSpikeModel(pool, np.eye(2))
    with pytest.raises(TypeError, match="per_sample must be a PerSampleCurvature"):
        SampleSpikeModel([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spikes must have one value"):
        SampleSpikeModel.from_full_spikes([1.0, 2.0], pool)
    with pytest.raises(ValueError, match="levels must lie in"):
        predict_batch_extremal(model, [2], levels=[1.5])
    with pytest.raises(ValueError, match="batch_sizes must be >= 1"):
        predict_batch_extremal(model, [0])
    with pytest.raises(ValueError, match="method must be one of"):
        predict_batch_extremal(model, [2], method="fast")
    with pytest.raises(ValueError, match="batch_size·rank"):
        sample_batch_extremal(model, 200, 1, seed=0)
    with pytest.raises(ValueError, match="rows must index the pool"):
        orthogonal_extremal(model, np.array([[0, 50]]))
    with pytest.raises(TypeError, match="model must be a SampleSpikeModel"):
        orthogonal_extremal(pool, np.array([[0]]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level must lie in"):
        pareto_crossover_batch_size(1.0, 2.0, 2.0, level=1.0)
    with pytest.raises(ValueError, match="cos2 must lie in"):
        effective_dimension([0.5, 1.5])
    with pytest.raises(ValueError, match="trace must lie in"):
        PerSampleCurvature.from_summary([1.0], trace=[5.0], rank=2)
    with pytest.raises(ValueError, match="batch_size must be <= n_samples"):
        draw_batches(5, 6, 1, replace=False)
    with pytest.raises(ValueError, match="scales >= 0"):
        large_batch_bulk_edge(SampleSpikeModel(PerSampleCurvature([[1.0], [-1.0]])), [2])
