"""Fuzz specs (tests/rmt/test_fuzz.py) of the sample-spike modules (docs/theory.md §1e):
rmt.sample_spikes_model, rmt.sample_spikes_predict, rmt.sample_spikes_large_batch, rmt.sample_spikes_sampling.

Nominal models are small (pools of 2–12 samples, rank ≤ 2, k ≤ 2 shared directions, P = ∞ or 40–400) so that
each call takes milliseconds; the per-function weights keep the whole fuzz file within its time budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from rmt import sample_spikes_large_batch as lb
from rmt.sample_spikes_model import PerSampleCurvature, SampleSpikeModel, draw_batches
from tests.rmt.fuzz_strategies import POS, SEED, Spec, _floats, _kw, _maybe_vec, _vec

_MODEL = "rmt.sample_spikes_model."
_PRED = "rmt.sample_spikes_predict."
_LARGE = "rmt.sample_spikes_large_batch."
_SAMP = "rmt.sample_spikes_sampling."
_N_PARAMS = st.one_of(st.just(math.inf), st.integers(40, 400))


def _overlaps(draw: st.DrawFn, n: int, rank: int, k: int) -> Any:
    c = draw(_vec(_floats(-1.0, 1.0), n * rank * k, n * rank * k)).reshape(n, rank, k)
    norm = np.sqrt((c**2).sum(axis=2, keepdims=True))
    return np.where(norm > 0.95, 0.95 * c / np.maximum(norm, 1e-300), c)


@st.composite
def _pool_args(draw: st.DrawFn, min_k: int = 0, psd: bool = False) -> dict[str, Any]:
    n, rank, k = draw(st.integers(2, 12)), draw(st.integers(1, 2)), draw(st.integers(min_k, 2))
    lo = 0.0 if psd else -3.0
    scales = draw(_vec(_floats(lo, 5.0), n * rank, n * rank)).reshape(n, rank)
    scales[0, 0] = draw(_floats(0.1, 5.0))  # at least one positive scale
    return {"scales": scales, "overlaps": _overlaps(draw, n, rank, k) if k or draw(st.booleans()) else None}


@st.composite
def _pool(draw: st.DrawFn, min_k: int = 0, psd: bool = False) -> PerSampleCurvature:
    return PerSampleCurvature(**draw(_pool_args(min_k, psd)))


@st.composite
def _model(
    draw: st.DrawFn, min_k: int = 0, psd: bool = False, finite: bool = False, full: bool = False
) -> SampleSpikeModel:
    pool = draw(_pool(min_k, psd))
    k = pool.n_spikes
    n_params = draw(st.integers(40, 400)) if finite else draw(_N_PARAMS)
    if full or draw(st.booleans()):  # full spikes given, positive (a separated top shared spike)
        return SampleSpikeModel.from_full_spikes(draw(_vec(_floats(0.1, 5.0), k, k)), pool, n_params)
    u = draw(_vec(_floats(-2.0, 2.0), k * k, k * k)).reshape(k, k)
    shared = np.diag(np.abs(np.diag(u))) if psd else u + u.T
    return SampleSpikeModel(pool, shared, n_params)


@st.composite
def _model_rows(draw: st.DrawFn) -> dict[str, Any]:
    model = draw(_model())
    n_batches, batch = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    rows = draw_batches(model.per_sample.n_samples, batch, n_batches, draw(st.integers(0, 99)))
    return {"model": model, "rows": rows}


def _model_specs() -> dict[str, Spec]:
    @st.composite
    def summary(draw: st.DrawFn) -> dict[str, Any]:
        n = draw(st.integers(1, 10))
        top = draw(_vec(_floats(0.01, 10.0), n, n))
        rank = draw(st.integers(1, 3))
        out: dict[str, Any] = {"top": top, "rank": rank, "seed": draw(SEED)}
        n_bottom = 0
        if rank >= 2 and draw(st.booleans()):
            out["bottom"] = -draw(_vec(_floats(0.0, 5.0), n, n))
            n_bottom = 1
        n_rest = rank - 1 - n_bottom
        if draw(st.booleans()):
            per = top * draw(_floats(0.0, 1.0))
            out["trace"] = top + n_rest * per + (out["bottom"] if n_bottom else 0.0)
        if draw(st.booleans()):
            k = draw(st.integers(1, 3))
            out["rayleigh"] = draw(_vec(_floats(0.0, 10.0), n * k, n * k)).reshape(n, k)
        return out

    @st.composite
    def model_args(draw: st.DrawFn) -> dict[str, Any]:
        pool = draw(_pool())
        k = pool.n_spikes
        u = draw(_vec(_floats(-2.0, 2.0), k * k, k * k)).reshape(k, k)
        return {"per_sample": pool, "shared": u + u.T, "n_params": draw(_N_PARAMS)}

    @st.composite
    def full_spikes(draw: st.DrawFn) -> dict[str, Any]:
        pool = draw(_pool())
        k = pool.n_spikes or draw(st.integers(0, 2))
        return {
            "spikes": draw(_vec(_floats(-5.0, 5.0), k, k)),
            "per_sample": pool,
            "n_params": draw(_N_PARAMS),
        }

    @st.composite
    def batches(draw: st.DrawFn) -> dict[str, Any]:
        n, replace = draw(st.integers(1, 50)), draw(st.booleans())
        b = draw(st.integers(1, 10 if replace else min(n, 10)))
        return {"n_samples": n, "batch_size": b, "n_batches": draw(st.integers(1, 20)), "replace": replace}

    return {
        _MODEL + "PerSampleCurvature": Spec(_pool_args(), ("scales", "overlaps")),
        _MODEL + "PerSampleCurvature.from_summary": Spec(
            summary(),
            ("top", "trace", "rank", "bottom", "rayleigh", "seed"),
            call=PerSampleCurvature.from_summary,
        ),
        _MODEL + "PerSampleCurvature.parametric": Spec(
            _kw(
                n_samples=st.integers(1, 40),
                distribution=st.sampled_from(("pareto", "lognormal", "exponential")),
                shape=_floats(0.2, 5.0),
                scale=POS,
                rank=st.integers(1, 3),
                overlap2_mean=_floats(0.0, 0.9),
                n_spikes=st.integers(0, 3),
                seed=SEED,
            ),
            ("n_samples", "distribution", "shape", "scale", "rank", "overlap2_mean", "n_spikes", "seed"),
            call=PerSampleCurvature.parametric,
        ),
        # n_params = inf is documented (exactly orthogonal directions)
        _MODEL + "SampleSpikeModel": Spec(model_args(), ("per_sample", "shared", "n_params"), allow_inf=True),
        _MODEL + "SampleSpikeModel.from_full_spikes": Spec(
            full_spikes(),
            ("spikes", "per_sample", "n_params"),
            allow_inf=True,
            call=SampleSpikeModel.from_full_spikes,
        ),
        _MODEL + "SampleSpikeModel.negated": Spec(
            _kw(model=_model()), (), allow_inf=True, weight=0.3, call=lambda model: model.negated()
        ),
        _MODEL + "draw_batches": Spec(batches(), ("n_samples", "batch_size", "n_batches", "seed", "replace")),
        _MODEL + "effective_dimension": Spec(_kw(cos2=_maybe_vec(_floats(1e-3, 1.0))), ("cos2",)),
    }


def _separated_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """large_batch_extremal documents NaN where the spike is not separated; check the rest is finite."""

    def call(**kwargs: Any) -> Any:
        out = fn(**kwargs)
        assert isinstance(out, np.ndarray) and out.ndim == 1
        return out[~np.isnan(out)]

    return call


def _predict_specs() -> dict[str, Spec]:
    @st.composite
    def predict(draw: st.DrawFn) -> dict[str, Any]:
        model = draw(_model())
        method = draw(st.sampled_from(("orthogonal", "subordinated", "exact")))
        return {
            "model": model,
            "batch_sizes": draw(_vec(st.integers(1, 6).map(float), 1, 3)),
            "n_batches": draw(st.integers(2, 20)),
            "levels": draw(_vec(_floats(0.0, 1.0), 1, 3)),
            "seed": draw(SEED),
            "replace": draw(st.booleans()) if model.per_sample.n_samples >= 6 else True,
            "method": method,
        }

    @st.composite
    def prediction(draw: st.DrawFn) -> dict[str, Any]:
        nb, nl = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        q = draw(_vec(_floats(-5.0, 5.0), nb * nl, nb * nl)).reshape(nb, nl)
        return {
            "batch_sizes": np.arange(1.0, nb + 1),
            "levels": np.linspace(0.1, 0.9, nl),
            "top_quantiles": q,
            "bottom_quantiles": -q,
            "top_mean": q.mean(axis=1),
            "bottom_mean": -q.mean(axis=1),
            "method": "orthogonal",
            "n_batches": draw(st.integers(2, 100)),
        }

    pred = ("model", "rows")
    return {
        _PRED + "orthogonal_extremal": Spec(_model_rows(), pred),
        _PRED + "subordinated_extremal": Spec(_model_rows(), pred),
        _PRED + "batch_brackets": Spec(_model_rows(), pred),
        _PRED + "predict_batch_extremal": Spec(
            predict(),
            ("model", "batch_sizes", "n_batches", "levels", "seed", "replace", "method"),
        ),
        # result container (no validation of its own): only built from valid values
        _PRED + "BatchPrediction": Spec(prediction(), (), weight=0.1),
    }


def _large_batch_specs() -> dict[str, Spec]:
    sizes = _maybe_vec(_floats(1.0, 1e4))
    return {
        _LARGE + "large_batch_extremal": Spec(
            _kw(model=_model(min_k=1), batch_sizes=sizes),
            ("model", "batch_sizes"),
            call=_separated_only(lb.large_batch_extremal),
        ),
        _LARGE + "large_batch_bulk_edge": Spec(
            _kw(model=_model(psd=True), batch_sizes=sizes), ("model", "batch_sizes")
        ),
        _LARGE + "crossover_batch_size": Spec(
            _kw(
                model=_model(min_k=1, psd=True, full=True),
                level=_floats(0.01, 0.99),
                max_batch=_floats(1.0, 1e12),
            ),
            ("model", "level", "max_batch"),
        ),
        # alpha <= 1 returns inf (documented: the branch never decays)
        _LARGE + "pareto_crossover_batch_size": Spec(
            _kw(
                lam=_maybe_vec(POS),
                x_min=POS,
                alpha=_floats(0.1, 10.0),
                level=_floats(0.01, 0.99),
            ),
            ("lam", "x_min", "alpha", "level"),
            allow_inf=True,
        ),
    }


def _sampling_specs() -> dict[str, Spec]:
    @st.composite
    def sample(draw: st.DrawFn) -> dict[str, Any]:
        model = draw(_model())
        method = "gram" if math.isinf(model.n_params) else draw(st.sampled_from(("gram", "vectors")))
        b, reps = draw(st.integers(1, 6)), draw(st.integers(1, 4))
        out: dict[str, Any] = {"model": model, "batch_size": b, "n_reps": reps, "seed": draw(SEED)}
        out["method"] = method
        if model.per_sample.n_samples >= b:
            out["replace"] = draw(st.booleans())
        if draw(st.booleans()):
            out["rows"] = draw_batches(model.per_sample.n_samples, b, reps, draw(st.integers(0, 99)))
        return out

    @st.composite
    def dense(draw: st.DrawFn) -> dict[str, Any]:
        model = draw(_model(finite=True))
        b = draw(st.integers(1, 6))
        rows = draw_batches(model.per_sample.n_samples, b, 1, draw(st.integers(0, 99)))[0]
        return {"model": model, "rows": rows, "seed": draw(SEED)}

    @st.composite
    def sampled(draw: st.DrawFn) -> dict[str, Any]:
        r = draw(st.integers(1, 4))
        top = draw(_vec(_floats(0.0, 10.0), r, r))
        return {"top": top, "bottom": -top, "rows": np.zeros((r, 2), dtype=np.intp)}

    return {
        _SAMP + "sample_batch_extremal": Spec(
            sample(), ("model", "batch_size", "n_reps", "seed", "replace", "method", "rows")
        ),
        _SAMP + "batch_matrix": Spec(dense(), ("model", "rows", "seed")),
        # result container (no validation of its own): only built from valid values
        _SAMP + "SampledExtremal": Spec(sampled(), (), weight=0.1),
    }


def spike_specs() -> dict[str, Spec]:
    """Specs of every public callable of the sample-spike modules."""
    return {**_model_specs(), **_predict_specs(), **_large_batch_specs(), **_sampling_specs()}
