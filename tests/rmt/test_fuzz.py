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

import os
import re
import signal
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rmt
from rmt import sampling, symbolic
from tests.rmt.fuzz_specs_finite_horizon import finite_horizon_specs
from tests.rmt.fuzz_specs_models import model_specs
from tests.rmt.fuzz_specs_tools import tool_specs
from tests.rmt.fuzz_strategies import EXEMPT, HOSTILE, Spec, public_callables

CALL_LIMIT_S = int(
    os.environ.get("RMT_FUZZ_CALL_LIMIT_S", "60")
)  # a single call running longer than this counts as a hang
CALLS: Counter[str] = Counter()  # calls made per function in this session (printed by tests/conftest.py)
# one entry per public callable of rmt
SPECS: dict[str, Spec] = {**model_specs(), **tool_specs(), **finite_horizon_specs()}


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
