"""Statistics of the validation protocol (docs/validation.md §4); numpy / scipy only, every resampling seeded.

* :func:`bootstrap_ci` — percentile bootstrap of any statistic (optionally resampling whole groups).
* :func:`fit_power_law` — log η = a + s log B by least squares, with a seed-level bootstrap CI on s;
  :func:`classify_exponent` — "linear" (CI ∋ 1 only), "square root" (∋ 0.5 only), "constant" (∋ 0 only) or
  "undecided".
* :func:`fit_saturating_shape` — η(B) = η_∞ / (1 + B*/B)^s for s = 1, 0.5 or free, least squares in log η;
  :func:`aic`, :func:`leave_one_out_error`, :func:`compare_shapes` (the model-comparison table);
  :func:`leave_one_b_out` — the leave-one-batch-size-out error of any predictor (refitted or fixed).
* :func:`median_over_b_error` — the spectral target statistic: median over B of |log(pred(B) / measured
  median at B)|, with a CI that resamples the batches within each B; :func:`leave_one_b_out_median_error` —
  the same statistic for a predictor refitted without each B; :func:`median_over_b_null` — its
  distribution when the measurements are drawn from a predicted distribution over batches (the design
  check: what a perfect model scores with so many batches per B).
* :func:`fit_offset_power_law` — y(B) = a + b·B^(−s) in log space (the free fit of λ'(B)).
* :func:`median_abs_log_ratio` — predictor accuracy r = log(η_pred/η_meas): median |r| with bootstrap CI and
  the fractions within 1.25× and 1.5×; :func:`paired_wilcoxon_holm` — paired Wilcoxon signed-rank tests of a
  reference predictor against baselines on the same cells, Holm-corrected (:func:`holm_correction`).

The baselines for η_max(B) are in ``validation.baselines``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy import stats as sps

FloatArray = NDArray[np.float64]

__all__ = [
    "ConfidenceInterval",
    "OffsetPowerLawFit",
    "PowerLawFit",
    "PredictorAccuracy",
    "ShapeFit",
    "aic",
    "bootstrap_ci",
    "EXPONENT_LAWS",
    "classify_exponent",
    "compare_shapes",
    "fit_offset_power_law",
    "fit_power_law",
    "fit_saturating_shape",
    "holm_correction",
    "leave_one_b_out",
    "leave_one_b_out_median_error",
    "median_over_b_error",
    "median_over_b_null",
    "DesignCheck",
    "leave_one_out_error",
    "median_abs_log_ratio",
    "paired_wilcoxon_holm",
    "positive_vector",
]


# ----------------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------------
def positive_vector(values: ArrayLike, name: str) -> FloatArray:
    """``values`` as a non-empty 1-D float array, finite and > 0 everywhere (``ValueError`` naming ``name``
    otherwise)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0 everywhere")
    return arr


def _finite_1d(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite everywhere")
    return arr


def _check_confidence(confidence: float) -> float:
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(confidence)


def _check_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 10:
        raise ValueError(f"n_resamples must be an int >= 10, got {n_resamples!r}")
    return int(n_resamples)


# ----------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a two-sided percentile-bootstrap interval [low, high] at ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _group_index(groups: ArrayLike | None, n: int) -> list[NDArray[np.intp]]:
    """Row indices of each group (each row its own group when ``groups`` is None)."""
    if groups is None:
        return [np.array([i], dtype=np.intp) for i in range(n)]
    labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must have one label per observation ({n}), got shape {labels.shape}")
    return [np.flatnonzero(labels == g).astype(np.intp) for g in np.unique(labels)]


def bootstrap_ci(
    data: ArrayLike,
    statistic: Callable[[FloatArray], float] = np.mean,
    *,
    groups: ArrayLike | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``statistic(data)``.

    Resamples observations (rows of ``data``) with replacement — or, with ``groups``, whole groups (e.g. all
    cells of one seed) — ``n_resamples`` times with ``numpy.random.default_rng(seed)``; the interval is the
    (α/2, 1 − α/2) quantiles of the resampled statistic, α = 1 − ``confidence``."""
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError("data must have at least one observation along axis 0")
    n_resamples = _check_resamples(n_resamples)
    confidence = _check_confidence(confidence)
    index = _group_index(groups, arr.shape[0])
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for i in range(n_resamples):
        pick = rng.integers(0, len(index), size=len(index))
        rows = np.concatenate([index[j] for j in pick])
        draws[i] = statistic(arr[rows])
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(float(statistic(arr)), float(low), float(high), confidence)


# ----------------------------------------------------------------------------------------------------
# power law and exponent classification
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawFit:
    """log η = intercept + exponent · log B; ``ci`` is the bootstrap CI of the exponent."""

    exponent: float
    intercept: float
    ci: ConfidenceInterval
    n_points: int
    n_groups: int
    max_batch: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_slope(log_b: FloatArray, log_y: FloatArray) -> tuple[float, float]:
    if np.ptp(log_b) == 0:
        return math.nan, math.nan
    slope, intercept = np.polyfit(log_b, log_y, 1)
    return float(slope), float(intercept)


def fit_power_law(
    batch_sizes: ArrayLike,
    lrs: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    max_batch: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Least-squares fit of log η = a + s log B on the points with B ≤ ``max_batch`` (docs/validation.md §4:
    B*/2
    with B* estimated independently), and a ``confidence`` bootstrap CI on s resampling whole ``groups``
    (seeds: each seed's curve is one unit) — or single points when ``groups`` is None."""
    b = positive_vector(batch_sizes, "batch_sizes")
    eta = positive_vector(lrs, "lrs")
    if eta.shape != b.shape:
        raise ValueError(f"lrs must have the shape of batch_sizes {b.shape}, got {eta.shape}")
    labels = np.zeros(b.size) if groups is None else np.asarray(groups)
    if labels.shape != b.shape:
        raise ValueError(f"groups must have the shape of batch_sizes {b.shape}, got {labels.shape}")
    keep = np.ones(b.size, dtype=bool) if max_batch is None else b <= float(max_batch)
    if np.unique(b[keep]).size < 2:
        raise ValueError(
            f"need at least two distinct batch sizes <= max_batch = {max_batch} to fit a power law"
        )
    log_b, log_eta = np.log(b[keep]), np.log(eta[keep])
    slope, intercept = _log_slope(log_b, log_eta)
    data = np.column_stack([log_b, log_eta])
    ci = bootstrap_ci(
        data,
        lambda d: _log_slope(d[:, 0], d[:, 1])[0],
        groups=None if groups is None else labels[keep],
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    if not (math.isfinite(ci.low) and math.isfinite(ci.high)):  # degenerate resamples (a single B drawn)
        finite = ConfidenceInterval(slope, -math.inf, math.inf, confidence)
        ci = finite
    n_groups = int(np.unique(labels[keep]).size) if groups is not None else int(keep.sum())
    return PowerLawFit(slope, intercept, ci, int(keep.sum()), n_groups, max_batch)


EXPONENT_LAWS: dict[str, float] = {"linear": 1.0, "square root": 0.5, "constant": 0.0}
"""The scaling laws η_max ∝ B^s an exponent's CI is read against (docs/validation.md §4)."""


def classify_exponent(ci: ConfidenceInterval | PowerLawFit) -> str:
    """The law of :data:`EXPONENT_LAWS` whose exponent is the only one the CI contains ("linear" 1, "square
    root" 0.5, "constant" 0: the saturated threshold), "undecided" otherwise (several or none)."""
    interval = ci.ci if isinstance(ci, PowerLawFit) else ci
    inside = [law for law, s in EXPONENT_LAWS.items() if interval.contains(s)]
    return inside[0] if len(inside) == 1 else "undecided"


# ----------------------------------------------------------------------------------------------------
# saturating shape η_∞ / (1 + B*/B)^s
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeFit:
    """Fit of log η = log η_∞ − s·log(1 + B*/B); ``rss`` is the residual sum of squares in log η,
    ``aic`` = n log(rss/n) + 2k, ``loo_error`` the leave-one-B-out RMS log error (NaN if < 3 sizes)."""

    s: float
    s_fixed: bool
    eta_inf: float
    b_star: float
    rss: float
    n_points: int
    n_params: int
    aic: float
    loo_error: float

    def predict(self, batch_sizes: ArrayLike) -> FloatArray:
        b = np.asarray(batch_sizes, dtype=np.float64)
        return np.asarray(self.eta_inf / (1.0 + self.b_star / b) ** self.s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aic(rss: float, n_points: int, n_params: int) -> float:
    """Akaike's criterion for Gaussian least squares: n log(RSS/n) + 2k (RSS floored at 1e-300)."""
    if n_points < 1 or n_params < 0:
        raise ValueError(f"need n_points >= 1 and n_params >= 0, got {n_points}, {n_params}")
    return n_points * math.log(max(rss, 1e-300) / n_points) + 2 * n_params


def _shape_residuals(
    theta: FloatArray, log_b: FloatArray, log_eta: FloatArray, s: float | None
) -> FloatArray:
    log_eta_inf, log_b_star = theta[0], theta[1]
    exponent = theta[2] if s is None else s
    model = log_eta_inf - exponent * np.logaddexp(0.0, log_b_star - log_b)  # log(1 + B*/B)
    return np.asarray(model - log_eta)


def _fit_shape_params(log_b: FloatArray, log_eta: FloatArray, s: float | None) -> tuple[FloatArray, float]:
    """Least squares over (log η_∞, log B*[, s]) from a grid of starting B* (the problem is not convex)."""
    best: tuple[FloatArray, float] | None = None
    lo, hi = float(log_b.min()), float(log_b.max())
    for start_b in np.linspace(lo - 2.0, hi + 2.0, 7):
        s0 = 0.75 if s is None else s
        start_inf = float(np.max(log_eta)) + s0 * float(np.logaddexp(0.0, start_b - hi))
        theta0 = np.array([start_inf, start_b] + ([s0] if s is None else []))
        lower = [-np.inf, lo - 20.0] + ([0.0] if s is None else [])
        upper = [np.inf, hi + 20.0] + ([5.0] if s is None else [])
        sol = optimize.least_squares(
            _shape_residuals, theta0, args=(log_b, log_eta, s), bounds=(lower, upper), method="trf"
        )
        rss = float(np.sum(sol.fun**2))
        if best is None or rss < best[1]:
            best = (sol.x, rss)
    assert best is not None
    return best


def leave_one_b_out(
    batch_sizes: ArrayLike,
    values: ArrayLike,
    predict: Callable[[FloatArray, FloatArray, float], float],
) -> float:
    """Leave-one-B-out mean squared log error: for each distinct B, ``predict(b_train, values_train, B)``
    (a model fitted without the points at B — or a fixed model that ignores them) against every value at B,
    r = log(prediction / value); the mean of r² at each B, averaged over the batch sizes (each B weighs the
    same). Pairs with a non-finite r (NaN or non-positive value or prediction) are skipped, and a B with none
    left drops out; NaN when no B remains."""
    b = positive_vector(batch_sizes, "batch_sizes")
    y = np.asarray(values, dtype=np.float64)
    if y.shape != b.shape:
        raise ValueError(f"values must have the shape of batch_sizes {b.shape}, got {y.shape}")
    errors = []
    for held in np.unique(b):
        at = b == held
        prediction = float(predict(b[~at], y[~at], float(held)))
        held_values = y[at][np.isfinite(y[at]) & (y[at] > 0)]
        if not (math.isfinite(prediction) and prediction > 0) or held_values.size == 0:
            continue
        r = np.log(prediction / held_values)
        if r.size:
            errors.append(float(np.mean(r**2)))
    return float(np.mean(errors)) if errors else math.nan


def _median_by_b(b: FloatArray, y: FloatArray) -> dict[float, FloatArray]:
    """The finite positive values at each distinct B (a B without one drops out)."""
    out = {}
    for held in np.unique(b):
        v = y[(b == held) & np.isfinite(y) & (y > 0)]
        if v.size:
            out[float(held)] = v
    return out


def median_over_b_error(
    batch_sizes: ArrayLike,
    measured: ArrayLike,
    predicted: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """The spectral target statistic (docs/validation.md §4d): E = median over the distinct B of
    |log(pred(B) / m_B)|, m_B = the median of the measured batches at B, ``predicted`` aligned with the
    cells (one value per B is used: the first finite positive one).

    The interval is a stratified percentile bootstrap: each resample redraws the batches *within* every B
    with replacement (B and the prediction fixed), so it measures how much E moves with the finitely many
    batches per B (with 3 batches per B a wide interval is the honest answer). NaN (and a NaN interval) when
    no B has a finite positive prediction and measurement."""
    b = positive_vector(batch_sizes, "batch_sizes")
    y = np.asarray(measured, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.shape != b.shape or p.shape != b.shape:
        raise ValueError(
            f"measured and predicted must have the shape of batch_sizes {b.shape}, "
            f"got {y.shape} and {p.shape}"
        )
    n_resamples = _check_resamples(n_resamples)
    confidence = _check_confidence(confidence)
    pred_at: dict[float, float] = {}
    for bb, pp in zip(b, p, strict=True):
        if float(bb) not in pred_at and math.isfinite(pp) and pp > 0:
            pred_at[float(bb)] = float(pp)
    groups = {k: v for k, v in _median_by_b(b, y).items() if k in pred_at}
    if not groups:
        return ConfidenceInterval(math.nan, math.nan, math.nan, confidence)
    log_pred = np.array([math.log(pred_at[k]) for k in groups])
    estimate = float(np.median(np.abs(log_pred - np.log([np.median(v) for v in groups.values()]))))
    rng = np.random.default_rng(seed)
    medians = np.empty((n_resamples, len(groups)))
    for j, v in enumerate(groups.values()):
        medians[:, j] = np.median(v[rng.integers(0, v.size, size=(n_resamples, v.size))], axis=1)
    draws = np.median(np.abs(log_pred[None, :] - np.log(medians)), axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(estimate, float(low), float(high), confidence)


@dataclass(frozen=True)
class DesignCheck:
    """The target statistic E under a model's own predicted distribution (:func:`median_over_b_null`):
    ``expected`` the median of E over simulated sweeps, ``q95`` its 95% quantile, ``p_value`` = P(E_sim ≥
    E_observed) as the Monte-Carlo p-value (k + 1)/(n_rep + 1), never 0 (small: the measurements are
    further from the prediction than the design explains),
    ``target_probability`` = P(E_sim ≤ target) (how often a perfect model meets the target with this
    design), ``n_rep`` simulated sweeps."""

    expected: float
    q95: float
    p_value: float
    target_probability: float
    n_rep: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def median_over_b_null(
    levels: ArrayLike,
    quantiles: ArrayLike,
    counts: ArrayLike,
    observed: float,
    target: float,
    *,
    n_rep: int = 2000,
    seed: int = 0,
) -> DesignCheck:
    """Distribution of :func:`median_over_b_error`'s E when the measured batches *are* draws from the
    predicted distribution (docs/validation.md §4d, design check).

    ``quantiles[j, l]`` is the predicted ``levels[l]`` quantile over batches at the j-th batch size (levels
    increasing in (0, 1), e.g. 0.01…0.99; the median level 0.5 must be among them: it is the point
    prediction), ``counts[j]`` the number of measured batches there. Each of ``n_rep`` simulated sweeps
    draws ``counts[j]`` values per B by the inverse of the piecewise-linear quantile function (u below the
    first / above the last level takes the end value: tails beyond them are cut), takes their median m_B and
    E_sim = median_j |log(q_{0.5, j} / m_B)|. Values must be positive."""
    lv = np.asarray(levels, dtype=np.float64).reshape(-1)
    q = np.asarray(quantiles, dtype=np.float64)
    m = np.asarray(counts)
    if lv.size < 2 or not (np.all(np.diff(lv) > 0) and lv[0] > 0 and lv[-1] < 1):
        raise ValueError("levels must be at least two increasing values in (0, 1)")
    if not np.any(np.isclose(lv, 0.5)):
        raise ValueError("levels must contain the median level 0.5")
    if q.ndim != 2 or q.shape[1] != lv.size or q.shape[0] == 0:
        raise ValueError(f"quantiles must have shape (n_batch_sizes, {lv.size}), got {q.shape}")
    if not (np.all(np.isfinite(q)) and np.all(q > 0)):
        raise ValueError("quantiles must be finite and positive")
    if m.shape != (q.shape[0],) or not np.issubdtype(m.dtype, np.integer) or np.any(m < 1):
        raise ValueError(f"counts must be {q.shape[0]} integers >= 1, got {m!r}")
    if not (math.isfinite(observed) and observed >= 0):
        raise ValueError(f"observed must be finite and >= 0, got {observed}")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be finite and > 0, got {target}")
    n_rep = _check_resamples(n_rep)
    q = np.maximum.accumulate(q, axis=1)  # a quantile function is non-decreasing
    log_med = np.log(q[:, int(np.argmin(np.abs(lv - 0.5)))])
    rng = np.random.default_rng(seed)
    sims = np.empty((n_rep, q.shape[0]))
    for j, count in enumerate(m):
        draws = np.interp(rng.random((n_rep, int(count))), lv, q[j])
        sims[:, j] = np.abs(log_med[j] - np.log(np.median(draws, axis=1)))
    e_sim = np.median(sims, axis=1)
    return DesignCheck(
        expected=float(np.median(e_sim)),
        q95=float(np.quantile(e_sim, 0.95)),
        p_value=float((np.sum(e_sim >= observed - 1e-12) + 1) / (n_rep + 1)),
        target_probability=float(np.mean(e_sim <= target)),
        n_rep=n_rep,
    )


def leave_one_b_out_median_error(
    batch_sizes: ArrayLike,
    values: ArrayLike,
    predict: Callable[[FloatArray, FloatArray, float], float],
) -> float:
    """:func:`median_over_b_error`'s point estimate for a predictor refitted without each B: the median
    over the distinct B of |log(predict(b_train, values_train, B) / m_B)|, m_B the median of the values at
    B (a B whose prediction or values are not finite and positive drops out; NaN when none remains)."""
    b = positive_vector(batch_sizes, "batch_sizes")
    y = np.asarray(values, dtype=np.float64)
    if y.shape != b.shape:
        raise ValueError(f"values must have the shape of batch_sizes {b.shape}, got {y.shape}")
    errors = []
    for held, v in _median_by_b(b, y).items():
        at = b == held
        prediction = float(predict(b[~at], y[~at], held))
        if math.isfinite(prediction) and prediction > 0:
            errors.append(abs(math.log(prediction / float(np.median(v)))))
    return float(np.median(errors)) if errors else math.nan


def leave_one_out_error(batch_sizes: ArrayLike, lrs: ArrayLike, s: float | None = 1.0) -> float:
    """Leave-one-B-out RMS error in log η of the shape with exponent ``s`` (None = free): the square root of
    :func:`leave_one_b_out` with the shape refitted on the other batch sizes. NaN with fewer than 3 distinct
    B."""
    b = positive_vector(batch_sizes, "batch_sizes")
    eta = positive_vector(lrs, "lrs")
    if eta.shape != b.shape:
        raise ValueError(f"lrs must have the shape of batch_sizes {b.shape}, got {eta.shape}")
    if np.unique(b).size < 3:
        return math.nan

    def refit(b_train: FloatArray, eta_train: FloatArray, held: float) -> float:
        theta, _ = _fit_shape_params(np.log(b_train), np.log(eta_train), s)
        log_prediction = _shape_residuals(theta, np.log(np.array([held])), np.zeros(1), s)[0]
        return float(np.exp(log_prediction))

    return math.sqrt(leave_one_b_out(b, eta, refit))


def fit_saturating_shape(batch_sizes: ArrayLike, lrs: ArrayLike, s: float | None = 1.0) -> ShapeFit:
    """Fit η(B) = η_∞ / (1 + B*/B)^s by least squares in log η; ``s`` = 1 (McCandlish / linear knee),
    0.5 (square-root knee) or None (free, bounded to [0, 5]). Returns AIC and leave-one-B-out error."""
    b = positive_vector(batch_sizes, "batch_sizes")
    eta = positive_vector(lrs, "lrs")
    if eta.shape != b.shape:
        raise ValueError(f"lrs must have the shape of batch_sizes {b.shape}, got {eta.shape}")
    if s is not None and not (math.isfinite(float(s)) and float(s) > 0):
        raise ValueError(f"s must be a positive exponent (e.g. 1 or 0.5) or None (free), got {s}")
    s_val = None if s is None else float(s)
    n_params = 2 if s_val is not None else 3
    if b.size <= n_params:
        raise ValueError(f"need more than {n_params} points to fit this shape, got {b.size}")
    theta, rss = _fit_shape_params(np.log(b), np.log(eta), s_val)
    exponent = float(theta[2]) if s_val is None else s_val
    return ShapeFit(
        s=exponent,
        s_fixed=s_val is not None,
        eta_inf=float(np.exp(theta[0])),
        b_star=float(np.exp(theta[1])),
        rss=rss,
        n_points=int(b.size),
        n_params=n_params,
        aic=aic(rss, int(b.size), n_params),
        loo_error=leave_one_out_error(b, eta, s_val),
    )


def compare_shapes(
    batch_sizes: ArrayLike, lrs: ArrayLike, exponents: Sequence[float | None] = (1.0, 0.5, None)
) -> list[dict[str, Any]]:
    """The model-comparison table: one row per shape (``model`` = "s=1", "s=0.5", "s free") with the fit,
    AIC, ΔAIC to the best, Akaike weight and leave-one-B-out error; rows sorted by AIC."""
    fits = [
        (("s free" if s is None else f"s={s:g}"), fit_saturating_shape(batch_sizes, lrs, s))
        for s in exponents
    ]
    best = min(f.aic for _, f in fits)
    weights = np.array([math.exp(-0.5 * (f.aic - best)) for _, f in fits])
    weights /= weights.sum()
    rows = [
        {"model": name, **fit.to_dict(), "delta_aic": fit.aic - best, "akaike_weight": float(w)}
        for (name, fit), w in zip(fits, weights, strict=True)
    ]
    return sorted(rows, key=lambda r: r["aic"])


# ----------------------------------------------------------------------------------------------------
# offset power law a + b·B^(−s) (the free fit of λ'(B))
# ----------------------------------------------------------------------------------------------------
OFFSET_EXPONENT_BOUNDS = (0.0, 3.0)
"""Bounds of s in :func:`fit_offset_power_law`."""


@dataclass(frozen=True)
class OffsetPowerLawFit:
    """y(B) = a + b·B^(−s) with a, b ≥ 0 and s in ``OFFSET_EXPONENT_BOUNDS``; NaN parameters when fewer
    than 3 usable points were given."""

    a: float
    b: float
    s: float

    def predict(self, batch_sizes: ArrayLike) -> FloatArray:
        return np.asarray(self.a + self.b * np.asarray(batch_sizes, dtype=np.float64) ** (-self.s))

    def degenerate(self, rel_tol: float = 1e-6) -> list[str]:
        """Why the fit does not describe a B-dependence (empty when it does): an exponent at a bound of its
        range, a vanishing B-dependent term b, or a vanishing offset a."""
        if not all(math.isfinite(v) for v in (self.a, self.b, self.s)):
            return ["too few points to fit"]
        low, high = OFFSET_EXPONENT_BOUNDS
        reasons = []
        if self.s <= low + rel_tol or self.s >= high - rel_tol:
            reasons.append(f"exponent s = {self.s:.3g} at the bound of [{low:g}, {high:g}]")
        if self.b <= rel_tol * max(self.a, 1e-300):
            reasons.append("B-dependent term b ≈ 0 (a constant)")
        if self.a <= rel_tol * max(self.b, 1e-300):
            reasons.append("offset a ≈ 0 (a pure power law)")
        return reasons

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "s": self.s}


def fit_offset_power_law(batch_sizes: ArrayLike, values: ArrayLike) -> OffsetPowerLawFit:
    """Least-squares fit of log y = log(a + b·B^(−s)) over a, b ≥ 0 (as log a, log b in [−50, 50]) and s in
    [0, 3], best of three starts (s₀ = 0.5, 1, 2). Points whose value is NaN or ≤ 0 are ignored; with
    fewer than 3 left the parameters are NaN."""
    b = positive_vector(batch_sizes, "batch_sizes")
    y = np.asarray(values, dtype=np.float64)
    if y.shape != b.shape:
        raise ValueError(f"values must have the shape of batch_sizes {b.shape}, got {y.shape}")
    ok = np.isfinite(y) & (y > 0)
    b, y = b[ok], y[ok]
    if b.size < 3:
        return OffsetPowerLawFit(math.nan, math.nan, math.nan)
    log_y = np.log(y)

    def resid(p: FloatArray) -> FloatArray:
        return np.asarray(np.log(np.exp(p[0]) + np.exp(p[1]) * b ** (-p[2])) - log_y)

    low, high = OFFSET_EXPONENT_BOUNDS
    best = None
    for s0 in (0.5, 1.0, 2.0):
        start = np.array([np.log(max(y.min(), 1e-12) / 2), np.log(max(y.max(), 1e-12)), s0])
        fit = optimize.least_squares(resid, start, bounds=([-50, -50, low], [50, 50, high]))
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    return OffsetPowerLawFit(float(np.exp(best.x[0])), float(np.exp(best.x[1])), float(best.x[2]))


# ----------------------------------------------------------------------------------------------------
# predictor accuracy and paired tests
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictorAccuracy:
    """Summary of r = log(η_pred/η_meas) over cells: median |r| with bootstrap CI, fractions of cells with
    |r| ≤ log 1.25 and ≤ log 1.5, and the median signed r (bias)."""

    median_abs: ConfidenceInterval
    within_1_25: float
    within_1_5: float
    median_signed: float
    n_cells: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_abs_log_ratio(
    predicted: ArrayLike,
    measured: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PredictorAccuracy:
    """Accuracy of a predictor on matched cells (docs/validation.md §4); the CI resamples cells (or
    ``groups``)."""
    pred = positive_vector(predicted, "predicted")
    meas = positive_vector(measured, "measured")
    if pred.shape != meas.shape:
        raise ValueError(
            f"predicted and measured must have the same shape, got {pred.shape} and {meas.shape}"
        )
    r = np.log(pred / meas)
    abs_r = np.abs(r)
    ci = bootstrap_ci(
        abs_r, np.median, groups=groups, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return PredictorAccuracy(
        median_abs=ci,
        within_1_25=float(np.mean(abs_r <= math.log(1.25) + 1e-12)),
        within_1_5=float(np.mean(abs_r <= math.log(1.5) + 1e-12)),
        median_signed=float(np.median(r)),
        n_cells=int(r.size),
    )


def holm_correction(p_values: ArrayLike) -> FloatArray:
    """Holm–Bonferroni adjusted p-values: sort p ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))
    (1-based j), returned in the input order. Reject H_i at level α iff p̃_i ≤ α."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must be a 1-D array of numbers in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.maximum.accumulate(scaled)
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_wilcoxon_holm(
    abs_log_ratios: Mapping[str, ArrayLike],
    reference: str,
    *,
    alternative: str = "less",
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Paired Wilcoxon signed-rank tests of ``reference`` against every other method on the same cells.

    ``abs_log_ratios[method]`` = |r| per cell (same cell order for all methods). Each test is on the
    differences |r_ref| − |r_method|; ``alternative="less"`` asks whether the reference is more accurate
    ("two-sided" and "greater" accepted). The p-values are Holm-corrected over the comparisons. Rows: method,
    n_cells, median difference, statistic, p_value, p_holm, reject (p_holm ≤ ``alpha``)."""
    if reference not in abs_log_ratios:
        raise ValueError(f"reference must be one of {sorted(abs_log_ratios)}, got {reference!r}")
    if alternative not in ("less", "greater", "two-sided"):
        raise ValueError(f"alternative must be 'less', 'greater' or 'two-sided', got {alternative!r}")
    ref = _finite_1d(abs_log_ratios[reference], f"abs_log_ratios[{reference!r}]")
    rows: list[dict[str, Any]] = []
    for method, values in abs_log_ratios.items():
        if method == reference:
            continue
        other = _finite_1d(values, f"abs_log_ratios[{method!r}]")
        if other.shape != ref.shape:
            raise ValueError(f"abs_log_ratios[{method!r}] must have the reference's shape {ref.shape}")
        diff = ref - other
        if np.all(diff == 0):
            statistic, p_value = math.nan, 1.0
        else:
            res = sps.wilcoxon(ref, other, alternative=alternative)
            statistic, p_value = float(res.statistic), float(res.pvalue)
        rows.append(
            {
                "method": method,
                "reference": reference,
                "n_cells": int(ref.size),
                "median_difference": float(np.median(diff)),
                "statistic": statistic,
                "p_value": p_value,
            }
        )
    if rows:
        adjusted = holm_correction([r["p_value"] for r in rows])
        for row, p_adj in zip(rows, adjusted, strict=True):
            row["p_holm"] = float(p_adj)
            row["reject"] = bool(p_adj <= alpha)
    return rows
