"""Seeded Monte-Carlo samplers for the package's random-matrix models, and fast extremal eigenvalues.

Conventions (docs/theory.md §1a, §2):
* GOE noise of scale ν: symmetric, off-diagonal variance ν²/P, diagonal variance 2ν²/P; spectrum → [−2ν, 2ν].
* Profile noise: ``Var E_jk = S_jk`` off the diagonal and ``2 S_jj`` on it (reduces to the GOE for S = ν²/P).
* Spiked Wishart: ``Σ^{1/2} Z Zᵀ Σ^{1/2} / n`` with Z ∈ R^{P×n} standard Gaussian.

Exact O(P) models for the top eigenvalue (Dumitriu–Edelman): a GOE matrix is orthogonally similar to a
symmetric
tridiagonal matrix with N(0, 2ν²/P) diagonal and ν·χ_{P−k}/√P off-diagonal entries, through an orthogonal
Q = 1 ⊕ Q' that fixes e₁ (Householder tridiagonalisation started from e₁); so a spike θ e₁e₁ᵀ only adds θ to
the
(1, 1) entry, and the squared overlap of the top eigenvector with the spike is the squared first component of
the
tridiagonal eigenvector. Likewise Z = U B Vᵀ with U = 1 ⊕ U' and B lower bidiagonal (B_kk ~ χ_{n−k+1},
B_{k+1,k} ~ χ_{P−k}); a population spike on e₁ commutes with U and scales the first row of B.

Every sampler takes ``seed`` (an int, None, or a ``numpy.random.Generator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from numpy.typing import ArrayLike, NDArray

from rmt.checks import (
    FloatArray,
    _power_of_two_unit,
    check_choice,
    check_finite,
    check_int,
    check_orthonormal_columns,
    check_positive,
    check_size,
    check_square_matrix,
    leading_dim,
)

SeedLike = int | np.random.Generator | None

MAX_REPS = 10**7  # replicates per call (a Python loop: more would run for hours; split such a run)
_DENSE_SUBSET_LIMIT = 600  # below this size, eigh(subset_by_index) beats ARPACK


def as_generator(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from an int seed, None (fresh entropy) or an existing Generator (returned as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int, None or a numpy.random.Generator, got {type(seed).__name__}")


@dataclass(frozen=True)
class TopEigen:
    """Top eigenvalues of independent replicates and the squared overlap of their eigenvector with the
    spike."""

    eigenvalues: FloatArray  # (n_reps,)
    overlaps: FloatArray  # (n_reps,): |<u', e_1>|²


# ------------------------------------------------------------------------------------------------------------
# Dense samplers.


def _spike_matrix(thetas: FloatArray, vectors: FloatArray) -> FloatArray:
    return (vectors * thetas[None, :]) @ vectors.T


def _scalar(arr: FloatArray, name: str) -> float:
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return float(arr)


def _finite(out: FloatArray, names: str) -> FloatArray:
    """``out`` if every entry is finite; else a ``ValueError`` naming the arguments that overflowed."""
    if not np.isfinite(out).all():
        raise ValueError(f"the sample overflows float64: {names} too large in magnitude")
    return out


def _spikes_and_vectors(n_params: int, thetas: Any, vectors: Any) -> tuple[FloatArray, FloatArray]:
    th = check_finite(thetas, "thetas").reshape(-1)
    if th.size > n_params:
        raise ValueError(f"thetas must have at most n_params = {n_params} entries, got {th.size}")
    if vectors is None:
        return th, np.eye(n_params)[:, : th.size]
    if leading_dim(vectors) not in (None, n_params):
        raise ValueError(
            f"vectors must have one row per coordinate (n_params = P = {n_params}), got {np.shape(vectors)}"
        )
    phi = check_orthonormal_columns(vectors, "vectors", n_rows=n_params)
    if phi.shape[1] != th.size:
        raise ValueError(f"vectors must have one column per spike: {th.size} thetas, {phi.shape[1]} columns")
    return th, phi


def sample_goe(n_params: int, nu: float = 1.0, seed: SeedLike = None) -> FloatArray:
    """GOE matrix with off-diagonal variance ν²/P and diagonal variance 2ν²/P (semicircle on [−2ν, 2ν])."""
    p = check_int(n_params, "n_params", minimum=1)
    check_size(p * p, "n_params", copies=3)
    scale = _scalar(check_positive(nu, "nu", allow_zero=True), "nu")
    g = as_generator(seed).standard_normal((p, p))
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite((g + g.T) * (scale / np.sqrt(2.0 * p)), "nu")


def sample_spiked_wigner(
    n_params: int, thetas: ArrayLike, nu: float, vectors: ArrayLike | None = None, seed: SeedLike = None
) -> FloatArray:
    """``Φ diag(θ) Φᵀ + ν·GOE`` (dense P×P). Default spike directions: the first r coordinate vectors.

    Example:
        >>> A = sample_spiked_wigner(1000, [2.0], 1.0, seed=0)   # top eigenvalue ≈ 2 + 1/2
    """
    p = check_int(n_params, "n_params", minimum=1)
    check_size(p * p, "n_params", copies=4)
    th, phi = _spikes_and_vectors(p, thetas, vectors)
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(sample_goe(p, nu, seed) + _spike_matrix(th, phi), "nu, thetas")


def sample_profile_wigner(
    S: ArrayLike,
    thetas: ArrayLike = (),
    vectors: ArrayLike | None = None,
    seed: SeedLike = None,
    a: ArrayLike | None = None,
) -> FloatArray:
    """``Φ diag(θ) Φᵀ + diag(a) + E`` with independent Gaussian noise ``Var E_jk = S_jk`` (diagonal: 2 S_jj).

    S is any symmetric entrywise non-negative P×P profile, e.g. ``S = ε g gᵀ / P`` (rows not constant), whose
    spectrum is predicted by :func:`rmt.profile.wigner_type_edges` / :func:`rmt.profile.wigner_type_outliers`.
    """
    s = check_square_matrix(S, "S", symmetric=True, nonnegative=True)
    p = s.shape[0]
    th, phi = _spikes_and_vectors(p, thetas, vectors)
    g = as_generator(seed).standard_normal((p, p))
    noise = np.triu(g * np.sqrt(s), 1)
    noise = noise + noise.T + np.diag(np.diag(g) * np.sqrt(2.0 * np.diag(s)))
    if a is not None:
        a_arr = check_finite(a, "a")
        if a_arr.shape != (p,):
            raise ValueError(f"a must have shape ({p},) (one shift per row of S), got {a_arr.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            noise[np.diag_indices(p)] += a_arr
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(noise + _spike_matrix(th, phi), "S, thetas, a")


def sample_spiked_wishart(
    n_params: int, n_samples: int, population_eigenvalues: ArrayLike, seed: SeedLike = None
) -> FloatArray:
    """``Σ^{1/2} Z Zᵀ Σ^{1/2} / n`` with ``Σ = diag(population_eigenvalues)`` (length P, all > 0)."""
    p = check_int(n_params, "n_params", minimum=1)
    n = check_int(n_samples, "n_samples", minimum=1)
    check_size(p * n, "n_params x n_samples", copies=2)
    check_size(p * p, "n_params", copies=2)
    pop = check_positive(population_eigenvalues, "population_eigenvalues").reshape(-1)
    if pop.size != p:
        raise ValueError(f"population_eigenvalues must have n_params = {p} entries, got {pop.size}")
    x = np.sqrt(pop)[:, None] * as_generator(seed).standard_normal((p, n))
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite((x @ x.T) / n, "population_eigenvalues")


def discrete_bulk(
    n_params: int, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> FloatArray:
    """P diagonal values realising a discrete measure Σ w_i δ_{x_i} (counts by largest-remainder rounding)."""
    p = check_int(n_params, "n_params", minimum=1)
    check_size(p, "n_params", copies=2)
    x = check_finite(bulk_eigenvalues, "bulk_eigenvalues").reshape(-1)
    if x.size == 0:
        raise ValueError("bulk_eigenvalues must hold at least one value, got an empty array")
    w = (
        np.full(x.size, 1.0 / x.size)
        if bulk_weights is None
        else check_positive(bulk_weights, "bulk_weights", allow_zero=True).reshape(-1)
    )
    if w.size != x.size or not (w > 0).any():
        raise ValueError(
            f"bulk_weights must have one weight per entry of bulk_eigenvalues ({x.size}) with a positive "
            "sum, "
            f"got {w.size} weights"
        )
    w = w / w.max()
    exact = p * w / w.sum()
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts))[: p - counts.sum()]] += 1
    return np.repeat(x, counts)


def sample_bulk_spike(
    n_params: int,
    thetas: ArrayLike,
    nu: float,
    bulk_eigenvalues: ArrayLike,
    bulk_weights: ArrayLike | None = None,
    seed: SeedLike = None,
) -> FloatArray:
    """``diag(θ_1, …, θ_r, bulk) + ν·GOE``: spikes on the first r coordinates, orthogonal to a diagonal bulk.

    The bulk realises the discrete measure Σ w_i δ_{x_i} on the remaining P − r coordinates (docs/theory.md
    §1c:
    spikes
    are eigenvalues of H with eigenvectors orthogonal to the bulk's — the Hessian case).
    """
    p = check_int(n_params, "n_params", minimum=2)
    check_size(p * p, "n_params", copies=3)
    th = check_finite(thetas, "thetas").reshape(-1)
    if th.size >= p:
        raise ValueError(f"thetas must have fewer than n_params = {p} entries")
    diag = np.concatenate([th, discrete_bulk(p - th.size, bulk_eigenvalues, bulk_weights)])
    out = sample_goe(p, nu, seed)
    with np.errstate(over="ignore", invalid="ignore"):
        out[np.diag_indices(p)] += diag
    return _finite(out, "thetas, nu, bulk_eigenvalues")


# ------------------------------------------------------------------------------------------------------------
# Exact O(P) models of the top eigenpair.


def _top_of_tridiagonal(d: FloatArray, e: FloatArray, with_overlap: bool) -> tuple[float, float]:
    """Largest eigenvalue of a symmetric tridiagonal matrix (LAPACK bisection, O(P)) and, on request, the
    squared
    first component of its unit eigenvector (inverse iteration with banded solves, O(P)); NaN otherwise."""
    p = d.size
    # eigenvalues scale with the matrix: work in units of a power of two near its largest entry (exact)
    unit = _power_of_two_unit(max(float(np.abs(d).max()), float(np.abs(e).max(initial=0.0))))
    d, e = d / unit, e / unit
    lam = float(scipy.linalg.eigvalsh_tridiagonal(d, e, select="i", select_range=(p - 1, p - 1))[0])
    with np.errstate(over="ignore"):
        lam_out = float(lam * unit)
    if not with_overlap:
        return lam_out, float("nan")
    shift = lam + 1e-9 * (abs(lam) + float(np.abs(e).max(initial=0.0)) + 1e-300)
    banded = np.zeros((3, p))
    banded[0, 1:] = e
    banded[1] = d - shift
    banded[2, :-1] = e
    x = np.ones(p) / np.sqrt(p)
    for _ in range(3):
        x = scipy.linalg.solve_banded((1, 1), banded, x, check_finite=False)
        x /= np.linalg.norm(x)
    return lam_out, float(x[0] ** 2)


@overload
def spiked_wigner_top_eigenvalues(
    theta: float,
    nu: float,
    n_params: int,
    n_reps: int,
    seed: SeedLike = ...,
    *,
    return_overlaps: Literal[False] = ...,
) -> FloatArray: ...
@overload
def spiked_wigner_top_eigenvalues(
    theta: float,
    nu: float,
    n_params: int,
    n_reps: int,
    seed: SeedLike = ...,
    *,
    return_overlaps: Literal[True],
) -> TopEigen: ...
def spiked_wigner_top_eigenvalues(
    theta: float,
    nu: float,
    n_params: int,
    n_reps: int,
    seed: SeedLike = None,
    *,
    return_overlaps: bool = False,
) -> FloatArray | TopEigen:
    """Top eigenvalue of ``θ e₁e₁ᵀ + ν·GOE`` (P×P) for ``n_reps`` replicates, exact in law, O(P) each.

    Dumitriu–Edelman tridiagonal model: diagonal N(0, 2ν²/P) with θ added to the first entry, off-diagonal
    ν·χ_{P−k}/√P (k = 1 … P−1). With ``return_overlaps`` also the squared overlap of the top eigenvector with
    e₁.

    Example:
        >>> lam = spiked_wigner_top_eigenvalues(2.0, 1.0, 10_000, 200, seed=0)   # mean ≈ 2.5, sd ≈ 1.22/√P
    """
    th = _scalar(check_finite(theta, "theta"), "theta")
    scale = _scalar(check_positive(nu, "nu"), "nu")
    p = check_int(n_params, "n_params", minimum=2)
    reps = check_int(n_reps, "n_reps", minimum=1, maximum=MAX_REPS)
    check_size(p, "n_params", copies=8)
    rng = as_generator(seed)
    dof = np.arange(p - 1, 0, -1, dtype=np.float64)
    vals, ovs = np.empty(reps), np.empty(reps)
    for i in range(reps):
        d = rng.standard_normal(p) * (scale * np.sqrt(2.0 / p))
        d[0] += th
        e = np.sqrt(rng.chisquare(dof)) * (scale / np.sqrt(p))
        vals[i], ovs[i] = _top_of_tridiagonal(d, e, return_overlaps)
    _finite(vals, "theta, nu")
    return TopEigen(vals, ovs) if return_overlaps else vals


@overload
def spiked_wishart_top_eigenvalues(
    ell: float,
    sigma2: float,
    n_params: int,
    n_samples: int,
    n_reps: int,
    seed: SeedLike = ...,
    *,
    return_overlaps: Literal[False] = ...,
) -> FloatArray: ...
@overload
def spiked_wishart_top_eigenvalues(
    ell: float,
    sigma2: float,
    n_params: int,
    n_samples: int,
    n_reps: int,
    seed: SeedLike = ...,
    *,
    return_overlaps: Literal[True],
) -> TopEigen: ...
def spiked_wishart_top_eigenvalues(
    ell: float,
    sigma2: float,
    n_params: int,
    n_samples: int,
    n_reps: int,
    seed: SeedLike = None,
    *,
    return_overlaps: bool = False,
) -> FloatArray | TopEigen:
    """Top eigenvalue of ``Σ^{1/2} Z Zᵀ Σ^{1/2}/n`` with ``Σ = σ² I + (ℓ − σ²) e₁e₁ᵀ``, exact in law, O(P)
    each.

    Bidiagonal model: ``Z ~ U B Vᵀ`` with U = 1 ⊕ U' and B lower bidiagonal, ``B_kk ~ χ_{n−k+1}``,
    ``B_{k+1,k} ~ χ_{P−k}``; the spike scales row 1 of B by √(ℓ/σ²), and the top eigenvalue is that of the
    tridiagonal ``σ² B Bᵀ / n`` (size min(P, n + 1); the remaining eigenvalues are 0).
    """
    ell_v = _scalar(check_positive(ell, "ell"), "ell")
    s2 = _scalar(check_positive(sigma2, "sigma2"), "sigma2")
    p = check_int(n_params, "n_params", minimum=2)
    n = check_int(n_samples, "n_samples", minimum=1)
    reps = check_int(n_reps, "n_reps", minimum=1, maximum=MAX_REPS)
    check_size(min(p, n + 1), "n_params", copies=8)
    rng = as_generator(seed)
    size = min(p, n + 1)
    n_diag = min(p, n)  # B_kk, k = 1..n_diag
    n_sub = min(p - 1, n)  # B_{k+1,k}, k = 1..n_sub
    diag_dof = n - np.arange(n_diag, dtype=np.float64)
    sub_dof = p - 1 - np.arange(n_sub, dtype=np.float64)
    vals, ovs = np.empty(reps), np.empty(reps)
    for i in range(reps):
        bd = np.zeros(size)
        bd[:n_diag] = np.sqrt(rng.chisquare(diag_dof))
        bs = np.zeros(size)  # bs[k] = B_{k+1,k} (0-based: row k+1, column k)
        bs[:n_sub] = np.sqrt(rng.chisquare(sub_dof))
        with np.errstate(over="ignore"):
            bd[0] *= np.sqrt(ell_v / s2)
        with np.errstate(over="ignore", invalid="ignore"):
            d = bd**2
            d[1:] += bs[: size - 1] ** 2
            e = bd[: size - 1] * bs[: size - 1]
        _finite(np.concatenate([d, e]), "ell / sigma2")
        with np.errstate(over="ignore", under="ignore"):
            ds, es = d * (s2 / n), e * (s2 / n)
        if np.isfinite(ds).all() and np.isfinite(es).all():
            vals[i], ovs[i] = _top_of_tridiagonal(ds, es, return_overlaps)
        else:  # σ²/n scales every eigenvalue: applied after the eigensolve (no overflow inside LAPACK)
            top, ovs[i] = _top_of_tridiagonal(d, e, return_overlaps)
            with np.errstate(over="ignore"):
                vals[i] = top * (s2 / n)
    _finite(vals, "ell, sigma2")
    return TopEigen(vals, ovs) if return_overlaps else vals


# ------------------------------------------------------------------------------------------------------------
# Extremal eigenpairs without a full dense eigendecomposition.


@overload
def extremal_eigenvalues(
    A: ArrayLike | scipy.sparse.linalg.LinearOperator | scipy.sparse.spmatrix | scipy.sparse.sparray,
    k: int = ...,
    which: str = ...,
    *,
    return_vectors: Literal[False] = ...,
    tol: float = ...,
    seed: SeedLike = ...,
) -> FloatArray: ...
@overload
def extremal_eigenvalues(
    A: ArrayLike | scipy.sparse.linalg.LinearOperator | scipy.sparse.spmatrix | scipy.sparse.sparray,
    k: int = ...,
    which: str = ...,
    *,
    return_vectors: Literal[True],
    tol: float = ...,
    seed: SeedLike = ...,
) -> tuple[FloatArray, FloatArray]: ...
def extremal_eigenvalues(
    A: ArrayLike | scipy.sparse.linalg.LinearOperator | scipy.sparse.spmatrix | scipy.sparse.sparray,
    k: int = 1,
    which: str = "LA",
    *,
    return_vectors: bool = False,
    tol: float = 0.0,
    seed: SeedLike = 0,
) -> FloatArray | tuple[FloatArray, FloatArray]:
    """The k largest ("LA"), smallest ("SA") or largest-magnitude ("LM") eigenvalues of a symmetric matrix.

    Sorted outermost first (descending for LA/LM by value/magnitude, ascending for SA). Dense matrices up to
    600×600 use LAPACK ``eigh(subset_by_index=...)``; larger ones and sparse matrices / LinearOperators use
    ARPACK Lanczos (``eigsh``) with a seeded start vector. Never a full dense eigendecomposition.

    Example:
        >>> top = extremal_eigenvalues(sample_spiked_wigner(2000, [3.0], 1.0, seed=1), k=2)
    """
    which_v = check_choice(which, "which", ("LA", "SA", "LM"))
    if isinstance(A, scipy.sparse.linalg.LinearOperator) or scipy.sparse.issparse(A):
        op: Any = A
        p = int(op.shape[0])
        if op.shape[0] != op.shape[1]:
            raise ValueError(f"A must be square, got shape {op.shape}")
        dense = None
    else:
        dense = check_square_matrix(A, "A", symmetric=True)
        p = dense.shape[0]
        # eigenvalues scale with A: work with A / 2^k (exact) so that entries near 1e308 do not overflow
        unit = _power_of_two_unit(float(np.abs(dense).max(initial=0.0)))
        op = dense = dense / unit
    if p == 0:
        raise ValueError("A must be a non-empty square matrix, got shape (0, 0)")
    kk = check_int(k, "k", minimum=1)
    if kk > p:
        raise ValueError(f"k must be <= the size of A ({p}), got {kk}")
    tol_ = check_positive(tol, "tol", allow_zero=True)
    if tol_.ndim != 0:
        raise ValueError(f"tol must be a scalar, got shape {tol_.shape}")
    rng = as_generator(seed)
    if dense is not None and (p <= _DENSE_SUBSET_LIMIT or kk >= p - 1):
        vals, vecs = _dense_subset(dense, kk, which_v)
    else:
        v0 = rng.standard_normal(p)
        vals, vecs = scipy.sparse.linalg.eigsh(op, k=kk, which=which_v, v0=v0, tol=float(tol_))
    if dense is not None:
        with np.errstate(over="ignore"):
            vals = vals * unit
        if not np.isfinite(vals).all():
            raise ValueError("A has eigenvalues beyond the float64 range (entries too large in magnitude)")
    order = _outermost_first(vals, which_v)
    vals, vecs = vals[order], vecs[:, order]
    return (vals, vecs) if return_vectors else vals


def _dense_subset(a: FloatArray, k: int, which: str) -> tuple[FloatArray, FloatArray]:
    p = a.shape[0]
    if which == "LA":
        return scipy.linalg.eigh(a, subset_by_index=[p - k, p - 1])
    if which == "SA":
        return scipy.linalg.eigh(a, subset_by_index=[0, k - 1])
    lo_vals, lo_vecs = scipy.linalg.eigh(a, subset_by_index=[0, k - 1])
    hi_vals, hi_vecs = scipy.linalg.eigh(a, subset_by_index=[p - k, p - 1])
    vals = np.concatenate([lo_vals, hi_vals])
    vecs = np.concatenate([lo_vecs, hi_vecs], axis=1)
    keep = np.argsort(-np.abs(vals))[:k]
    return vals[keep], vecs[:, keep]


def _outermost_first(vals: NDArray[np.float64], which: str) -> NDArray[np.intp]:
    if which == "SA":
        return np.argsort(vals)
    if which == "LM":
        return np.argsort(-np.abs(vals))
    return np.argsort(-vals)

