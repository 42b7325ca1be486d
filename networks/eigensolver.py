"""k extremal eigenpairs of a symmetric operator by thick-restart Lanczos (docs/theory.md §5).

:func:`top_eigenpairs` (and :func:`top_eigenvalues`) with scipy ``eigsh``-like arguments; dense solution for
P ≤ ncv. Conventions and defaults: :mod:`networks.lanczos` (which re-exports every public name here); the
Krylov building blocks: :mod:`networks.krylov`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from networks.curvature.operator import CurvatureOperator, as_operator
from networks.krylov import (
    BREAKDOWN_TOL,
    DEFAULT_TOL,
    _check_flag,
    _check_seed,
    _check_symmetric,
    _check_tol,
    _orthogonalize,
    _positive_number,
    _Products,
    _random_unit,
    _resolve_basis_device,
    symmetry_tol,
)
from rmt.checks import check_choice, check_int

Which = Literal["LA", "SA", "LM", "BE"]
"""Wanted eigenvalues (scipy ``eigsh``): largest / smallest algebraic, largest magnitude, both ends (k//2
from the bottom, the rest from the top)."""
WHICH: Final[tuple[Which, ...]] = get_args(Which)

MIN_LANCZOS_VECTORS: Final[int] = 20
"""Smallest default Krylov dimension ncv of thick-restart Lanczos: max(2k + 1, k + MIN_LANCZOS_VECTORS)."""
MAX_PRODUCTS_PER_VECTOR: Final[int] = 50
"""Default product budget of :func:`top_eigenpairs`: MAX_PRODUCTS_PER_VECTOR · ncv."""


def default_num_lanczos_vectors(k: int, size: int) -> int:
    """ncv = min(P, max(2k + 1, k + MIN_LANCZOS_VECTORS)) (scipy's eigsh uses max(2k + 1, 20))."""
    k = check_int(k, "k", minimum=1)
    size = check_int(size, "size", minimum=1)
    return min(size, max(2 * k + 1, k + MIN_LANCZOS_VECTORS))


@dataclass(frozen=True)
class EigenResult:
    """Extremal eigenpairs, most wanted first (LA: descending, SA: ascending, LM: descending |λ|; BE, both
    ends: ascending, like scipy's ``eigsh``).

    ``residuals`` are the Krylov estimates ‖A y − λ y‖; ``converged`` flags residual ≤ tol · max|θ|.
    """

    eigenvalues: np.ndarray
    eigenvectors: Tensor | None
    residuals: np.ndarray
    converged: np.ndarray
    num_products: int
    which: str


# --------------------------------------------------------------------------------------------------------
def _order(theta: np.ndarray, which: str) -> np.ndarray:
    """Indices of ``theta`` from most to least wanted (BE: alternately the top and the bottom, top first)."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "SA":
        return np.argsort(theta, kind="stable")
    if which == "LM":
        return np.argsort(-np.abs(theta), kind="stable")
    descending = np.argsort(-theta, kind="stable")
    out = np.empty_like(descending)
    out[0::2] = descending[: (theta.size + 1) // 2]
    out[1::2] = descending[::-1][: theta.size // 2]
    return out


def _final_order(theta: np.ndarray, wanted: np.ndarray, which: str) -> np.ndarray:
    """The wanted indices in output order: most wanted first, ascending for BE (as scipy's eigsh)."""
    return wanted[np.argsort(theta[wanted], kind="stable")] if which == "BE" else wanted


def top_eigenpairs(
    op: Any,
    k: int = 1,
    which: str = "LA",
    tol: float = DEFAULT_TOL,
    max_products: int | None = None,
    seed: int = 0,
    return_eigenvectors: bool = True,
    *,
    num_lanczos_vectors: int | None = None,
    basis_device: Any = None,
    eigenvalue_tol: float | None = None,
) -> EigenResult:
    """k extremal eigenpairs by thick-restart Lanczos (Wu & Simon 2000) with full reorthogonalisation.

    ``which`` follows scipy's ``eigsh``: "LA" largest algebraic, "SA" smallest algebraic, "LM" largest
    magnitude, "BE" both ends from one run (k//2 from the bottom, k − k//2 from the top). Each cycle extends
    the Krylov basis to ``num_lanczos_vectors`` (default :func:`default_num_lanczos_vectors`), then keeps the
    k + (ncv−k)/2 most wanted Ritz vectors plus the residual direction. Convergence is checked after every
    product (inside the cycle, on the small projected matrix): it stops as soon as the k wanted Ritz pairs
    have residual ≤ tol · max|θ|, or after ``max_products`` (default MAX_PRODUCTS_PER_VECTOR · ncv; at least
    k) products. For P ≤ ncv the operator is materialised (P products), checked for symmetry and solved
    densely. Results are sorted most wanted first (BE: ascending) and are deterministic for a given seed.

    ``eigenvalue_tol`` (opt-in, default None) adds a stopping rule on the eigenvalue instead of the vector:
    a wanted pair also counts as converged when r²/(δ·|θ|) ≤ eigenvalue_tol, with r its residual and δ the
    distance from θ to the nearest other Ritz value — the Kato–Temple bound |λ − θ| ≤ r²/gap with the Ritz
    gap standing in for the true gap (second order in r, so eigenvalues converge in fewer products than
    vectors; δ overestimates the gap before the neighbouring eigenvalue is resolved, so it is a heuristic).

    Raises:
        TypeError / ValueError: invalid arguments (named); a non-symmetric operator (probe pair, or the dense
            matrix for P ≤ ncv) or a non-finite product.
    """
    op = as_operator(op)
    which = check_choice(which, "which", WHICH)
    size = op.shape[0]
    k = check_int(k, "k", minimum=1, maximum=size)
    tol = _check_tol(tol)
    seed = _check_seed(seed)
    return_eigenvectors = _check_flag(return_eigenvectors, "return_eigenvectors")
    eig_tol = None if eigenvalue_tol is None else _positive_number(eigenvalue_tol, "eigenvalue_tol")
    if num_lanczos_vectors is None:
        ncv = default_num_lanczos_vectors(k, size)
    else:
        ncv = min(size, check_int(num_lanczos_vectors, "num_lanczos_vectors", minimum=k + 1))
    limit = MAX_PRODUCTS_PER_VECTOR * ncv if max_products is None else max_products
    limit = check_int(limit, "max_products", minimum=1)
    device = _resolve_basis_device(op, basis_device)
    apply = _Products(op, device)
    if ncv >= size:
        return _dense_eigenpairs(op, apply, k, which, return_eigenvectors)
    stop = _Stop(k, which, tol, eig_tol, limit)
    return _thick_restart(apply, _RestartedBasis(apply, ncv, seed), stop, return_eigenvectors)


@dataclass(frozen=True)
class _Stop:
    """When :func:`top_eigenpairs` stops: the k wanted pairs converged (residual ≤ tol · max|θ|, or the
    opt-in eigenvalue rule) or ``limit`` products were spent."""

    k: int
    which: str
    tol: float
    eig_tol: float | None
    limit: int

    def converged(self, theta: np.ndarray, residuals: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Convergence flags of the ``wanted`` Ritz pairs."""
        threshold = self.tol * max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
        converged = residuals[wanted] <= threshold
        if self.eig_tol is not None and theta.size > 1:
            converged |= _eigenvalue_converged(theta, residuals, wanted, self.eig_tol)
        return converged


class _RestartedBasis:
    """The thick-restart Krylov state: ncv + 1 float64 basis rows, the projected ncv×ncv matrix T (arrow-
    shaped after a restart, tridiagonal below it), running estimates of ‖T‖ and ‖A‖, and the seeded
    generator of the start vector and of fresh directions after an invariant subspace."""

    def __init__(self, apply: _Products, ncv: int, seed: int) -> None:
        size, device = apply.op.shape[0], apply.basis_device
        self.apply, self.ncv = apply, ncv
        self.generator = torch.Generator().manual_seed(seed)
        self.basis = torch.zeros(ncv + 1, size, dtype=torch.float64, device=device)
        self.basis[0] = _random_unit(size, self.generator, device, rademacher=False)
        self.t = np.zeros((ncv, ncv))
        self.scale, self.norm_estimate = 0.0, 0.0

    def extend(self, j: int, check_symmetry: bool) -> float:
        """Apply A to basis row j, orthogonalise it (α_j on T's diagonal) into row j + 1; returns β_j (0 at
        an invariant subspace, where row j + 1 is a fresh random direction orthogonal to the basis)."""
        basis, t, device = self.basis, self.t, self.apply.basis_device
        w = self.apply(basis[j])
        norm_w = float(w.norm())
        self.norm_estimate = max(self.norm_estimate, norm_w)
        w, coef, beta = _orthogonalize(w, basis[: j + 1], norm_w)
        t[j, j] = float(coef[j])
        if check_symmetry:
            _check_symmetric(float(coef[0]), t[0, 1], self.norm_estimate, self.apply.op.dtype)
        self.scale = max(self.scale, abs(t[j, j]) + beta)
        if beta <= BREAKDOWN_TOL * max(self.scale, np.finfo(float).tiny):
            # Invariant subspace: continue with a fresh direction orthogonal to the basis (coupling 0).
            beta = 0.0
            fresh = _random_unit(basis.shape[1], self.generator, device, False)
            fresh = _orthogonalize(fresh, basis[: j + 1], 1.0)[0]
            basis[j + 1] = fresh / fresh.norm()
        else:
            basis[j + 1] = w / beta
        return beta

    def restart(self, theta: np.ndarray, s: np.ndarray, order: np.ndarray, beta: float, k: int) -> int:
        """Keep the k + (ncv − k)/2 most wanted Ritz vectors and the residual direction; returns how many
        Ritz vectors were kept (the row where the next cycle continues)."""
        ncv, basis = self.ncv, self.basis
        n_keep = min(ncv - 1, k + (ncv - k) // 2)
        keep = order[:n_keep]
        s_keep = torch.from_numpy(np.ascontiguousarray(s[:, keep].T)).to(self.apply.basis_device)
        basis[:n_keep] = s_keep @ basis[:ncv]
        basis[n_keep] = basis[ncv]
        t = self.t = np.zeros((ncv, ncv))
        t[np.arange(n_keep), np.arange(n_keep)] = theta[keep]
        t[:n_keep, n_keep] = t[n_keep, :n_keep] = beta * s[-1, keep]
        return n_keep


def _thick_restart(
    apply: _Products, state: _RestartedBasis, stop: _Stop, return_eigenvectors: bool
) -> EigenResult:
    """Thick-restart Lanczos cycles (Wu & Simon 2000) until ``stop`` says so (checked after every product,
    on the projected matrix)."""
    ncv, k, which = state.ncv, stop.k, stop.which
    begin, first_cycle = 0, True
    while True:
        for j in range(begin, ncv):
            beta = state.extend(j, check_symmetry=first_cycle and j == 1)
            used = j + 1
            theta, s = np.linalg.eigh(state.t[:used, :used])
            residuals = beta * np.abs(s[-1, :])
            order = _order(theta, which)
            if used >= k:
                wanted = order[:k]
                converged = stop.converged(theta, residuals, wanted)
                if bool(converged.all()) or apply.count >= stop.limit:
                    return _eigen_result(
                        apply.op,
                        state.basis[:used],
                        theta,
                        s,
                        residuals,
                        converged,
                        wanted,
                        which,
                        return_eigenvectors,
                        apply.count,
                    )
            if used < ncv:
                state.t[j, used] = state.t[used, j] = beta
        first_cycle = False
        begin = state.restart(theta, s, order, beta, k)


def _eigenvalue_converged(
    theta: np.ndarray, residuals: np.ndarray, wanted: np.ndarray, eig_tol: float
) -> np.ndarray:
    """r_i² / (δ_i |θ_i|) ≤ eig_tol with δ_i the distance from θ_i to the nearest other Ritz value."""
    gaps = np.abs(theta[wanted][:, None] - theta[None, :])
    gaps[np.arange(wanted.size), wanted] = np.inf
    delta = gaps.min(axis=1)
    scale = np.maximum(np.abs(theta[wanted]), np.finfo(float).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = residuals[wanted] ** 2 / (delta * scale)
    return np.asarray(bound <= eig_tol)


def _eigen_result(
    op: CurvatureOperator,
    basis: Tensor,
    theta: np.ndarray,
    s: np.ndarray,
    residuals: np.ndarray,
    converged: np.ndarray,
    wanted: np.ndarray,
    which: str,
    return_eigenvectors: bool,
    num_products: int,
) -> EigenResult:
    index = _final_order(theta, wanted, which)
    flags = dict(zip(wanted.tolist(), converged.tolist(), strict=True))
    vectors = None
    if return_eigenvectors:
        s_wanted = torch.from_numpy(np.ascontiguousarray(s[:, index])).to(basis.device)
        vectors = (basis.T @ s_wanted).to(dtype=op.dtype, device=op.device)
    return EigenResult(
        eigenvalues=theta[index].copy(),
        eigenvectors=vectors,
        residuals=residuals[index].copy(),
        converged=np.array([flags[i] for i in index.tolist()], dtype=bool),
        num_products=num_products,
        which=which,
    )


def _dense_eigenpairs(
    op: CurvatureOperator, apply: _Products, k: int, which: str, return_eigenvectors: bool
) -> EigenResult:
    size = op.shape[0]
    eye = torch.eye(size, dtype=torch.float64, device=apply.basis_device)
    dense = torch.stack([apply(eye[j]) for j in range(size)], dim=1).cpu().numpy()
    norm = float(np.linalg.norm(dense))
    gap = float(np.linalg.norm(dense - dense.T)) / np.sqrt(2)
    if gap > symmetry_tol(op.dtype) * norm:
        raise ValueError(
            f"op must be symmetric: ‖A − Aᵀ‖_F/√2 = {gap:.3g} > {symmetry_tol(op.dtype):.2g} · ‖A‖_F "
            f"= {norm:.3g}; Lanczos methods need a symmetric operator"
        )
    theta, vecs = np.linalg.eigh((dense + dense.T) / 2)
    wanted = _final_order(theta, _order(theta, which)[:k], which)
    vectors = None
    if return_eigenvectors:
        vectors = torch.from_numpy(np.ascontiguousarray(vecs[:, wanted])).to(dtype=op.dtype, device=op.device)
    return EigenResult(
        eigenvalues=theta[wanted].copy(),
        eigenvectors=vectors,
        residuals=np.zeros(k),
        converged=np.ones(k, dtype=bool),
        num_products=apply.count,
        which=which,
    )


def top_eigenvalues(
    op: Any,
    k: int = 1,
    which: str = "LA",
    tol: float = DEFAULT_TOL,
    max_products: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The k extremal eigenvalues (numpy, most wanted first; BE ascending); see :func:`top_eigenpairs`."""
    return top_eigenpairs(op, k, which, tol, max_products, seed, return_eigenvectors=False).eigenvalues


__all__ = [
    "MAX_PRODUCTS_PER_VECTOR",
    "MIN_LANCZOS_VECTORS",
    "EigenResult",
    "default_num_lanczos_vectors",
    "top_eigenpairs",
    "top_eigenvalues",
]
