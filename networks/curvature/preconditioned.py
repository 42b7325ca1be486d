"""The matrix Adam iterates: P^{-1/2} H_B P^{-1/2} with Adam's frozen diagonal preconditioner
P = diag(√v̂) + ε (docs/theory.md §3c).

:func:`adam_second_moment` builds v̂ exactly as a divergence trial's warm-up does
(:class:`networks.stability.TrialRunner`: ``warmup_steps`` lr-0 steps on fresh batches at the checkpoint, so
the weights never move): v = (1 − β₂) Σ_t β₂^{W−1−t} g_t², v̂ = v/(1 − β₂^W), g_t the gradient of the batch
mean loss on warm-up batch t. :class:`PreconditionedOperator` is D A D with D = diag(P^{-1/2}) for any
curvature operator A; it is symmetric and similar to P⁻¹A (P⁻¹A = D (DAD) D⁻¹), so
λ_max(P⁻¹H_B) = λ_max(DH_BD), computed by the package's Lanczos (:func:`preconditioned_top_eigenvalue`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from networks.curvature._batches import (
    as_batch_list,
    batch_failure,
    check_bn_mode,
    check_model,
    check_targets,
    curvature_mode,
    select_params,
)
from networks.curvature.operator import CurvatureOperator, all_finite
from networks.training import loss_targets
from rmt.checks import check_in_range, check_positive

__all__ = [
    "PreconditionedOperator",
    "adam_preconditioner_diagonal",
    "adam_second_moment",
    "preconditioned_top_eigenvalue",
]


def _real_number(value: object, name: str, accepted: str) -> float:
    """``value`` as a float if it is a real number (not a bool, array or tensor), else ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number {accepted}, got {type(value).__name__}")
    return float(value)


def _real_vector(value: object, name: str) -> Tensor:
    """``value`` as a detached real floating 1-D torch tensor (integer dtypes become float64).

    Raises:
        TypeError: not a torch tensor, or a complex or boolean one.
        ValueError: not 1-D.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a 1-D real torch tensor, got {type(value).__name__}")
    if value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be a real (integer or floating) tensor, got dtype {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(value.shape)}")
    value = value.detach()
    return value if value.is_floating_point() else value.to(torch.float64)


def _batch_gradient(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    params: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    label: str,
) -> Tensor:
    """g = ∇ of ``loss_fn(model(x), targets)`` w.r.t. ``params``, flat float64 (zero where a parameter does
    not enter the loss: Adam skips it and its v̂ stays 0). Failures of the model or the loss become errors
    that name the batch, the model and the loss."""
    try:
        out = model(x)
        target = loss_targets(loss_fn, out, y)
        check_targets(loss_fn, out, target, label)
        loss = loss_fn(out, target)
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"{label}: loss_fn must return a scalar (the batch mean loss), got {shape}")
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    except torch.OutOfMemoryError:
        raise
    except (ValueError, TypeError, RuntimeError, IndexError) as exc:
        error = batch_failure(label, model, loss_fn, x, y, exc, "differentiated")
        if error is exc:
            raise
        raise error from exc
    parts = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(params, grads, strict=True)]
    g = torch.cat([part.reshape(-1) for part in parts]).to(torch.float64)
    if not all_finite(g):
        raise ValueError(
            f"{label}: the gradient of model {type(model).__name__} with loss_fn {type(loss_fn).__name__} is "
            "not finite (NaN or inf); v̂ needs finite gradients (check the model's weights and the batch)"
        )
    return g


def adam_second_moment(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    batches: Sequence[tuple[Tensor, Tensor]],
    *,
    beta2: float,
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
) -> Tensor:
    """Adam's bias-corrected second moment v̂ (flat, ``parameters_to_vector`` order, float64) after one
    lr-0 step per batch of ``batches`` at the model's current weights (not modified).

    v_t = β₂ v_{t−1} + (1 − β₂) g_t² from v_0 = 0, v̂ = v_W/(1 − β₂^W) (torch.optim.Adam's update, weight
    decay 0), g_t the gradient of the batch mean loss on batch t (targets as the trial's
    :func:`networks.training.loss_targets`). ``beta2`` ∈ [0, 1); ``batches`` a non-empty sequence of (x, y)
    batches (a single (x, y) pair counts as one batch), x in the parameters' dtype; ``loss_fn`` with the mean
    reduction; ``bn_mode`` one of :data:`networks.options.BN_MODES`; ``params`` as in the curvature operators.

    Raises:
        TypeError / ValueError: invalid arguments (named); a batch on which the model or the loss fails or
            whose gradient is not finite (naming ``batches[t]``); a second moment that overflows float64.
    """
    b2 = _real_number(beta2, "beta2", "in [0, 1)")
    b2 = float(check_in_range(b2, "beta2", 0.0, 1.0, high_open=True))
    check_model(model, loss_fn)
    check_bn_mode(bn_mode)
    if isinstance(batches, (Tensor, str, bytes, dict)) or not isinstance(batches, Iterable):
        raise TypeError(f"batches must be a sequence of (x, y) batches, got {type(batches).__name__}")
    chosen = select_params(model, params)
    data = as_batch_list(batches, chosen[0].device, name="batches", dtype=chosen[0].dtype)
    single = len(data.batches) == 1
    v = torch.zeros(sum(p.numel() for p in chosen), dtype=torch.float64, device=chosen[0].device)
    with curvature_mode(model, chosen, bn_mode):
        for index, (x, y) in enumerate(data.batches):
            g = _batch_gradient(model, loss_fn, chosen, x, y, "batches" if single else f"batches[{index}]")
            v.mul_(b2).add_((1.0 - b2) * g * g)
    if not all_finite(v):
        raise ValueError(
            "batches: the squared gradients overflow float64 (entries of |g| above ~1e154); v̂ is not finite"
        )
    return v / (1.0 - b2 ** len(data.batches))


def adam_preconditioner_diagonal(v_hat: Tensor, eps: float) -> Tensor:
    """diag(P) = √v̂ + ε (torch.optim.Adam's denominator), in ``v_hat``'s floating dtype (integer → float64).

    ``v_hat`` a non-empty 1-D real tensor, finite and ≥ 0 entrywise; ``eps`` a finite real number > 0.

    Raises:
        TypeError / ValueError: invalid arguments (named), or √v̂ + ε overflowing ``v_hat``'s dtype.
    """
    e = float(check_positive(_real_number(eps, "eps", "> 0"), "eps"))
    v = _real_vector(v_hat, "v_hat")
    if v.numel() == 0:
        raise ValueError("v_hat must hold at least one entry (one per parameter), got an empty tensor")
    if not all_finite(v) or bool((v < 0).any()):
        raise ValueError("v_hat must be finite and >= 0 entrywise (a second moment)")
    diagonal = v.sqrt() + e
    if not all_finite(diagonal):
        raise ValueError(f"eps = {e:g} makes sqrt(v_hat) + eps overflow v_hat's dtype {v.dtype}")
    return diagonal


class PreconditionedOperator(CurvatureOperator):
    """D A D with D = diag(P)^{-1/2}: the symmetric form of P⁻¹A (same eigenvalues).

    ``base`` is a :class:`CurvatureOperator` (e.g. ``HessianOperator`` of a batch), ``diagonal`` the entries
    of P: a real 1-D tensor of the operator's size, finite and > 0 entrywise, with P^{-1/2} finite in the
    operator's dtype. ``scale`` holds D's entries (float64).

    Raises:
        TypeError / ValueError: ``base`` is not a CurvatureOperator, or ``diagonal`` violates the above.
    """

    def __init__(self, base: CurvatureOperator, diagonal: Tensor) -> None:
        if not isinstance(base, CurvatureOperator):
            raise TypeError(f"base must be a CurvatureOperator, got {type(base).__name__}")
        size = base.shape[0]
        diag = _real_vector(diagonal, "diagonal")
        if diag.shape != (size,):
            raise ValueError(f"diagonal must have shape ({size},) (the base operator's size), got "
                             f"{tuple(diag.shape)}")  # fmt: skip
        if not all_finite(diag) or not bool((diag > 0).all()):
            raise ValueError("diagonal (the preconditioner P) must be finite and > 0 entrywise")
        scale = diag.to(dtype=torch.float64, device=base.device).rsqrt()
        if not all_finite(scale.to(base.dtype)):
            raise ValueError(
                f"diagonal (the preconditioner P) is too small: P^(-1/2) overflows the operator's dtype "
                f"{base.dtype} (smallest entry {float(diag.min()):.3g})"
            )
        super().__init__(size, base.dtype, base.device)
        self.base = base
        self.scale = scale

    def _matvec(self, v: Tensor) -> Tensor:
        d = self.scale.to(v.dtype)
        return d * self.base.matvec(d * v).to(v.dtype)

    def provenance(self) -> dict[str, Any]:
        info = super().provenance()
        info["base"] = self.base.provenance()
        return info


def preconditioned_top_eigenvalue(
    base: CurvatureOperator,
    diagonal: Tensor,
    *,
    tol: float = 1e-4,
    max_products: int | None = None,
    seed: int = 0,
    stopping: str = "residual",
) -> tuple[float, float, int]:
    """(λ_max(P⁻¹A), its Lanczos residual, products used) for the preconditioner entries ``diagonal``
    (:func:`networks.lanczos.top_eigenpairs` on :class:`PreconditionedOperator`; ``tol``, ``max_products``,
    ``seed`` and ``stopping`` as there, docs/theory.md §5b).

    ``stopping`` defaults to "residual": the returned residual r = ‖Ay − θy‖ is then itself ≤ ``tol``·|θ| (the
    contract this function was written with). ``stopping="eigenvalue"`` (the solver's default) stops when the
    eigenvalue error bound min(r, r²/δ) is below ``tol``·|θ|: as accurate an eigenvalue in fewer products,
    but r itself may stay near √(``tol``·|θ|·δ).

    Raises:
        TypeError / ValueError: invalid arguments (named, as :class:`PreconditionedOperator` and
            :func:`networks.lanczos.top_eigenpairs`), or a non-finite product.
    """
    from networks.lanczos import top_eigenpairs

    op = PreconditionedOperator(base, diagonal)
    res = top_eigenpairs(op, k=1, which="LA", tol=tol, max_products=max_products, seed=seed,
                         return_eigenvectors=False, stopping=stopping)  # fmt: skip
    return float(res.eigenvalues[0]), float(res.residuals[0]), int(res.num_products)
