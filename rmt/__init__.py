"""batchrmt theory layer: random-matrix models of batch Hessians / GGNs and the learning-rate bounds they imply.

numpy, scipy and sympy only: this package never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> defining module. (Temporary lazy table while the modules are being written; replaced by
# explicit imports when the layer is complete.)
_EXPORTS: dict[str, str] = {
    "noise_scale": "rmt.wigner",
    "wigner_outlier": "rmt.wigner",
    "batch_hessian_extremal": "rmt.wigner",
    "critical_batch_size": "rmt.wigner",
    "wishart_outlier": "rmt.wishart",
    "bulk_spike_outlier": "rmt.bulk",
    "wishart_bulk_spike_outlier": "rmt.bulk",
    "wigner_type_edges": "rmt.profile",
    "wigner_type_outliers": "rmt.profile",
    "max_lr": "rmt.learning_rates",
    "polyak_heavy_ball": "rmt.learning_rates",
    "ls_mean_square_threshold": "rmt.learning_rates",
    "derivation": "rmt.symbolic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rmt' has no attribute {name!r}")
