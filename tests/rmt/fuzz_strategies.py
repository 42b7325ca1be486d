"""Shared pieces of the rmt input-contract fuzz (tests/rmt/test_fuzz.py): argument strategies, the hostile
values (:data:`HOSTILE`), the :class:`Spec` of one fuzzed callable, the exempt names and the discovery of
every public callable of ``rmt`` (:func:`public_callables`). The specs themselves are in
fuzz_specs_models.py and fuzz_specs_tools.py."""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

import rmt
from rmt import profile

# Public names that are result containers or constants, not entry points that take user input.
EXEMPT = {
    "rmt.sampling.TopEigen": "result container (built by the samplers from checked values)",
    "rmt.testing.MonteCarloComparison": "result container returned by assert_matches_monte_carlo",
    "rmt.symbolic.Step": "result container of a derivation (sympy expressions)",
    "rmt.symbolic.UnknownStepError": "exception class",
    "rmt.profile_systems.QVEConvergenceError": "exception class",
    "rmt._lazy.lazy_attributes": "package plumbing (PEP 562 lazy exports), not part of the theory API",
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


# ============================================================================================ discovery
def _rmt_modules() -> list[Any]:
    mods = [rmt]
    for info in pkgutil.iter_modules(rmt.__path__, "rmt."):
        mods.append(importlib.import_module(info.name))
    return mods


@functools.cache
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
