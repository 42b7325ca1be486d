"""Step 3 of the pipeline: the curvature noise, estimated independently of the batch-size sweep
(docs/theory.md §4).

``networks.curvature.noise.per_sample_noise`` gives the row sums r_j = Σ_k S_jk of the per-sample variance
profile S_jk = Var_i[∂_j∂_k ℓ_i] (Hutchinson: E_z ‖(H_i − H)z‖² for unit z), their mean p_sigma2 = Pσ² and the
spread row_sum_cv (0 for a homogeneous profile). Its samples and probes are seeded separately from the sweep's
batches, so the predictions of step 5 contain no parameter fitted on the sweep they predict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from networks.options import MATRICES as _MATRICES
from validation import steps
from validation.config import RunConfig
from validation.experiments.checkpoints import Pool
from validation.provenance import derived_seed, timed
from validation.store import ResultStore

STEP = steps.NOISE
MATRICES = _MATRICES  # the vocabulary of networks.options, re-exported for the step's records


def measure_noise(
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
    """Per-sample noise statistics of H and G at one checkpoint (one record; row sums stored as arrays)."""
    from networks.curvature.noise import per_sample_noise

    cfg = config.noise
    out: dict[str, Any] = {
        "model": model_name,
        "ckpt": ckpt,
        "pool_size": len(pool),
        "bn_mode": config.bn_mode,
        "dtype": config.dtype,
        "num_samples": cfg.num_samples,
        "num_probes": cfg.num_probes,
    }
    with timed() as timer:
        for matrix in MATRICES:
            seed = derived_seed(config.seed, model_name, ckpt, "noise", matrix)
            est = per_sample_noise(
                model,
                loss_fn,
                pool.x,
                pool.y,
                matrix=matrix,
                num_samples=cfg.num_samples,
                num_probes=cfg.num_probes,
                seed=seed,
                bn_mode=config.bn_mode,
            )
            row_sums = np.asarray(est.row_sums, dtype=float)
            out[matrix] = {
                "p_sigma2": float(est.p_sigma2),
                "sigma2": float(est.p_sigma2) / row_sums.size,
                "stderr": float(est.stderr),
                "row_sum_cv": float(est.row_sum_cv),
                "num_samples": int(est.num_samples),
                "num_probes": int(est.num_probes),
                "num_products": int(est.num_products),
                "seed": seed,
                "row_sums": store.save_array(f"{key}_{matrix}_row_sums", row_sums),
            }
    out.update(timer.fields())
    return out
