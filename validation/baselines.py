"""Baselines for the maximal learning rate η_max(B) that the random-matrix predictions are compared with
(docs/validation.md §4); numpy only.

* :func:`constant_baseline` — scale/λ_1 (full-batch stability) at every B;
* :func:`linear_rule_baseline`, :func:`sqrt_rule_baseline` — linear / square-root scaling from a reference
  batch;
* :func:`mccandlish_baseline` — (c/λ_1)/(1 + B_noise/B) with c from :func:`fit_mccandlish_constant` on
  another checkpoint;
* :func:`batch_sharpness_baseline` — scale / batch sharpness per cell.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from rmt.learning_rates import mccandlish_max_lr
from validation.stats import FloatArray, positive_vector

__all__ = [
    "batch_sharpness_baseline",
    "constant_baseline",
    "fit_mccandlish_constant",
    "linear_rule_baseline",
    "mccandlish_baseline",
    "sqrt_rule_baseline",
]


def constant_baseline(batch_sizes: ArrayLike, lambda_1: float, scale: float = 2.0) -> FloatArray:
    """η = scale/λ_1(H) at every B (full-batch stability; scale 2 for SGD, 2(1+β) for heavy ball)."""
    b = positive_vector(batch_sizes, "batch_sizes")
    if not (math.isfinite(lambda_1) and lambda_1 > 0):
        raise ValueError(f"lambda_1 must be finite and > 0, got {lambda_1}")
    return np.full(b.shape, scale / lambda_1)


def _rule_from_smallest(batch_sizes: ArrayLike, eta_ref: float, b_ref: float, power: float) -> FloatArray:
    b = positive_vector(batch_sizes, "batch_sizes")
    if not (math.isfinite(eta_ref) and eta_ref > 0 and math.isfinite(b_ref) and b_ref > 0):
        raise ValueError(f"eta_ref and b_ref must be finite and > 0, got {eta_ref}, {b_ref}")
    return np.asarray(eta_ref * (b / b_ref) ** power)


def linear_rule_baseline(batch_sizes: ArrayLike, eta_ref: float, b_ref: float) -> FloatArray:
    """Linear scaling from the smallest batch: η(B) = η(B_ref)·B/B_ref."""
    return _rule_from_smallest(batch_sizes, eta_ref, b_ref, 1.0)


def sqrt_rule_baseline(batch_sizes: ArrayLike, eta_ref: float, b_ref: float) -> FloatArray:
    """Square-root scaling from the smallest batch: η(B) = η(B_ref)·√(B/B_ref)."""
    return _rule_from_smallest(batch_sizes, eta_ref, b_ref, 0.5)


def mccandlish_baseline(
    batch_sizes: ArrayLike, lambda_1: float, b_noise: float, constant: float
) -> FloatArray:
    """McCandlish et al.'s form η = (c/λ_1) / (1 + B_noise/B) (``rmt.learning_rates.mccandlish_max_lr``)
    with the constant c fitted on another checkpoint (:func:`fit_mccandlish_constant`)."""
    b = positive_vector(batch_sizes, "batch_sizes")
    if not (math.isfinite(lambda_1) and lambda_1 > 0 and math.isfinite(constant) and constant > 0):
        raise ValueError(f"lambda_1 and constant must be finite and > 0, got {lambda_1}, {constant}")
    return np.asarray(mccandlish_max_lr(b, constant / lambda_1, b_noise), dtype=np.float64)


def fit_mccandlish_constant(batch_sizes: ArrayLike, lrs: ArrayLike, lambda_1: float, b_noise: float) -> float:
    """The c minimising Σ (log η − log[(c/λ_1)/(1 + B_noise/B)])²: the geometric mean of
    η·λ_1·(1 + B_noise/B) (closed form of the log-space least squares)."""
    b = positive_vector(batch_sizes, "batch_sizes")
    eta = positive_vector(lrs, "lrs")
    if eta.shape != b.shape:
        raise ValueError(f"lrs must have the shape of batch_sizes {b.shape}, got {eta.shape}")
    unit = mccandlish_baseline(b, lambda_1, b_noise, 1.0)
    return float(np.exp(np.mean(np.log(eta / unit))))


def batch_sharpness_baseline(batch_sharpness: ArrayLike, scale: float = 2.0) -> FloatArray:
    """η = scale / (batch sharpness E[g_Bᵀ H_B g_B / ‖g_B‖²]) per cell."""
    s = positive_vector(batch_sharpness, "batch_sharpness")
    return np.asarray(scale / s)
