"""Finite-horizon divergence of SGD / heavy ball with fresh batches on a quadratic loss (docs/theory.md §3d).

What a divergence trial measures is not the asymptotic growth rate of the second moment
(:mod:`rmt.mean_square`) but whether the loss, evaluated after each of K steps started at the checkpoint,
exceeds (1 + δ)·L(w_c). On the quadratic model L(w_c + Δ) = L₀ + g_eᵀΔ + ½ΔᵀH_eΔ (g_e, H_e: gradient and
Hessian of the evaluation loss), split along directions u_j that diagonalise the curvature (the top
eigenvectors of H), the displacement x = u_jᵀΔ evolves by the random affine map of
torch's ``SGD(momentum=β)``

    v_{t+1} = β v_t + a_t + b_t x_t,      x_{t+1} = x_t − η_t v_{t+1},

where (a_t, b_t) = (u_jᵀ∇L_B(w_c), u_jᵀH_Bu_j) are the batch means of the per-sample pairs (g_i, h_i) over a
fresh batch of B distinct samples of a pool of N (independent of (x_t, v_t)), and η_t = 0 during the
``warmup_steps`` lr-0 steps (they fill the momentum buffer without moving the weights). The batch moments
are E a = ḡ, E b = m, Var a = κ s_g², Var b = κ s_h², Cov(a, b) = κ c with κ = (N − B)/(B(N − 1))
(:func:`rmt.wigner.kappa`) and s_g², s_h², c the pool's population (co)variances. The first and second
moments (μ_x, μ_v, S_xx, S_xv, S_vv) therefore obey an exact closed affine recursion (§3d), and the expected
loss change after t real steps is

    E ΔL_t = Σ_j (g_{e,j} μ_{x,j}(t) + ½ h_{e,j} S_{xx,j}(t)).

:func:`expected_loss_change` evaluates it; :func:`finite_horizon_max_lr` is the smallest η at which
E ΔL_t > δ·L₀ for some t ≤ K (the strict criterion of a divergence trial applied to the expected loss). β = 0
is SGD. Conditions: quadratic loss, directions that diagonalise every per-sample Hessian restricted to them
(cross terms u_jᵀH_iu_k, j ≠ k, dropped), fresh batches; the result is exact for that model.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rmt.checks import (
    FloatArray,
    check_batch_size,
    check_finite,
    check_in_range,
    check_int,
    check_n_data,
    check_positive,
    refuse_non_finite,
    scalar_or_array,
)
from rmt.wigner import kappa

__all__ = ["expected_loss_change", "finite_horizon_max_lr"]


def _directions(
    grad_mean: ArrayLike,
    grad_variance: ArrayLike,
    curvature_mean: ArrayLike,
    curvature_variance: ArrayLike,
    covariance: ArrayLike,
    eval_grad: ArrayLike,
    eval_curvature: ArrayLike,
) -> tuple[FloatArray, ...]:
    """The seven per-direction statistics as validated 1-D arrays of one common length k ≥ 1."""
    named = {
        "grad_mean": check_finite(grad_mean, "grad_mean"),
        "grad_variance": check_positive(grad_variance, "grad_variance", allow_zero=True),
        "curvature_mean": check_finite(curvature_mean, "curvature_mean"),
        "curvature_variance": check_positive(curvature_variance, "curvature_variance", allow_zero=True),
        "covariance": check_finite(covariance, "covariance"),
        "eval_grad": check_finite(eval_grad, "eval_grad"),
        "eval_curvature": check_finite(eval_curvature, "eval_curvature"),
    }
    arrays = {k: np.atleast_1d(v) for k, v in named.items()}
    shape = arrays["grad_mean"].shape
    if len(shape) != 1 or shape[0] == 0:
        raise ValueError(f"grad_mean must be a non-empty 1-D array over the directions, got shape {shape}")
    for name, arr in arrays.items():
        if arr.shape != shape:
            raise ValueError(f"{name} must have the shape of grad_mean {shape}, got {arr.shape}")
    with np.errstate(over="ignore"):  # a product beyond float64 is an infinite bound: nothing to refuse
        bound = np.sqrt(arrays["grad_variance"]) * np.sqrt(arrays["curvature_variance"])
    if np.any(np.abs(arrays["covariance"]) > bound * (1 + 1e-9) + 1e-300):
        raise ValueError(
            "covariance must satisfy |covariance| <= sqrt(grad_variance * curvature_variance) "
            "(Cauchy-Schwarz for one pool)"
        )
    return tuple(arrays.values())


def _loss_paths(
    lrs: FloatArray,
    stats: tuple[FloatArray, ...],
    batch_size: float,
    n_data: ArrayLike | None,
    steps: int,
    warmup_steps: int,
    momentum: float,
) -> FloatArray:
    """E ΔL_t, t = 1..steps, for each lr (shape (len(lrs), steps)); the recursion of docs/theory.md §3d,
    vectorised over lrs × directions."""
    g, sg2, m, sh2, c, ge, he = (s[None, :] for s in stats)
    k = float(kappa(batch_size, n_data))
    ea2, eb2, eab = g**2 + k * sg2, m**2 + k * sh2, g * m + k * c
    beta = momentum
    shape = (lrs.size, g.shape[1])
    mx, mv, sxx, sxv, svv = (np.zeros(shape) for _ in range(5))
    out = np.empty((lrs.size, steps))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(warmup_steps + steps):
            eta = np.zeros((lrs.size, 1)) if t < warmup_steps else lrs[:, None]
            q = -eta * beta
            ep, ep2, epb, epa = 1 - eta * m, 1 - 2 * eta * m + eta**2 * eb2, m - eta * eb2, g - eta * eab
            new_sxx = (ep2 * sxx + 2 * q * ep * sxv + q**2 * svv
                       - 2 * eta * (epa * mx + q * g * mv) + eta**2 * ea2)  # fmt: skip
            new_svv = eb2 * sxx + 2 * beta * m * sxv + beta**2 * svv + 2 * (eab * mx + beta * g * mv) + ea2
            new_sxv = (epb * sxx + (beta * ep + q * m) * sxv + q * beta * svv
                       + (epa - eta * eab) * mx + (q - eta * beta) * g * mv - eta * ea2)  # fmt: skip
            mx, mv = ep * mx + q * mv - eta * g, m * mx + beta * mv + g
            sxx, sxv, svv = new_sxx, new_sxv, new_svv
            if t >= warmup_steps:
                out[:, t - warmup_steps] = np.sum(ge * mx + 0.5 * he * sxx, axis=1)
    return out


def _common(
    batch_size: ArrayLike, n_data: ArrayLike | None, steps: int, warmup_steps: int, momentum: ArrayLike
) -> tuple[float, int, int, float]:
    b = check_batch_size(batch_size, n_data)
    if b.ndim != 0:
        raise ValueError(f"batch_size must be a real scalar, got shape {b.shape}")
    if n_data is not None and check_n_data(n_data).ndim != 0:
        raise ValueError("n_data must be a scalar (or None)")
    k = check_int(steps, "steps", minimum=1, maximum=100_000)
    w = check_int(warmup_steps, "warmup_steps", minimum=0, maximum=100_000)
    beta = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    if beta.ndim != 0:
        raise ValueError(f"momentum must be a real scalar, got shape {beta.shape}")
    return float(b), k, w, float(beta)


@refuse_non_finite(allow_inf=True)
def expected_loss_change(
    lr: ArrayLike,
    *,
    grad_mean: ArrayLike,
    grad_variance: ArrayLike,
    curvature_mean: ArrayLike,
    curvature_variance: ArrayLike,
    covariance: ArrayLike,
    eval_grad: ArrayLike,
    eval_curvature: ArrayLike,
    batch_size: ArrayLike,
    n_data: ArrayLike | None = None,
    steps: int = 30,
    warmup_steps: int = 0,
    momentum: ArrayLike = 0.0,
) -> float | FloatArray:
    """E[L_t] − L₀ after t = 1..``steps`` steps at rate ``lr`` on the quadratic model (docs/theory.md §3d)
    [exact for the model: fresh batches, directions diagonal in every per-sample Hessian].

    ``E ΔL_t = Σ_j (g_{e,j} μ_{x,j}(t) + ½ h_{e,j} S_{xx,j}(t))`` with μ_x, S_xx the first and second moments
    of the displacement along direction j from the closed affine moment recursion of §3d.

    Args:
        lr: η ≥ 0, a scalar or a 1-D array of rates.
        grad_mean: ḡ_j, the pool's mean per-sample gradient along each direction (1-D over k ≥ 1 directions).
        grad_variance: s²_{g,j} ≥ 0, its population variance over the pool.
        curvature_mean: m_j = u_jᵀHu_j, the pool's mean per-sample curvature (any sign).
        curvature_variance: s²_{h,j} ≥ 0, its population variance.
        covariance: c_j, the population covariance of (g_i, h_i) (|c_j| ≤ s_{g,j}s_{h,j}).
        eval_grad: g_{e,j}, the gradient of the evaluated loss along each direction.
        eval_curvature: h_{e,j}, its curvature along each direction.
        batch_size: B ≥ 1 (≤ N); n_data: the pool size N ≥ 2, None or inf (sampling without replacement).
        steps: K ≥ 1 real steps; warmup_steps: lr-0 steps first (they fill the momentum buffer).
        momentum: β ∈ [0, 1) of torch's ``SGD(momentum=β)`` (0: plain SGD).

    Returns: shape (steps,) for a scalar ``lr``, (len(lr), steps) for an array; +inf where the moments
    overflow (the loss has diverged).
    """
    rates = check_positive(lr, "lr", allow_zero=True)
    if rates.ndim > 1:
        raise ValueError(f"lr must be a scalar or a 1-D array, got shape {rates.shape}")
    stats = _directions(
        grad_mean, grad_variance, curvature_mean, curvature_variance, covariance, eval_grad, eval_curvature
    )
    b, k, w, beta = _common(batch_size, n_data, steps, warmup_steps, momentum)
    out = _loss_paths(np.atleast_1d(rates), stats, b, n_data, k, w, beta)
    out = np.where(np.isnan(out), np.inf, out)
    return scalar_or_array(out[0] if rates.ndim == 0 else out)


@refuse_non_finite(allow_inf=True)
def finite_horizon_max_lr(
    threshold: ArrayLike,
    *,
    grad_mean: ArrayLike,
    grad_variance: ArrayLike,
    curvature_mean: ArrayLike,
    curvature_variance: ArrayLike,
    covariance: ArrayLike,
    eval_grad: ArrayLike,
    eval_curvature: ArrayLike,
    batch_size: ArrayLike,
    n_data: ArrayLike | None = None,
    steps: int = 30,
    warmup_steps: int = 0,
    momentum: ArrayLike = 0.0,
    lr_low: float = 1e-4,
    lr_high: float = 1e2,
    rtol: float = 1e-3,
) -> float:
    """Smallest η in [``lr_low``, ``lr_high``] at which max_{t ≤ K} E ΔL_t > ``threshold`` (δ·L₀ for the
    strict criterion (1 + δ)·L₀ of a divergence trial; docs/theory.md §3d) [exact for the quadratic model].

    The rates are scanned on a log grid of ratio 1.25 from ``lr_low``; the first bracket (stable, fires) is
    bisected on log η to relative width ``rtol``. E ΔL_t need not be monotone in η: this is the first
    crossing, as the bisection of a measured threshold finds it when it starts below. Returns ``lr_low`` when
    the criterion fires there already and inf when it does not fire up to ``lr_high``. ``threshold`` > 0;
    0 < ``lr_low`` < ``lr_high``; 0 < ``rtol`` < 1; the other arguments as in :func:`expected_loss_change`.
    """
    limit = check_positive(threshold, "threshold")
    if limit.ndim != 0:
        raise ValueError(f"threshold must be a real scalar, got shape {limit.shape}")
    lo_bound = float(check_positive(lr_low, "lr_low"))
    hi_bound = float(check_positive(lr_high, "lr_high"))
    if not hi_bound > lo_bound:
        raise ValueError(f"lr_high must exceed lr_low = {lo_bound:g}, got {hi_bound:g}")
    tol = float(check_in_range(rtol, "rtol", 0.0, 1.0, low_open=True, high_open=True))
    stats = _directions(
        grad_mean, grad_variance, curvature_mean, curvature_variance, covariance, eval_grad, eval_curvature
    )
    b, k, w, beta = _common(batch_size, n_data, steps, warmup_steps, momentum)

    def fires(rates: FloatArray) -> FloatArray:
        paths = _loss_paths(rates, stats, b, n_data, k, w, beta)
        return np.asarray(~np.all(paths <= float(limit), axis=1))  # NaN / inf: fired

    count = int(np.ceil(np.log(hi_bound / lo_bound) / np.log(1.25))) + 1
    grid = np.minimum(lo_bound * 1.25 ** np.arange(count), hi_bound)
    fired = fires(grid)
    if fired[0]:
        return lo_bound
    if not fired.any():
        return float("inf")
    j = int(np.argmax(fired))
    lo, hi = float(grid[j - 1]), float(grid[j])
    while hi / lo > 1 + tol:
        mid = float(np.sqrt(lo * hi))
        lo, hi = (lo, mid) if fires(np.array([mid]))[0] else (mid, hi)
    return lo
