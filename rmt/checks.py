"""Argument validation shared by every public function of :mod:`rmt` and reused by :mod:`networks` and
:mod:`validation` (one wording for every error: the argument's name and the accepted range)."""

from __future__ import annotations

import functools
import inspect
import numbers
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
RealLike = ArrayLike
"""A real scalar or array-like of reals (what every ``rmt`` function accepts for a numeric argument)."""

__all__ = [
    "ArrayLike",
    "ComplexArray",
    "FloatArray",
    "RealLike",
    "as_float_array",
    "check_batch_size",
    "check_choice",
    "check_complex",
    "check_finite",
    "check_in_range",
    "check_int",
    "check_measure",
    "check_n_data",
    "check_orthonormal_columns",
    "check_positive",
    "check_size",
    "check_square_matrix",
    "memory_limit_bytes",
    "refuse_non_finite",
    "scalar_or_array",
]

_P = ParamSpec("_P")
_NAN_RESULT = "arr must not contain NaN (a result that is not a number)"
_R = TypeVar("_R")


def refuse_non_finite(*, allow_inf: bool = False) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator for closed forms: a float64 overflow in the result becomes a ``ValueError`` naming the
    arguments.

    The function runs under ``np.errstate(over="ignore", invalid="ignore", divide="ignore")``; a non-finite
    entry in its result (a NaN, or an inf unless ``allow_inf``: an infinity the function documents) means
    that the arguments are too large or too small in magnitude for float64 and is refused with a
    ``ValueError`` that lists every argument; so is numpy's broadcasting error for arrays of incompatible
    shapes. Argument errors raised by the function pass through unchanged.
    """

    if not isinstance(allow_inf, bool):
        raise TypeError(f"allow_inf must be a bool, got {type(allow_inf).__name__}")

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        names = ", ".join(inspect.signature(fn).parameters)

        @functools.wraps(fn)
        def inner(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            overflow = (
                f"{fn.__name__}: the result is not representable in float64 (overflow) for these "
                f"arguments; one of ({names}) is too large or too small in magnitude"
            )
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                    out = fn(*args, **kwargs)
            except ValueError as exc:
                if str(exc).startswith(_NAN_RESULT):  # scalar_or_array met a NaN result
                    raise ValueError(overflow) from None
                if "broadcast" not in str(exc):
                    raise
                raise ValueError(
                    f"{fn.__name__}: the array arguments ({names}) must broadcast together: {exc}"
                ) from None
            parts = out if isinstance(out, tuple) else (out,)
            for part in parts:
                arr = np.asarray(part)
                if arr.dtype.kind not in "fc":
                    continue
                bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
                if bad.any():
                    raise ValueError(overflow)
            return out

        return inner

    return wrap


def memory_limit_bytes() -> int:
    """Bytes one array request may use: this machine's physical memory (16 GiB if it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def check_size(count: int, name: str, *, itemsize: int = 8, copies: int = 1) -> int:
    """Refuse, before allocating, a request for ``copies`` arrays of ``count`` items of ``itemsize`` bytes
    that cannot fit in memory (:func:`memory_limit_bytes`): ``ValueError`` naming ``name`` and the sizes.

    ``count`` is the number of items one array holds (e.g. ``P*P`` for a dense P×P matrix); returns it.
    """
    n = check_int(count, name, minimum=0)
    size = check_int(itemsize, "itemsize", minimum=1)
    k = check_int(copies, "copies", minimum=1)
    need = n * size * k
    limit = memory_limit_bytes()
    if need > limit:
        amount = f"{need / 2**30:.3g} GiB" if need < 2**1000 else "more than 2^1000 bytes"
        raise ValueError(
            f"{name} asks for {amount} (copies = {k} array(s) of {n} items of itemsize {size} "
            "bytes), more than "
            f"this machine's memory ({limit / 2**30:.3g} GiB): it cannot fit in memory"
        )
    return n


def as_float_array(value: ArrayLike, name: str) -> FloatArray:
    """Return ``value`` as a float64 array, raising ``TypeError``/``ValueError`` that name ``name``.

    Booleans, strings, complex numbers and objects are rejected with ``TypeError``; NaN with ``ValueError``.
    ``+inf``/``-inf`` are accepted here (some arguments allow them, e.g. ``n_data=inf``); callers that need
    finite values use :func:`check_finite`.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be a real number or an array of real numbers, got {type(value).__name__}"
        )
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be a real number or an array of real numbers: {exc}") from None
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be a real number or an array of real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN")
    return arr


def check_finite(value: ArrayLike, name: str) -> FloatArray:
    """Float64 array of finite values (``ValueError`` on inf/NaN)."""
    arr = as_float_array(value, name)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {_show(arr[~np.isfinite(arr)])}")
    return arr


def check_positive(
    value: ArrayLike, name: str, *, allow_zero: bool = False, allow_inf: bool = False
) -> FloatArray:
    """Float64 array of values > 0 (>= 0 with ``allow_zero``)."""
    arr = as_float_array(value, name) if allow_inf else check_finite(value, name)
    bad = arr < 0 if allow_zero else arr <= 0
    if bad.any():
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {_show(arr[bad])}")
    return arr


def check_in_range(
    value: ArrayLike, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> FloatArray:
    """Float64 array of finite values in the interval [low, high] (open ends on request; a bound may be
    infinite, e.g. ``high=inf`` for "greater than ``low``")."""
    low, high = _bound_scalar(low, "low"), _bound_scalar(high, "high")
    if low > high:
        raise ValueError(f"low must be <= high, got low = {low:g} > high = {high:g}")
    arr = check_finite(value, name)
    bad = (arr <= low if low_open else arr < low) | (arr >= high if high_open else arr > high)
    if bad.any():
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {_show(arr[bad])}")
    return arr


def check_int(
    value: object,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    integral_type: bool = False,
) -> int:
    """A Python int within [minimum, maximum]. Numpy integers and integral floats (``3.0``) are accepted,
    unless ``integral_type``: then anything but an integer type is a ``TypeError`` (a layer count, say)."""
    for bound, label in ((minimum, "minimum"), (maximum, "maximum")):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, numbers.Integral)):
            raise TypeError(f"{label} must be an integer or None, got {type(bound).__name__}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integral_type else numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        fval = float(value)
        if not np.isfinite(fval) or fval != int(fval):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        out = int(fval)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    if maximum is not None and out > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {out}")
    return out


def check_batch_size(
    batch_size: ArrayLike, n_data: ArrayLike | None = None, name: str = "batch_size"
) -> FloatArray:
    """Batch sizes B with 1 <= B (<= N when ``n_data`` is given); returns float64 array."""
    arr = check_finite(batch_size, name)
    if (arr < 1).any():
        raise ValueError(f"{name} must be >= 1, got {_show(arr[arr < 1])}")
    if n_data is not None:
        n = check_n_data(n_data)
        try:
            shape = np.broadcast_shapes(arr.shape, n.shape)
        except ValueError:
            raise ValueError(f"{name} {arr.shape} and n_data {n.shape} must broadcast together") from None
        over = arr > n
        if over.any():
            raise ValueError(
                f"{name} must be <= n_data = {_show(n)}, got {_show(np.broadcast_to(arr, shape)[over])}"
            )
    return arr


def check_n_data(n_data: ArrayLike, name: str = "n_data") -> FloatArray:
    """Training-set size N >= 2 (``inf`` allowed: sampling with an infinite pool)."""
    arr = as_float_array(n_data, name)
    if (arr < 2).any():
        raise ValueError(f"{name} must be >= 2 (or None/inf for an infinite pool), got {_show(arr[arr < 2])}")
    return arr


def check_square_matrix(
    value: ArrayLike, name: str, *, symmetric: bool = False, nonnegative: bool = False
) -> FloatArray:
    """A finite float64 square matrix, optionally symmetric (to 1e-10 relative) and entrywise >= 0."""
    arr = check_finite(value, name)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square 2-D matrix, got shape {arr.shape}")
    if symmetric:
        scale = max(float(np.abs(arr).max(initial=0.0)), 1e-300)
        if np.abs(arr - arr.T).max(initial=0.0) > 1e-10 * scale:
            raise ValueError(f"{name} must be symmetric")
    if nonnegative and (arr < 0).any():
        raise ValueError(f"{name} must be entrywise >= 0, got minimum {arr.min():.3g}")
    return arr


def check_orthonormal_columns(
    value: ArrayLike, name: str, n_rows: int | None = None, tol: float = 1e-8
) -> FloatArray:
    """A P x r float64 matrix with orthonormal columns (``VᵀV = I`` to ``tol``);
    a 1-D vector is one column."""
    tol_ = _real_scalar(check_positive(tol, "tol", allow_zero=True), "tol")
    rows = None if n_rows is None else check_int(n_rows, "n_rows", minimum=0)
    arr = check_finite(value, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a P x r matrix, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got {arr.shape[0]}")
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: inf/NaN error, refused below
        gram = arr.T @ arr
        err = float(np.abs(gram - np.eye(arr.shape[1])).max(initial=0.0))
    if not err <= tol_:
        raise ValueError(f"{name} must have orthonormal columns (max |VᵀV - I| = {err:.2e} > {tol_:g})")
    return arr


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if not isinstance(choices, tuple) or not all(isinstance(c, str) for c in choices):
        raise TypeError(f"choices must be a tuple of strings, got {choices!r:.80}")
    if not choices:
        raise ValueError("choices must hold at least one string")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _power_of_two_unit(size: float) -> float:
    """A unit for exact rescaling: 1 for magnitudes in [1e-100, 1e100] (or 0 / non-finite), else the largest
    power of two <= ``size`` (never overflows). Keeps results bit-identical in the ordinary range."""
    if not np.isfinite(size) or size <= 0 or 1e-100 <= size <= 1e100:
        return 1.0
    return float(2.0 ** np.floor(np.log2(size)))


def _finite_or(primary: FloatArray, fallback: FloatArray) -> FloatArray:
    """``primary`` where it is finite, else ``fallback``: a closed form keeps its usual arithmetic (results
    bit-identical in the ordinary range) and switches to a scale-free rewriting where that arithmetic
    under- or overflows (e.g. ``1 − ν²/θ²`` → ``1 − (ν/θ)²`` when θ² underflows to 0)."""
    return np.asarray(np.where(np.isfinite(primary), primary, fallback), dtype=np.float64)


def _bound_scalar(value: ArrayLike, name: str) -> float:
    """A real scalar interval bound: ±inf allowed, NaN not."""
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a real scalar, got shape {arr.shape}")
    return float(arr)


def _real_scalar(value: ArrayLike, name: str) -> float:
    arr = check_finite(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a real scalar, got shape {arr.shape}")
    return float(arr)


def scalar_or_array(arr: FloatArray) -> float | FloatArray:
    """Return a Python float for 0-d results and the array otherwise (numpy-style vectorisation)."""
    if not isinstance(arr, (np.ndarray, np.floating, float, int)) or isinstance(arr, bool):
        raise TypeError(f"arr must be a float64 numpy array, got {type(arr).__name__}")
    if isinstance(arr, np.ndarray) and arr.dtype.kind not in "fiu":
        raise TypeError(f"arr must be a real numpy array, got dtype {arr.dtype}")
    if np.isnan(arr).any():
        raise ValueError(_NAN_RESULT)
    return float(arr) if np.ndim(arr) == 0 else arr


def _show(values: FloatArray) -> str:
    flat = np.ravel(values)
    if flat.size == 1:
        return f"{flat[0]:g}"
    return "[" + ", ".join(f"{v:g}" for v in flat[:5]) + (", ...]" if flat.size > 5 else "]")


def check_complex(value: ArrayLike, name: str, *, upper_half_plane: bool = True) -> NDArray[np.complex128]:
    """Complex128 array of finite values (real input accepted), with ``Im >= 0`` when ``upper_half_plane``."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be a complex number or an array of complex numbers, got {type(value).__name__}"
        )
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nesting, objects numpy cannot convert
        raise TypeError(f"{name} must be a complex number or a rectangular array of them: {exc}") from None
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(
            f"{name} must be a complex number or an array of complex numbers, got dtype {arr.dtype}"
        )
    out = arr.astype(np.complex128, copy=False)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if upper_half_plane and (out.imag < 0).any():
        raise ValueError(f"{name} must lie in the closed upper half plane (Im >= 0)")
    return out


def check_measure(
    eigenvalues: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    name: str = "bulk_eigenvalues",
    weights_name: str = "bulk_weights",
    nonnegative: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """A discrete probability measure ``Σ_i w_i δ_{x_i}``: sorted distinct atoms and weights summing to 1.

    ``eigenvalues`` is a scalar or 1-D array of finite reals (``>= 0`` with ``nonnegative``); ``weights``
    (default uniform) has the same shape, entries ``>= 0`` and a positive sum; it is normalised to 1. Repeated
    atoms are merged and zero-weight atoms dropped.
    """
    atoms = np.atleast_1d(check_finite(eigenvalues, name))
    if atoms.ndim != 1 or atoms.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {np.shape(eigenvalues)}")
    if nonnegative and (atoms < 0).any():
        raise ValueError(
            f"{name} must be >= 0 (a positive semi-definite bulk), got {_show(atoms[atoms < 0])}"
        )
    if weights is None:
        w = np.full(atoms.shape, 1.0 / atoms.size)
    else:
        w = np.atleast_1d(check_positive(weights, weights_name, allow_zero=True))
        if w.shape != atoms.shape:
            raise ValueError(f"{weights_name} must have the shape of {name} {atoms.shape}, got {w.shape}")
        total = float(w.sum())
        if total <= 0:
            raise ValueError(f"{weights_name} must have a positive sum")
        w = w / total
    unique, inverse = np.unique(atoms, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=w, minlength=unique.size).astype(np.float64)
    keep = merged > 0
    return unique[keep], merged[keep]


def leading_dim(value: ArrayLike) -> int | None:
    """Length of the first axis of an array-like (None for scalars and objects numpy cannot shape)."""
    try:
        shape = np.shape(value)
    except (ValueError, TypeError):
        return None
    return shape[0] if shape else None
