"""Input-contract fuzz of every public function of :mod:`rmt` (issue 11, "Input contract").

For every public callable of every ``rmt`` module there is one entry in :data:`SPECS`: a hypothesis strategy
of *nominal* keyword arguments (which must succeed and return finite values) and the names of the arguments to
mutate. Each example either calls the function with nominal arguments, or replaces one argument by a hostile
value (None, strings, bools, NaN, ±inf, 0, negatives, 1e-300, 1e308, huge sizes, empty / ragged / wrongly
shaped arrays, complex numbers, arbitrary floats and integers). The contract checked for every call:

* it returns a finite result (``inf`` only where the function documents it, ``allow_inf``), or
* it raises ``ValueError`` / ``TypeError`` whose message names the mutated argument (whole word);
* anything else fails: another exception type (``OverflowError``, ``ZeroDivisionError``, ``RuntimeError``,
  ``MemoryError``, ``IndexError``, ``FloatingPointError``, ...), a numpy ``RuntimeWarning`` (turned into an
  error here), a nominal call that is refused, or a call running longer than :data:`CALL_LIMIT_S` (a hang).

``test_every_public_callable_has_a_fuzz_entry`` fails when a public function is added to any ``rmt`` module
without an entry here. The number of examples per function follows the hypothesis profile (tests/conftest.py:
``ci`` by default, ``nightly`` for many more); the calls made per function are printed at the end of the run.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import pkgutil
import re
import signal
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rmt
from rmt import checks, learning_rates, profile, sampling, symbolic

CALL_LIMIT_S = int(
    os.environ.get("RMT_FUZZ_CALL_LIMIT_S", "60")
)  # a single call running longer than this counts as a hang
CALLS: Counter[str] = Counter()  # calls made per function in this session (printed by tests/conftest.py)

# Public names that are result containers or constants, not entry points that take user input.
EXEMPT = {
    "rmt.sampling.TopEigen": "result container (built by the samplers from checked values)",
    "rmt.testing.MonteCarloComparison": "result container returned by assert_matches_monte_carlo",
    "rmt.symbolic.Step": "result container of a derivation (sympy expressions)",
    "rmt.symbolic.UnknownStepError": "exception class",
    "rmt.profile.QVEConvergenceError": "exception class",
    "rmt.symbolic.Derivation": "built by derivation(); its public methods are fuzzed below",
}


# ============================================================================================ strategies
def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


POS = _floats(1e-3, 1e3)
NONNEG = st.one_of(st.just(0.0), POS)
REAL = _floats(-1e3, 1e3)
UNIT = _floats(0.0, 0.99)
BATCH = _floats(1.0, 1e4)
SEED = st.one_of(st.none(), st.integers(0, 2**32))


def _vec(elements: st.SearchStrategy[float], lo: int = 1, hi: int = 4) -> st.SearchStrategy[Any]:
    return st.lists(elements, min_size=lo, max_size=hi).map(lambda v: np.asarray(v, dtype=np.float64))


def _maybe_vec(elements: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.one_of(elements, _vec(elements))


HOSTILE_POOL: list[Any] = [
    None,
    "x",
    b"x",
    "",
    True,
    False,
    math.nan,
    math.inf,
    -math.inf,
    0,
    0.0,
    -0.0,
    -1,
    -1.0,
    0.5,
    1,
    3,
    1e-300,
    -1e-300,
    5e-324,
    1e308,
    -1e308,
    1.7e308,
    10**12,
    2**62,
    2**70,
    10**100,
    -(10**12),
    1j,
    1 + 1j,
    complex(math.nan, 1),
    np.array([]),
    np.zeros((2, 0)),
    np.zeros((0, 0)),
    np.zeros((2, 3)),
    np.ones((3, 3, 3)),
    np.array([1.0, math.nan]),
    np.array([1.0, math.inf]),
    np.full((3, 3), 1e308),
    np.full(3, 1e-300),
    np.array(["a"]),
    np.array([True, False]),
    [[1.0, 2.0], [3.0]],
    [1, "a"],
    object(),
    {},
    (),
    [],
    np.float32(2.0),
    np.int64(5),
    np.array(1e308),
    np.eye(3),
    -np.eye(3),
    np.ones(50),
    np.array([1e-200, 1e200]),
]

HOSTILE_ARRAY = st.lists(
    st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=5
).map(lambda v: np.asarray(v, dtype=np.float64))

HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_POOL),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),  # sizes between these and the huge ones of the pool are valid, only slow
    st.complex_numbers(max_magnitude=1e308),
    HOSTILE_ARRAY,
    HOSTILE_ARRAY.map(lambda a: a.reshape(1, -1)),
)


@st.composite
def _n_data_and_batch(draw: st.DrawFn) -> tuple[Any, Any]:
    n_data = draw(st.one_of(st.none(), st.just(math.inf), _floats(2.0, 1e5).map(round)))
    top = 1e4 if n_data is None or math.isinf(n_data) else float(n_data)
    return n_data, draw(_floats(1.0, top).map(lambda b: min(float(round(b)), top)))


@st.composite
def _measure(draw: st.DrawFn, nonnegative: bool = False) -> dict[str, Any]:
    atoms = draw(_vec(_floats(0.05 if nonnegative else -5.0, 5.0), 1, 5))
    out: dict[str, Any] = {"bulk_eigenvalues": atoms}
    if draw(st.booleans()):
        out["bulk_weights"] = draw(_vec(_floats(0.05, 1.0), atoms.size, atoms.size))
    return out


@st.composite
def _profile_matrix(draw: st.DrawFn) -> Any:
    p = draw(st.integers(2, 5))
    kind = draw(st.sampled_from(["constant", "rank_one", "random"]))
    if kind == "constant":
        s = np.full((p, p), draw(_floats(0.1, 1.0)) / p)
    elif kind == "rank_one":
        g = draw(_vec(_floats(0.2, 2.0), p, p))
        s = np.outer(g, g) / p
    else:
        u = draw(_vec(_floats(0.05, 1.0), p * p, p * p)).reshape(p, p)
        s = 0.5 * (u + u.T) / p
    return s


@st.composite
def _block_profile(draw: st.DrawFn) -> Any:
    k = draw(st.integers(1, 3))
    t = draw(_vec(_floats(0.05, 1.0), k * k, k * k)).reshape(k, k)
    sizes = draw(_vec(st.integers(1, 4).map(float), k, k))
    shifts = draw(_vec(_floats(-1.0, 1.0), k, k))
    return profile.BlockProfile(0.5 * (t + t.T) / sizes.sum(), sizes, shifts)


def _profile_kwargs(draw: st.DrawFn, with_a: bool = True) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"S": draw(_block_profile())}
    s = draw(_profile_matrix())
    out: dict[str, Any] = {"S": s}
    if with_a and draw(st.booleans()):
        out["a"] = draw(_vec(_floats(-1.0, 1.0), s.shape[0], s.shape[0]))
    return out


def _p_of(s: Any) -> int:
    return int(round(s.sizes.sum())) if isinstance(s, profile.BlockProfile) else int(s.shape[0])


def _orthonormal(draw: st.DrawFn, p: int, r: int) -> Any:
    g = draw(_vec(_floats(-1.0, 1.0), p * r, p * r)).reshape(p, r) + np.eye(p, r)
    q, _ = np.linalg.qr(g)
    return q


def _composite(build: Callable[[st.DrawFn], dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.composite(build)()


def _kw(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(strategies)


# ============================================================================================ specs
@dataclass(frozen=True)
class Spec:
    """How to fuzz one callable: nominal keyword arguments and which of them to mutate."""

    nominal: st.SearchStrategy[dict[str, Any]]
    mutate: tuple[str, ...]
    allow_inf: bool = False  # the function documents an infinite result (e.g. "never separates")
    weight: float = 1.0  # relative share of the example budget (slow functions get less)
    allowed: tuple[type[BaseException], ...] = ()  # documented extra outcomes (e.g. AssertionError)
    call: Callable[..., Any] | None = None  # wrapper when the entry point is a method
    # names an error may use for a mutated argument besides its own (validators name their ``name`` label;
    # a valid but stricter bound, e.g. ``tol=0``, can make another argument fail)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)


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
        "rmt.profile.BlockProfile": Spec(block(), ("variances", "sizes", "shifts")),
        "rmt.profile.BlockProfile.from_function": Spec(
            from_function(), ("variance", "n_blocks", "shift"), call=profile.BlockProfile.from_function
        ),
        "rmt.profile.coarse_grain_profile": Spec(coarse(), ("S", "n_blocks", "a")),
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


def _sampling_specs() -> dict[str, Spec]:
    p_small = st.integers(2, 12)

    @st.composite
    def spiked(draw: st.DrawFn) -> dict[str, Any]:
        p = draw(p_small)
        r = draw(st.integers(0, 2))
        out: dict[str, Any] = {"n_params": p, "thetas": draw(_vec(REAL, r, r)), "nu": draw(NONNEG)}
        if draw(st.booleans()):
            out["vectors"] = _orthonormal(draw, p, r)
        out["seed"] = draw(SEED)
        return out

    @st.composite
    def profile_wigner(draw: st.DrawFn) -> dict[str, Any]:
        s = draw(_profile_matrix())
        p = s.shape[0]
        r = draw(st.integers(0, 2))
        out: dict[str, Any] = {"S": s, "thetas": draw(_vec(REAL, r, r)), "seed": draw(SEED)}
        if draw(st.booleans()):
            out["vectors"] = _orthonormal(draw, p, r)
        if draw(st.booleans()):
            out["a"] = draw(_vec(REAL, p, p))
        return out

    @st.composite
    def wishart(draw: st.DrawFn) -> dict[str, Any]:
        p = draw(p_small)
        return {
            "n_params": p,
            "n_samples": draw(st.integers(1, 12)),
            "population_eigenvalues": draw(_vec(POS, p, p)),
            "seed": draw(SEED),
        }

    @st.composite
    def discrete(draw: st.DrawFn) -> dict[str, Any]:
        return {"n_params": draw(st.integers(1, 50)), **draw(_measure())}

    @st.composite
    def bulk_spike(draw: st.DrawFn) -> dict[str, Any]:
        p = draw(p_small)
        r = draw(st.integers(0, p - 1))
        return {
            "n_params": p,
            "thetas": draw(_vec(REAL, r, r)),
            "nu": draw(NONNEG),
            "seed": draw(SEED),
            **draw(_measure()),
        }

    @st.composite
    def extremal(draw: st.DrawFn) -> dict[str, Any]:
        p = draw(st.integers(1, 10))
        u = draw(_vec(REAL, p * p, p * p)).reshape(p, p)
        return {
            "A": u + u.T,
            "k": draw(st.integers(1, p)),
            "which": draw(st.sampled_from(["LA", "SA", "LM"])),
            "return_vectors": draw(st.booleans()),
            "tol": draw(_floats(0.0, 1e-3)),
            "seed": draw(SEED),
        }

    sp = "rmt.sampling."
    return {
        sp + "as_generator": Spec(_kw(seed=SEED), ("seed",)),
        sp + "sample_goe": Spec(_kw(n_params=p_small, nu=NONNEG, seed=SEED), ("n_params", "nu", "seed")),
        sp + "sample_spiked_wigner": Spec(spiked(), ("n_params", "thetas", "nu", "vectors", "seed")),
        sp + "sample_profile_wigner": Spec(profile_wigner(), ("S", "thetas", "vectors", "seed", "a")),
        sp + "sample_spiked_wishart": Spec(
            wishart(), ("n_params", "n_samples", "population_eigenvalues", "seed")
        ),
        sp + "discrete_bulk": Spec(discrete(), ("n_params", "bulk_eigenvalues", "bulk_weights")),
        sp + "sample_bulk_spike": Spec(
            bulk_spike(), ("n_params", "thetas", "nu", "bulk_eigenvalues", "bulk_weights", "seed")
        ),
        sp + "spiked_wigner_top_eigenvalues": Spec(
            _kw(
                theta=REAL,
                nu=POS,
                n_params=st.integers(2, 40),
                n_reps=st.integers(1, 4),
                seed=SEED,
                return_overlaps=st.booleans(),
            ),
            ("theta", "nu", "n_params", "n_reps", "seed"),
        ),
        sp + "spiked_wishart_top_eigenvalues": Spec(
            _kw(
                ell=POS,
                sigma2=POS,
                n_params=st.integers(2, 40),
                n_samples=st.integers(1, 40),
                n_reps=st.integers(1, 4),
                seed=SEED,
                return_overlaps=st.booleans(),
            ),
            ("ell", "sigma2", "n_params", "n_samples", "n_reps", "seed"),
        ),
        sp + "extremal_eigenvalues": Spec(extremal(), ("A", "k", "which", "tol", "seed")),
    }


def _testing_specs() -> dict[str, Spec]:
    @st.composite
    def monte_carlo(draw: st.DrawFn) -> dict[str, Any]:
        draws = draw(_vec(REAL, 2, 8))
        out: dict[str, Any] = {
            "predict": float(draws.mean()),
            "sample": draws,
            "n_params": draw(st.integers(1, 10**6)),
        }
        if draw(st.booleans()):
            out["n_reps"] = draws.size
        if draw(st.booleans()):
            out["z"], out["bias_per_param"] = draw(POS), draw(NONNEG)
        if draw(st.booleans()):
            out["extra_tolerance"], out["params"] = draw(NONNEG), {"P": 3}
        return out

    @st.composite
    def minmax(draw: st.DrawFn) -> dict[str, Any]:
        lo = draw(POS)
        return {"min_value": lo, "max_value": lo + draw(NONNEG)}

    @st.composite
    def supercritical(draw: st.DrawFn) -> dict[str, Any]:
        nu, p = draw(POS), draw(st.integers(1, 10**6))
        return {"nu": nu, "n_params": p, "width": draw(_floats(0.0, 5.0))}

    @st.composite
    def measures(draw: st.DrawFn) -> dict[str, Any]:
        lo = draw(REAL)
        return {"max_atoms": draw(st.integers(1, 30)), "low": lo, "high": lo + draw(_floats(1.0, 10.0))}

    tp = "rmt.testing."
    return {
        tp + "assert_matches_monte_carlo": Spec(
            monte_carlo(),
            (
                "predict",
                "sample",
                "n_params",
                "n_reps",
                "sd",
                "z",
                "bias_per_param",
                "extra_tolerance",
                "seed",
                "params",
            ),
            allowed=(AssertionError,),  # a mismatch between prediction and sample is this function's verdict
        ),
        tp + "critical_window": Spec(
            _kw(theta_c=REAL, n_params=st.integers(1, 10**9), width=NONNEG), ("theta_c", "n_params", "width")
        ),
        tp + "spikes": Spec(minmax(), ("min_value", "max_value")),
        tp + "noise_scales": Spec(minmax(), ("min_value", "max_value")),
        tp + "supercritical_spikes": Spec(supercritical(), ("nu", "n_params", "max_value", "width")),
        tp + "discrete_measures": Spec(measures(), ("max_atoms", "low", "high")),
        tp + "variance_profiles": Spec(
            _kw(
                n_params=st.integers(1, 30),
                kind=st.sampled_from([None, "constant", "rank_one", "block", "random"]),
                max_blocks=st.integers(1, 6),
            ),
            ("n_params", "kind", "max_blocks"),
        ),
        tp + "batch_sizes": Spec(
            _kw(
                lam=_floats(0.1, 10.0),
                sigma2=_floats(1e-4, 1.0),
                n_params=st.integers(1000, 10**6),
                max_batch=st.integers(64, 10**5),
                width=_floats(0.0, 1.0),
                regime=st.just("any"),
            ),
            ("lam", "sigma2", "n_params", "max_batch", "n_data", "width", "regime"),
        ),
    }


def _symbolic_specs() -> dict[str, Spec]:
    def method(name: str) -> Callable[..., Any]:
        def call(topic: str, **kwargs: Any) -> Any:
            return getattr(symbolic.derivation(topic), name)(**kwargs)

        return call

    topics = st.sampled_from(symbolic.TOPICS)

    @st.composite
    def function(draw: st.DrawFn) -> dict[str, Any]:
        topic = draw(topics)
        d = symbolic.derivation(topic)
        return {"topic": topic, "name": draw(st.sampled_from(d.names()))}

    def call_function(topic: str, name: Any) -> Any:
        # lambdify a step in every symbol it uses; the result is a callable
        d = symbolic.derivation(topic)
        expr = d[name]
        args = sorted(str(s) for s in getattr(expr, "free_symbols", ()) if str(s) in d.symbols)
        return d.function(name, *args)

    sy = "rmt.symbolic."
    return {
        sy + "derivation": Spec(_kw(topic=st.sampled_from((*symbolic.TOPICS, "all"))), ("topic",)),
        sy + "Derivation.names": Spec(_kw(topic=topics), (), call=method("names")),
        sy + "Derivation.__getitem__": Spec(
            function(), ("name",), call=lambda topic, name: symbolic.derivation(topic)[name]
        ),
        sy + "Derivation.function": Spec(function(), ("name",), call=call_function),
        sy + "Derivation.latex": Spec(_kw(topic=topics), (), call=method("latex"), weight=0.2),
        sy + "Derivation.text": Spec(
            _kw(topic=topics, pretty=st.booleans()), ("pretty",), call=method("text"), weight=0.2
        ),
    }


def _decorated_echo(value: Any, allow_inf: Any) -> Any:
    """refuse_non_finite applied to a function that returns its (checked) argument."""

    def echo(value: Any) -> Any:
        return checks.as_float_array(value, "value")

    return checks.refuse_non_finite(allow_inf=allow_inf)(echo)(value)


def _checks_specs() -> dict[str, Spec]:
    name = st.just("value")
    real = _maybe_vec(REAL)

    @st.composite
    def in_range(draw: st.DrawFn) -> dict[str, Any]:
        lo = draw(REAL)
        hi = lo + draw(POS)
        return {"value": draw(_floats(lo, hi)), "name": "value", "low": lo, "high": hi}

    @st.composite
    def integer(draw: st.DrawFn) -> dict[str, Any]:
        v = draw(st.integers(-100, 100))
        return {"value": v, "name": "value", "minimum": v - draw(st.integers(0, 5)), "maximum": v + 3}

    @st.composite
    def batch(draw: st.DrawFn) -> dict[str, Any]:
        n_data, b = draw(_n_data_and_batch())
        return {"batch_size": b, "n_data": n_data}

    @st.composite
    def square(draw: st.DrawFn) -> dict[str, Any]:
        p = draw(st.integers(1, 5))
        u = draw(_vec(_floats(0.0, 10.0), p * p, p * p)).reshape(p, p)
        return {"value": u + u.T, "name": "value", "symmetric": True, "nonnegative": True}

    @st.composite
    def ortho(draw: st.DrawFn) -> dict[str, Any]:
        p = draw(st.integers(1, 6))
        return {"value": _orthonormal(draw, p, draw(st.integers(1, p))), "name": "value", "n_rows": p}

    @st.composite
    def measure(draw: st.DrawFn) -> dict[str, Any]:
        m = draw(_measure())
        return {"eigenvalues": m["bulk_eigenvalues"], "weights": m.get("bulk_weights")}

    ck = "rmt.checks."
    return {
        ck + "as_float_array": Spec(_kw(value=real, name=name), ("value",), allow_inf=True),  # documented
        ck + "check_finite": Spec(_kw(value=real, name=name), ("value",)),
        ck + "check_positive": Spec(
            _kw(value=_maybe_vec(POS), name=name, allow_zero=st.booleans(), allow_inf=st.booleans()),
            ("value",),
            allow_inf=True,  # inf is returned exactly when the caller passes allow_inf=True
        ),
        ck + "check_in_range": Spec(
            in_range(), ("value", "low", "high"), labels={"low": ("value",), "high": ("value",)}
        ),
        ck + "check_int": Spec(
            integer(), ("value", "minimum", "maximum"), labels={"minimum": ("value",), "maximum": ("value",)}
        ),
        ck + "check_batch_size": Spec(batch(), ("batch_size", "n_data")),
        ck + "check_n_data": Spec(
            _kw(n_data=st.one_of(_floats(2.0, 1e9), st.just(math.inf))), ("n_data",), allow_inf=True
        ),
        ck + "check_square_matrix": Spec(square(), ("value",)),
        ck + "check_orthonormal_columns": Spec(
            ortho(), ("value", "n_rows", "tol"), labels={"n_rows": ("value",), "tol": ("value",)}
        ),
        ck + "check_choice": Spec(
            _kw(value=st.sampled_from(["a", "b"]), name=name, choices=st.just(("a", "b"))),
            ("value", "choices"),
            labels={"choices": ("value",)},
        ),
        ck + "check_complex": Spec(
            _kw(value=st.builds(complex, REAL, _floats(0, 10)), name=name), ("value",)
        ),
        ck + "check_measure": Spec(
            measure(),
            ("eigenvalues", "weights"),
            labels={"eigenvalues": ("bulk_eigenvalues", "bulk_weights"), "weights": ("bulk_weights",)},
        ),
        ck + "check_size": Spec(
            _kw(
                count=st.integers(0, 10**6),
                name=st.just("count"),
                itemsize=st.integers(1, 16),
                copies=st.integers(1, 4),
            ),
            ("count", "itemsize", "copies"),
        ),
        ck + "scalar_or_array": Spec(_kw(arr=real), ("arr",), allow_inf=True),  # passes results through
        ck + "memory_limit_bytes": Spec(st.just({}), ()),
        ck + "refuse_non_finite": Spec(
            _kw(value=real, allow_inf=st.booleans()),
            ("value", "allow_inf"),
            call=_decorated_echo,
            allow_inf=True,
        ),
    }


SPECS: dict[str, Spec] = {
    **_wigner_specs(),
    **_wishart_specs(),
    **_bulk_specs(),
    **_profile_specs(),
    **_learning_rate_specs(),
    **_sampling_specs(),
    **_testing_specs(),
    **_symbolic_specs(),
    **_checks_specs(),
}


# ============================================================================================ discovery
def _rmt_modules() -> list[Any]:
    mods = [rmt]
    for info in pkgutil.iter_modules(rmt.__path__, "rmt."):
        mods.append(importlib.import_module(info.name))
    return mods


def public_callables() -> dict[str, Any]:
    """Every public function and class of every rmt module (by defining module), plus public methods of the
    public classes that take arguments (classmethods / methods other than dataclass plumbing)."""
    found: dict[str, Any] = {}
    for mod in _rmt_modules():
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for n in names:
            obj = getattr(mod, n)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            home = getattr(obj, "__module__", "")
            if not home.startswith("rmt"):
                continue
            found[f"{home}.{obj.__name__}"] = obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    public = not attr.startswith("_") or attr == "__getitem__"
                    if public and (inspect.isfunction(member) or isinstance(member, classmethod)):
                        found[f"{home}.{obj.__name__}.{attr}"] = member
    return found


def test_every_public_callable_has_a_fuzz_entry() -> None:
    """A public function added to rmt without an entry in SPECS (or EXEMPT, with a reason) fails here."""
    public = set(public_callables())
    missing = sorted(public - set(SPECS) - set(EXEMPT))
    assert not missing, f"public rmt callables without a fuzz entry: {missing}"
    stale = sorted((set(SPECS) | set(EXEMPT)) - public)
    assert not stale, f"fuzz entries for names that are not public rmt callables: {stale}"


def test_fuzz_budget_meets_the_ci_minimum() -> None:
    """The profile's budget gives at least 5,000 fuzzed calls in total (the ci profile's contract)."""
    assert sum(_examples(spec) for spec in SPECS.values()) >= 5000


# ============================================================================================ the contract
def _examples(spec: Spec) -> int:
    """Examples for one function: the profile's ``max_examples`` (ci: 100, nightly: 2000) × 0.7 × weight."""
    return max(5, int(round(settings().max_examples * 0.7 * spec.weight)))


class _Hang(Exception):
    pass


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Hang(f"call ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _assert_finite(value: Any, allow_inf: bool, path: str = "result") -> None:
    if isinstance(value, (bool, str, bytes, type(None), np.random.Generator, st.SearchStrategy)) or callable(
        value
    ):
        return
    if isinstance(value, (int, float, complex, np.number)):
        ok = np.isfinite(value) or (allow_inf and not np.isnan(value))
        assert ok, f"{path} is not finite: {value!r}"
        return
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            ok_arr = np.isfinite(value) | (allow_inf & ~np.isnan(value))
            assert ok_arr.all(), f"{path} has non-finite entries: {value[~ok_arr][:5]}"
        return
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _assert_finite(item, allow_inf, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            _assert_finite(item, allow_inf, f"{path}[{k!r}]")
        return
    if is_dataclass(value):
        for f in fields(value):
            if f.name not in ("params", "steps", "symbols"):
                _assert_finite(getattr(value, f.name), allow_inf, f"{path}.{f.name}")
        return
    if isinstance(value, symbolic.Derivation) or type(value).__module__.startswith("sympy"):
        return  # symbolic results: sympy expressions are exact, not floats
    raise AssertionError(f"{path} has an unexpected type {type(value).__name__}")


def _resolve(qualname: str) -> Callable[..., Any]:
    spec = SPECS[qualname]
    if spec.call is not None:
        return spec.call
    obj = public_callables()[qualname]
    return obj


def _run(qualname: str, kwargs: dict[str, Any], mutated: str | None) -> None:
    spec = SPECS[qualname]
    fn = _resolve(qualname)
    CALLS[qualname] += 1
    with warnings.catch_warnings(), _time_limit(CALL_LIMIT_S):
        warnings.simplefilter("error")
        try:
            out = fn(**kwargs)
        except (ValueError, TypeError) as exc:
            if mutated is None:
                raise AssertionError(
                    f"nominal call {qualname}({_show(kwargs)}) was refused: {exc!r}"
                ) from exc
            message = str(exc)
            names = (mutated, *spec.labels.get(mutated, ()))
            assert any(
                re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names
            ), (
                f"{qualname}: {type(exc).__name__} for {mutated}={_show_value(kwargs[mutated])} does not "
                "name "
                f"the argument: {message!r}"
            )
            return
        except spec.allowed:
            return
    _assert_finite(out, spec.allow_inf)


def _show_value(v: Any) -> str:
    text = repr(v)
    return text if len(text) < 120 else text[:117] + "..."


def _show(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show_value(v)}" for k, v in kwargs.items())


@pytest.mark.parametrize("qualname", sorted(SPECS))
def test_input_contract(qualname: str) -> None:
    """Nominal arguments give finite results; one hostile argument gives a named ValueError/TypeError or a
    finite result; nothing else (see the module docstring)."""
    spec = SPECS[qualname]

    @settings(max_examples=_examples(spec), suppress_health_check=list(HealthCheck), deadline=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        kwargs = data.draw(spec.nominal, label="nominal")
        if not spec.mutate or data.draw(st.integers(0, 3), label="mode") == 0:
            _run(qualname, kwargs, None)
            return
        arg = data.draw(st.sampled_from(spec.mutate), label="argument")
        kwargs = {**kwargs, arg: data.draw(HOSTILE, label=arg)}
        _run(qualname, kwargs, arg)

    run()


# ============================================================================================ reported cases
def test_reported_contract_failures_are_fixed() -> None:
    """The five failures of issue 11's fuzz, and a size that cannot fit in memory."""
    assert rmt.wigner_overlap(1e-200, 0.0) == 1.0  # was NaN (ν²/θ² underflowed to 0/0)
    # H = δ_{1e-190}, q = 1: Marchenko–Pastur edges σ²(1 ± √q)² = (0, 4e-190); was [nan, nan]
    np.testing.assert_allclose(rmt.wishart_bulk_edges(1.0, [1e-190]), [0.0, 4e-190], atol=1e-203)
    # μ = δ_{1e308}, ν = 1: G(10i) ≈ 1/(10i − 1e308); was OverflowError
    g = rmt.free_convolution_stieltjes(10j, 1.0, [1e308])
    assert np.isfinite(g) and g.real == pytest.approx(-1e-308, rel=1e-12)
    with pytest.raises(ValueError, match=r"\bS\b"):  # was RuntimeError (S + Sᵀ overflowed)
        rmt.solve_qve(np.full((3, 3), 1e308), 1 + 1j)
    with pytest.raises(ValueError, match="bulk_eigenvalues"):  # was ZeroDivisionError (empty bulk)
        rmt.sample_bulk_spike(46, [0.1], 1.0, np.zeros((2, 0)))
    with pytest.raises(ValueError, match="n_params.*cannot fit in memory"):
        sampling.sample_goe(10**12)
    with pytest.raises(ValueError, match="n_reps"):
        rmt.spiked_wigner_top_eigenvalues(2.0, 1.0, 10, 10**12)
