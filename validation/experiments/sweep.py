"""Step 4 of the pipeline: the batch-size sweep of extremal eigenvalues (one record per (B, batch) cell).

For each B on the grid and each of ``batches_per_size`` independent batches (``networks.data.batch_indices``:
B distinct pool samples, seeded by the cell): λ'_max and λ'_min of H_B, λ'_max of G_B (Lanczos to
``sweep_tol`` within ``sweep_max_products`` products), the squared overlaps of the top batch eigenvector with
the empirical top eigenvectors of H, and the batch sharpness g_Bᵀ H_B g_B / ‖g_B‖² (a learning-rate baseline).
At a few B, the spectrum of the noise operator H_B − H (SLQ): its second moment is the measured ν(B)².
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from validation import steps
from validation.config import RunConfig
from validation.experiments.checkpoints import Pool
from validation.provenance import derived_seed, indices_hash, timed

STEP = steps.SWEEP
NOISE_STEP = steps.NOISE_SPECTRUM


def batch_size_grid(config: RunConfig, critical_batch: float, n_data: int) -> list[int]:
    """The sweep's batch sizes: the configured list, or powers of two from ``min_batch`` up to
    min(N, max(``max_batch``, ``critical_multiple`` · B*)), extended (still ≤ N) to ``min_grid_points``
    values."""
    cfg = config.sweep
    if cfg.batch_sizes:
        return sorted({b for b in cfg.batch_sizes if b <= n_data})
    top = cfg.max_batch
    if math.isfinite(critical_batch) and critical_batch > 0:
        top = max(top, int(math.ceil(cfg.critical_multiple * critical_batch)))
    top = min(top, n_data)
    grid, b = [], cfg.min_batch
    while b <= top:
        grid.append(b)
        b *= 2
    while len(grid) < cfg.min_grid_points and grid[-1] * 2 <= n_data:
        grid.append(grid[-1] * 2)
    if grid[-1] < top:
        grid.append(top)
    return grid


def sweep_batch_indices(
    config: RunConfig, model_name: str, ckpt: int, n_data: int, batch_size: int, s: int
) -> Any:
    """Batch number ``s`` of size B: B distinct pool indices, seeded by the run seed and the cell."""
    from networks.data import batch_indices

    seed = derived_seed(config.seed, model_name, ckpt, "sweep", batch_size)
    return np.asarray(batch_indices(n_data, batch_size, seed, s), dtype=np.int64)


def batch_gradient(model: nn.Module, loss_fn: nn.Module, x: Tensor, y: Tensor, bn_mode: str) -> Tensor:
    """Flat gradient of the batch-mean loss: eval mode for ``bn_mode="eval"`` (running BN statistics); train
    mode for ``"train"`` (batch statistics), with the BN buffers restored afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    model.train(bn_mode == "train")
    try:
        with torch.enable_grad():
            grads = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
    flat = [
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(flat)


def measure_batch_cell(
    config: RunConfig,
    model: nn.Module,
    loss_fn: nn.Module,
    pool: Pool,
    top_vectors: Tensor,
    *,
    model_name: str,
    ckpt: int,
    batch_size: int,
    batch_index: int,
) -> dict[str, Any]:
    """Extremal eigenvalues of H_B and G_B for one batch, overlaps, batch sharpness (one record)."""
    from networks.curvature.ggn import GGNOperator
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import top_eigenpairs

    cfg = config.curvature
    idx = sweep_batch_indices(config, model_name, ckpt, len(pool), batch_size, batch_index)
    t_idx = torch.as_tensor(idx, device=pool.x.device)
    x, y = pool.x[t_idx], pool.y[t_idx]
    seed = derived_seed(config.seed, model_name, ckpt, "sweep-lanczos", batch_size, batch_index)
    with timed() as timer:
        hess = HessianOperator(model, loss_fn, (x, y), bn_mode=config.bn_mode)
        ggn = GGNOperator(model, loss_fn, (x, y), bn_mode=config.bn_mode)
        tol, budget = cfg.sweep_tol, cfg.sweep_max_products
        top = top_eigenpairs(  # its eigenvector is used (overlaps): the residual rule
            hess, k=1, which="LA", tol=tol, max_products=budget, seed=seed, stopping="residual"
        )
        bottom = top_eigenpairs(  # small against ‖H_B‖ and above a large null space: relative to itself
            hess,
            k=1,
            which="SA",
            tol=tol,
            max_products=budget,
            seed=seed + 1,
            return_eigenvectors=False,
            stopping="relative",
        )
        top_g = top_eigenpairs(
            ggn, k=1, which="LA", tol=tol, max_products=budget, seed=seed + 2, return_eigenvectors=False
        )
        assert top.eigenvectors is not None
        u = top.eigenvectors[:, 0].to(top_vectors.dtype)
        overlaps = (top_vectors.T @ u) ** 2 / float(u @ u)
        g = batch_gradient(model, loss_fn, x, y, config.bn_mode)
        g_norm2 = float(g @ g)
        sharpness = float(g @ (hess @ g)) / g_norm2 if g_norm2 > 0 else math.nan
    return {
        "model": model_name,
        "ckpt": ckpt,
        "B": batch_size,
        "s": batch_index,
        "seed": seed,
        "indices_hash": indices_hash(idx),
        "bn_mode": config.bn_mode,
        "dtype": config.dtype,
        "lam_max_H": float(top.eigenvalues[0]),
        "lam_min_H": float(bottom.eigenvalues[0]),
        "lam_max_G": float(top_g.eigenvalues[0]),
        "residual_max_H": float(top.residuals[0]),
        "residual_min_H": float(bottom.residuals[0]),
        "residual_max_G": float(top_g.residuals[0]),
        "converged": bool(np.all(top.converged) and np.all(bottom.converged) and np.all(top_g.converged)),
        "num_products": int(top.num_products + bottom.num_products + top_g.num_products + 1),
        "overlap_top1": float(overlaps[0]),
        "overlap_topk": float(overlaps.sum()),
        "batch_sharpness": sharpness,
        "grad_norm2": g_norm2,
        **timer.fields(),
    }


def measure_noise_spectrum(
    config: RunConfig,
    model: nn.Module,
    loss_fn: nn.Module,
    pool: Pool,
    *,
    model_name: str,
    ckpt: int,
    batch_size: int,
) -> dict[str, Any]:
    """SLQ densities of H_B and of the noise operator H_B − H for batch 0 of size B; its second moment
    tr((H_B−H)²)/P is the
    measured ν(B)² (docs/theory.md §4), to compare with κ(B)·Pσ² and with the semicircle of radius 2ν."""
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import slq_density
    from validation.experiments.spectra import density_summary

    cfg = config.curvature
    idx = sweep_batch_indices(config, model_name, ckpt, len(pool), batch_size, 0)
    t_idx = torch.as_tensor(idx, device=pool.x.device)
    seed = derived_seed(config.seed, model_name, ckpt, "noise-spectrum", batch_size)
    with timed() as timer:
        hess = HessianOperator(model, loss_fn, (pool.x, pool.y), bn_mode=config.bn_mode)
        hess_b = HessianOperator(model, loss_fn, (pool.x[t_idx], pool.y[t_idx]), bn_mode=config.bn_mode)
        density = slq_density(hess_b - hess, num_probes=cfg.slq_probes, num_steps=cfg.slq_steps, seed=seed)
        batch_density = slq_density(hess_b, num_probes=cfg.slq_probes, num_steps=cfg.slq_steps, seed=seed + 1)
    summary = density_summary(density)
    return {
        "model": model_name,
        "ckpt": ckpt,
        "B": batch_size,
        "s": 0,
        "seed": seed,
        "indices_hash": indices_hash(idx),
        "bn_mode": config.bn_mode,
        "dtype": config.dtype,
        "noise_slq": summary,
        "batch_slq": density_summary(batch_density),
        "nu2_measured": summary["second_moment"],
        "num_products": summary["num_products"],
        **timer.fields(),
    }
