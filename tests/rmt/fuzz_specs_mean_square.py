"""Fuzz specs (tests/rmt/test_fuzz.py) of rmt.mean_square (mean-square thresholds with fresh batches,
docs/theory.md §3b, §3c); collected by :func:`tests.rmt.fuzz_specs_models.model_specs`."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from rmt.mean_square import MEAN_SQUARE_METHODS
from tests.rmt.fuzz_strategies import (
    NONNEG,
    POS,
    REAL,
    UNIT,
    Spec,
    _floats,
    _maybe_vec,
    _n_data_and_batch,
    _vec,
)

_MS = "rmt.mean_square."
_METHOD_ARGS = ("method", "momentum", "beta1")


@st.composite
def _method(draw: st.DrawFn) -> dict[str, Any]:
    """A method with its momentum (β ∈ [0, 0.99] for heavy ball, 0 otherwise) and β₁ ∈ [0, 0.99]."""
    method = draw(st.sampled_from(MEAN_SQUARE_METHODS))
    return {"method": method, "momentum": draw(UNIT) if method == "heavy_ball" else 0.0, "beta1": draw(UNIT)}


@st.composite
def _pool(draw: st.DrawFn) -> dict[str, Any]:
    """A batch size B (≤ N for finite N) and the pool size N (omitted, None, inf or finite)."""
    n_data, b = draw(_n_data_and_batch())
    if n_data is None and draw(st.booleans()):
        return {"batch_size": b}
    return {"batch_size": b, "n_data": n_data}


@st.composite
def _one_direction(draw: st.DrawFn) -> dict[str, Any]:
    out = {"mean": draw(_maybe_vec(POS)), "variance": draw(NONNEG), **draw(_pool()), **draw(_method())}
    if draw(st.booleans()):
        out["leakage"] = draw(NONNEG)
    return out


@st.composite
def _directions(draw: st.DrawFn) -> dict[str, Any]:
    k = draw(st.integers(1, 4))
    out = {"means": draw(_vec(POS, k, k)), "variances": draw(_vec(NONNEG, k, k)), **draw(_method())}
    n_data, b = draw(_n_data_and_batch())
    top = b if n_data is None else float(n_data)
    out["batch_size"] = draw(st.one_of(st.just(b), _vec(_floats(1.0, top), 1, 4)))
    if n_data is not None or draw(st.booleans()):
        out["n_data"] = n_data
    if draw(st.booleans()):
        out["leakages"] = draw(st.one_of(NONNEG, _vec(NONNEG, k, k)))
    return out


@st.composite
def _single_sample(draw: st.DrawFn) -> dict[str, Any]:
    return {"curvature": draw(_maybe_vec(POS)), "n_data": draw(st.integers(2, 10**5))}


@st.composite
def _companion(draw: st.DrawFn) -> dict[str, Any]:
    out = {"lr": draw(NONNEG), "mean": draw(REAL), "batch_variance": draw(NONNEG)}
    if draw(st.booleans()):
        out["momentum"] = draw(UNIT)
    return out


def mean_square_specs() -> dict[str, Spec]:
    """Specs of every public callable of rmt.mean_square."""
    companion = ("lr", "mean", "batch_variance", "momentum")
    return {
        _MS + "noise_gain": Spec(_method(), _METHOD_ARGS),
        _MS + "mean_square_max_lr": Spec(
            _one_direction(), ("mean", "variance", "batch_size", "n_data", *_METHOD_ARGS, "leakage")
        ),
        _MS + "multi_direction_max_lr": Spec(
            _directions(), ("means", "variances", "batch_size", "n_data", *_METHOD_ARGS, "leakages")
        ),
        _MS + "single_sample_moments": Spec(_single_sample(), ("curvature", "n_data")),
        _MS + "second_moment_matrix": Spec(_companion(), companion),
        _MS + "second_moment_radius": Spec(_companion(), companion),
    }
