"""Large-batch limits of the sample-spike model (docs/theory.md §1e, §2): the deterministic equivalent of the
shared-spike eigenvalue, the top edge of the per-sample bulk, and the crossover batch size between the
small-B extreme-value branch and the shared spike. The model: :mod:`rmt.sample_spikes_model`; everything is
re-exported by :mod:`rmt.sample_spikes`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rmt.checks import (
    FloatArray,
    _real_scalar,
    check_batch_size,
    check_in_range,
    check_positive,
    refuse_non_finite,
    scalar_or_array,
)
from rmt.sample_spikes_model import SampleSpikeModel
from rmt.sample_spikes_predict import _BISECTIONS

__all__ = [
    "crossover_batch_size",
    "large_batch_bulk_edge",
    "large_batch_extremal",
    "pareto_crossover_batch_size",
]

_EDGE_ATOMS = 256  # max batches × terms × k² evaluated at once


# ------------------------------------------------------------------------------------------------------------
# Large-B deterministic equivalents.


def _pool_terms(model: SampleSpikeModel) -> tuple[FloatArray, FloatArray, FloatArray]:
    ps = model.per_sample
    s = ps.scales.reshape(-1)
    c = ps.overlaps.reshape(s.size, ps.n_spikes)
    beta2 = np.clip(1.0 - (c**2).sum(axis=1), 0.0, 1.0)
    return s, c, beta2


def large_batch_extremal(model: SampleSpikeModel, batch_sizes: Any) -> FloatArray:
    """Large-B deterministic equivalent of the top shared-spike eigenvalue of M_B (docs/theory.md §1e).

    Schur complement on span U at finite P: ``det(z − A − Σ t c cᵀ − (b_j)ᵀ K (z − D K)^{-1} (b_j)) = 0`` with
    K the Gram matrix of the complement directions. Its deterministic equivalent replaces
    ``K (z − D K)^{-1}`` by ``diag(1/(ω(z) − d_j))``, ω the subordination function of the complement
    ``Σ_j d_j w_j w_jᵀ`` (Silverstein's equation, the Bai–Yao map of rmt.bulk with population {d}):
    ``z = ψ(ω) = ω + q ω E[d/(ω − d)]``, ``q = B·C/(P − k)``. Replacing the batch sums by B × their pool
    means (``d = s β²/B``, E over the pool's n·C scales):

        ψ(ω) = λ_max( Ā + (1/B) E_i[Σ_r s_ir² β_ir² c_ir c_irᵀ / (ω − s_ir β_ir²/B)] ),   λ'_top = ψ(ω),

    solved on the branch ``ψ'(ω) > 0`` above the atoms (where both sides are monotone); Ā =
    :attr:`SampleSpikeModel.full_block`. A shared direction without coupling (c = 0) is not shifted at all.
    For P = ∞ (ψ(ω) = ω), k = 1 and B → ∞: ``λ' = (λ + √(λ² + 4ν²))/2 ≈ λ + ν²/λ``,
    ``ν² = E‖(I − uuᵀ)G_i u‖²/B`` (:attr:`PerSampleCurvature.coupling`) — the §1a form
    (:func:`rmt.wigner.wigner_outlier`) with a *measured* ν. Conditions: B large enough that every atom
    s β²/B of the pool lies well below the spike (else use :func:`predict_batch_extremal`); it ignores the
    extreme values of the batch and the batch-to-batch fluctuation of ``uᵀ M_B u``. NaN where the spike is
    not separated (no root on the branch). The realised top is the larger of this and
    :func:`large_batch_bulk_edge`.
    """
    if not isinstance(model, SampleSpikeModel):
        raise TypeError(f"model must be a SampleSpikeModel, got {type(model).__name__}")
    sizes = np.atleast_1d(check_batch_size(batch_sizes, name="batch_sizes")).reshape(-1)
    ps = model.per_sample
    k = ps.n_spikes
    if k == 0:
        raise ValueError("model must have at least one shared direction (n_spikes >= 1)")
    s, c, beta2 = _pool_terms(model)
    abar = model.full_block
    outer = np.einsum("j,jk,jl->jkl", s**2 * beta2 / s.size, c, c) * ps.rank  # E_i[Σ_r …]
    coupled = (outer**2).sum(axis=(1, 2)) > 0
    p_perp = model.n_params - k
    out = np.empty(sizes.size)
    for i, b in enumerate(sizes):
        d = s * beta2 / b
        q = 0.0 if math.isinf(p_perp) else b * ps.rank / p_perp

        def psi(w: float, d: FloatArray = d, q: float = q) -> float:
            return w + q * w * float(np.mean(d / (w - d))) if q else w

        def psi_slope(w: float, d: FloatArray = d, q: float = q) -> float:
            return 1.0 - q * float(np.mean(d**2 / (w - d) ** 2))

        def excess(w: float, d: FloatArray = d, b: float = float(b)) -> float:
            with np.errstate(divide="ignore", over="ignore"):
                inv = np.where(coupled, 1.0 / (w - d), 0.0)
            f = abar + np.einsum("j,jkl->kl", inv, outer) / b
            return psi(w) - float(np.linalg.eigvalsh(f)[-1])

        atoms_top = float(d.max()) if q else float(d[coupled].max(initial=-np.inf))
        scale = float(np.abs(abar).sum()) + float(np.abs(d).max()) + 1e-300
        lo = atoms_top if np.isfinite(atoms_top) else float(np.linalg.eigvalsh(abar)[-1]) - scale
        if q and psi_slope(lo + 1e-12 * scale) < 0:  # the branch ψ' > 0 starts at the critical point
            neg, pos = lo, lo + scale
            while psi_slope(pos) < 0:
                pos = lo + 2.0 * (pos - lo)
            for _ in range(_BISECTIONS):
                mid = 0.5 * (neg + pos)
                neg, pos = (mid, pos) if psi_slope(mid) < 0 else (neg, mid)
            lo = pos
        hi = lo + scale
        while excess(hi) < 0:
            hi = lo + 2.0 * (hi - lo)
        if excess(lo + 1e-12 * scale) >= 0:
            out[i] = np.nan  # no separated root: the spike is inside the complement's bulk
            continue
        neg, pos = lo, hi
        for _ in range(_BISECTIONS):
            mid = 0.5 * (neg + pos)
            neg, pos = (mid, pos) if excess(mid) < 0 else (neg, mid)
        out[i] = psi(0.5 * (neg + pos))
    return out


def large_batch_bulk_edge(model: SampleSpikeModel, batch_sizes: Any) -> FloatArray:
    """Top edge of the per-sample ("Wishart") part of M_B at large B (docs/theory.md §1e, §2; PSD scales).

    The complement part ``Σ_j d_j w_j w_jᵀ`` (``d = s β²/B``, w uniform unit vectors in P − k dimensions) is a
    sample-heteroscedastic sample covariance: its non-zero spectrum is that of ``D^{1/2} WᵀW D^{1/2}``, the
    sample covariance of P − k vectors in dimension m = B·C with population ``diag(d)``. Its limiting top
    edge is the Bai–Yao edge :func:`rmt.bulk.wishart_bulk_edges` with ``q = B·C/(P − k)`` and population the
    pool law of ``d``. For P ≫ B·C it tends to the largest atom (the regime of
    :func:`predict_batch_extremal`); the 1/√B Marchenko–Pastur widening ``≈ d(1 + √q)²`` matters once B·C
    is a fair fraction of P.
    Conditions: every scale ≥ 0; a pool law with a short right tail (the edge of a heavy-tailed pool is
    set by its largest atom, which a batch of B rarely contains; use the resampled prediction there).
    Returns the largest atom for P = ∞. Pools of more than 256 scales are discretised to 256
    mid-quantiles (relative change of the edge ≈ 1e-4 for a uniform law).
    """
    from rmt.bulk import wishart_bulk_edges

    if not isinstance(model, SampleSpikeModel):
        raise TypeError(f"model must be a SampleSpikeModel, got {type(model).__name__}")
    sizes = np.atleast_1d(check_batch_size(batch_sizes, name="batch_sizes")).reshape(-1)
    s, _, beta2 = _pool_terms(model)
    if (s < 0).any():
        raise ValueError("model must have scales >= 0 (a PSD per-sample part) for the Bai–Yao edge")
    x = s * beta2
    if not (x > 0).any():
        raise ValueError("model must have a positive per-sample scale off the shared directions")
    p_perp = model.n_params - model.n_spikes
    if x.size > _EDGE_ATOMS:  # the Bai–Yao edge solver is O(atoms²): use mid-quantiles of the pool law
        x = np.quantile(x, (np.arange(_EDGE_ATOMS) + 0.5) / _EDGE_ATOMS)
    out = np.empty(sizes.size)
    for i, b in enumerate(sizes):
        if math.isinf(p_perp):
            out[i] = float(x.max()) / b
        else:
            q = b * model.per_sample.rank / p_perp
            out[i] = float(wishart_bulk_edges(q, x / b)[-1])
    return out


# ------------------------------------------------------------------------------------------------------------
# Crossover batch size.


@refuse_non_finite(allow_inf=True)
def pareto_crossover_batch_size(lam: Any, x_min: Any, alpha: Any, level: Any = 0.5) -> float | FloatArray:
    """Closed-form crossover batch size for a Pareto law of per-sample tops (docs/theory.md §1e).

    With ``P(μ > x) = (x_min/x)^α`` the level-p quantile of ``max_{i≤B} μ_i`` is ``x_min (1 − p^{1/B})^{−1/α}
    ≈ x_min (B/ln(1/p))^{1/α}`` (B ≫ ln(1/p)); equating the sample-spike branch ``max_i μ_i / B`` with the
    shared spike λ gives (sympy: ``derivation("sample_spikes")["crossover_batch_size"]``)

        B_× = (x_min/λ)^{α/(α−1)} · ln(1/p)^{−1/(α−1)},   α > 1.

    For B ≪ B_× the top eigenvalue follows the extreme values (∝ B^{1/α − 1}); for B ≫ B_× the shared spike
    (λ + ν²/λ, :func:`large_batch_extremal`). α ≤ 1 (no finite mean): the branch never decays, ``inf``.
    The large-B form of the quantile makes B_× exact only for B_× ≫ 1 (error of the quantile O(ln(1/p)/B)).

    Args:
        lam: shared spike λ > 0; x_min: Pareto scale > 0; alpha: tail index > 0; level: p in (0, 1).
    """
    lam_ = check_positive(lam, "lam")
    xm = check_positive(x_min, "x_min")
    a = check_positive(alpha, "alpha")
    p = check_in_range(level, "level", 0.0, 1.0, low_open=True, high_open=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = np.where(a > 1, a, 2.0)
        val = (xm / lam_) ** (safe / (safe - 1.0)) * np.log(1.0 / p) ** (-1.0 / (safe - 1.0))
    return scalar_or_array(np.where(a > 1, val, np.inf))


def crossover_batch_size(model: SampleSpikeModel, level: Any = 0.5, *, max_batch: float = 1e9) -> float:
    """Crossover batch size B_× of a model from its pool of per-sample tops (docs/theory.md §1e).

    The real B solving ``Q_p(max_{i≤B} μ_i) / B = λ_1`` with ``Q_p(max of B) = F^{-1}(p^{1/B})`` (F the
    empirical law of the pool's per-sample tops μ_i = max_r s_ir, linear interpolation) and λ_1 the top
    eigenvalue of the full block :attr:`SampleSpikeModel.full_block`. 1.0 if the branch is below λ_1 already
    at B = 1; ``max_batch`` if it never falls below (a pool whose largest top exceeds λ_1·max_batch).
    For a Pareto pool it tends to :func:`pareto_crossover_batch_size`.
    """
    if not isinstance(model, SampleSpikeModel):
        raise TypeError(f"model must be a SampleSpikeModel, got {type(model).__name__}")
    p = float(check_in_range(_real_scalar(level, "level"), "level", 0.0, 1.0, low_open=True, high_open=True))
    top_b = float(check_positive(_real_scalar(max_batch, "max_batch"), "max_batch"))
    if model.n_spikes == 0:
        raise ValueError("model must have at least one shared direction (n_spikes >= 1)")
    lam1 = float(np.linalg.eigvalsh(model.full_block)[-1])
    if lam1 <= 0:
        raise ValueError(f"the top shared spike must be > 0, got {lam1:g}")
    tops = np.sort(model.per_sample.tops)

    def branch(b: float) -> float:
        return float(np.quantile(tops, p ** (1.0 / b))) / b - lam1

    if branch(1.0) <= 0:
        return 1.0
    if branch(top_b) > 0:
        return top_b
    lo, hi = 0.0, math.log(top_b)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if branch(math.exp(mid)) > 0 else (lo, mid)
    return math.exp(0.5 * (lo + hi))
