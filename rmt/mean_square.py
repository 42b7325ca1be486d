"""Mean-square stability of SGD, heavy ball and frozen-preconditioner Adam with fresh batches
(docs/theory.md §3b, §3c).

Along a direction v, sample i of a population of N has curvature h_i = vᵀH_iv with population mean m and
population variance s² = (1/N) Σ (h_i − m)². A batch of B distinct samples drawn without replacement has
h_B = (1/B) Σ_{i∈batch} h_i with E h_B = m and Var h_B = κ(B) s², κ(B) = (N − B)/(B(N − 1))
(:func:`rmt.wigner.kappa`). Each step draws a fresh batch, independent of the iterate, so the second moments
of the linearised iteration evolve by a fixed linear map that depends on h only through m and E h_B²:

* SGD, x ← (1 − ηh_B) x: E x² is multiplied by ρ(η) = 1 − 2ηm + η²(m² + κs²); it contracts iff
  η < 2m/(m² + κs²) (Wu, Ma & E 2018, with the finite-pool factor κ);
* heavy ball (torch's ``SGD(momentum=β)``), (x_{t+1}, x_t) = A_t (x_t, x_{t−1}) with the random companion
  A_t = [[1 + β − ηh_B, −β], [1, 0]]: the second moments (x_t², x_tx_{t−1}, x_{t−1}²) evolve by a 3×3 matrix
  (the symmetric part of E[A⊗A]; its antisymmetric part has eigenvalue det A = β < 1), and its spectral
  radius crosses 1 at z = 1 exactly when η = 2(1 + β)m/(m² + (1 + β)/(1 − β)·κs²)
  (``rmt.symbolic.derivation("mean_square")``);
* Adam with a frozen preconditioner P (m ← β₁m + (1 − β₁)g, w ← w − ηP⁻¹m, bias corrections dropped) is heavy
  ball with momentum β₁ and learning rate η(1 − β₁) on P^{-1/2}H_BP^{-1/2}, so its threshold is the heavy-ball
  one divided by (1 − β₁).

All three are ``η* = c·m/(m² + g·κ(B)·s²)`` with c the deterministic constant
(:func:`rmt.learning_rates.stability_constant`: 2, 2(1 + β), 2(1 + β₁)/(1 − β₁)) and the noise gain g = 1,
(1 + β)/(1 − β), (1 + β₁)/(1 − β₁). With s² = 0 this is c/m, the deterministic bound.

``leakage`` adds the mean of ‖(I − vvᵀ)H_iv‖² (for an eigenvector v of H) to s²: then m² + κ(s² + leakage)
is vᵀE[H_B²]v, the Wu–Ma–E one-step second moment E‖(I − ηH_B)v‖² along v, which counts the curvature that
sends v out of its own direction.

A direction seen by ONE sample of the pool (a per-sample top eigenvector v_i, nearly orthogonal to the
others, curvature λ_i) has h = λ_i for that sample and ≈ 0 for the rest: m = λ_i/N, s² = λ_i²(N − 1)/N²
(:func:`single_sample_moments`), and the same formula gives exactly η* = 2B/λ_i for SGD — the
*sample-spike* bound, not a special case.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmt.checks import (
    FloatArray,
    as_float_array,
    check_batch_size,
    check_choice,
    check_finite,
    check_in_range,
    check_n_data,
    check_positive,
    refuse_non_finite,
    scalar_or_array,
)
from rmt.learning_rates import stability_constant
from rmt.wigner import kappa

__all__ = [
    "MEAN_SQUARE_METHODS",
    "noise_gain",
    "mean_square_max_lr",
    "multi_direction_max_lr",
    "single_sample_moments",
    "second_moment_matrix",
    "second_moment_radius",
]

MEAN_SQUARE_METHODS: tuple[str, ...] = ("sgd", "heavy_ball", "adam")


def _check_method(method: str, momentum: ArrayLike, beta1: ArrayLike) -> tuple[str, FloatArray]:
    """The method and its momentum (β for heavy ball, β₁ for Adam, 0 for SGD)."""
    method = check_choice(method, "method", MEAN_SQUARE_METHODS)
    beta = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    if method == "adam":
        if np.any(beta != 0):
            raise ValueError(f"momentum must be 0 for method='adam' (Adam's momentum is beta1), got {beta}")
        return method, check_in_range(beta1, "beta1", 0.0, 1.0, high_open=True)
    if method == "sgd" and np.any(beta != 0):
        raise ValueError(f"momentum must be 0 for method='sgd' (use method='heavy_ball'), got {beta}")
    return method, beta


@refuse_non_finite()
def noise_gain(method: str = "sgd", momentum: ArrayLike = 0.0, beta1: ArrayLike = 0.9) -> float | FloatArray:
    """The factor g multiplying κ(B)s² in :func:`mean_square_max_lr`: 1 (SGD), (1 + β)/(1 − β) (heavy ball,
    ``momentum`` β ∈ [0, 1)), (1 + β₁)/(1 − β₁) (Adam with a frozen preconditioner, ``beta1`` ∈ [0, 1))."""
    _, beta = _check_method(method, momentum, beta1)
    return scalar_or_array((1.0 + beta) / (1.0 - beta))


def _scalar(arr: FloatArray, name: str) -> np.float64:
    """A validated 0-d argument as a numpy float (``ValueError`` naming ``name`` for any other shape; numpy
    arithmetic, so an overflow gives inf, refused by :func:`rmt.checks.refuse_non_finite`)."""
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a real scalar, got shape {arr.shape}")
    return np.float64(arr)


def _ordinary(*values: ArrayLike) -> NDArray[np.bool_]:
    """True where every magnitude lies in [1e-100, 1e100] (or is 0): the usual arithmetic neither under- nor
    overflows there and the closed forms keep it (bit-identical results); elsewhere a scale-free rewriting."""
    ok = np.asarray(True)
    for v in values:
        a = np.abs(np.asarray(v, dtype=np.float64))
        ok = ok & ((a == 0) | ((a >= 1e-100) & (a <= 1e100)))
    return ok


def _threshold(
    m: FloatArray,
    s2: FloatArray,
    leak: FloatArray,
    batch_size: ArrayLike,
    n_data: ArrayLike | None,
    method: str,
    momentum: ArrayLike,
    beta1: ArrayLike,
) -> FloatArray:
    """``c·m/(m² + g·κ(B)·(s² + leakage))`` for validated m > 0, s² ≥ 0, leakage ≥ 0 (arrays broadcast);
    ``c/(m + g·κ·(s²/m + leakage/m))`` where m² would under- or overflow (the same number)."""
    if n_data is not None:
        check_n_data(n_data)
    k = np.asarray(kappa(batch_size, n_data), dtype=np.float64)
    c = np.asarray(stability_constant(method, momentum, beta1), dtype=np.float64)
    g = np.asarray(noise_gain(method, momentum, beta1), dtype=np.float64)
    gk = g * k
    usual = c * m / (m**2 + gk * (s2 + leak))
    scale_free = c / (m + np.where(gk > 0, gk * (s2 / m + leak / m), 0.0))
    return np.asarray(np.where(_ordinary(m), usual, scale_free), dtype=np.float64)


@refuse_non_finite()
def mean_square_max_lr(
    mean: ArrayLike,
    variance: ArrayLike,
    batch_size: ArrayLike,
    n_data: ArrayLike | None = None,
    *,
    method: str = "sgd",
    momentum: ArrayLike = 0.0,
    beta1: ArrayLike = 0.9,
    leakage: ArrayLike = 0.0,
) -> float | FloatArray:
    """Largest η whose second moment does not grow along one direction (docs/theory.md §3b) [exact for the
    linear recursion with i.i.d. fresh batches].

    ``η* = c·m/(m² + g·κ(B)·(s² + leakage))``, c = :func:`rmt.learning_rates.stability_constant`, g =
    :func:`noise_gain`, κ(B) = :func:`rmt.wigner.kappa` ((N − B)/(B(N − 1)), 1/B for ``n_data`` None/inf).

    Args:
        mean: m > 0, the population mean of the per-sample curvature h_i along the direction.
        variance: s² ≥ 0, its population variance (1/N)Σ(h_i − m)².
        batch_size: B ≥ 1 (≤ N for finite N).
        n_data: the pool size N ≥ 2, None or inf.
        method: ``"sgd"``, ``"heavy_ball"`` (``momentum`` β) or ``"adam"`` (frozen preconditioner, ``beta1``;
            m and s² are then those of P^{-1/2}H_iP^{-1/2}).
        leakage: ≥ 0, the mean ‖(I − vvᵀ)H_iv‖² for the Wu–Ma–E one-step form (0: the scalar recursion).

    All arguments broadcast. Where m² would leave the float64 range (m outside [1e-100, 1e100]) the same
    number is computed as c/(m + g·κ·(s² + leakage)/m); a threshold c/m beyond float64 (m below ~c·1e-308)
    is refused with a ``ValueError``.
    """
    m = check_positive(mean, "mean")
    s2 = check_positive(variance, "variance", allow_zero=True)
    leak = check_positive(leakage, "leakage", allow_zero=True)
    return scalar_or_array(_threshold(m, s2, leak, batch_size, n_data, method, momentum, beta1))


@refuse_non_finite()
def multi_direction_max_lr(
    means: ArrayLike,
    variances: ArrayLike,
    batch_size: ArrayLike,
    n_data: ArrayLike | None = None,
    *,
    method: str = "sgd",
    momentum: ArrayLike = 0.0,
    beta1: ArrayLike = 0.9,
    leakages: ArrayLike = 0.0,
) -> float | FloatArray:
    """η_ms(B) = min over directions j of :func:`mean_square_max_lr` (docs/theory.md §3b).

    ``means``, ``variances`` (and ``leakages``, or one scalar leakage) are 1-D over k ≥ 1 directions (every
    mean > 0: pass only positive-curvature directions); ``batch_size`` may be an array of B (``n_data`` a
    scalar N or an array that broadcasts to it); the result has the shape of ``batch_size``. ``method``,
    ``momentum``, ``beta1`` as in :func:`mean_square_max_lr` (scalars)."""
    m = np.atleast_1d(check_positive(means, "means"))
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"means must be a non-empty 1-D array over the directions, got shape {m.shape}")
    s2 = np.atleast_1d(check_positive(variances, "variances", allow_zero=True))
    if s2.shape != m.shape:
        raise ValueError(f"variances must have the shape of means {m.shape}, got {s2.shape}")
    leak = check_positive(leakages, "leakages", allow_zero=True)
    if leak.ndim != 0 and leak.shape != m.shape:
        raise ValueError(f"leakages must be a scalar or have the shape of means {m.shape}, got {leak.shape}")
    for value, name in ((momentum, "momentum"), (beta1, "beta1")):
        shape = as_float_array(value, name).shape
        if shape:
            raise ValueError(f"{name} must be a real scalar here, got shape {shape}")
    b = check_batch_size(batch_size)
    n: FloatArray | None = None
    if n_data is not None:
        n_arr = check_n_data(n_data)
        try:
            n = np.broadcast_to(n_arr, b.shape).reshape(1, -1)
        except ValueError:
            raise ValueError(
                f"n_data {n_arr.shape} must be a scalar or broadcast to batch_size {b.shape}"
            ) from None
    eta = _threshold(
        m[:, None], s2[:, None], np.broadcast_to(leak, m.shape)[:, None], b.reshape(1, -1), n,
        method, momentum, beta1,
    )  # fmt: skip
    return scalar_or_array(np.min(eta, axis=0).reshape(b.shape))


@refuse_non_finite()
def single_sample_moments(
    curvature: ArrayLike, n_data: ArrayLike
) -> tuple[float | FloatArray, float | FloatArray]:
    """Population (mean, variance) of h over a pool of N when one sample has curvature λ along the
    direction and the other N − 1 have 0: (λ/N, λ²(N − 1)/N²). With :func:`mean_square_max_lr` they give
    η* = 2B/λ for SGD (the sample-spike bound of docs/theory.md §3b). ``curvature`` > 0, ``n_data`` N ≥ 2
    (finite)."""
    lam = check_positive(curvature, "curvature")
    n = check_n_data(n_data)
    if not np.all(np.isfinite(n)):
        raise ValueError("n_data must be finite here (one sample among N)")
    usual = lam**2 * (n - 1.0) / n**2
    scale_free = (lam / n) * (lam * ((n - 1.0) / n))  # λ² or N² would under- or overflow
    variance = np.where(_ordinary(lam, n), usual, scale_free)
    return scalar_or_array(lam / n), scalar_or_array(np.asarray(variance, dtype=np.float64))


@refuse_non_finite()
def second_moment_matrix(
    lr: float, mean: float, batch_variance: float, momentum: float = 0.0
) -> FloatArray:
    """E[A⊗A] (4×4) for the random heavy-ball companion A = [[1 + β − ηh, −β], [1, 0]] with E h = ``mean``
    and Var h = ``batch_variance`` (κ(B)s² for a batch mean); β = ``momentum`` ∈ [0, 1) (0: SGD, whose
    second moment E(1 − ηh)² is then an eigenvalue). vec(E[x xᵀ]) evolves by this matrix (row-major vec)."""
    eta = _scalar(check_positive(lr, "lr", allow_zero=True), "lr")
    m = _scalar(check_finite(mean, "mean"), "mean")
    v = _scalar(check_positive(batch_variance, "batch_variance", allow_zero=True), "batch_variance")
    beta = _scalar(check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True), "momentum")
    a_mean = np.array([[1.0 + beta - eta * m, -beta], [1.0, 0.0]])
    e11 = np.zeros((2, 2))
    e11[0, 0] = 1.0
    # A = Ā − ηδ e₁₁ with E δ = 0, E δ² = v:  E[A⊗A] = Ā⊗Ā + η² v e₁₁⊗e₁₁.
    noise = eta**2 * v if _ordinary(eta, v) else eta * (eta * v)  # η² may overflow while η²v does not
    return np.asarray(np.kron(a_mean, a_mean) + noise * np.kron(e11, e11), dtype=np.float64)


@refuse_non_finite()
def second_moment_radius(lr: float, mean: float, batch_variance: float, momentum: float = 0.0) -> float:
    """Spectral radius of :func:`second_moment_matrix`: the asymptotic per-step growth factor of E‖x‖²
    (> 1: the second moment grows)."""
    return float(np.max(np.abs(np.linalg.eigvals(second_moment_matrix(lr, mean, batch_variance, momentum)))))
