"""Fuzz specs (tests/rmt/test_fuzz.py) of the model modules: rmt.wigner, rmt.wishart, rmt.bulk, rmt.profile,
rmt.learning_rates; :func:`model_specs` also includes those of rmt.mean_square (fuzz_specs_mean_square.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from rmt import learning_rates, profile
from tests.rmt.fuzz_specs_mean_square import mean_square_specs
from tests.rmt.fuzz_strategies import (
    BATCH,
    NONNEG,
    POS,
    REAL,
    UNIT,
    Spec,
    _floats,
    _kw,
    _maybe_vec,
    _measure,
    _n_data_and_batch,
    _orthonormal,
    _p_of,
    _profile_kwargs,
    _profile_matrix,
    _vec,
)


def _wigner_specs() -> dict[str, Spec]:
    @st.composite
    def noise(draw: st.DrawFn, with_lam: bool = False, sigma2_pos: bool = False) -> dict[str, Any]:
        n_data, b = draw(_n_data_and_batch())
        out = {"sigma2": draw(POS if sigma2_pos else NONNEG), "n_params": draw(POS), "batch_size": b}
        if n_data is not None:
            out["n_data"] = n_data
        if with_lam:
            out["lam"] = draw(REAL)
        return out

    @st.composite
    def kappa_args(draw: st.DrawFn) -> dict[str, Any]:
        n_data, b = draw(_n_data_and_batch())
        return {"batch_size": b} if n_data is None else {"batch_size": b, "n_data": n_data}

    @st.composite
    def crit(draw: st.DrawFn) -> dict[str, Any]:
        n_data, _ = draw(_n_data_and_batch())
        out = {"lam": draw(REAL), "sigma2": draw(POS), "n_params": draw(POS)}
        return out if n_data is None else {**out, "n_data": n_data}

    return {
        "rmt.wigner.kappa": Spec(kappa_args(), ("batch_size", "n_data")),
        "rmt.wigner.noise_scale": Spec(noise(), ("sigma2", "n_params", "batch_size", "n_data")),
        "rmt.wigner.wigner_outlier": Spec(_kw(theta=_maybe_vec(REAL), nu=NONNEG), ("theta", "nu")),
        "rmt.wigner.wigner_overlap": Spec(_kw(theta=_maybe_vec(REAL), nu=NONNEG), ("theta", "nu")),
        "rmt.wigner.outlier_fluctuation_sd": Spec(
            _kw(theta=REAL, nu=NONNEG, n_params=POS), ("theta", "nu", "n_params")
        ),
        "rmt.wigner.semicircle_density": Spec(_kw(x=_maybe_vec(REAL), nu=POS), ("x", "nu")),
        "rmt.wigner.semicircle_edge": Spec(_kw(nu=_maybe_vec(NONNEG)), ("nu",)),
        "rmt.wigner.batch_hessian_extremal": Spec(
            noise(with_lam=True), ("lam", "sigma2", "n_params", "batch_size", "n_data")
        ),
        "rmt.wigner.critical_batch_size": Spec(
            crit(), ("lam", "sigma2", "n_params", "n_data"), allow_inf=True
        ),
    }


def _wishart_specs() -> dict[str, Spec]:
    three = _kw(ell=_maybe_vec(NONNEG), sigma2=POS, q=POS)
    return {
        "rmt.wishart.marchenko_pastur_edges": Spec(_kw(sigma2=POS, q=_maybe_vec(POS)), ("sigma2", "q")),
        "rmt.wishart.marchenko_pastur_atom": Spec(_kw(q=_maybe_vec(POS)), ("q",)),
        "rmt.wishart.marchenko_pastur_density": Spec(
            _kw(x=_maybe_vec(_floats(0.0, 1e3)), sigma2=POS, q=POS), ("x", "sigma2", "q")
        ),
        "rmt.wishart.wishart_outlier": Spec(three, ("ell", "sigma2", "q")),
        "rmt.wishart.wishart_overlap": Spec(three, ("ell", "sigma2", "q")),
        "rmt.wishart.wishart_outlier_fluctuation_sd": Spec(
            _kw(ell=NONNEG, sigma2=POS, q=POS, n_samples=POS), ("ell", "sigma2", "q", "n_samples")
        ),
        "rmt.wishart.batch_ggn_extremal": Spec(
            _kw(lam=NONNEG, sigma2=POS, n_params=POS, batch_size=BATCH, outputs_per_sample=POS),
            ("lam", "sigma2", "n_params", "batch_size", "outputs_per_sample"),
        ),
    }


def _bulk_specs() -> dict[str, Spec]:
    def add(extra: dict[str, st.SearchStrategy[Any]], nonnegative: bool = False) -> Any:
        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            return {**draw(_measure(nonnegative)), **{k: draw(v) for k, v in extra.items()}}

        return build()

    measure = ("bulk_eigenvalues", "bulk_weights")
    upper = st.builds(complex, REAL, _floats(0.0, 10.0))
    slow = 0.4
    return {
        "rmt.bulk.bulk_spike_outlier": Spec(
            add({"theta": _maybe_vec(_floats(-20, 20)), "nu": NONNEG}), ("theta", "nu", *measure)
        ),
        "rmt.bulk.bulk_spike_overlap": Spec(
            add({"theta": _maybe_vec(_floats(-20, 20)), "nu": NONNEG}), ("theta", "nu", *measure)
        ),
        "rmt.bulk.critical_noise_variance": Spec(add({"theta": _maybe_vec(REAL)}), ("theta", *measure)),
        "rmt.bulk.free_convolution_edges": Spec(add({"nu": POS}), ("nu", *measure)),
        "rmt.bulk.free_convolution_subordination": Spec(
            add({"z": upper, "nu": POS}), ("z", "nu", *measure), weight=slow
        ),
        "rmt.bulk.free_convolution_stieltjes": Spec(
            add({"z": upper, "nu": POS}), ("z", "nu", *measure), weight=slow
        ),
        "rmt.bulk.free_convolution_density": Spec(
            add({"x": _maybe_vec(_floats(-20, 20)), "nu": POS}), ("x", "nu", *measure), weight=slow
        ),
        "rmt.bulk.wishart_bulk_spike_outlier": Spec(
            add({"alpha": _maybe_vec(_floats(0, 50)), "q": POS}, True), ("alpha", "q", *measure)
        ),
        "rmt.bulk.wishart_bulk_spike_overlap": Spec(
            add({"alpha": _maybe_vec(_floats(0, 50)), "q": POS}, True), ("alpha", "q", *measure)
        ),
        "rmt.bulk.wishart_critical_ratio": Spec(
            add({"alpha": _maybe_vec(_floats(0, 50))}, True), ("alpha", *measure), allow_inf=True
        ),
        "rmt.bulk.wishart_bulk_edges": Spec(add({"q": POS}, True), ("q", *measure)),
        "rmt.bulk.wishart_bulk_atom": Spec(add({"q": _maybe_vec(POS)}, True), ("q", *measure)),
        "rmt.bulk.wishart_bulk_density": Spec(
            add({"x": _maybe_vec(_floats(-1, 100)), "q": POS}, True), ("x", "q", *measure), weight=slow
        ),
    }


def _variance_fn(kind: int) -> Callable[[Any, Any], Any]:
    return [lambda x, y: 0.5 + 0 * x * y, lambda x, y: 0.2 + x * y, lambda x, y: np.exp(-abs(x - y))][kind]


def _profile_specs() -> dict[str, Spec]:
    @st.composite
    def block(draw: st.DrawFn) -> dict[str, Any]:
        k = draw(st.integers(1, 4))
        t = draw(_vec(_floats(0.0, 1.0), k * k, k * k)).reshape(k, k)
        sizes = draw(_vec(_floats(0.0, 5.0), k, k))
        sizes[0] += 1.0
        out = {"variances": 0.5 * (t + t.T), "sizes": sizes}
        if draw(st.booleans()):
            out["shifts"] = draw(_vec(REAL, k, k))
        return out

    @st.composite
    def from_function(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {
            "variance": _variance_fn(draw(st.integers(0, 2))),
            "n_blocks": draw(st.integers(1, 30)),
        }
        if draw(st.booleans()):
            out["shift"] = lambda x: x - 0.5
        return out

    @st.composite
    def coarse(draw: st.DrawFn) -> dict[str, Any]:
        s = draw(_profile_matrix())
        out = {"S": s, "n_blocks": draw(st.integers(1, s.shape[0]))}
        if draw(st.booleans()):
            out["a"] = draw(_vec(REAL, s.shape[0], s.shape[0]))
        return out

    @st.composite
    def qve(draw: st.DrawFn) -> dict[str, Any]:
        out = _profile_kwargs(draw)
        out["z"] = draw(st.one_of(_floats(-5, 5), st.builds(complex, _floats(-5, 5), _floats(0.0, 5.0))))
        return out

    @st.composite
    def density(draw: st.DrawFn) -> dict[str, Any]:
        return {**_profile_kwargs(draw), "x": draw(_maybe_vec(_floats(-5, 5)))}

    @st.composite
    def edges(draw: st.DrawFn) -> dict[str, Any]:
        return _profile_kwargs(draw)

    @st.composite
    def outliers(draw: st.DrawFn) -> dict[str, Any]:
        out = _profile_kwargs(draw)
        p = _p_of(out["S"])
        r = draw(st.integers(1, min(2, p)))
        out["thetas"] = draw(_vec(_floats(-4.0, 4.0), r, r))
        out["vectors"] = _orthonormal(draw, p, r)
        return out

    return {
        "rmt.profile_systems.BlockProfile": Spec(block(), ("variances", "sizes", "shifts")),
        "rmt.profile_systems.BlockProfile.from_function": Spec(
            from_function(), ("variance", "n_blocks", "shift"), call=profile.BlockProfile.from_function
        ),
        "rmt.profile_systems.coarse_grain_profile": Spec(coarse(), ("S", "n_blocks", "a")),
        "rmt.profile.solve_qve": Spec(qve(), ("S", "z", "a"), weight=0.3),
        "rmt.profile.wigner_type_density": Spec(density(), ("S", "x", "a"), weight=0.3),
        "rmt.profile.wigner_type_edges": Spec(edges(), ("S", "a"), weight=0.3),
        "rmt.profile.wigner_type_outliers": Spec(outliers(), ("S", "thetas", "vectors", "a"), weight=0.3),
    }


def _learning_rate_specs() -> dict[str, Spec]:
    @st.composite
    def constant(draw: st.DrawFn) -> dict[str, Any]:
        method = draw(st.sampled_from(learning_rates.METHODS))
        beta = draw(UNIT) if method in ("heavy_ball", "nesterov") else 0.0
        return {"method": method, "momentum": beta, "beta1": draw(UNIT)}

    @st.composite
    def model(draw: st.DrawFn, lam: bool = True, batch: str = "batch_sizes") -> dict[str, Any]:
        kind = draw(st.sampled_from(learning_rates.MODELS))
        out: dict[str, Any] = {"sigma2": draw(POS), "n_params": draw(POS), "model": kind}
        if lam:
            out["lam"] = draw(POS)
        if kind == "additive":
            n_data, b = draw(_n_data_and_batch())
            out[batch] = b
            if n_data is not None:
                out["n_data"] = n_data
        else:
            out[batch] = draw(BATCH)
            out["outputs_per_sample"] = draw(POS)
        return out

    @st.composite
    def max_lr_batch(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(model())
        out["method"] = draw(st.sampled_from(learning_rates.MOMENTUM_METHODS))
        out["momentum"] = draw(UNIT) if out["method"] != "sgd" else 0.0
        return out

    @st.composite
    def adam(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(model())
        out["form"] = draw(st.sampled_from(learning_rates.ADAM_FORMS))
        out["beta1"] = draw(UNIT)
        out["grad_sq"], out["grad_var"], out["eps"] = draw(POS), draw(NONNEG), draw(POS)
        return out

    @st.composite
    def damping(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(model(lam=False, batch="batch_size"))
        out.update(draw(constant()))
        out["lr"] = draw(POS)
        return out

    @st.composite
    def polyak(draw: st.DrawFn) -> dict[str, Any]:
        mu = draw(POS)
        return {"mu": mu, "L": mu + draw(NONNEG)}

    @st.composite
    def local(draw: st.DrawFn) -> dict[str, Any]:
        b = np.cumsum(draw(_vec(_floats(0.5, 100.0), 2, 6)))
        return {"batch_sizes": b, "values": draw(_vec(POS, b.size, b.size))}

    @st.composite
    def precond(draw: st.DrawFn) -> dict[str, Any]:
        n_data, b = draw(_n_data_and_batch())
        out = {"batch_size": b, "grad_sq": draw(NONNEG), "grad_var": draw(NONNEG), "eps": draw(NONNEG)}
        return out if n_data is None else {**out, "n_data": n_data}

    @st.composite
    def reversion(draw: st.DrawFn) -> dict[str, Any]:
        n_data, _ = draw(_n_data_and_batch())
        out = {"grad_sq": draw(NONNEG), "grad_var": draw(NONNEG), "eps": draw(POS)}
        return out if n_data is None else {**out, "n_data": n_data}

    model_args = ("sigma2", "n_params", "model", "n_data", "outputs_per_sample")
    lr = "rmt.learning_rates."
    return {
        lr + "stability_constant": Spec(constant(), ("method", "momentum", "beta1")),
        lr + "max_lr": Spec(
            st.builds(lambda c, kw: {"curvature": c, **kw}, _maybe_vec(POS), constant()),
            ("curvature", "method", "momentum", "beta1"),
        ),
        lr + "polyak_heavy_ball": Spec(polyak(), ("L", "mu")),
        lr + "ls_mean_square_growth": Spec(
            _kw(lr=NONNEG, batch_size=BATCH, dim=POS), ("lr", "batch_size", "dim")
        ),
        lr + "ls_mean_square_threshold": Spec(_kw(batch_size=BATCH, dim=POS), ("batch_size", "dim")),
        lr + "batch_top_curvature": Spec(model(), ("batch_sizes", "lam", *model_args)),
        lr + "noise_edge_curvature": Spec(model(lam=False), ("batch_sizes", *model_args)),
        lr + "batch_regime": Spec(model(), ("batch_sizes", "lam", *model_args)),
        lr + "model_critical_batch_size": Spec(
            model().map(lambda d: {k: v for k, v in d.items() if k != "batch_sizes"}),
            ("lam", *model_args),
            allow_inf=True,
        ),
        lr + "max_lr_vs_batch": Spec(
            max_lr_batch(), ("batch_sizes", "lam", "method", "momentum", *model_args)
        ),
        lr + "mccandlish_max_lr": Spec(
            _kw(batch_size=BATCH, eta_inf=POS, b_noise=NONNEG), ("batch_size", "eta_inf", "b_noise")
        ),
        lr + "local_exponent": Spec(local(), ("batch_sizes", "values")),
        lr + "adam_preconditioner": Spec(precond(), ("batch_size", "grad_sq", "grad_var", "eps", "n_data")),
        lr + "adam_reversion_batch_size": Spec(reversion(), ("grad_sq", "grad_var", "eps", "n_data")),
        lr + "adam_max_lr_vs_batch": Spec(
            adam(), ("batch_sizes", "lam", "form", "beta1", "grad_sq", "grad_var", "eps", *model_args)
        ),
        lr + "min_damping": Spec(damping(), ("lr", "batch_size", "method", "momentum", "beta1", *model_args)),
    }


def model_specs() -> dict[str, Spec]:
    """Specs of every public callable of the model modules and of rmt.mean_square."""
    return {
        **_wigner_specs(),
        **_wishart_specs(),
        **_bulk_specs(),
        **_profile_specs(),
        **_learning_rate_specs(),
        **mean_square_specs(),
    }
