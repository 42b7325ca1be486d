"""batchrmt measurement layer (PyTorch): models, data, curvature operators, Lanczos / SLQ, training loops."""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> defining module (temporary lazy table; replaced by explicit imports when the layer is complete).
_EXPORTS: dict[str, str] = {
    "CurvatureOperator": "networks.curvature.operator",
    "HessianOperator": "networks.curvature.hessian",
    "GGNOperator": "networks.curvature.ggn",
    "lanczos": "networks.lanczos",
    "top_eigenvalues": "networks.lanczos",
    "top_eigenpairs": "networks.lanczos",
    "slq_density": "networks.lanczos",
    "SLQLearner": "networks.slq_learner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'networks' has no attribute {name!r}")
