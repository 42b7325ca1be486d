"""Learning-rate stability bounds and the batch-size laws they imply (docs/theory.md §3).

Two layers:

1. **Quadratic stability** [exact]. On a quadratic with curvature ``λ`` along a direction, each
   optimizer's 1-D iteration is linear; it is stable iff every root of its characteristic polynomial lies in
   the open unit disc. With ``h = ηλ`` and PyTorch's conventions (state ``u = η·buffer``):

   ============================  ==========================================  =============================
   method                        characteristic polynomial p(z)               stable iff (Jury: p(−1) > 0)
   ============================  ==========================================  =============================
   SGD / GD                      ``z − (1 − h)``                              ``h < 2``
   heavy ball (``v ← βv + g;``   ``z² − (1 + β − h) z + β``                   ``h < 2(1 + β)``
   ``w ← w − ηv``)
   Nesterov (``v ← βv + g;``     ``z² − (1 + β − h(1 + β)) z + β(1 − h)``     ``h < 2(1 + β)/(1 + 2β)``
   ``w ← w − η(g + βv)``)
   Adam-like EMA, frozen         ``z² − (1 + β₁ − (1 − β₁) h) z + β₁``        ``h < 2(1 + β₁)/(1 − β₁)``
   preconditioner ``P``          (``h = η λ_max(P⁻¹H)``)                      (38 at β₁ = 0.9)
   ============================  ==========================================  =============================

   (p(1) = h, resp. (1 − β₁)h, is positive for h > 0, and |p(0)| < 1 holds on the whole stable range for
   0 ≤ β < 1, so p(−1) > 0 is the binding condition.) These agree with docs/theory.md §3 and with
   ``torch.optim.SGD`` / ``torch.optim.Adam`` (Adam's bias correction ``m/(1 − β₁ᵗ)`` → ``m`` does not change
   the asymptotic bound, although near it the first steps are transiently amplified).

2. **Batch-size laws** [model / recon]: the bound is applied to the extremal eigenvalue ``λ'_1(B)`` of
   the batch curvature predicted by the additive (spiked Wigner, :func:`rmt.wigner.batch_hessian_extremal`)
   or the multiplicative (spiked Wishart, :func:`rmt.wishart.batch_ggn_extremal`) model. Nothing here
   assumes "linear scaling": the exponent ``d log η / d log B`` is whatever the chosen model gives (1/2 at
   the additive edge, → 1 in the multiplicative ``P ≫ B·C`` regime, → 0 once the top outlier has separated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

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
from rmt.wigner import (
    batch_hessian_extremal,
    critical_batch_size,
    kappa,
    noise_scale,
    semicircle_edge,
    wigner_overlap,
)
from rmt.wishart import batch_ggn_extremal, marchenko_pastur_edges, wishart_overlap

__all__ = [
    "METHODS",
    "MOMENTUM_METHODS",
    "MODELS",
    "ADAM_FORMS",
    "stability_constant",
    "max_lr",
    "polyak_heavy_ball",
    "ls_mean_square_growth",
    "ls_mean_square_threshold",
    "batch_top_curvature",
    "noise_edge_curvature",
    "batch_regime",
    "model_critical_batch_size",
    "max_lr_vs_batch",
    "mccandlish_max_lr",
    "local_exponent",
    "adam_preconditioner",
    "adam_reversion_batch_size",
    "adam_max_lr_vs_batch",
    "min_damping",
]

METHODS: tuple[str, ...] = ("sgd", "heavy_ball", "nesterov", "adam")
MOMENTUM_METHODS: tuple[str, ...] = ("sgd", "heavy_ball", "nesterov")
MODELS: tuple[str, ...] = ("additive", "multiplicative")
ADAM_FORMS: tuple[str, ...] = ("second_moment", "sqrt_curvature")


# ------------------------------------------------------------------------------------------------------------
# 1. Quadratic stability thresholds
# ------------------------------------------------------------------------------------------------------------
@refuse_non_finite()
def stability_constant(
    method: str = "sgd", momentum: ArrayLike = 0.0, beta1: ArrayLike = 0.9
) -> float | FloatArray:
    """The constant ``c`` of the stability condition ``η λ < c`` (see the module table).

    ``sgd``: 2 (``momentum`` must be 0: PyTorch's SGD with momentum is ``heavy_ball``); ``heavy_ball``:
    ``2(1 + β)``; ``nesterov``: ``2(1 + β)/(1 + 2β)``; ``adam``: ``2(1 + β₁)/(1 − β₁)`` (``momentum`` unused,
    must be 0). ``momentum`` β ∈ [0, 1), ``beta1`` β₁ ∈ [0, 1); both broadcast.
    """
    method = check_choice(method, "method", METHODS)
    beta = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    if method in ("sgd", "adam") and np.any(beta != 0):
        hint = "use method='heavy_ball' or 'nesterov'" if method == "sgd" else "Adam's momentum is beta1"
        raise ValueError(f"momentum must be 0 for method={method!r} ({hint}), got {float(np.max(beta)):g}")
    if method == "sgd":
        out = np.full_like(beta, 2.0)
    elif method == "heavy_ball":
        out = 2.0 * (1.0 + beta)
    elif method == "nesterov":
        out = 2.0 * (1.0 + beta) / (1.0 + 2.0 * beta)
    else:
        b1 = check_in_range(beta1, "beta1", 0.0, 1.0, high_open=True)
        out = 2.0 * (1.0 + b1) / (1.0 - b1)
    return scalar_or_array(np.asarray(out, dtype=np.float64))


@refuse_non_finite()
def max_lr(
    curvature: ArrayLike, method: str = "sgd", momentum: ArrayLike = 0.0, beta1: ArrayLike = 0.9
) -> float | FloatArray:
    """Largest stable learning rate ``η_max = c / λ`` on a quadratic with top curvature ``λ`` [exact].

    ``c`` is :func:`stability_constant`. For ``method="adam"`` the curvature must be that of the
    *preconditioned* problem, ``λ_max(P⁻¹H)`` with the frozen diagonal preconditioner ``P = diag(√v̂) + ε``;
    β₁ is ``beta1``. ``curvature`` > 0 (a non-positive curvature direction has no finite bound).
    """
    lam = check_positive(curvature, "curvature")
    c = np.asarray(stability_constant(method, momentum, beta1), dtype=np.float64)
    return scalar_or_array(c / lam)


@refuse_non_finite()
def polyak_heavy_ball(L: ArrayLike, mu: ArrayLike) -> tuple[float | FloatArray, float | FloatArray]:
    """Polyak's optimal heavy-ball parameters for a spectrum in ``[μ, L]``, 0 < μ ≤ L [exact].

    ``η = 4/(√L + √μ)²``, ``β = ((√L − √μ)/(√L + √μ))²``. In PyTorch's convention (``v ← βv + g; w ← w − ηv``,
    identical to ``w ← w − ηg + β(w − w_prev)``) every eigenvalue in [μ, L] then has complex roots of modulus
    ``√β``, so the linear convergence rate is ``(√L − √μ)/(√L + √μ)`` — the optimum over all (η, β).
    """
    big = check_positive(L, "L")
    small = check_positive(mu, "mu")
    if np.any(small > big):
        raise ValueError("mu must be <= L (the spectrum is [mu, L])")
    root_l, root_mu = np.sqrt(big), np.sqrt(small)
    lr = 4.0 / (root_l + root_mu) ** 2
    momentum = ((root_l - root_mu) / (root_l + root_mu)) ** 2
    return scalar_or_array(lr), scalar_or_array(momentum)


@refuse_non_finite()
def ls_mean_square_growth(lr: ArrayLike, batch_size: ArrayLike, dim: ArrayLike) -> float | FloatArray:
    """One-step factor of ``E‖w − w*‖²`` for SGD on noiseless Gaussian least squares [exact].

    Loss ``½ E(xᵀ(w − w*))²`` with ``x ~ N(0, I_d)``; a step uses the mean gradient of ``B`` i.i.d. samples
    (with replacement / infinite pool). With ``Ĥ = (1/B) Σ xᵢxᵢᵀ`` the Gaussian fourth moment gives
    ``E Ĥ² = (1 + (d + 1)/B) I``, so for every error ``e``: ``E‖(I − ηĤ)e‖² = r ‖e‖²`` with
    ``r = 1 − 2η + η² (B + d + 1)/B``.
    """
    eta = check_positive(lr, "lr", allow_zero=True)
    b = check_batch_size(batch_size)
    d = check_positive(dim, "dim")
    return scalar_or_array(1.0 - 2.0 * eta + eta**2 * (b + d + 1.0) / b)


@refuse_non_finite()
def ls_mean_square_threshold(batch_size: ArrayLike, dim: ArrayLike) -> float | FloatArray:
    """Mean-square stability threshold ``η_MS(B) = 2B/(B + d + 1)`` of Gaussian least-squares SGD [exact].

    The positive root of :func:`ls_mean_square_growth` ``= 1``: ``E‖w − w*‖²`` decays iff ``0 < η < η_MS``.
    ``batch_size`` ≥ 1, ``dim`` > 0 (the input dimension d).
    """
    b = check_batch_size(batch_size)
    d = check_positive(dim, "dim")
    return scalar_or_array(2.0 * b / (b + d + 1.0))


# ------------------------------------------------------------------------------------------------------------
# 2. Batch-size laws from the random-matrix models
# ------------------------------------------------------------------------------------------------------------
def _aspect_ratio(batch_sizes: Any, n_params: Any, outputs_per_sample: Any) -> float | FloatArray:
    """Wishart aspect ratio ``q = P/(B·C)``: parameters over effective samples (docs/theory.md §2)."""
    b = check_batch_size(batch_sizes)
    p = check_positive(n_params, "n_params")
    return scalar_or_array(p / (b * check_positive(outputs_per_sample, "outputs_per_sample")))


def _check_model_args(
    model: str, n_data: Any, outputs_per_sample: Any, batch_sizes: Any = None, batch_name: str = "batch_sizes"
) -> str:
    model = check_choice(model, "model", MODELS)
    if batch_sizes is not None:  # checked here so that the error names the caller's argument
        check_batch_size(
            batch_sizes, n_data if model == "additive" and n_data is not None else None, batch_name
        )
    check_positive(outputs_per_sample, "outputs_per_sample")
    finite_pool = n_data is not None and bool(np.any(np.isfinite(as_float_array(n_data, "n_data"))))
    if model == "multiplicative" and finite_pool:
        raise ValueError(
            "n_data must be None for model='multiplicative': the finite-N correction of the spiked-Wishart "
            "model is not part of the model (docs/theory.md §2); use model='additive' for sampling without "
            "replacement"
        )
    return model


@refuse_non_finite()
def batch_top_curvature(
    batch_sizes: ArrayLike,
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "additive",
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Predicted top eigenvalue ``λ'_1(B)`` of the batch curvature.

    ``additive``: spiked Wigner, ``λ + ν²/λ`` above threshold, else the edge ``2ν`` with ``ν² = Pσ²κ(B)``
    (:func:`rmt.wigner.batch_hessian_extremal`). ``multiplicative``: spiked Wishart with ``q = P/(B·C)``,
    ``λ(1 + qσ²/(λ − σ²))`` above threshold, else ``σ²(1 + √q)²`` (:func:`rmt.wishart.batch_ggn_extremal`).
    """
    model = _check_model_args(model, n_data, outputs_per_sample, batch_sizes)
    if model == "additive":
        return batch_hessian_extremal(lam, sigma2, n_params, batch_sizes, n_data)
    return batch_ggn_extremal(lam, sigma2, n_params, batch_sizes, outputs_per_sample)


@refuse_non_finite()
def noise_edge_curvature(
    batch_sizes: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "additive",
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Top of the batch-noise bulk: the curvature a *flat* direction of ``H`` has in ``H_B`` / ``G_B``.

    ``additive``: semicircle edge ``2ν(B)``; ``multiplicative``: Marchenko–Pastur edge ``σ²(1 + √q)²``,
    ``q = P/(B·C)``.
    """
    model = _check_model_args(model, n_data, outputs_per_sample, batch_sizes)
    if model == "additive":
        return semicircle_edge(noise_scale(sigma2, n_params, batch_sizes, n_data))
    return marchenko_pastur_edges(sigma2, _aspect_ratio(batch_sizes, n_params, outputs_per_sample))[1]


@refuse_non_finite(allow_inf=True)
def model_critical_batch_size(
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "additive",
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Batch size above which the top spike ``λ`` separates from the noise bulk (``inf`` if it never does).

    ``additive``: ``ν(B*) = |λ|`` (:func:`rmt.wigner.critical_batch_size`). ``multiplicative``: the BBP
    condition ``λ = σ²(1 + √q)`` with ``q = P/(B·C)`` gives ``B* = P / (C (λ/σ² − 1)²)`` for ``λ > σ²`` (else
    ``inf``).
    """
    model = _check_model_args(model, n_data, outputs_per_sample)
    if model == "additive":
        return critical_batch_size(lam, sigma2, n_params, n_data)
    spike = check_positive(lam, "lam")
    s2 = check_positive(sigma2, "sigma2")
    p = check_positive(n_params, "n_params")
    c = check_positive(outputs_per_sample, "outputs_per_sample")
    excess = spike / s2 - 1.0
    with np.errstate(divide="ignore"):
        out = np.where(excess > 0, p / (c * np.maximum(excess, 0.0) ** 2), np.inf)
    return scalar_or_array(np.asarray(out, dtype=np.float64))


def batch_regime(
    batch_sizes: ArrayLike,
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "additive",
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> str | np.ndarray:
    """``"outlier"`` where the top spike has separated from the noise bulk, else ``"edge"``.

    Same condition as the outlier formulas (a non-zero eigenvector overlap): additive ``|λ| > ν(B)``,
    multiplicative ``λ > σ²(1 + √q)`` — equivalently ``B > B*`` (:func:`model_critical_batch_size`).
    """
    model = _check_model_args(model, n_data, outputs_per_sample, batch_sizes)
    if model == "additive":
        check_finite(lam, "lam")
    else:
        check_positive(lam, "lam", allow_zero=True)
    if model == "additive":
        overlap = wigner_overlap(lam, noise_scale(sigma2, n_params, batch_sizes, n_data))
    else:
        overlap = wishart_overlap(lam, sigma2, _aspect_ratio(batch_sizes, n_params, outputs_per_sample))
    out = np.where(np.asarray(overlap) > 0, "outlier", "edge")
    return str(out) if out.ndim == 0 else out


@refuse_non_finite()
def max_lr_vs_batch(
    batch_sizes: ArrayLike,
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "additive",
    method: str = "sgd",
    momentum: ArrayLike = 0.0,
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Predicted maximal stable learning rate ``η_max(B) = c / λ'_1(B)`` [model].

    ``λ'_1(B)`` from :func:`batch_top_curvature` (``model`` additive or multiplicative), ``c`` from
    :func:`stability_constant` for ``method`` ∈ {sgd, heavy_ball, nesterov} (Adam:
    :func:`adam_max_lr_vs_batch`). Assumes the step is limited by the top direction of the batch curvature
    (quadratic model around a checkpoint). Additive, ``N = ∞``: ``η_max = √B · c/(2√(Pσ²))`` for ``B < B*``
    (exponent 1/2) and ``η_max = η_∞/(1 + B*/B)`` above (McCandlish form, :func:`mccandlish_max_lr`).
    With finite ``N`` the edge exponent is ``½(1 + B/(N − B))`` (slightly above ½). Multiplicative:
    ``λ'_1 ≈ σ² P/(B·C)`` for ``P ≫ B·C`` (exponent → 1).
    """
    method = check_choice(method, "method", METHODS)
    if method == "adam":
        raise ValueError("method='adam' needs the preconditioner: use adam_max_lr_vs_batch")
    check_positive(lam, "lam", allow_zero=True)  # a stability bound needs the top (positive) curvature
    curvature = batch_top_curvature(
        batch_sizes, lam, sigma2, n_params, model=model, n_data=n_data, outputs_per_sample=outputs_per_sample
    )
    return max_lr(curvature, method=method, momentum=momentum)


@refuse_non_finite()
def mccandlish_max_lr(batch_size: ArrayLike, eta_inf: ArrayLike, b_noise: ArrayLike) -> float | FloatArray:
    """McCandlish et al. form ``η_∞ / (1 + B_noise/B)`` (η_∞ > 0, B_noise ≥ 0, B ≥ 1).

    The additive model above threshold gives exactly this with ``η_∞ = c/λ_1`` and ``B_noise = B* = Pσ²/λ_1²``
    (``N = ∞``), since ``λ + ν²/λ = λ(1 + B*/B)``.
    """
    b = check_batch_size(batch_size)
    eta = check_positive(eta_inf, "eta_inf")
    noise = check_positive(b_noise, "b_noise", allow_zero=True)
    return scalar_or_array(eta / (1.0 + noise / b))


@refuse_non_finite()
def local_exponent(batch_sizes: ArrayLike, values: ArrayLike) -> FloatArray:
    """Local exponent ``d log(values) / d log B`` by finite differences on the log–log curve.

    Interior points: the second-order (non-uniform) central difference, a positively weighted mean of the two
    neighbouring secant slopes; end points: the secant slope. So a monotone curve gets exponents of one sign,
    and a pure power law (a line in log–log) gets its exponent exactly. ``batch_sizes``: 1-D, strictly
    increasing, > 0, at least 2 points; ``values``: same length, > 0.
    """
    b = check_positive(batch_sizes, "batch_sizes")
    v = check_positive(values, "values")
    if b.ndim != 1 or b.size < 2:
        raise ValueError(f"batch_sizes must be 1-D with at least 2 points, got shape {b.shape}")
    if v.shape != b.shape:
        raise ValueError(f"values must have the shape of batch_sizes {b.shape}, got {v.shape}")
    if np.any(np.diff(b) <= 0):
        raise ValueError("batch_sizes must be strictly increasing")
    log_b, log_v = np.log(b), np.log(v)
    return np.asarray(np.gradient(log_v, log_b, edge_order=1), dtype=np.float64)


# ------------------------------------------------------------------------------------------------------------
# 3. Adam and damped / adaptive methods [model / recon]
# ------------------------------------------------------------------------------------------------------------
@refuse_non_finite()
def adam_preconditioner(
    batch_size: ArrayLike,
    grad_sq: ArrayLike,
    grad_var: ArrayLike,
    eps: ArrayLike = 1e-8,
    n_data: ArrayLike | None = None,
) -> float | FloatArray:
    """Frozen Adam preconditioner entry ``p(B) = √v̂ + ε`` with ``v̂ ≈ g² + s κ(B)``.

    Assumptions [model]: v̂ has equilibrated to ``E[g_B²] = g² + Var(g_B)`` at the current weights (the EMA
    over steps sees batches at nearly the same w); coordinates are homogeneous, so ``g²`` (``grad_sq``, the
    mean squared full-batch gradient per coordinate) and ``s`` (``grad_var``, the per-sample gradient variance
    per coordinate, ``tr Σ / P``) are scalars and ``P = p I``; ``κ(B) = (N − B)/(B(N − 1))`` (``1/B`` for
    ``N = ∞``).
    """
    b = check_batch_size(batch_size, n_data)
    g2 = check_positive(grad_sq, "grad_sq", allow_zero=True)
    s = check_positive(grad_var, "grad_var", allow_zero=True)
    e = check_positive(eps, "eps", allow_zero=True)
    k = np.asarray(kappa(scalar_or_array(b), n_data), dtype=np.float64)
    return scalar_or_array(np.sqrt(g2 + s * k) + e)


@refuse_non_finite()
def adam_reversion_batch_size(
    grad_sq: ArrayLike, grad_var: ArrayLike, eps: ArrayLike = 1e-8, n_data: ArrayLike | None = None
) -> float | FloatArray:
    """Batch size ``B_rev`` where Adam's gradient-noise term stops dominating its preconditioner.

    Defined by ``√(s κ(B_rev)) = |g| + ε`` (noise part of ``√v̂`` equals its large-B floor):
    ``B_rev = s/(|g| + ε)²`` for ``N = ∞``, else ``N / (1 + r(N − 1))`` with ``r = (|g| + ε)²/s``. For
    ``B ≪ B_rev`` the preconditioner shrinks like ``B^{-1/2}``; for ``B ≫ B_rev`` it is constant and Adam
    reverts to SGD-like scaling ``η_max ∝ 1/λ'_1(B)``. Large ε (or a large mean gradient) pushes ``B_rev``
    → 0: the mechanism check "Adam with large ε reverts to linear scaling" (docs/validation.md §4).
    ``grad_var`` = 0 gives 0.
    """
    g2 = check_positive(grad_sq, "grad_sq", allow_zero=True)
    s = check_positive(grad_var, "grad_var", allow_zero=True)
    e = check_positive(eps, "eps", allow_zero=True)
    floor_sq = (np.sqrt(g2) + e) ** 2
    if np.any(floor_sq <= 0):
        raise ValueError("grad_sq and eps must not both be 0 (the preconditioner then never stops shrinking)")
    if n_data is None:
        return scalar_or_array(np.asarray(s / floor_sq, dtype=np.float64))
    n = check_n_data(n_data)
    with np.errstate(invalid="ignore"):
        finite = n * s / (s + floor_sq * (n - 1.0))
    return scalar_or_array(np.asarray(np.where(np.isinf(n), s / floor_sq, finite), dtype=np.float64))


@refuse_non_finite()
def adam_max_lr_vs_batch(
    batch_sizes: ArrayLike,
    lam: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "additive",
    form: str = "second_moment",
    beta1: ArrayLike = 0.9,
    grad_sq: ArrayLike | None = None,
    grad_var: ArrayLike | None = None,
    eps: ArrayLike = 1e-8,
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Adam's maximal stable learning rate versus batch size [model / recon], docs/theory.md §3.

    The exact statement is ``η λ_max(P⁻¹ H_B) < c(β₁) = 2(1 + β₁)/(1 − β₁)`` for the EMA iteration with a
    frozen diagonal preconditioner ``P = diag(√v̂) + ε`` (:func:`max_lr` with ``method="adam"``). Two models
    for how ``λ_max(P⁻¹H_B)`` depends on B, both using ``λ'_1(B)`` from :func:`batch_top_curvature`:

    - ``form="sqrt_curvature"`` (the paper's argument): the preconditioner acts like ``|H_B|^{1/2}``, so the
      effective curvature is ``√λ'_1(B)`` and ``η_max = c(β₁)/√λ'_1(B)`` (∝ √B when ``λ'_1 ∝ 1/B``;
      dimensionally a heuristic: the constant is not predicted).
    - ``form="second_moment"`` (sharper, testable): ``P = p(B) I`` with ``p(B) = √(g² + s κ(B)) + ε``
      (:func:`adam_preconditioner`; needs ``grad_sq`` and ``grad_var``), so ``η_max = c(β₁) p(B)/λ'_1(B)``.
      Below :func:`adam_reversion_batch_size` ``p ∝ B^{-1/2}`` and the exponent is the SGD exponent − 1/2
      (e.g. 1/2 in the multiplicative ``P ≫ B·C`` regime, 0 at the additive edge); above it ``p`` is constant
      and the exponent reverts to SGD's. Assumes the top eigenvector of ``P⁻¹H_B`` is that of ``H_B``
      (homogeneous ``P``).
    """
    form = check_choice(form, "form", ADAM_FORMS)
    check_positive(lam, "lam", allow_zero=True)  # a stability bound needs the top (positive) curvature
    c = np.asarray(stability_constant("adam", 0.0, beta1), dtype=np.float64)
    curvature = np.asarray(
        batch_top_curvature(
            batch_sizes,
            lam,
            sigma2,
            n_params,
            model=model,
            n_data=n_data,
            outputs_per_sample=outputs_per_sample,
        )
    )
    if form == "sqrt_curvature":
        return scalar_or_array(c / np.sqrt(curvature))
    if grad_sq is None or grad_var is None:
        raise ValueError("form='second_moment' needs grad_sq and grad_var (per-coordinate g² and Var of g_i)")
    pool = n_data if model == "additive" else None
    precond = adam_preconditioner(batch_sizes, grad_sq, grad_var, eps, pool)
    return scalar_or_array(c * np.asarray(precond) / curvature)


@refuse_non_finite()
def min_damping(
    lr: ArrayLike,
    batch_size: ArrayLike,
    sigma2: ArrayLike,
    n_params: ArrayLike,
    *,
    model: str = "multiplicative",
    method: str = "sgd",
    momentum: ArrayLike = 0.0,
    beta1: ArrayLike = 0.9,
    n_data: ArrayLike | None = None,
    outputs_per_sample: ArrayLike = 1,
) -> float | FloatArray:
    """Minimal damping ``δ_min(η, B)`` of a damped second-order / adaptive step [recon], docs/theory.md §3.

    Step ``w ← w − η (C + δ I)⁻¹ g_B`` (or Adam's ``η m/(√v̂ + ε)`` with ``δ = ε``). Assumptions: in a
    direction that is flat for the curvature estimate ``C`` (``C``'s eigenvalue ≪ δ, e.g. a low-rank / stale /
    other-batch estimate, or ``√v̂ ≪ ε``) the step is plain ``method`` with learning rate ``η/δ``; in ``H_B``
    a flat direction of ``H`` has curvature up to the noise-bulk edge ``λ_noise(B)``
    (:func:`noise_edge_curvature`). Stability there requires ``(η/δ) λ_noise(B) < c``, i.e.
    ``δ_min = η λ_noise(B)/c`` = ``lr / max_lr(λ_noise(B), method, ...)``. Multiplicative model with
    ``P ≫ B·C``: ``λ_noise ≈ σ²P/(B·C)``, so ``δ_min ∝ η/B`` (the paper's relation); additive model:
    ``δ_min ∝ η/√B``.
    """
    eta = check_positive(lr, "lr")
    _check_model_args(model, n_data, outputs_per_sample, batch_size, "batch_size")
    flat = noise_edge_curvature(
        batch_size, sigma2, n_params, model=model, n_data=n_data, outputs_per_sample=outputs_per_sample
    )
    c = np.asarray(stability_constant(method, momentum, beta1), dtype=np.float64)
    lam_noise = np.asarray(flat, dtype=np.float64)
    # η / max_lr(λ_noise) with max_lr = c / λ_noise; 0 when the batch has no noise (B = N: λ_noise = 0)
    bound = c / np.where(lam_noise > 0, lam_noise, 1.0)
    return scalar_or_array(np.where(lam_noise > 0, eta / bound, 0.0))
