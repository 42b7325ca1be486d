"""Testing toolkit for users' own random-matrix predictions: hypothesis strategies and a Monte-Carlo check.

``assert_matches_monte_carlo`` compares a prediction with the mean of Monte-Carlo replicates using a
statistically derived tolerance (docs/reference-values.md "MC-test hygiene"):

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from numpy.typing import ArrayLike

from rmt.checks import FloatArray, check_choice, check_finite, check_int, check_n_data, check_positive
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


def _replicates(
    sample: ArrayLike | Callable[[np.random.Generator], ArrayLike],
    n_reps: int | None,
    rng: np.random.Generator,
) -> FloatArray:
    """(reps, components) replicates: drawn by ``sample(rng)`` ``n_reps`` times, or given as an array."""
    if callable(sample):
        reps = check_int(n_reps, "n_reps", minimum=2, maximum=MAX_REPS) if n_reps is not None else None
        if reps is None:
            raise TypeError("n_reps is required when sample is a callable")
        draws = np.array([check_finite(sample(rng), "sample") for _ in range(reps)])
    else:
        draws = check_finite(sample, "sample")
        if draws.ndim == 0 or draws.shape[0] < 2:
            raise ValueError("sample must hold at least 2 replicates along its first axis")
        if n_reps is not None and check_int(n_reps, "n_reps") != draws.shape[0]:
            raise ValueError(f"n_reps = {n_reps} does not match the {draws.shape[0]} replicates in sample")
    draws = draws.reshape(draws.shape[0], -1)
    if not np.all(np.isfinite(draws)):
        raise ValueError("sample produced non-finite replicates")
    return np.asarray(draws, dtype=np.float64)


def _prediction(predict: ArrayLike | Callable[[], ArrayLike], components: int) -> FloatArray:
    """The predicted value(s) as one entry per component (a scalar is broadcast)."""
    pred = check_finite(predict() if callable(predict) else predict, "predict").reshape(-1)
    if pred.size == 1 and components > 1:
        pred = np.full(components, pred[0])
    if pred.size != components:
        raise ValueError(f"predict has {pred.size} components but each replicate has {components}")
    return np.asarray(pred, dtype=np.float64)


def assert_matches_monte_carlo(
    predict: ArrayLike | Callable[[], ArrayLike],
    sample: ArrayLike | Callable[[np.random.Generator], ArrayLike],
    *,
    n_params: int,
    n_reps: int | None = None,
    sd: ArrayLike | None = None,
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
            callable ``sample(rng) -> value(s)`` that draws one replicate from a ``numpy.random.Generator``.
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
    z_v = _scalar(check_positive(z, "z"), "z")
    bias = _scalar(check_positive(bias_per_param, "bias_per_param", allow_zero=True), "bias_per_param")
    extra = _scalar(check_positive(extra_tolerance, "extra_tolerance", allow_zero=True), "extra_tolerance")
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping (name -> value) or None, got {type(params).__name__}")
    draws = _replicates(sample, n_reps, as_generator(seed))
    reps = draws.shape[0]
    mean = draws.mean(axis=0)
    pred = _prediction(predict, mean.size)
    if (
        sd is not None
        and np.broadcast_shapes(np.shape(check_positive(sd, "sd", allow_zero=True)), mean.shape) != mean.shape
    ):
        raise ValueError(
            f"sd must be a scalar or have one entry per component ({mean.size}), got shape {np.shape(sd)}"
        )
    with np.errstate(over="ignore"):  # an overflowing tolerance or spread is +inf: the comparison still holds
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


MAX_REPS = 10**7  # replicates drawn by one call (a Python loop)
MAX_PROFILE_SIZE = 1000  # P of a drawn variance profile (hypothesis draws P² floats)


def _scalar(arr: FloatArray, name: str) -> float:
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return float(arr)


def _interval(min_value: float, max_value: float) -> tuple[float, float]:
    lo = _scalar(check_finite(min_value, "min_value"), "min_value")
    hi = _scalar(check_finite(max_value, "max_value"), "max_value")
    if lo > hi:
        raise ValueError(f"min_value must be <= max_value, got {lo:g} > {hi:g}")
    return lo, hi


def critical_window(theta_c: float, n_params: int, width: float = 5.0) -> float:
    """Half-width ``width · θ_c · P^{-1/3}`` of the finite-P critical window around a threshold θ_c."""
    theta = _scalar(check_finite(theta_c, "theta_c"), "theta_c")
    w = _scalar(check_positive(width, "width", allow_zero=True), "width")
    p = check_int(n_params, "n_params", minimum=1)
    with np.errstate(over="ignore"):
        out = w * abs(theta) * float(p) ** (-1.0 / 3.0)
    if not np.isfinite(out):
        raise ValueError(f"width * |theta_c| overflows float64 (width = {w:g}, theta_c = {theta:g})")
    return float(out)


def spikes(min_value: float = 1.2, max_value: float = 10.0) -> st.SearchStrategy[float]:
    """Spike strengths θ (docs/reference-values.md default range (1.2, 10)); ``min_value <= max_value``,
    both finite."""
    lo, hi = _interval(min_value, max_value)
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def noise_scales(min_value: float = 1e-3, max_value: float = 5.0) -> st.SearchStrategy[float]:
    """Noise scales ν (or variances ε = ν², docs/reference-values.md range (1e-3, 5)); ``min_value <=
    max_value``."""
    lo, hi = _interval(min_value, max_value)
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def supercritical_spikes(
    nu: float, n_params: int, max_value: float | None = None, width: float = 5.0
) -> st.SearchStrategy[float]:
    """Spikes θ above the critical window of ``θ_c = ν``: ``θ ≥ ν (1 + width P^{-1/3})``."""
    nu_ = _scalar(check_positive(nu, "nu", allow_zero=True), "nu")
    low = nu_ + critical_window(nu_, n_params, width)
    high = _scalar(check_finite(max_value, "max_value"), "max_value") if max_value is not None else 10.0 * low
    if not np.isfinite(high):
        raise ValueError(
            f"nu is too large: the default max_value 10 nu (1 + window) overflows (nu = {nu_:g})"
        )
    if high <= low:
        raise ValueError(
            f"max_value must exceed the critical window's upper end nu (1 + width P^(-1/3)) = {low:g} "
            f"(nu = {nu_:g}, max_value = {high:g})"
        )
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def discrete_measures(
    max_atoms: int = 20, low: float = -1.0, high: float = 1.0
) -> st.SearchStrategy[tuple[FloatArray, FloatArray]]:
    """A discrete bulk measure: (atoms, weights) with 1–``max_atoms`` distinct atoms in [low, high] and
    weights summing to 1 (docs/reference-values.md strategy for ν). ``1 <= max_atoms <= 1000``, ``low <
    high`` finite."""
    k = check_int(max_atoms, "max_atoms", minimum=1, maximum=1000)
    lo = _scalar(check_finite(low, "low"), "low")
    hi = _scalar(check_finite(high, "high"), "high")
    if not lo < hi:
        raise ValueError(f"low must be < high, got {lo:g} >= {hi:g}")
    return _discrete_measures(k, lo, hi)


@st.composite
def _discrete_measures(
    draw: st.DrawFn, max_atoms: int, low: float, high: float
) -> tuple[FloatArray, FloatArray]:
    k = draw(st.integers(1, max_atoms))
    atoms = draw(st.lists(st.floats(low, high, allow_nan=False), min_size=k, max_size=k, unique=True))
    raw = draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k))
    weights = np.asarray(raw) / np.sum(raw)
    return np.sort(np.asarray(atoms, dtype=np.float64)), weights[np.argsort(atoms)]


_PROFILE_KINDS = ("constant", "rank_one", "block", "random")


def variance_profiles(
    n_params: int = 12, kind: str | None = None, max_blocks: int = 4
) -> st.SearchStrategy[FloatArray]:
    """A symmetric non-negative P×P variance profile of one of the kinds "constant", "rank_one", "block" or
    "random" (any of them for ``kind=None``), normalised so that the largest row sum is at most 1 (bulk edge
    of
    order 2). ``1 <= n_params <= 1000``, ``max_blocks >= 1``."""
    p = check_int(n_params, "n_params", minimum=1, maximum=MAX_PROFILE_SIZE)
    chosen = None if kind is None else check_choice(kind, "kind", _PROFILE_KINDS)
    blocks = check_int(max_blocks, "max_blocks", minimum=1, maximum=MAX_PROFILE_SIZE)
    return _variance_profiles(p, chosen, blocks)


@st.composite
def _variance_profiles(draw: st.DrawFn, n_params: int, kind: str | None, max_blocks: int) -> FloatArray:
    kinds = _PROFILE_KINDS
    chosen = draw(st.sampled_from(kinds)) if kind is None else kind
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

    lam_ = _scalar(check_finite(lam, "lam"), "lam")
    s2 = _scalar(check_positive(sigma2, "sigma2", allow_zero=True), "sigma2")
    p = check_int(n_params, "n_params", minimum=1)
    top_batch = check_int(max_batch, "max_batch", minimum=1)
    pool = None if n_data is None else _scalar(check_n_data(n_data), "n_data")
    w = _scalar(check_positive(width, "width", allow_zero=True), "width")
    regime = check_choice(regime, "regime", ("any", "super", "sub"))
    lam, sigma2, max_batch, n_data = lam_, s2, top_batch, pool
    rel = w * float(p) ** (-1.0 / 3.0)

    def allowed(b: int) -> bool:
        nu = float(noise_scale(sigma2, p, b, n_data))
        if nu == 0.0:  # no noise: the spike is separated (or, for λ = 0, sits at the edge 0 = 2ν)
            return {"any": True, "super": True, "sub": lam == 0.0}[regime]
        sup = abs(lam) >= nu * (1.0 + rel)
        sub = abs(lam) <= nu * (1.0 - rel)
        return {"any": sup or sub, "super": sup, "sub": sub}[regime]

    top = int(min(max_batch, n_data)) if n_data is not None else max_batch
    admissible = [b for b in _candidate_batches(top) if allowed(b)]
    if not admissible:
        raise ValueError(
            "no batch size in [1, max_batch] lies outside the critical window for these inputs "
            "(lam, sigma2, n_params, max_batch, n_data, width, regime)"
        )
    return st.sampled_from(admissible)


def _candidate_batches(top: int) -> list[int]:
    """1…64 and then a geometric grid up to ``top`` (distinct integers)."""
    grid = set(range(1, min(top, 64) + 1))
    grid.update(int(round(x)) for x in np.geomspace(64, max(top, 64), 200) if x <= top)
    return sorted(grid)
