"""The inputs of the finite-horizon threshold predictor (docs/theory.md §3d): one record per threshold
checkpoint, step 6c (``validation.steps.FINITE_HORIZON``; run by the pipeline where SGD or momentum
thresholds are measured, optional for step 6: without its record the predictor is NaN).

:func:`finite_horizon_record` takes the step-2 top eigenvectors u_j of the pool Hessian and measures, on
the pool the trials draw their batches from, each sample's gradient projection g_ij = u_jᵀ∇ℓ_i and curvature
h_ij = u_jᵀH_iu_j (``networks.curvature.gradient_stats.direction_statistics``), then stores their population
moments over the pool (mean, variance, covariance), their means over the trials' fixed evaluation subset
(``networks.stability``'s seed-0 subset of ``eval_size``) and the evaluation loss L(w_c). It reads no
threshold. Cost: one per-sample gradient pass and k + 1 per-sample HVPs per pool sample (~4–8 s for the
default VGG's pool of 128 on one core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from validation.config import RunConfig

__all__ = ["finite_horizon_record"]


def finite_horizon_record(
    config: RunConfig,
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    x: Tensor,
    y: Tensor,
    vectors: np.ndarray,
) -> dict[str, Any]:
    """The record of one checkpoint: per-direction lists ``grad_mean``, ``grad_variance``,
    ``curvature_mean``, ``curvature_variance``, ``covariance`` (pool population moments), ``eval_grad``,
    ``eval_curvature`` (evaluation-subset means), ``initial_loss`` (evaluation loss at w_c), the trial's
    ``steps``, ``warmup_steps``, ``delta``, ``eval_size``, ``pool_size``, and ``remainder_norm`` (the norm of
    the pool gradient outside span U, reported, not used). ``x``, ``y``: the pool as the trials see it;
    ``vectors``: P × k top eigenvectors of H (step 2)."""
    from networks.curvature.gradient_stats import direction_statistics
    from networks.stability import evaluation_subset  # the trials' own evaluation subset

    settings = config.thresholds.trial_settings(config.bn_mode)
    stats = direction_statistics(model, loss_fn, x, y, vectors, remainder_curvature=False)
    k = np.asarray(vectors).shape[1]
    g, h = stats.grads[:, :k], stats.curvatures[:, :k]
    ev = evaluation_subset(int(y.shape[0]), settings.eval_size)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss0 = float(loss_fn(model(x[ev]), y[ev]))
    model.train(was_training)
    ev_np = ev.numpy()
    gc, hc = g - g.mean(0), h - h.mean(0)
    return {
        "grad_mean": g.mean(0).tolist(),
        "grad_variance": (gc**2).mean(0).tolist(),
        "curvature_mean": h.mean(0).tolist(),
        "curvature_variance": (hc**2).mean(0).tolist(),
        "covariance": (gc * hc).mean(0).tolist(),
        "eval_grad": g[ev_np].mean(0).tolist(),
        "eval_curvature": h[ev_np].mean(0).tolist(),
        "initial_loss": loss0,
        "remainder_norm": stats.remainder_norm,
        "steps": settings.steps,
        "warmup_steps": settings.warmup_steps,
        "delta": settings.delta,
        "eval_size": settings.eval_size,
        "pool_size": int(y.shape[0]),
    }
