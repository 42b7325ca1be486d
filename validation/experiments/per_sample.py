"""Step 3b of the pipeline: per-sample curvature statistics of H_i and G_i (docs/theory.md §1e), measured on
samples that are in NO batch of the sweep.

The sweep (step 4) draws its batches from the pool; this step draws ``num_samples`` samples (seeded by the run
seed only, so the same samples serve every checkpoint) from the data set's samples OUTSIDE the pool. Per
sample (``networks.curvature.per_sample``): top and bottom eigenvalue of H_i (batched Lanczos), tr H_i
(Hutchinson), u_kᵀH_iu_k on the top eigenvectors of H (step 2); the exact non-zero spectrum of G_i
(C×C reduction), tr G_i, rank, u_kᵀG_iu_k on the top eigenvectors of G, the exact overlaps v_irᵀu_k of
every eigenvector of G_i with them (docs/theory.md §1f), ‖(I − uuᵀ)G_iu‖², and the cos²
between different samples' top directions off span U (→ P_eff = 1/mean cos²). The record holds the data-set
indices themselves (and their hash, with the pool's), seeds, counts and cost; arrays go through
``ResultStore.save_array``. These statistics are the only per-sample input of the ``sample_spikes`` model of
step 5, which is therefore independent of the sweep it is scored on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import nn

from validation import steps
from validation.config import RunConfig
from validation.experiments.checkpoints import Pool
from validation.provenance import derived_seed, indices_hash, timed
from validation.store import ResultStore

STEP = steps.PER_SAMPLE


class NoSamplesOutsidePool(ValueError):
    """The pool holds the whole data set: there is no held-out sample to measure."""


def outside_indices(n_total: int, pool_indices: np.ndarray, num_samples: int, seed: int) -> np.ndarray:
    """``min(num_samples, n_total − pool size)`` sorted data-set indices drawn without replacement (seeded)
    from those NOT in ``pool_indices``; ``ValueError`` when the pool is the whole data set."""
    outside = np.setdiff1d(np.arange(n_total, dtype=np.int64), np.asarray(pool_indices, dtype=np.int64))
    if outside.size == 0:
        raise NoSamplesOutsidePool(
            f"per-sample statistics need samples outside the pool, but the pool holds all {n_total} samples "
            "of the data set: lower 'pool_size'"
        )
    rng = np.random.default_rng(seed)
    pick = rng.choice(outside.size, size=min(num_samples, outside.size), replace=False)
    return np.sort(outside[pick])


def load_outside(
    config: RunConfig, pool: Pool, objects: Mapping[str, Any] | None = None
) -> tuple[Pool, int, int]:
    """The held-out samples as a :class:`Pool` (indices into the data set), the data-set size and the seed."""
    from validation.experiments.checkpoints import load_dataset_of, subset_pool

    data = load_dataset_of(config, objects)
    seed = derived_seed(config.seed, "per_sample")
    idx = outside_indices(len(data), pool.indices, config.per_sample.num_samples, seed)
    held_out = subset_pool(config, data, idx)
    return Pool(held_out.x, held_out.y, pool.num_classes, pool.name, held_out.indices), len(data), seed


def measure_per_sample(
    config: RunConfig,
    model: nn.Module,
    loss_fn: nn.Module,
    pool: Pool,
    store: ResultStore,
    spectra: dict[str, Any],
    *,
    model_name: str,
    ckpt: int,
    key: str,
    objects: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-sample statistics of one checkpoint (one record; per-sample arrays stored)."""
    from networks.curvature.per_sample import per_sample_ggn, per_sample_hessian
    from rmt.sample_spikes import effective_dimension

    cfg = config.per_sample
    try:
        held, n_total, sample_seed = load_outside(config, pool, objects)
    except NoSamplesOutsidePool as exc:  # recorded, not fatal: step 5 then has no sample-spike model
        return {"model": model_name, "ckpt": ckpt, "available": False, "reason": str(exc), "num_samples": 0}
    overlap = np.intersect1d(held.indices, pool.indices)
    if overlap.size:  # by construction impossible; a record must never claim disjointness falsely
        raise RuntimeError(f"held-out samples overlap the pool at {overlap[:5].tolist()}")
    seed = derived_seed(config.seed, model_name, ckpt, "per_sample")
    h_vec = store.load_array(spectra["hessian_vectors"])
    k_top = h_vec.shape[1]
    if "hessian_min_vectors" in spectra:  # u_minᵀH_iu_min too: the bottom target's per-sample overlaps
        h_vec = np.concatenate([h_vec, store.load_array(spectra["hessian_min_vectors"])], axis=1)
    g_vec = store.load_array(spectra["ggn_vectors"])
    with timed() as t_h:
        hess = per_sample_hessian(
            model,
            loss_fn,
            held.x,
            held.y,
            vectors=h_vec,
            lanczos_steps=cfg.lanczos_steps,
            trace_probes=cfg.trace_probes,
            seed=seed,
            chunk_size=cfg.chunk_size,
        )
    with timed() as t_g:
        ggn = per_sample_ggn(model, loss_fn, held.x, held.y, vectors=g_vec, chunk_size=cfg.chunk_size)
    cos2 = ggn.perp_cos2
    p_eff = effective_dimension(cos2) if cos2.size and cos2.mean() > 0 else float("inf")

    def save(name: str, arr: np.ndarray) -> str:
        return store.save_array(f"{key}_per_sample_{name}", np.asarray(arr))

    h_fields, g_fields = t_h.fields(), t_g.fields()
    return {
        "model": model_name,
        "ckpt": ckpt,
        "available": True,
        "n_params": int(spectra["n_params"]),
        "num_samples": int(held.indices.size),
        "num_samples_requested": cfg.num_samples,
        "data_size": int(n_total),
        "pool_size": len(pool),
        "indices": held.indices.tolist(),
        "indices_hash": indices_hash(held.indices),
        "pool_indices_hash": indices_hash(pool.indices),
        "disjoint_from_pool": True,
        "bn_mode": "eval",
        "sample_seed": sample_seed,
        "seed": seed,
        "config": dataclasses.asdict(cfg),
        "hessian": _hessian_fields(hess, save, h_fields["wall_time"], k_top),
        "ggn": _ggn_fields(ggn, save, float(p_eff), g_fields["wall_time"]),
        **h_fields,
        "wall_time": h_fields["wall_time"] + g_fields["wall_time"],
        "finished_at": g_fields["finished_at"],
    }


def _hessian_fields(
    hess: Any, save: Callable[[str, np.ndarray], str], wall_time: float, k_top: int
) -> dict[str, Any]:
    """The H_i part of a per-sample record: arrays stored by ``save``, summaries inline. Columns of the
    quotients beyond ``k_top`` are on H's bottom eigenvector (``rayleigh_bottom``, ``coupling_bottom``)."""
    bottom = {}
    if hess.rayleigh.shape[1] > k_top:
        bottom = {
            "rayleigh_bottom": save("hessian_rayleigh_bottom", hess.rayleigh[:, k_top:]),
            "coupling_bottom": save("hessian_coupling_bottom", hess.coupling[:, k_top:]),
        }
    return {
        **bottom,
        "top": save("hessian_top", hess.top),
        "bottom": save("hessian_bottom", hess.bottom),
        "top_residual": save("hessian_top_residual", hess.top_residual),
        "traces": save("hessian_traces", hess.traces),
        "trace_stderr": save("hessian_trace_stderr", hess.trace_stderr),
        "rayleigh": save("hessian_rayleigh", hess.rayleigh[:, :k_top]),
        "coupling": save("hessian_coupling", hess.coupling[:, :k_top]),
        "top_median": float(np.median(hess.top)),
        "top_max": float(np.max(hess.top)),
        "bottom_median": float(np.median(hess.bottom)),
        "top_residual_max": float(np.max(hess.top_residual)),
        "lanczos_steps": hess.lanczos_steps,
        "trace_probes": hess.trace_probes,
        "num_hvps": hess.num_hvps,
        "wall_time": wall_time,
    }


def _ggn_fields(
    ggn: Any, save: Callable[[str, np.ndarray], str], p_eff: float, wall_time: float
) -> dict[str, Any]:
    """The G_i part of a per-sample record: arrays stored by ``save``, summaries inline."""
    return {
        "eigenvalues": save("ggn_eigenvalues", ggn.eigenvalues),
        "traces": save("ggn_traces", ggn.traces),
        "ranks": save("ggn_ranks", ggn.ranks),
        "rayleigh": save("ggn_rayleigh", ggn.rayleigh),
        "overlaps": save("ggn_overlaps", ggn.overlaps),
        "coupling": save("ggn_coupling", ggn.coupling),
        "perp_cos2": save("ggn_perp_cos2", ggn.perp_cos2),
        "top_median": float(np.median(ggn.tops)),
        "top_max": float(np.max(ggn.tops)),
        "rank_max": int(ggn.ranks.max()),
        "p_eff": p_eff,
        "num_vjps": ggn.num_vjps,
        "wall_time": wall_time,
    }
