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
from scipy.linalg.lapack import dstevd as _dstevd
from scipy.linalg.lapack import dsyevd as _dsyevd
from torch import Tensor

from networks.curvature.operator import CurvatureOperator, as_operator
from networks.krylov import (
    BREAKDOWN_TOL,
    DEFAULT_STOPPING,
    DEFAULT_TOL,
    Stopping,
    _check_flag,
    _check_seed,
    _check_stopping,
    _check_symmetric,
    _check_tol,
    _eigenvalue_error_bounds,
    _lanczos_orthogonalize,
    _norm,
    _orthogonalize,
    _Products,
    _random_unit,
    _resolve_basis_device,
    converged_within,
    symmetry_tol,
)
from rmt.checks import check_choice, check_int

Which = Literal["LA", "SA", "LM", "BE"]
"""Wanted eigenvalues (scipy ``eigsh``): largest / smallest algebraic, largest magnitude, both ends (k//2
from the bottom, the rest from the top)."""
WHICH: Final[tuple[Which, ...]] = get_args(Which)

MIN_LANCZOS_VECTORS: Final[int] = 20
"""Default Krylov dimension ncv of thick-restart Lanczos: max(2k + 1, k + MIN_LANCZOS_VECTORS,
LANCZOS_VECTORS_PER_EIGENPAIR · k), capped at P."""
LANCZOS_VECTORS_PER_EIGENPAIR: Final[int] = 4
"""ncv ≥ 4k: a restart discards Krylov information, so the basis is sized for the wanted pairs to converge
in about one cycle (top-10 on the 4.9k-parameter CNN to 1e-4: 48 products with ncv = 40, 49 with 30 and 50
with eigsh's 21; the unrestarted Krylov optimum is 48)."""
MAX_PRODUCTS_PER_VECTOR: Final[int] = 50
"""Default product budget of :func:`top_eigenpairs`: MAX_PRODUCTS_PER_VECTOR · ncv."""


def default_num_lanczos_vectors(k: int, size: int) -> int:
    """ncv = min(P, max(2k + 1, k + MIN_LANCZOS_VECTORS, LANCZOS_VECTORS_PER_EIGENPAIR · k)) (scipy's eigsh
    uses max(2k + 1, 20)); memory (ncv + 1) · P · 8 bytes."""
    k = check_int(k, "k", minimum=1)
    size = check_int(size, "size", minimum=1)
    return min(size, max(2 * k + 1, k + MIN_LANCZOS_VECTORS, LANCZOS_VECTORS_PER_EIGENPAIR * k))


@dataclass(frozen=True)
class EigenResult:
    """Extremal eigenpairs, most wanted first (LA: descending, SA: ascending, LM: descending |λ|; BE, both
    ends: ascending, like scipy's ``eigsh``).

    ``residuals`` are the Krylov estimates ‖A y − λ y‖ (what eigenvector accuracy depends on: the angle to
    the eigenvector is ≤ residual / gap); ``error_bounds`` the eigenvalue error bounds min(r, r²/δ)
    (docs/theory.md §5b); ``converged`` flags bound ≤ tol · max|θ| for the bound ``stopping`` names
    ("eigenvalue": ``error_bounds``, "residual": ``residuals``).
    """

    eigenvalues: np.ndarray
    eigenvectors: Tensor | None
    residuals: np.ndarray
    converged: np.ndarray
    num_products: int
    which: str
    error_bounds: np.ndarray
    stopping: str = DEFAULT_STOPPING


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
    stopping: str = DEFAULT_STOPPING,
) -> EigenResult:
    """k extremal eigenpairs by thick-restart Lanczos (Wu & Simon 2000) with full reorthogonalisation.

    ``which`` follows scipy's ``eigsh``: "LA" largest algebraic, "SA" smallest algebraic, "LM" largest
    magnitude, "BE" both ends from one run (k//2 from the bottom, k − k//2 from the top). Each cycle extends
    the Krylov basis to ``num_lanczos_vectors`` (default :func:`default_num_lanczos_vectors`), then keeps the
    k + (ncv−k)/2 most wanted Ritz vectors plus the residual direction. Convergence is checked after every
    product (inside the cycle, on the small projected matrix): it stops as soon as the k wanted Ritz pairs
    have an error bound ≤ tol · max|θ|, or after ``max_products`` (default MAX_PRODUCTS_PER_VECTOR · ncv; at
    least k) products. For P ≤ ncv the operator is materialised (P products), checked for symmetry and
    solved densely. Results are sorted most wanted first (BE: ascending) and are deterministic for a seed.

    ``stopping`` names the bound that ``tol`` applies to (docs/theory.md §5b):

    * "eigenvalue" (default, ``DEFAULT_STOPPING``): the eigenvalue error bound min(r, r²/δ) of
      :func:`networks.krylov.eigenvalue_error_bounds` — the gap theorem (Kato–Temple) |λ − θ| ≤ r²/δ with
      the gap δ estimated from the Ritz values (minus the neighbours' residuals) and the unconditional
      |λ − θ| ≤ r where that gap is not resolved. Second order in the residual r, so eigenvalues converge
      in fewer products than vectors: ask for this when you want eigenvalues.
    * "residual": the residual r = ‖Ay − θy‖ itself (scipy ``eigsh``/ARPACK's test, up to its per-pair
      scale); the eigenvector's angle to the eigenspace is ≤ r/gap, so ask for this when you use the
      eigenvectors (overlaps, Rayleigh quotients on other matrices).
    * "relative": the eigenvalue error bound against the pair's own |θ| instead of max|θ| (ARPACK's scale):
      for an eigenvalue small against ‖A‖, e.g. λ_min of a nearly PSD batch Hessian with a large null
      space, whose Ritz value θ ≈ 0 would otherwise pass tol · max|θ| before the negative outlier is found.

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
    rule = _check_stopping(stopping)
    if num_lanczos_vectors is None:
        ncv = default_num_lanczos_vectors(k, size)
    else:
        ncv = min(size, check_int(num_lanczos_vectors, "num_lanczos_vectors", minimum=k + 1))
    limit = MAX_PRODUCTS_PER_VECTOR * ncv if max_products is None else max_products
    limit = check_int(limit, "max_products", minimum=1)
    device = _resolve_basis_device(op, basis_device)
    apply = _Products(op, device)
    if ncv >= size:
        return _dense_eigenpairs(op, apply, k, which, return_eigenvectors, rule)
    stop = _Stop(k, which, tol, rule, limit)
    return _thick_restart(apply, _RestartedBasis(apply, ncv, seed), stop, return_eigenvectors)


@dataclass(frozen=True)
class _Stop:
    """When :func:`top_eigenpairs` stops: the k wanted pairs converged (their ``stopping`` bound ≤ tol ·
    max|θ|) or ``limit`` products were spent."""

    k: int
    which: str
    tol: float
    stopping: Stopping
    limit: int

    def bounds(
        self, theta: np.ndarray, residuals: np.ndarray, wanted: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(the eigenvalue error bounds, the bounds ``tol`` applies to) of the ``wanted`` Ritz pairs."""
        eig = _eigenvalue_error_bounds(theta, residuals, wanted)
        return eig, residuals[wanted] if self.stopping == "residual" else eig


class _RestartedBasis:
    """The thick-restart Krylov state: ncv + 1 float64 basis rows, the projected ncv×ncv matrix T (arrow-
    shaped after a restart, tridiagonal below it), running estimates of ‖T‖ and ‖A‖, and the seeded
    generator of the start vector and of fresh directions after an invariant subspace."""

    def __init__(self, apply: _Products, ncv: int, seed: int) -> None:
        size, device = apply.op.shape[0], apply.basis_device
        self.apply, self.ncv = apply, ncv
        self.generator = torch.Generator().manual_seed(seed)
        self.basis = torch.empty(ncv + 1, size, dtype=torch.float64, device=device)
        self.basis[0] = _random_unit(size, self.generator, device, rademacher=False)
        self.t = np.zeros((ncv, ncv))
        self.scale, self.norm_estimate = 0.0, 0.0

    def extend(self, j: int, begin: int, check_symmetry: bool) -> float:
        """Apply A to basis row j, orthogonalise it (α_j on T's diagonal) into row j + 1; returns β_j (0 at
        an invariant subspace, where row j + 1 is a fresh random direction orthogonal to the basis).

        Below the arrow (j > ``begin``, the row where this cycle started) T is tridiagonal: the three-term
        directions first, then one Gram–Schmidt pass (:func:`networks.krylov._lanczos_orthogonalize`); at
        j = ``begin`` (coupled to every kept Ritz vector) Gram–Schmidt against the whole basis."""
        basis, t, device = self.basis, self.t, self.apply.basis_device
        w = self.apply(basis[j])
        local = j > begin or j == 0
        norm_w = _norm(w) if check_symmetry or j == 0 or not local else 0.0
        self.norm_estimate = max(self.norm_estimate, norm_w)
        if local:
            beta_prev = t[j - 1, j] if j > 0 else 0.0
            w, t[j, j], coupling, beta = _lanczos_orthogonalize(w, basis, j, beta_prev, check_symmetry)
        else:
            w, coef, beta = _orthogonalize(w.clone(), basis[: j + 1], norm_w)
            t[j, j] = float(coef[j])
            coupling = float(coef[j - 1]) if check_symmetry else 0.0
        if check_symmetry:
            _check_symmetric(coupling, t[0, 1], self.norm_estimate, self.apply.op.dtype)
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
            beta = state.extend(j, begin, check_symmetry=first_cycle and j == 1)
            used = j + 1
            theta, s = _eigh_small(state.t[:used, :used], tridiagonal=first_cycle)
            residuals = beta * np.abs(s[-1, :])
            order = _order(theta, which)
            if used >= k:
                wanted = order[:k]
                eig_bounds, bounds = stop.bounds(theta, residuals, wanted)
                own = theta[wanted] if stop.stopping == "relative" else None
                converged = converged_within(bounds, theta, stop.tol, own)
                if bool(converged.all()) or apply.count >= stop.limit:
                    return _eigen_result(
                        apply.op,
                        state.basis[:used],
                        theta,
                        s,
                        (residuals, eig_bounds, converged),
                        wanted,
                        stop,
                        return_eigenvectors,
                        apply.count,
                    )
            if used < ncv:
                state.t[j, used] = state.t[used, j] = beta
        first_cycle = False
        begin = state.restart(theta, s, order, beta, k)


def _eigh_small(t: np.ndarray, tridiagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the small projected matrix: LAPACK called directly (numpy's
    wrapper costs as much as the solve at ncv ≈ 20–40, and this runs after every product); dstevd while T is
    tridiagonal (the first cycle), dsyevd once a restart has made it arrow-shaped."""
    if tridiagonal and t.shape[0] > 1:
        theta, s, info = _dstevd(np.diag(t).copy(), np.diag(t, 1).copy(), compute_v=1)
    else:
        theta, s, info = _dsyevd(t, compute_v=1, lower=0)
    if info != 0:  # pragma: no cover - LAPACK failure on a finite symmetric matrix
        return np.linalg.eigh(t)
    return theta, s


def _eigen_result(
    op: CurvatureOperator,
    basis: Tensor,
    theta: np.ndarray,
    s: np.ndarray,
    flags: tuple[np.ndarray, np.ndarray, np.ndarray],
    wanted: np.ndarray,
    stop: _Stop,
    return_eigenvectors: bool,
    num_products: int,
) -> EigenResult:
    """``flags``: (residuals of all Ritz pairs, eigenvalue error bounds and converged flags of ``wanted``)."""
    residuals, eig_bounds, converged = flags
    which = stop.which
    index = _final_order(theta, wanted, which)
    bound_of = dict(zip(wanted.tolist(), eig_bounds.tolist(), strict=True))
    flag_of = dict(zip(wanted.tolist(), converged.tolist(), strict=True))
    vectors = None
    if return_eigenvectors:
        s_wanted = torch.from_numpy(np.ascontiguousarray(s[:, index])).to(basis.device)
        vectors = (basis.T @ s_wanted).to(dtype=op.dtype, device=op.device)
    return EigenResult(
        eigenvalues=theta[index].copy(),
        eigenvectors=vectors,
        residuals=residuals[index].copy(),
        converged=np.array([flag_of[i] for i in index.tolist()], dtype=bool),
        num_products=num_products,
        which=which,
        error_bounds=np.array([bound_of[i] for i in index.tolist()], dtype=np.float64),
        stopping=stop.stopping,
    )


def _dense_eigenpairs(
    op: CurvatureOperator, apply: _Products, k: int, which: str, return_eigenvectors: bool, stopping: str
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
        error_bounds=np.zeros(k),
        stopping=stopping,
    )


def top_eigenvalues(
    op: Any,
    k: int = 1,
    which: str = "LA",
    tol: float = DEFAULT_TOL,
    max_products: int | None = None,
    seed: int = 0,
    *,
    stopping: str = DEFAULT_STOPPING,
) -> np.ndarray:
    """The k extremal eigenvalues (numpy, most wanted first; BE ascending); see :func:`top_eigenpairs`."""
    result = top_eigenpairs(op, k, which, tol, max_products, seed, False, stopping=stopping)
    return result.eigenvalues


__all__ = [
    "LANCZOS_VECTORS_PER_EIGENPAIR",
    "MAX_PRODUCTS_PER_VECTOR",
    "MIN_LANCZOS_VECTORS",
    "EigenResult",
    "default_num_lanczos_vectors",
    "top_eigenpairs",
    "top_eigenvalues",
]
