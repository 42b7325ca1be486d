"""Exact sampler of the sample-spike model of docs/theory.md §1e (:class:`rmt.sample_spikes
.SampleSpikeModel`).

``M_B = U A Uᵀ + (1/B) Σ_{i∈S} Σ_r s_ir v_ir v_irᵀ`` with ``v = U c + β w`` and the w's independent and
uniform on the unit sphere of the (P − k)-dimensional complement of span(U). Write ``Φ = [U, v_1 … v_m]``
(P × (k+m), m = B·C non-zero terms) and ``D = diag(A, t)``; then ``M_B = Φ D Φᵀ`` and its non-zero
spectrum is that of the (k+m)×(k+m) matrix ``Lᵀ D L`` for any factor ``ΦᵀΦ = L Lᵀ`` (AB and BA share
non-zero eigenvalues); the other P − k − m eigenvalues are 0. With ``Ω = WᵀW = Lω Lωᵀ`` the Gram matrix
of the w's,

    L = [[I_k, 0], [Cᵀ, diag(β) Lω]],   Lᵀ D L = [[A + C T Cᵀ, C T diag(β) Lω], [Lωᵀ diag(β) T Cᵀ,
                                                   Lωᵀ diag(β² t) Lω]],

so only Lω is random. ``method="gram"`` samples it exactly without any P-dimensional vector (Bartlett: the
Gram matrix of m standard Gaussian vectors in R^{P−k} is ``L Lᵀ`` with L lower triangular, ``L_ii² ~
χ²_{P−k−i+1}``, ``L_ij ~ N(0, 1)``; normalising the vectors divides row j of L by its norm), O(m³) per batch
whatever P, P = ∞ giving Lω = I. ``method="vectors"`` draws the P-dimensional vectors and uses a thin QR of Φ
(``M = Q (R D Rᵀ) Qᵀ``), O(P m²): an independent check of the algebra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rmt.checks import FloatArray, check_choice, check_int, check_size
from rmt.sample_spikes import SampleSpikeModel, draw_batches
from rmt.sampling import SeedLike, as_generator

__all__ = ["SampledExtremal", "batch_matrix", "sample_batch_extremal"]

_DENSE_LIMIT = 4000
_VECTOR_LIMIT = 20_000


@dataclass(frozen=True)
class SampledExtremal:
    """Top and bottom eigenvalue of M_B for each sampled batch, and the pool rows of each batch."""

    top: FloatArray
    bottom: FloatArray
    rows: NDArray[np.intp]


def _terms(model: SampleSpikeModel, rows: NDArray[np.intp]) -> tuple[FloatArray, FloatArray, FloatArray]:
    ps = model.per_sample
    b = rows.size
    t = ps.scales[rows].reshape(-1) / b
    c = ps.overlaps[rows].reshape(t.size, ps.n_spikes)
    keep = t != 0
    t, c = t[keep], c[keep]
    beta = np.sqrt(np.clip(1.0 - (c**2).sum(axis=1), 0.0, 1.0))
    return t, c, beta


def _normalised_bartlett(m: int, dof: float, rng: np.random.Generator) -> FloatArray:
    """Lower-triangular Lω with ``Lω Lωᵀ`` = Gram matrix of m independent uniform unit vectors in R^dof."""
    low = np.tril(rng.standard_normal((m, m)), -1)
    low[np.diag_indices(m)] = np.sqrt(rng.chisquare(dof - np.arange(m, dtype=np.float64)))
    return low / np.linalg.norm(low, axis=1, keepdims=True)


def _small_matrix(a: FloatArray, t: FloatArray, c: FloatArray, beta: FloatArray, l_omega: Any) -> FloatArray:
    k, m = a.shape[0], t.size
    out = np.empty((k + m, k + m))
    bl = beta[:, None] * l_omega if l_omega is not None else np.diag(beta)
    out[:k, :k] = a + (c.T * t) @ c
    cross = (c.T * t) @ bl
    out[:k, k:] = cross
    out[k:, :k] = cross.T
    out[k:, k:] = (bl.T * t) @ bl
    return out


def _explicit_vectors(
    model: SampleSpikeModel, c: FloatArray, beta: FloatArray, rng: np.random.Generator
) -> FloatArray:
    """Φ = [U, v_1 … v_m] with U the first k coordinate vectors (P × (k + m))."""
    p = int(model.n_params)
    k, m = model.n_spikes, beta.size
    g = rng.standard_normal((p - k, m))
    g /= np.linalg.norm(g, axis=0, keepdims=True)
    phi = np.zeros((p, k + m))
    phi[:k, :k] = np.eye(k)
    phi[:k, k:] = c.T
    phi[k:, k:] = g * beta
    return phi


def sample_batch_extremal(
    model: SampleSpikeModel,
    batch_size: int,
    n_reps: int,
    seed: SeedLike = None,
    *,
    replace: bool = True,
    method: str = "gram",
    rows: Any = None,
) -> SampledExtremal:
    """Exact draws of (λ_max, λ_min) of M_B under the generative model (docs/theory.md §1e).

    Each replicate draws B pool rows (:func:`rmt.sample_spikes.draw_batches`; or uses ``rows``, shape
    (n_reps, B)) and fresh random directions, then takes the eigenvalues of the (k + m)-dimensional reduction
    (module docstring), adding the zero eigenvalues when P > k + m. ``method``: ``"gram"`` (Bartlett, any
    P, needs m <= P − k) or ``"vectors"`` (explicit vectors, P <= 20000).

    Example:
        >>> from rmt.sample_spikes import PerSampleCurvature, SampleSpikeModel
        >>> pool = PerSampleCurvature.parametric(500, shape=2.5, overlap2_mean=0.1, seed=1)
        >>> model = SampleSpikeModel.from_full_spikes([2.0], pool, n_params=10_000)
        >>> res = sample_batch_extremal(model, 8, 50, seed=0)
    """
    if not isinstance(model, SampleSpikeModel):
        raise TypeError(f"model must be a SampleSpikeModel, got {type(model).__name__}")
    b = check_int(batch_size, "batch_size", minimum=1)
    reps = check_int(n_reps, "n_reps", minimum=1)
    how = check_choice(method, "method", ("gram", "vectors"))
    rng = as_generator(seed)
    p = model.n_params
    k = model.n_spikes
    m_max = b * model.per_sample.rank
    if how == "vectors" and (math.isinf(p) or p > _VECTOR_LIMIT):
        raise ValueError(f"n_params must be finite and <= {_VECTOR_LIMIT} for method='vectors', got {p:g}")
    if not math.isinf(p) and m_max > p - k:
        raise ValueError(
            f"batch_size·rank = {m_max} must be <= n_params − n_spikes = {p - k:g} (the directions span at "
            "most P − k dimensions)"
        )
    if not isinstance(replace, (bool, np.bool_)):
        raise TypeError(f"replace must be a bool, got {type(replace).__name__}")
    check_size(reps * b, "n_reps*batch_size", copies=2)
    check_size((k + m_max) ** 2, "batch_size", copies=3)  # the (k + m)² reduced matrix of one batch
    if how == "vectors":
        check_size(int(p) * (k + m_max), "batch_size", copies=3)
    if rows is None:
        idx = draw_batches(model.per_sample.n_samples, b, reps, rng, replace=replace)
    else:
        try:
            idx = np.asarray(rows)
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(f"rows must be an integer array of shape (n_reps, batch_size): {exc}") from None
        if idx.shape != (reps, b) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"rows must be an integer array of shape (n_reps, batch_size) = ({reps}, {b})")
        if idx.min() < 0 or idx.max() >= model.per_sample.n_samples:
            raise ValueError(f"rows must index the pool: 0 <= row < {model.per_sample.n_samples}")
    top, bottom = np.empty(reps), np.empty(reps)
    for i in range(reps):
        t, c, beta = _terms(model, idx[i])
        m = t.size
        if how == "gram":
            l_omega = None if math.isinf(p) else _normalised_bartlett(m, p - k, rng)
            vals = np.linalg.eigvalsh(_small_matrix(model.shared, t, c, beta, l_omega))
        else:
            phi = _explicit_vectors(model, c, beta, rng)
            r = np.asarray(np.linalg.qr(phi, mode="r"))
            dmat = np.zeros((k + m, k + m))
            dmat[:k, :k] = model.shared
            dmat[k:, k:] = np.diag(t)
            vals = np.linalg.eigvalsh(r @ dmat @ r.T)
        has_zero = math.isinf(p) or p > k + m
        if vals.size == 0:  # no shared direction and every scale of the batch 0: M_B = 0
            vals = np.zeros(1)
        top[i] = max(vals[-1], 0.0) if has_zero else vals[-1]
        bottom[i] = min(vals[0], 0.0) if has_zero else vals[0]
    return SampledExtremal(top, bottom, idx)


def batch_matrix(model: SampleSpikeModel, rows: Any, seed: SeedLike = None) -> FloatArray:
    """The dense P×P matrix M_B of one batch (``rows``: B pool indices), for checks at small P (<= 4000).

    Uses the same vector construction as ``method="vectors"`` (U = first k coordinate vectors).
    """
    if not isinstance(model, SampleSpikeModel):
        raise TypeError(f"model must be a SampleSpikeModel, got {type(model).__name__}")
    p = model.n_params
    if math.isinf(p) or p > _DENSE_LIMIT:
        raise ValueError(f"n_params must be finite and <= {_DENSE_LIMIT} for a dense matrix, got {p:g}")
    try:
        idx = np.asarray(rows).reshape(-1)
    except ValueError as exc:  # ragged nested sequences
        raise TypeError(f"rows must be an integer array of pool indices: {exc}") from None
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError("rows must be a non-empty integer array of pool indices")
    if idx.min() < 0 or idx.max() >= model.per_sample.n_samples:
        raise ValueError(f"rows must index the pool: 0 <= row < {model.per_sample.n_samples}")
    t, c, beta = _terms(model, idx)
    k = model.n_spikes
    phi = _explicit_vectors(model, c, beta, as_generator(seed))
    dvec = np.concatenate([np.zeros(k), t])
    out = (phi[:, k:] * dvec[k:]) @ phi[:, k:].T
    out[:k, :k] += model.shared
    return out
