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

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from networks.curvature._batches import curvature_mode, select_params
from networks.curvature.operator import CurvatureOperator
from networks.training import loss_targets
from rmt.checks import check_in_range, check_positive

__all__ = [
    "PreconditionedOperator",
    "adam_preconditioner_diagonal",
    "adam_second_moment",
    "preconditioned_top_eigenvalue",
]


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
    decay 0). ``beta2`` ∈ [0, 1); at least one batch."""
    b2 = float(check_in_range(beta2, "beta2", 0.0, 1.0, high_open=True))
    if len(batches) < 1:
        raise ValueError("batches must hold at least one (x, y) batch")
    chosen = select_params(model, params)
    v = torch.zeros(sum(p.numel() for p in chosen), dtype=torch.float64, device=chosen[0].device)
    with curvature_mode(model, chosen, bn_mode):
        for x, y in batches:
            out = model(x)
            loss = loss_fn(out, loss_targets(loss_fn, out, y))
            grads = torch.autograd.grad(loss, chosen)
            g = torch.cat([gr.reshape(-1) for gr in grads]).to(torch.float64)
            v.mul_(b2).add_((1.0 - b2) * g * g)
    return v / (1.0 - b2 ** len(batches))


def adam_preconditioner_diagonal(v_hat: Tensor, eps: float) -> Tensor:
    """diag(P) = √v̂ + ε (torch.optim.Adam's denominator); ``v_hat`` ≥ 0 entrywise, ``eps`` > 0."""
    e = float(check_positive(eps, "eps"))
    if not isinstance(v_hat, Tensor) or v_hat.ndim != 1:
        raise TypeError("v_hat must be a 1-D torch tensor")
    if bool((v_hat < 0).any()) or not bool(torch.isfinite(v_hat).all()):
        raise ValueError("v_hat must be finite and >= 0 entrywise")
    return v_hat.sqrt() + e


class PreconditionedOperator(CurvatureOperator):
    """D A D with D = diag(P)^{-1/2}: the symmetric form of P⁻¹A (same eigenvalues).

    ``base`` is a :class:`CurvatureOperator` (e.g. ``HessianOperator`` of a batch), ``diagonal`` the entries
    of P (> 0, length = the operator's size)."""

    def __init__(self, base: CurvatureOperator, diagonal: Tensor) -> None:
        if not isinstance(base, CurvatureOperator):
            raise TypeError(f"base must be a CurvatureOperator, got {type(base).__name__}")
        if not isinstance(diagonal, Tensor) or diagonal.shape != (base.shape[0],):
            raise ValueError(f"diagonal must be a tensor of shape ({base.shape[0]},)")
        if not bool((diagonal > 0).all()) or not bool(torch.isfinite(diagonal).all()):
            raise ValueError("diagonal (the preconditioner P) must be finite and > 0 entrywise")
        super().__init__(base.shape[0], base.dtype, base.device)
        self.base = base
        self.scale = diagonal.to(dtype=torch.float64, device=base.device).rsqrt()

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
) -> tuple[float, float, int]:
    """(λ_max(P⁻¹A), its Lanczos residual, products used) for the preconditioner entries ``diagonal``
    (:func:`networks.lanczos.top_eigenpairs` on :class:`PreconditionedOperator`)."""
    from networks.lanczos import top_eigenpairs

    op = PreconditionedOperator(base, diagonal)
    res = top_eigenpairs(op, k=1, which="LA", tol=tol, max_products=max_products, seed=seed,
                         return_eigenvectors=False)  # fmt: skip
    return float(res.eigenvalues[0]), float(res.residuals[0]), int(res.num_products)
