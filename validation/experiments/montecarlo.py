"""The Monte-Carlo record: top eigenvalues of sampled spiked Wigner and spiked Wishart matrices
(``rmt.sampling``) against the closed forms ``rmt.wigner.wigner_outlier`` and ``rmt.wishart.wishart_outlier``
(docs/theory.md §1a, §1b) — a check of the theory layer that needs no network, drawn in ``montecarlo.png``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from validation import steps

__all__ = ["STEP", "monte_carlo_record"]

STEP = steps.MONTECARLO


def monte_carlo_record(seed: int, n_params: int = 2000, n_reps: int = 40) -> dict[str, Any]:
    """Monte-Carlo top eigenvalues of spiked Wigner (ν = 1) and spiked Wishart (σ² = 1, q = 1/2) matrices from
    ``rmt.sampling`` against ``rmt.wigner.wigner_outlier`` / ``rmt.wishart.wishart_outlier``."""
    try:
        from rmt.sampling import spiked_wigner_top_eigenvalues, spiked_wishart_top_eigenvalues
    except ImportError as exc:
        return {"available": False, "reason": f"rmt.sampling unavailable: {exc}"}
    from rmt.wigner import wigner_outlier
    from rmt.wishart import wishart_outlier

    thetas = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])
    wig = [
        np.asarray(spiked_wigner_top_eigenvalues(t, 1.0, n_params, n_reps, seed + i), float)
        for i, t in enumerate(thetas)
    ]
    ells = np.array([1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0])
    n_samples = 2 * n_params
    wis = [
        np.asarray(spiked_wishart_top_eigenvalues(e, 1.0, n_params, n_samples, n_reps, seed + 100 + i), float)
        for i, e in enumerate(ells)
    ]
    return {
        "available": True,
        "wigner": {
            "spikes": thetas.tolist(),
            "theory": np.asarray(wigner_outlier(thetas, 1.0)).tolist(),
            "mc_mean": [float(w.mean()) for w in wig],
            "mc_sd": [float(w.std()) for w in wig],
            "P": n_params,
            "reps": n_reps,
            "title": "spiked Wigner: θ + ν²/θ or edge 2ν",
        },
        "wishart": {
            "spikes": ells.tolist(),
            "theory": np.asarray(wishart_outlier(ells, 1.0, 0.5)).tolist(),
            "mc_mean": [float(w.mean()) for w in wis],
            "mc_sd": [float(w.std()) for w in wis],
            "P": n_params,
            "reps": n_reps,
            "title": "spiked Wishart q = 1/2: BBP / MP edge",
        },
    }
