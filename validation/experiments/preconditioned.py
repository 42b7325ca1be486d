"""Step 6b: the matrix Adam iterates in a threshold trial, P^{-1/2}H_BP^{-1/2} (docs/theory.md §3c).

One cell per threshold target (model, checkpoint) and threshold batch size B. For each of the first
``thresholds.preconditioned_batches`` trial seeds (at most ``thresholds.seeds``) the cell rebuilds exactly
what Adam's trial of that seed holds after its warm-up: the batch sequence of
:class:`networks.stability.TrialRunner` (``torch.Generator(batch_seed)``, the batch seed of the threshold
cell), the ``warmup_steps`` lr-0 steps at the checkpoint, Adam's β₂ and ε of the run's trial settings —
and measures

* v̂ statistics (min, median, max of √v̂, the fraction of entries with √v̂ < ε);
* λ_max(P⁻¹H_B) on the trial's first post-warm-up batch (the batch its first real step uses);
* the same with P built from the warm-up batches AND that first batch (``lambda_step``: the v̂ Adam divides
  by in its first real step, which already holds that batch's g²);
* λ_max(P⁻¹H) on the whole pool, its top eigenvector u of P^{-1/2}HP^{-1/2}, and the pool samples'
  curvatures h_i = (P^{-1/2}u)ᵀH_i(P^{-1/2}u) along it (population mean = λ_max(P⁻¹H), variance) — the inputs
  of Adam's mean-square threshold (``rmt.mean_square``).

Nothing here reads a threshold: the predictors built on this record are independent of what they predict.
``warmup_steps = 0`` has no warm-up: v̂ is then built from the first trial batch (the v̂ of Adam's first
step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from validation import steps
from validation.config import RunConfig
from validation.provenance import derived_seed, indices_hash

__all__ = ["STEP", "measure_preconditioned_cell", "threshold_batch_seed"]

STEP = steps.PRECONDITIONED


def threshold_batch_seed(
    config: RunConfig, model_name: str, ckpt: int, batch_size: int, seed_index: int
) -> int:
    """The batch seed of Adam's threshold cell (model, checkpoint, B, seed index): the same derivation as
    ``validation.cells.threshold_cell``."""
    return derived_seed(config.seed, model_name, ckpt, "threshold", "adam", batch_size, seed_index)


def _v_hat_stats(v_hat: Tensor, eps: float) -> dict[str, float]:
    root = v_hat.sqrt()
    return {
        "sqrt_v_min": float(root.min()),
        "sqrt_v_median": float(root.median()),
        "sqrt_v_max": float(root.max()),
        "fraction_below_eps": float((root < eps).double().mean()),
    }


def _one_seed(
    config: RunConfig,
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    x: Tensor,
    y: Tensor,
    batch_size: int,
    batch_seed: int,
) -> dict[str, Any]:
    from networks.curvature.hessian import HessianOperator
    from networks.curvature.per_sample import per_sample_hessian
    from networks.curvature.preconditioned import (
        PreconditionedOperator,
        adam_preconditioner_diagonal,
        adam_second_moment,
        preconditioned_top_eigenvalue,
    )
    from networks.lanczos import top_eigenpairs
    from networks.stability import _batch_sequence  # the trial's own batch sequence

    settings = config.thresholds.trial_settings(config.bn_mode)
    _, beta2 = settings.adam_betas
    eps = settings.adam_eps
    warm = settings.warmup_steps
    n = int(x.shape[0])
    batches = _batch_sequence(n, batch_size, batch_seed, warm + 1)
    warm_batches = batches[:warm] if warm else batches[:1]
    cfg = config.curvature
    start = time.perf_counter()
    v_hat = adam_second_moment(
        model, loss_fn, [(x[i], y[i]) for i in warm_batches], beta2=beta2, bn_mode=settings.bn_mode
    )
    diag = adam_preconditioner_diagonal(v_hat, eps).to(x.dtype)
    first = batches[warm]
    hess_b = HessianOperator(model, loss_fn, (x[first], y[first]), bn_mode=settings.bn_mode)
    lam_b, res_b, prod_b = preconditioned_top_eigenvalue(  # only the eigenvalue is used
        hess_b, diag, tol=cfg.tol, max_products=cfg.max_products, seed=batch_seed, stopping="eigenvalue"
    )
    v_step = adam_second_moment(
        model, loss_fn, [(x[i], y[i]) for i in batches[: warm + 1]], beta2=beta2, bn_mode=settings.bn_mode
    )
    lam_s, res_s, _ = preconditioned_top_eigenvalue(
        hess_b, adam_preconditioner_diagonal(v_step, eps).to(x.dtype), tol=cfg.tol,
        max_products=cfg.max_products, seed=batch_seed, stopping="eigenvalue",
    )  # fmt: skip
    hess = HessianOperator(model, loss_fn, (x, y), bn_mode=settings.bn_mode)
    pool_op = PreconditionedOperator(hess, diag)
    top = top_eigenpairs(  # its eigenvector is used: the residual rule
        pool_op, k=1, which="LA", tol=cfg.tol, max_products=cfg.max_products, seed=batch_seed,
        stopping="residual",
    )  # fmt: skip
    assert top.eigenvectors is not None
    w = pool_op.scale * top.eigenvectors[:, 0].to(torch.float64)  # P^{-1/2} u
    h = per_sample_hessian(model, loss_fn, x, y, vectors=w, lanczos_steps=2, trace_probes=1).rayleigh[:, 0]
    return {
        "batch_seed": batch_seed,
        "warmup_batches": [b.tolist() for b in warm_batches],
        "batch": first.tolist(),
        "batch_hash": indices_hash(first.numpy()),
        **_v_hat_stats(v_hat, eps),
        "lambda_batch": lam_b,
        "lambda_batch_residual": res_b,
        "lambda_batch_products": prod_b,
        "lambda_step": lam_s,
        "lambda_step_residual": res_s,
        "step_fraction_below_eps": float((v_step.sqrt() < eps).double().mean()),
        "lambda_pool": float(top.eigenvalues[0]),
        "lambda_pool_residual": float(top.residuals[0]),
        "lambda_pool_products": int(top.num_products),
        "per_sample_mean": float(np.mean(h)),
        "per_sample_variance": float(np.var(h)),
        "per_sample_max": float(np.max(h)),
        "wall_time": time.perf_counter() - start,
    }


def measure_preconditioned_cell(
    config: RunConfig,
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    x: Tensor,
    y: Tensor,
    *,
    model_name: str,
    ckpt: int,
    batch_size: int,
) -> dict[str, Any]:
    """Step 6b for one (model, checkpoint, B): ``seeds`` maps each rebuilt trial seed index (a string) to its
    measurements (module docstring; its own ``wall_time``); ``x``, ``y`` the pool as the trials see it (the
    model's dtype and device)."""
    cfg = config.thresholds
    settings = cfg.trial_settings(config.bn_mode)
    count = min(cfg.preconditioned_batches, cfg.seeds)
    seeds = {
        str(s): _one_seed(config, model, loss_fn, x, y, batch_size,
                          threshold_batch_seed(config, model_name, ckpt, batch_size, s))
        for s in range(count)
    }  # fmt: skip
    lam = np.array([s["lambda_batch"] for s in seeds.values()], dtype=float)
    return {
        "model": model_name,
        "ckpt": ckpt,
        "B": batch_size,
        "optimizer": "adam",
        "pool_size": int(x.shape[0]),
        "adam_betas": list(settings.adam_betas),
        "adam_eps": settings.adam_eps,
        "warmup_steps": settings.warmup_steps,
        "bn_mode": settings.bn_mode,
        "seeds": seeds,
        "lambda_batch_median": float(np.median(lam)) if lam.size else float("nan"),
    }
