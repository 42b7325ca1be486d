"""Fuzz specs (tests/rmt/test_fuzz.py) of the tool modules: rmt.sampling, rmt.testing, rmt.symbolic,
rmt.checks; :func:`tool_specs` also includes those of the sample-spike modules (fuzz_specs_spikes.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from rmt import checks, symbolic
from tests.rmt.fuzz_specs_spikes import spike_specs
from tests.rmt.fuzz_strategies import (
    NONNEG,
    POS,
    REAL,
    SEED,
    Spec,
    _floats,
    _kw,
    _maybe_vec,
    _measure,
    _n_data_and_batch,
    _orthonormal,
    _profile_matrix,
    _vec,
)


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
        names = [n for n in d.names() if not _abstract(d[n])]  # steps with a numpy form
        return {"topic": topic, "name": draw(st.sampled_from(names))}

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


def _abstract(expr: Any) -> bool:
    """Whether a sympy step contains unevaluated derivatives or undefined functions (no numpy form)."""
    import sympy

    return bool(expr.atoms(sympy.Derivative) | expr.atoms(sympy.core.function.AppliedUndef))


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
        ck + "leading_dim": Spec(_kw(value=real), ()),  # total: any input gives an int or None
        ck + "refuse_non_finite": Spec(
            _kw(value=real, allow_inf=st.booleans()),
            ("value", "allow_inf"),
            call=_decorated_echo,
            allow_inf=True,
        ),
    }


def tool_specs() -> dict[str, Spec]:
    """Specs of every public callable of the tool modules and of the sample-spike modules."""
    return {**_sampling_specs(), **_testing_specs(), **_symbolic_specs(), **_checks_specs(), **spike_specs()}
