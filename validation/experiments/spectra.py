"""Step 2 of the pipeline: the empirical curvature of the pool at each checkpoint.

For H (Hessian) and G (GGN) of the mean pool loss: the top-k eigenpairs (Lanczos to relative residual ``tol``
within ``max_products`` products; k ≈ number of classes + a few), the smallest eigenvalue of H, and SLQ
densities (docs/theory.md §5). The top eigenvectors are stored as arrays (for overlaps in the sweep and as
the spike
vector of the profile model); the SLQ nodes and weights are the measured bulk μ of the predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from validation import steps
from validation.config import RunConfig
from validation.experiments.checkpoints import Pool
from validation.provenance import derived_seed, timed
from validation.store import ResultStore

STEP = steps.SPECTRA


def eigen_summary(result: Any) -> dict[str, Any]:
    """The JSON part of a ``networks.lanczos.EigenResult`` (eigenvectors stored separately)."""
    return {
        "eigenvalues": np.asarray(result.eigenvalues, dtype=float).tolist(),
        "residuals": np.asarray(result.residuals, dtype=float).tolist(),
        "converged": np.asarray(result.converged, dtype=bool).tolist(),
        "num_products": int(result.num_products),
        "which": str(result.which),
    }


def density_summary(density: Any) -> dict[str, Any]:
    """The JSON part of a ``networks.lanczos.SpectralDensity``: smoothed density on its grid, SLQ
    nodes/weights."""
    return {
        "grid": np.asarray(density.grid, dtype=float).tolist(),
        "density": np.asarray(density.density, dtype=float).tolist(),
        "nodes": np.atleast_2d(np.asarray(density.nodes, dtype=float)).tolist(),
        "weights": np.atleast_2d(np.asarray(density.weights, dtype=float)).tolist(),
        "num_products": int(density.num_products),
        "second_moment": float(density.moment(2)),
    }


def measure_spectra(
    config: RunConfig,
    model: nn.Module,
    loss_fn: nn.Module,
    pool: Pool,
    store: ResultStore,
    *,
    model_name: str,
    ckpt: int,
    key: str,
) -> dict[str, Any]:
    """Top-k of H and G, λ_min(H), SLQ densities of H and G on the whole pool (one record)."""
    from networks.curvature.ggn import GGNOperator
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import slq_density, top_eigenpairs

    cfg = config.curvature
    seed = derived_seed(config.seed, model_name, ckpt, "spectra")
    data = (pool.x, pool.y)
    with timed() as timer:
        hess = HessianOperator(model, loss_fn, data, bn_mode=config.bn_mode)
        ggn = GGNOperator(model, loss_fn, data, bn_mode=config.bn_mode)
        k = min(cfg.top_k, hess.shape[0] - 1)
        top_h = top_eigenpairs(
            hess, k=k, which="LA", tol=cfg.tol, max_products=cfg.max_products, seed=seed, stopping="residual"
        )
        min_h = top_eigenpairs(  # its eigenvector is used (per-sample quotients u_minᵀH_iu_min)
            hess,
            k=1,
            which="SA",
            tol=cfg.tol,
            max_products=cfg.max_products,
            seed=seed + 1,
            stopping="residual",
        )
        top_g = top_eigenpairs(
            ggn,
            k=k,
            which="LA",
            tol=cfg.tol,
            max_products=cfg.max_products,
            seed=seed + 2,
            stopping="residual",
        )
        slq_h = slq_density(hess, num_probes=cfg.slq_probes, num_steps=cfg.slq_steps, seed=seed + 3)
        slq_g = slq_density(ggn, num_probes=cfg.slq_probes, num_steps=cfg.slq_steps, seed=seed + 4)
    assert top_h.eigenvectors is not None and top_g.eigenvectors is not None
    assert min_h.eigenvectors is not None
    vec_h = store.save_array(f"{key}_hessian_top", top_h.eigenvectors.detach().cpu().numpy())
    vec_min = store.save_array(f"{key}_hessian_min", min_h.eigenvectors.detach().cpu().numpy())
    vec_g = store.save_array(f"{key}_ggn_top", top_g.eigenvectors.detach().cpu().numpy())
    return {
        "model": model_name,
        "ckpt": ckpt,
        "n_params": int(hess.shape[0]),
        "pool_size": len(pool),
        "bn_mode": config.bn_mode,
        "dtype": config.dtype,
        "seed": seed,
        "k": k,
        "tol": cfg.tol,
        "max_products": cfg.max_products,
        "hessian_top": eigen_summary(top_h),
        "hessian_min": eigen_summary(min_h),
        "ggn_top": eigen_summary(top_g),
        "hessian_slq": density_summary(slq_h),
        "ggn_slq": density_summary(slq_g),
        "hessian_vectors": vec_h,
        "hessian_min_vectors": vec_min,
        "ggn_vectors": vec_g,
        "operator": hess.provenance(),
        **timer.fields(),
    }


def bulk_measure(slq: dict[str, Any], spikes: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The measured bulk μ: SLQ nodes and weights (pooled over probes) with the nodes at or above the smallest
    of the given top eigenvalues (the spikes) removed, renormalised to total mass 1.

    Removing the nodes ≥ λ_k (k = the number of computed top eigenvalues, ≈ classes + a few) keeps Ritz values
    converged to outliers out of μ; the choice is stated in the report.
    """
    nodes = np.asarray(slq["nodes"], dtype=float).ravel()
    weights = np.asarray(slq["weights"], dtype=float).ravel()
    cut = float(np.min(spikes)) if len(spikes) else np.inf
    keep = nodes < cut * (1 - 1e-9) if cut > 0 else nodes < cut
    if not np.any(keep) or weights[keep].sum() <= 0:
        return np.zeros(1), np.ones(1)
    return nodes[keep], weights[keep] / weights[keep].sum()
