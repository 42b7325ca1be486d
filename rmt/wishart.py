"""Multiplicative (spiked Wishart) model of the batch GGN (docs/theory.md §2).

``G_B ≈ Σ^{1/2} W Σ^{1/2}`` with ``W = Z Zᵀ / n``, Z a P×n standard Gaussian matrix, ratio ``q = P/n`` and
population ``Σ = σ² I + Σ_i (λ_i − σ²) φ_i φ_iᵀ``. The white bulk becomes Marchenko–Pastur on
``[σ²(1 − √q)², σ²(1 + √q)²]``; a population spike ℓ > σ²(1 + √q) becomes the outlier
``ℓ (1 + q σ² / (ℓ − σ²))`` (Baik–Ben Arous–Péché, Baik–Silverstein, Paul 2007).

Every function is vectorised with numpy broadcasting and returns a Python float for scalar input. The closed
forms are derived in :mod:`rmt.symbolic` (``derivation("wishart")``) and checked against it in the tests.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rmt.checks import (
    FloatArray,
    _finite_or,
    check_batch_size,
    check_finite,
    check_positive,
    refuse_non_finite,
    scalar_or_array,
)

__all__ = [
    "batch_ggn_extremal",
    "marchenko_pastur_atom",
    "marchenko_pastur_density",
    "marchenko_pastur_edges",
    "wishart_outlier",
    "wishart_outlier_fluctuation_sd",
    "wishart_overlap",
]


def _edges(s2: FloatArray, q: FloatArray) -> tuple[FloatArray, FloatArray]:
    root = np.sqrt(q)
    return s2 * (1.0 - root) ** 2, s2 * (1.0 + root) ** 2


@refuse_non_finite()
def marchenko_pastur_edges(sigma2: ArrayLike, q: ArrayLike) -> tuple[float | FloatArray, float | FloatArray]:
    """Edges ``(σ²(1 − √q)², σ²(1 + √q)²)`` of the Marchenko–Pastur law of ratio ``q = P/n`` (docs/theory.md
    §2).

    For q > 1 the lower edge is that of the continuous part; the P×P matrix also has an atom at 0
    (:func:`marchenko_pastur_atom`).

    Args:
        sigma2: σ² > 0; q: ratio P/n > 0.
    """
    s2 = check_positive(sigma2, "sigma2")
    q_ = check_positive(q, "q")
    low, high = _edges(s2, q_)
    return scalar_or_array(low), scalar_or_array(high)


@refuse_non_finite()
def marchenko_pastur_atom(q: ArrayLike) -> float | FloatArray:
    """Mass ``max(1 − 1/q, 0)`` of the atom at 0 of the Marchenko–Pastur law of the P×P matrix (rank ≤ n).

    Args:
        q: ratio P/n > 0.
    """
    q_ = check_positive(q, "q")
    return scalar_or_array(np.maximum(1.0 - 1.0 / q_, 0.0))


@refuse_non_finite()
def marchenko_pastur_density(x: ArrayLike, sigma2: ArrayLike, q: ArrayLike) -> float | FloatArray:
    """Absolutely continuous part of the Marchenko–Pastur law of ``σ² Z Zᵀ/n``, ``q = P/n`` (docs/theory.md
    §2).

    ``sqrt((b − x)(x − a)) / (2π σ² q x)`` on ``[a, b] = marchenko_pastur_edges(σ², q)``, 0 outside.
    It integrates to ``min(1, 1/q)``: for q > 1 the remaining mass ``1 − 1/q`` is the atom at x = 0
    (:func:`marchenko_pastur_atom`), which a density cannot represent. Density + atom integrate to 1.

    Args:
        x: evaluation points; sigma2: σ² > 0; q: P/n > 0.
    """
    xs = check_finite(x, "x")
    s2 = check_positive(sigma2, "sigma2")
    q_ = check_positive(q, "q")
    low, high = _edges(s2, q_)
    inside = (xs > low) & (xs < high)
    safe_x = np.where(inside, xs, 1.0)
    usual = np.sqrt(np.maximum((high - xs) * (xs - low), 0.0)) / (2.0 * np.pi * s2 * q_ * safe_x)
    lo1, hi1 = _edges(np.ones_like(s2), q_)  # fallback in units of σ² (u = x/σ²): no product overflows
    u = xs / s2
    safe_u = np.where(inside, u, 1.0)
    scale_free = np.sqrt(np.maximum((hi1 - u) * (u - lo1), 0.0)) / (2.0 * np.pi * q_ * safe_u) / s2
    return scalar_or_array(np.where(inside, _finite_or(usual, scale_free), 0.0))


def _threshold(s2: FloatArray, q: FloatArray) -> FloatArray:
    return s2 * (1.0 + np.sqrt(q))


def _outlier(ell: FloatArray, s2: FloatArray, q: FloatArray) -> FloatArray:
    above = ell > _threshold(s2, q)
    gap = np.where(above, ell - s2, 1.0)
    return np.where(above, ell * (1.0 + q * s2 / gap), _edges(s2, q)[1])


@refuse_non_finite()
def wishart_outlier(ell: ArrayLike, sigma2: ArrayLike, q: ArrayLike) -> float | FloatArray:
    """Top sample eigenvalue for a population spike ℓ over a white bulk σ² (Baik–Silverstein; docs/theory.md
    §2).

    ``ℓ (1 + q σ² / (ℓ − σ²))`` when ``ℓ > σ²(1 + √q)`` (≈ ℓ + qσ² for ℓ ≫ σ²), otherwise the Marchenko–Pastur
    edge ``σ²(1 + √q)²``. C¹ in ℓ and in q at the threshold.

    Args:
        ell: population eigenvalue ℓ >= 0; sigma2: bulk variance σ² > 0; q: P/n > 0.
    """
    ell_ = check_positive(ell, "ell", allow_zero=True)
    s2 = check_positive(sigma2, "sigma2")
    q_ = check_positive(q, "q")
    return scalar_or_array(_outlier(ell_, s2, q_))


@refuse_non_finite()
def wishart_overlap(ell: ArrayLike, sigma2: ArrayLike, q: ArrayLike) -> float | FloatArray:
    """Squared overlap of the outlier eigenvector with the population spike (Paul 2007; docs/theory.md §2).

    ``(1 − q σ⁴/(ℓ − σ²)²) / (1 + q σ²/(ℓ − σ²))`` above the threshold ``ℓ > σ²(1 + √q)``, 0 below.
    Equals ``ℓ ψ'(ℓ)/ψ(ℓ)`` with ψ the Bai–Yao map for H = δ_{σ²}.

    Args:
        ell: ℓ >= 0; sigma2: σ² > 0; q: P/n > 0.
    """
    ell_ = check_positive(ell, "ell", allow_zero=True)
    s2 = check_positive(sigma2, "sigma2")
    q_ = check_positive(q, "q")
    above = ell_ > _threshold(s2, q_)
    gap = np.where(above, ell_ - s2, 1.0)
    value = _finite_or(
        (1.0 - q_ * s2**2 / gap**2) / (1.0 + q_ * s2 / gap),
        (1.0 - q_ * (s2 / gap) ** 2) / (1.0 + q_ * (s2 / gap)),
    )
    return scalar_or_array(np.where(above, value, 0.0))


@refuse_non_finite()
def wishart_outlier_fluctuation_sd(
    ell: ArrayLike, sigma2: ArrayLike, q: ArrayLike, n_samples: ArrayLike
) -> float | FloatArray:
    """Standard deviation of the Wishart outlier (Paul 2007, Gaussian data; docs/reference-values.md row 8).

    ``sqrt(2 ℓ² (1 − q σ⁴/(ℓ − σ²)²) / n)`` above the threshold ``ℓ > σ²(1 + √q)``; 0 below (Tracy–Widom
    scale there).

    Args:
        ell: ℓ >= 0; sigma2: σ² > 0; q: P/n > 0; n_samples: n > 0.
    """
    ell_ = check_positive(ell, "ell", allow_zero=True)
    s2 = check_positive(sigma2, "sigma2")
    q_ = check_positive(q, "q")
    n = check_positive(n_samples, "n_samples")
    above = ell_ > _threshold(s2, q_)
    gap = np.where(above, ell_ - s2, 1.0)
    var = np.where(above, 2.0 * ell_**2 * (1.0 - q_ * s2**2 / gap**2), 0.0) / n
    rel = np.sqrt(np.maximum(2.0 * (1.0 - q_ * (s2 / gap) ** 2), 0.0))
    return scalar_or_array(_finite_or(np.sqrt(var), np.where(above, rel * ell_, 0.0) / np.sqrt(n)))


@refuse_non_finite()
def batch_ggn_extremal(
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    batch_size: ArrayLike,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Predicted top batch-GGN eigenvalue ``wishart_outlier(λ, σ², q)`` with ``q = P / (B C)``
    (docs/theory.md §2).

    The effective number of samples is ``n = B·C`` (C outputs per sample); for P ≫ n the prediction is
    ≈ λ + qσ² ∝ 1/B (genuinely linear SGD learning-rate scaling). No finite-N correction (open in
    docs/theory.md §2).

    Args:
        lam: population spike λ >= 0; sigma2: σ² > 0; n_params: P > 0; batch_size: B >= 1;
        outputs_per_sample: C > 0.
    """
    lam_ = check_positive(lam, "lam", allow_zero=True)
    s2 = check_positive(sigma2, "sigma2")
    p = check_positive(n_params, "n_params")
    batch = check_batch_size(batch_size)
    c = check_positive(outputs_per_sample, "outputs_per_sample")
    return scalar_or_array(_outlier(lam_, s2, p / (batch * c)))
