"""Sample-side spikes: a batch curvature matrix built from B low-rank, heavy-tailed per-sample terms plus the
shared spikes of the full matrix, in the small-B (extreme-value), crossover and large-B regimes
(docs/theory.md §1e; the large-B limits reuse §1a, §2 and rmt.bulk).

Generative model [model]. Shared orthonormal directions ``U = [u_1 … u_k]`` (the top eigenvectors of the full
matrix), a symmetric k×k shared block ``A``, and per-sample terms of rank ≤ C

    G_i = Σ_{r≤C} s_ir v_ir v_irᵀ,   v_ir = U c_ir + β_ir w_ir,   β_ir = √(1 − |c_ir|²),

with scales ``s_ir`` (any sign: negative ones model the indefinite residual of a Hessian), overlaps
``c_ir ∈ R^k`` with the shared directions, and ``w_ir`` independent and uniform on the unit sphere of the
``P − k`` dimensional complement of span(U). The rows ``(s_i, c_i)`` are drawn from a pool of per-sample
statistics (measured or parametric, :class:`PerSampleCurvature`). The batch matrix of B samples is

    M_B = U A Uᵀ + (1/B) Σ_{i∈S} G_i,         E[M_B] = U (A + E_i[Σ_r s_ir c_ir c_irᵀ]) Uᵀ + O(1/P) bulk,

so :meth:`SampleSpikeModel.from_full_spikes` chooses ``A = diag(λ) − E_i[Σ_r s c cᵀ]`` to make the full matrix
have the spikes λ_k (``u_kᵀ G_i u_k = Σ_r s_ir c_irk²`` is the per-sample Rayleigh quotient).

Exact reduction (docs/theory.md §1e). With ``t_j = s_j/B`` over the ``m = B·C`` terms j of the batch,
``d_j = t_j β_j²`` and ``b_j = t_j β_j c_j ∈ R^k``: for orthonormal w (the limit P → ∞ at fixed m) M_B has,
in the orthonormal basis (U, w_1 … w_m), the bordered-diagonal form ``[[A + Σ_j t_j c_j c_jᵀ, (b_j)], [(b_jᵀ),
diag(d)]]`` and, by the Schur complement, its eigenvalues z ∉ {d_j} solve the secular equation

    det( z I_k − A − Σ_j t_j c_j c_jᵀ − Σ_j b_j b_jᵀ / (z − d_j) ) = 0
      ⇔  det( z I_k − A − Σ_j t_j z c_j c_jᵀ / (z − d_j) ) = 0.

The top eigenvalue is the unique root of ``z = λ_max(F(z))`` above ``max_j d_j`` (F decreases in the Löwner
order there), else ``max_j d_j``; the rest of the P-dimensional spectrum is 0. :func:`orthogonal_extremal`
solves it by vectorised bisection, O(m k²) per batch. Finite P: the Gram matrix of the w's is a normalised
Wishart matrix, sampled exactly by :mod:`rmt.sample_spikes_sampling`.

The public entry point: every public name is importable from here. The code lives in
:mod:`rmt.sample_spikes_model` (the pool, the model, batch draws), :mod:`rmt.sample_spikes_predict` (the
secular equation, brackets and predictions over resampled batches) and :mod:`rmt.sample_spikes_large_batch`
(large-B equivalents and the crossover batch size).
"""

from __future__ import annotations

from rmt.sample_spikes_large_batch import (
    crossover_batch_size,
    large_batch_bulk_edge,
    large_batch_extremal,
    pareto_crossover_batch_size,
)
from rmt.sample_spikes_model import PerSampleCurvature, SampleSpikeModel, draw_batches, effective_dimension
from rmt.sample_spikes_predict import (
    BatchPrediction,
    batch_brackets,
    orthogonal_extremal,
    predict_batch_extremal,
    subordinated_extremal,
)

__all__ = [
    "BatchPrediction",
    "PerSampleCurvature",
    "SampleSpikeModel",
    "batch_brackets",
    "crossover_batch_size",
    "draw_batches",
    "effective_dimension",
    "large_batch_bulk_edge",
    "large_batch_extremal",
    "orthogonal_extremal",
    "pareto_crossover_batch_size",
    "predict_batch_extremal",
    "subordinated_extremal",
]
