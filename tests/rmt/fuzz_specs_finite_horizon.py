"""Fuzz specs (tests/rmt/test_fuzz.py) of rmt.finite_horizon (the finite-horizon threshold of a K-step
divergence trial, docs/theory.md §3d)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.rmt.fuzz_strategies import NONNEG, POS, REAL, UNIT, Spec, _floats, _vec

_FH = "rmt.finite_horizon."
_STATS = ("grad_mean", "grad_variance", "curvature_mean", "curvature_variance", "covariance", "eval_grad",
          "eval_curvature")  # fmt: skip
_COMMON = (*_STATS, "batch_size", "n_data", "steps", "warmup_steps", "momentum")


@st.composite
def _model(draw: st.DrawFn) -> dict[str, Any]:
    """k ∈ 1..3 directions with a covariance inside the Cauchy–Schwarz bound, B ≤ N, a short trial."""
    k = draw(st.integers(1, 3))
    vg, vh = draw(_vec(NONNEG, k, k)), draw(_vec(NONNEG, k, k))
    corr = draw(_vec(_floats(-0.99, 0.99), k, k))
    n = draw(st.integers(2, 500))
    return {
        "grad_mean": draw(_vec(REAL, k, k)),
        "grad_variance": vg,
        "curvature_mean": draw(_vec(REAL, k, k)),
        "curvature_variance": vh,
        "covariance": corr * np.sqrt(vg * vh),
        "eval_grad": draw(_vec(REAL, k, k)),
        "eval_curvature": draw(_vec(REAL, k, k)),
        "batch_size": draw(st.integers(1, n)),
        "n_data": n,
        "steps": draw(st.integers(1, 12)),
        "warmup_steps": draw(st.integers(0, 5)),
        "momentum": draw(st.one_of(st.just(0.0), UNIT)),
    }


@st.composite
def _loss_change(draw: st.DrawFn) -> dict[str, Any]:
    return {"lr": draw(st.one_of(NONNEG, _vec(NONNEG, 1, 3))), **draw(_model())}


@st.composite
def _max_lr(draw: st.DrawFn) -> dict[str, Any]:
    return {"threshold": draw(POS), **draw(_model())}


def finite_horizon_specs() -> dict[str, Spec]:
    """Specs of every public callable of rmt.finite_horizon."""
    # a shape / Cauchy–Schwarz error names these
    shape: dict[str, tuple[str, ...]] = {s: ("grad_mean", "covariance") for s in _STATS}
    shape["grad_variance"] = shape["curvature_variance"] = ("covariance",)
    both = {**shape, "n_data": ("batch_size",)}
    return {
        _FH + "expected_loss_change": Spec(_loss_change(), ("lr", *_COMMON), allow_inf=True, weight=0.3,
                                           labels=both),
        _FH + "finite_horizon_max_lr": Spec(_max_lr(), ("threshold", *_COMMON), allow_inf=True, weight=0.2,
                                            labels=both),
    }  # fmt: skip
