"""Argument validation shared by every public function of :mod:`rmt` and reused by :mod:`networks` and
:mod:`validation` (one wording for every error: the argument's name and the accepted range)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def as_float_array(value: Any, name: str) -> FloatArray:
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


def check_finite(value: Any, name: str) -> FloatArray:
    """Float64 array of finite values (``ValueError`` on inf/NaN)."""
    arr = as_float_array(value, name)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {_show(arr[~np.isfinite(arr)])}")
    return arr


def check_positive(value: Any, name: str, *, allow_zero: bool = False, allow_inf: bool = False) -> FloatArray:
    """Float64 array of values > 0 (>= 0 with ``allow_zero``)."""
    arr = as_float_array(value, name) if allow_inf else check_finite(value, name)
    bad = arr < 0 if allow_zero else arr <= 0
    if bad.any():
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {_show(arr[bad])}")
    return arr


def check_in_range(
    value: Any, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> FloatArray:
    """Float64 array of values in the interval [low, high] (open ends on request)."""
    arr = check_finite(value, name)
    bad = (arr <= low if low_open else arr < low) | (arr >= high if high_open else arr > high)
    if bad.any():
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {_show(arr[bad])}")
    return arr


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python int (numpy integers and integral floats are accepted) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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


def check_batch_size(batch_size: Any, n_data: Any = None, name: str = "batch_size") -> FloatArray:
    """Batch sizes B with 1 <= B (<= N when ``n_data`` is given); returns float64 array."""
    arr = check_finite(batch_size, name)
    if (arr < 1).any():
        raise ValueError(f"{name} must be >= 1, got {_show(arr[arr < 1])}")
    if n_data is not None:
        n = check_n_data(n_data)
        if (arr > n).any():
            raise ValueError(f"{name} must be <= n_data = {_show(n)}, got {_show(arr[arr > n])}")
    return arr


def check_n_data(n_data: Any, name: str = "n_data") -> FloatArray:
    """Training-set size N >= 2 (``inf`` allowed: sampling with an infinite pool)."""
    arr = as_float_array(n_data, name)
    if (arr < 2).any():
        raise ValueError(f"{name} must be >= 2 (or None/inf for an infinite pool), got {_show(arr[arr < 2])}")
    return arr


def check_square_matrix(
    value: Any, name: str, *, symmetric: bool = False, nonnegative: bool = False
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
    value: Any, name: str, n_rows: int | None = None, tol: float = 1e-8
) -> FloatArray:
    """A P x r float64 matrix with orthonormal columns (``VᵀV = I`` to ``tol``);
    a 1-D vector is one column."""
    arr = check_finite(value, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a P x r matrix, got shape {arr.shape}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} must have {n_rows} rows, got {arr.shape[0]}")
    gram = arr.T @ arr
    err = float(np.abs(gram - np.eye(arr.shape[1])).max(initial=0.0))
    if err > tol:
        raise ValueError(f"{name} must have orthonormal columns (max |VᵀV - I| = {err:.2e} > {tol:g})")
    return arr


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def scalar_or_array(arr: FloatArray) -> float | FloatArray:
    """Return a Python float for 0-d results and the array otherwise (numpy-style vectorisation)."""
    return float(arr) if np.ndim(arr) == 0 else arr


def _show(values: FloatArray) -> str:
    flat = np.ravel(values)
    if flat.size == 1:
        return f"{flat[0]:g}"
    return "[" + ", ".join(f"{v:g}" for v in flat[:5]) + (", ...]" if flat.size > 5 else "]")


def check_complex(value: Any, name: str, *, upper_half_plane: bool = True) -> NDArray[np.complex128]:
    """Complex128 array of finite values (real input accepted), with ``Im >= 0`` when ``upper_half_plane``."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be a complex number or an array of complex numbers, got {type(value).__name__}"
        )
    arr = np.asarray(value)
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
    eigenvalues: Any,
    weights: Any = None,
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
