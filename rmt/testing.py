"""Testing toolkit for users' own random-matrix predictions: hypothesis strategies and a Monte-Carlo check.

``assert_matches_monte_carlo`` compares a prediction with the mean of Monte-Carlo replicates using a
statistically derived tolerance (REFERENCE_VALUES "MC-test hygiene"):

    |prediction − MC mean| ≤ z · sd/√reps + bias_per_param / P     (defaults z = 4, bias_per_param = 3)

with ``sd`` the per-replicate standard deviation from theory (e.g. ``outlier_fluctuation_sd``) or, if not
given, from the sample. Finite-P fixed tolerances only hold away from the critical window
``|θ − θ_c| ≲ 5 θ_c P^{-1/3}``; the strategies below generate parameters outside it.

Example (an outlier of the spiked GOE at P = 10⁴):

    >>> from rmt.sampling import spiked_wigner_top_eigenvalues
    >>> samples = spiked_wigner_top_eigenvalues(2.0, 1.0, 10_000, 200, seed=0)
    >>> result = assert_matches_monte_carlo(2.5, samples, n_params=10_000, sd=1.2247 / 100)
    >>> result.z_score < 4
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from rmt.checks import FloatArray, check_finite, check_int, check_positive
from rmt.sampling import SeedLike, as_generator

__all__ = [
    "MonteCarloComparison",
    "assert_matches_monte_carlo",
    "batch_sizes",
    "critical_window",
    "discrete_measures",
    "noise_scales",
    "spikes",
    "supercritical_spikes",
    "variance_profiles",
]


# ------------------------------------------------------------------------------------------------------------
# Monte-Carlo comparison.


@dataclass(frozen=True)
class MonteCarloComparison:
    """Outcome of :func:`assert_matches_monte_carlo` (one entry per predicted component)."""

    prediction: FloatArray
    mc_mean: FloatArray
    standard_error: FloatArray
    tolerance: FloatArray
    z_score: float  # worst |prediction − mean| / standard error
    n_reps: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        rows = [
            f"  [{i}] prediction {p:.6g}, MC mean {m:.6g} ± {s:.2g} (se), |diff| {abs(p - m):.3g}, "
            f"tolerance {t:.3g}"
            for i, (p, m, s, t) in enumerate(
                zip(self.prediction, self.mc_mean, self.standard_error, self.tolerance, strict=True)
            )
        ]
        head = f"Monte Carlo ({self.n_reps} replicates), worst z-score {self.z_score:.2f}"
        if self.params:
            head += ", parameters " + ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return "\n".join([head, *rows])


def assert_matches_monte_carlo(
    predict: Any,
    sample: Any,
    *,
    n_params: int,
    n_reps: int | None = None,
    sd: Any = None,
    z: float = 4.0,
    bias_per_param: float = 3.0,
    extra_tolerance: float = 0.0,
    seed: SeedLike = 0,
    params: Mapping[str, Any] | None = None,
) -> MonteCarloComparison:
    """Assert that a prediction equals the Monte-Carlo mean within ``z·sd/√reps + bias_per_param/P``.

    Args:
        predict: the predicted value(s): a number, an array, or a zero-argument callable returning one.
        sample: either an array of replicates already drawn (shape ``(reps,)`` or ``(reps, k)``), or a
        callable
            ``sample(rng) -> value(s)`` that draws one replicate from a ``numpy.random.Generator``.
        n_params: the matrix size P (for the O(1/P) finite-size allowance).
        n_reps: number of replicates to draw when ``sample`` is a callable.
        sd: per-replicate standard deviation from theory (e.g. ``outlier_fluctuation_sd``); None uses the
            sample standard deviation (ddof = 1).
        z: the allowed number of standard errors (4 gives a false-alarm rate ~6e-5 per component).
        bias_per_param: allowance c/P for the O(1/P) finite-size bias of outlier means.
        extra_tolerance: an additional absolute allowance, e.g. near a threshold (document why when used).
        seed: seed for drawing replicates.
        params: parameters to show in the failure message.

    Returns:
        A :class:`MonteCarloComparison` (also when it passes, for logging).

    Raises:
        AssertionError: with prediction, MC mean ± standard error, tolerance, z-score and parameters.

    Example:
        >>> import numpy as np
        >>> from rmt.sampling import extremal_eigenvalues, sample_spiked_wigner
        >>> top = lambda rng: extremal_eigenvalues(sample_spiked_wigner(400, [3.0], 1.0, seed=rng))[0]
        >>> _ = assert_matches_monte_carlo(10 / 3, top, n_params=400, n_reps=20)
    """
    p = check_int(n_params, "n_params", minimum=1)
    z_v = float(check_positive(z, "z"))
    bias = float(check_positive(bias_per_param, "bias_per_param", allow_zero=True))
    extra = float(check_positive(extra_tolerance, "extra_tolerance", allow_zero=True))
    if callable(sample):
        reps = check_int(n_reps, "n_reps", minimum=2) if n_reps is not None else None
        if reps is None:
            raise TypeError("n_reps is required when sample is a callable")
        rng = as_generator(seed)
        draws = np.array([np.asarray(sample(rng), dtype=np.float64) for _ in range(reps)])
    else:
        draws = check_finite(sample, "sample")
        if draws.ndim == 0 or draws.shape[0] < 2:
            raise ValueError("sample must hold at least 2 replicates along its first axis")
        if n_reps is not None and check_int(n_reps, "n_reps") != draws.shape[0]:
            raise ValueError(f"n_reps = {n_reps} does not match the {draws.shape[0]} replicates in sample")
    draws = draws.reshape(draws.shape[0], -1)
    reps = draws.shape[0]
    if not np.all(np.isfinite(draws)):
        raise ValueError("sample produced non-finite replicates")
    pred = check_finite(predict() if callable(predict) else predict, "predict").reshape(-1)
    mean = draws.mean(axis=0)
    if pred.size == 1 and mean.size > 1:
        pred = np.full(mean.shape, pred[0])
    if pred.shape != mean.shape:
        raise ValueError(f"predict has {pred.size} components but each replicate has {mean.size}")
    sd_arr = draws.std(axis=0, ddof=1) if sd is None else check_positive(sd, "sd", allow_zero=True)
    se = np.broadcast_to(sd_arr, mean.shape) / np.sqrt(reps)
    tol = z_v * se + bias / p + extra
    z_score = float(np.max(np.abs(pred - mean) / np.maximum(se, 1e-300)))
    result = MonteCarloComparison(
        pred, mean, np.asarray(se, dtype=np.float64), tol, z_score, reps, dict(params or {})
    )
    if np.any(np.abs(pred - mean) > tol):
        raise AssertionError("prediction does not match Monte Carlo\n" + str(result))
    return result


# ------------------------------------------------------------------------------------------------------------
# Hypothesis strategies.


def critical_window(theta_c: float, n_params: int, width: float = 5.0) -> float:
    """Half-width ``width · θ_c · P^{-1/3}`` of the finite-P critical window around a threshold θ_c."""
    return float(width * abs(theta_c) * check_int(n_params, "n_params", minimum=1) ** (-1.0 / 3.0))


def spikes(min_value: float = 1.2, max_value: float = 10.0) -> st.SearchStrategy[float]:
    """Spike strengths θ (REFERENCE default range (1.2, 10))."""
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


def noise_scales(min_value: float = 1e-3, max_value: float = 5.0) -> st.SearchStrategy[float]:
    """Noise scales ν (or variances ε = ν², REFERENCE range (1e-3, 5))."""
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


def supercritical_spikes(
    nu: float, n_params: int, max_value: float | None = None, width: float = 5.0
) -> st.SearchStrategy[float]:
    """Spikes θ above the critical window of ``θ_c = ν``: ``θ ≥ ν (1 + width P^{-1/3})``."""
    low = nu + critical_window(nu, n_params, width)
    high = max_value if max_value is not None else 10.0 * max(nu, low)
    if high <= low:
        raise ValueError(f"max_value must exceed the critical window's upper end {low:g}")
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def discrete_measures(
    draw: st.DrawFn, max_atoms: int = 20, low: float = -1.0, high: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """A discrete bulk measure: (atoms, weights) with 1–``max_atoms`` distinct atoms in [low, high] and
    weights
    summing to 1 (REFERENCE strategy for ν)."""
    k = draw(st.integers(1, max_atoms))
    atoms = draw(st.lists(st.floats(low, high, allow_nan=False), min_size=k, max_size=k, unique=True))
    raw = draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k))
    weights = np.asarray(raw) / np.sum(raw)
    return np.sort(np.asarray(atoms, dtype=np.float64)), weights[np.argsort(atoms)]


@st.composite
def variance_profiles(
    draw: st.DrawFn, n_params: int = 12, kind: str | None = None, max_blocks: int = 4
) -> FloatArray:
    """A symmetric non-negative P×P variance profile of one of the kinds "constant", "rank_one", "block" or
    "random", normalised so that the largest row sum is at most 1 (bulk edge of order 2)."""
    kinds = ("constant", "rank_one", "block", "random")
    chosen = draw(st.sampled_from(kinds)) if kind is None else kind
    if chosen not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {chosen!r}")
    p = n_params
    if chosen == "constant":
        s = np.full((p, p), draw(st.floats(0.1, 1.0)) / p)
    elif chosen == "rank_one":
        g = np.asarray(draw(st.lists(st.floats(0.2, 2.0), min_size=p, max_size=p)))
        s = np.outer(g, g)
    elif chosen == "block":
        k = draw(st.integers(1, max_blocks))
        t = np.asarray(draw(st.lists(st.floats(0.05, 1.0), min_size=k * k, max_size=k * k))).reshape(k, k)
        t = 0.5 * (t + t.T)
        labels = np.sort(np.asarray(draw(st.lists(st.integers(0, k - 1), min_size=p, max_size=p))))
        s = t[np.ix_(labels, labels)]
    else:
        u = np.asarray(draw(st.lists(st.floats(0.0, 1.0), min_size=p * p, max_size=p * p))).reshape(p, p)
        s = 0.5 * (u + u.T)
    return np.asarray(s / max(float(s.sum(axis=1).max()), 1e-12) * draw(st.floats(0.2, 1.0)))


def batch_sizes(
    lam: float,
    sigma2: float,
    n_params: int,
    *,
    max_batch: int = 10_000,
    n_data: float | None = None,
    width: float = 5.0,
    regime: str = "any",
) -> st.SearchStrategy[int]:
    """Batch sizes B whose noise scale ν(B) keeps the spike λ outside the critical window.

    ``ν(B)² = P σ² κ(B)`` (rmt.wigner.noise_scale); B is kept iff ``|λ| ≥ ν(1 + w P^{-1/3})`` (supercritical)
    or ``|λ| ≤ ν(1 − w P^{-1/3})`` (subcritical), restricted further by ``regime`` ("super", "sub", "any").
    """
    from rmt.wigner import noise_scale

    p = check_int(n_params, "n_params", minimum=1)
    if regime not in ("any", "super", "sub"):
        raise ValueError(f"regime must be one of ('any', 'super', 'sub'), got {regime!r}")
    rel = width * p ** (-1.0 / 3.0)

    def allowed(b: int) -> bool:
        nu = float(noise_scale(sigma2, p, b, n_data))
        sup = abs(lam) >= nu * (1.0 + rel)
        sub = abs(lam) <= nu * (1.0 - rel)
        return {"any": sup or sub, "super": sup, "sub": sub}[regime]

    top = int(min(max_batch, n_data)) if n_data is not None else max_batch
    admissible = [b for b in _candidate_batches(top) if allowed(b)]
    if not admissible:
        raise ValueError("no batch size in [1, max_batch] lies outside the critical window for these inputs")
    return st.sampled_from(admissible)


def _candidate_batches(top: int) -> list[int]:
    """1…64 and then a geometric grid up to ``top`` (distinct integers)."""
    grid = set(range(1, min(top, 64) + 1))
    grid.update(int(round(x)) for x in np.geomspace(64, max(top, 64), 200) if x <= top)
    return sorted(grid)
