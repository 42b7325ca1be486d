"""Per-sample gradient and curvature along fixed directions: the inputs of the finite-horizon threshold
(docs/theory.md §3d).

:func:`direction_statistics` returns, for every pool sample i and every direction u_j (unit columns of a
P×k matrix: the top eigenvectors of H, to which it appends the unit remainder of the pool gradient outside
their span), the pair (g_ij, h_ij) = (u_jᵀ∇ℓ_i, u_jᵀH_iu_j) at the model's current weights. Costs one
per-sample gradient pass (``torch.func.vmap``) and k + 1 per-sample HVPs per sample. Nothing here reads a
threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from networks.curvature._batches import functional_form

__all__ = ["DirectionStatistics", "direction_statistics"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class DirectionStatistics:
    """Per-sample gradient projections ``grads`` g_ij and curvatures ``curvatures`` h_ij (n × k'), over the
    directions of :func:`direction_statistics` (k' = k + 1: the last is the unit gradient remainder;
    ``remainder_norm`` = ‖(I − UUᵀ)ḡ‖ of the mean gradient ḡ, 0 when ḡ lies in span U)."""

    grads: np.ndarray
    curvatures: np.ndarray
    remainder_norm: float


def _per_sample_grads(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, chunk: int) -> Tensor:
    """n × P matrix of per-sample gradients ∇ℓ_i (the model in eval mode, float64)."""
    params = [p for p in model.parameters() if p.requires_grad]
    call, primals = functional_form(model, params)

    def one(weights: tuple[Tensor, ...], xi: Tensor, yi: Tensor) -> Tensor:
        return loss_fn(call(weights, xi.unsqueeze(0)), yi.unsqueeze(0))

    grad_fn = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))
    rows = []
    for s in range(0, x.shape[0], chunk):
        parts = grad_fn(tuple(primals), x[s : s + chunk], y[s : s + chunk])
        rows.append(torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1).to(torch.float64))
    return torch.cat(rows)


def direction_statistics(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    vectors: Tensor | np.ndarray,
    *,
    chunk: int = 16,
    remainder_curvature: bool = True,
) -> DirectionStatistics:
    """(g_ij, h_ij) for each sample of (``x``, ``y``) along the columns u_j of ``vectors`` (P × k,
    orthonormal) and along the unit remainder r = (I − UUᵀ)ḡ/‖(I − UUᵀ)ḡ‖ of the samples' mean gradient ḡ
    (the k + 1-th direction; r = 0 when ḡ lies in span U). ``remainder_curvature=False`` skips the
    per-sample HVPs along r (its curvature column is then NaN; the gradient projections cost nothing extra).
    The model is used in eval mode and not modified."""
    from networks.curvature.per_sample import per_sample_hessian

    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    u = torch.as_tensor(np.asarray(vectors, dtype=np.float64) if isinstance(vectors, np.ndarray) else vectors)
    u = u.to(torch.float64)
    size = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if u.ndim != 2 or u.shape[0] != size or u.shape[1] < 1:
        raise ValueError(f"vectors must be a P x k matrix with P = {size} and k >= 1, got {tuple(u.shape)}")
    was_training = model.training
    model.eval()
    try:
        grads = _per_sample_grads(model, loss_fn, x, y, chunk)
        mean = grads.mean(0)
        rest = mean - u @ (u.T @ mean)
        norm = float(rest.norm())
        r = rest / norm if norm > 0 else torch.zeros_like(rest)
        basis = torch.cat([u, r[:, None]], dim=1)
        proj = (grads @ basis).numpy()
        curv = np.zeros(proj.shape)
        if not remainder_curvature:
            curv[:, -1] = np.nan
        used = basis if norm > 0 and remainder_curvature else u
        curv[:, : used.shape[1]] = per_sample_hessian(
            model, loss_fn, x, y, vectors=used, lanczos_steps=2, trace_probes=1, chunk_size=chunk
        ).rayleigh
    finally:
        model.train(was_training)
    return DirectionStatistics(grads=proj, curvatures=curv, remainder_norm=norm)
