"""Additive (Wigner) model of the batch Hessian: ``H_B = H + E`` with homogeneous noise (docs/theory.md §1a,
§1d).

The noise E is a Wigner matrix whose entries have variance ``σ² κ(B)``; its spectrum is the semicircle on
``[−2ν, 2ν]`` with ``ν(B)² = P σ² κ(B)``. A spike λ of H (bulk at 0) becomes the outlier ``λ + ν²/λ`` when
``|λ| > ν`` (BBP threshold) and otherwise sticks to the edge ``±2ν``.

Every function is vectorised with numpy broadcasting and returns a Python float for scalar input.
The closed forms are derived in :mod:`rmt.symbolic` (``derivation("wigner")``,
``derivation("critical_batch_size")``) and ``tests/rmt/test_symbolic.py`` checks these numpy versions
against the sympy expressions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rmt.checks import (
    FloatArray,
    _finite_or,
    check_batch_size,
    check_finite,
    check_n_data,
    check_positive,
    refuse_non_finite,
    scalar_or_array,
)

__all__ = [
    "batch_hessian_extremal",
    "critical_batch_size",
    "kappa",
    "noise_scale",
    "outlier_fluctuation_sd",
    "semicircle_density",
    "semicircle_edge",
    "wigner_outlier",
    "wigner_overlap",
]


def _n_data_array(n_data: Any) -> FloatArray:
    """N as a float64 array (``None`` → ``inf``), validated (N >= 2)."""
    if n_data is None:
        return np.asarray(np.inf)
    return check_n_data(n_data)


def _kappa(batch: FloatArray, n: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        finite = (n - batch) / (batch * (n - 1.0))
    return np.where(np.isinf(n), 1.0 / batch, finite)


@refuse_non_finite()
def kappa(batch_size: ArrayLike, n_data: ArrayLike | None = None) -> float | FloatArray:
    """Variance factor of a batch mean drawn without replacement (docs/theory.md §1).

    ``κ(B) = (N − B) / (B (N − 1))`` for a batch of B distinct samples out of N, and ``κ(B) = 1/B`` when
    ``n_data`` is None or ``inf`` (infinite pool). κ(N) = 0: the full batch has no noise.

    Args:
        batch_size: B, ``1 <= B`` (and ``B <= N`` for finite N).
        n_data: N >= 2, ``None`` or ``inf``.
    """
    n = _n_data_array(n_data)
    batch = check_batch_size(batch_size, None if n_data is None else n)
    return scalar_or_array(_kappa(batch, n))


@refuse_non_finite()
def noise_scale(
    sigma2: ArrayLike, n_params: ArrayLike, batch_size: ArrayLike, n_data: ArrayLike | None = None
) -> float | FloatArray:
    """Noise scale ``ν(B) = sqrt(P σ² κ(B))`` of the batch-Hessian noise E (docs/theory.md §1a).

    The spectrum of E is the semicircle on ``[−2ν, 2ν]``.

    Args:
        sigma2: per-entry per-sample variance σ² >= 0.
        n_params: P > 0.
        batch_size: B in [1, N].
        n_data: N >= 2, ``None`` or ``inf``.
    """
    s2 = check_positive(sigma2, "sigma2", allow_zero=True)
    p = check_positive(n_params, "n_params")
    n = _n_data_array(n_data)
    batch = check_batch_size(batch_size, None if n_data is None else n)
    return scalar_or_array(np.sqrt(p * s2 * _kappa(batch, n)))


def _outlier(theta: FloatArray, nu: FloatArray) -> FloatArray:
    above = np.abs(theta) > nu
    safe = np.where(above, theta, 1.0)
    edge = np.where(theta < 0, -2.0 * nu, 2.0 * nu)
    value = _finite_or(safe + nu**2 / safe, safe + nu * (nu / safe))
    return np.where(above, value, edge)


@refuse_non_finite()
def wigner_outlier(theta: ArrayLike, nu: ArrayLike) -> float | FloatArray:
    """Extremal eigenvalue of ``θ u uᵀ + E`` for a semicircle noise E of scale ν (docs/theory.md §1a, BBP).

    ``θ + ν²/θ`` when ``|θ| > ν``; otherwise the bulk edge ``2ν sign(θ)`` (``+2ν`` for θ = 0). The map is C¹
    in θ at the threshold ``|θ| = ν`` (both branches equal ``±2ν`` with slope 0).

    Args:
        theta: spike θ (any real; negative spikes give the bottom outlier).
        nu: noise scale ν >= 0.
    """
    th = check_finite(theta, "theta")
    nu_ = check_positive(nu, "nu", allow_zero=True)
    return scalar_or_array(_outlier(th, nu_))


@refuse_non_finite()
def wigner_overlap(theta: ArrayLike, nu: ArrayLike) -> float | FloatArray:
    """Squared overlap ``|⟨u', u⟩|² = max(1 − ν²/θ², 0)`` of outlier eigenvector and spike (docs/theory.md
    §1a).

    Args:
        theta: spike θ (any real).
        nu: noise scale ν >= 0.
    """
    th = check_finite(theta, "theta")
    nu_ = check_positive(nu, "nu", allow_zero=True)
    above = np.abs(th) > nu_
    safe = np.where(above, th, 1.0)
    value = _finite_or(1.0 - nu_**2 / safe**2, 1.0 - (nu_ / safe) ** 2)  # θ² may underflow
    return scalar_or_array(np.where(above, value, 0.0))


@refuse_non_finite()
def outlier_fluctuation_sd(theta: ArrayLike, nu: ArrayLike, n_params: ArrayLike) -> float | FloatArray:
    """Standard deviation of the outlier for real symmetric Gaussian (GOE) noise (docs/theory.md §1d).

    ``sqrt(2 ν² (1 − ν²/θ²) / P)`` above the threshold ``|θ| > ν``; 0 below it (there the edge fluctuates on
    the Tracy–Widom scale ``O(P^{-2/3})``, not covered by this formula). Valid for Gaussian entries only.

    Args:
        theta: spike θ; nu: ν >= 0; n_params: P > 0.
    """
    th = check_finite(theta, "theta")
    nu_ = check_positive(nu, "nu", allow_zero=True)
    p = check_positive(n_params, "n_params")
    above = np.abs(th) > nu_
    safe = np.where(above, th, 1.0)
    var = np.where(above, 2.0 * nu_**2 * (1.0 - nu_**2 / safe**2), 0.0) / p
    scale_free = np.where(above, np.sqrt(2.0 * (1.0 - (nu_ / safe) ** 2)) * nu_, 0.0) / np.sqrt(p)
    return scalar_or_array(_finite_or(np.sqrt(var), scale_free))


@refuse_non_finite()
def semicircle_density(x: ArrayLike, nu: ArrayLike) -> float | FloatArray:
    """Wigner semicircle density ``sqrt(4ν² − x²) / (2π ν²)`` on ``[−2ν, 2ν]`` (0 outside) (docs/theory.md
    §1a).

    Args:
        x: evaluation points (real).
        nu: ν > 0.
    """
    xs = check_finite(x, "x")
    nu_ = check_positive(nu, "nu")
    usual = np.sqrt(np.maximum(4.0 * nu_**2 - xs**2, 0.0)) / (2.0 * np.pi * nu_**2)
    r = xs / nu_  # scale free: ρ(x) = sqrt(4 − (x/ν)²) / (2π ν)
    return scalar_or_array(_finite_or(usual, np.sqrt(np.maximum(4.0 - r**2, 0.0)) / (2.0 * np.pi * nu_)))


@refuse_non_finite()
def semicircle_edge(nu: ArrayLike) -> float | FloatArray:
    """Upper edge ``2ν`` of the semicircle of scale ν >= 0 (the lower edge is ``−2ν``) (docs/theory.md
    §1a)."""
    return scalar_or_array(2.0 * check_positive(nu, "nu", allow_zero=True))


@refuse_non_finite()
def batch_hessian_extremal(
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    batch_size: ArrayLike,
    n_data: ArrayLike | None = None,
) -> float | FloatArray:
    """Predicted extremal batch-Hessian eigenvalue ``wigner_outlier(λ, ν(B))`` (docs/theory.md §1a).

    ``λ + ν²/λ`` with ``ν² = P σ² κ(B)`` when ``|λ| > ν``, else ``±2ν``. At B = N (κ = 0) it returns λ.

    Args:
        lam: eigenvalue λ of the full-data Hessian (a spike; the bulk is taken at 0).
        sigma2: σ² >= 0; n_params: P > 0; batch_size: B in [1, N]; n_data: N, ``None`` or ``inf``.
    """
    lam_ = check_finite(lam, "lam")
    nu = np.asarray(noise_scale(sigma2, n_params, batch_size, n_data))
    return scalar_or_array(_outlier(lam_, nu))


@refuse_non_finite(allow_inf=True)
def critical_batch_size(
    lam: ArrayLike, sigma2: ArrayLike, n_params: ArrayLike, n_data: ArrayLike | None = None
) -> float | FloatArray:
    """Batch size B* at which the spike λ separates from the noise bulk: ``ν(B*) = |λ|`` (docs/theory.md §1a).

    ``B* = P σ² / λ²`` for N = ∞, and ``B* = N / (1 + c (N − 1))`` with ``c = λ² / (P σ²)`` for finite N
    (solution of ``P σ² (N − B) / (B (N − 1)) = λ²``). For B > B* the top eigenvalue is the outlier, for
    B < B* it sits at the edge 2ν(B). ``B* < 1`` means the spike is separated at every batch size; λ = 0 gives
    ``inf`` (N = ∞) or N.

    Args:
        lam: spike λ (real); sigma2: σ² > 0; n_params: P > 0; n_data: N >= 2, ``None`` or ``inf``.
    """
    lam_ = check_finite(lam, "lam")
    s2 = check_positive(sigma2, "sigma2")
    p = check_positive(n_params, "n_params")
    n = _n_data_array(n_data)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = lam_**2 / (p * s2)
        infinite = 1.0 / c
        finite = n / (1.0 + c * (n - 1.0))
    return scalar_or_array(np.where(np.isinf(n), infinite, finite))
