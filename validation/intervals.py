"""Student-t confidence interval of a mean over a few independent runs (seeds).

With 3–5 seeds a percentile bootstrap of the mean (:func:`validation.stats.bootstrap_ci`) is far too narrow
(3 values have only 10 distinct resamples); the t interval is exact for normal seed-to-seed scatter and
honest about the few degrees of freedom. Paired comparisons (arm − baseline on the same seeds) use it on the
per-seed differences.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import t as student_t

from validation.stats import ConfidenceInterval, _check_confidence

__all__ = ["student_t_interval"]


def student_t_interval(values: ArrayLike, confidence: float = 0.95) -> ConfidenceInterval:
    """Student-t interval of the mean: ``x̄ ± t_{(1+c)/2, n−1} · s / √n`` with ``s`` the sample standard
    deviation (ddof 1) and c = ``confidence``.

    Args:
        values: a 1-D array of finite observations (n ≥ 0).
        confidence: the coverage c, in (0, 1).

    Returns:
        ``ConfidenceInterval(x̄, low, high, confidence)``; for n < 2 the bounds are NaN (no scatter to
        estimate) and the estimate is the single value (NaN for n = 0).

    Raises:
        ValueError: ``values`` is not 1-D or holds a non-finite number; ``confidence`` outside (0, 1).
    """
    confidence = _check_confidence(confidence)
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values must be finite everywhere (drop NaN / inf observations first)")
    if arr.size < 2:
        estimate = float(arr[0]) if arr.size else math.nan
        return ConfidenceInterval(estimate, math.nan, math.nan, confidence)
    mean = float(np.mean(arr))
    quantile = float(student_t.ppf(0.5 + confidence / 2, arr.size - 1))
    half = quantile * float(np.std(arr, ddof=1)) / math.sqrt(arr.size)
    return ConfidenceInterval(mean, mean - half, mean + half, confidence)
