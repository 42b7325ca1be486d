"""The Lanczos recurrence and the Krylov building blocks that the solvers share (docs/theory.md §5).

Float64 Krylov arithmetic on a preallocated basis, classical Gram–Schmidt with a second pass only when needed,
the symmetry probe on the first probe pair, and the argument checks; :func:`lanczos` runs m steps. The
conventions and defaults are listed in :mod:`networks.lanczos`, which re-exports every public name here;
:mod:`networks.eigensolver` (thick-restart top-k eigenpairs) and :mod:`networks.slq` (stochastic Lanczos
quadrature) build on this module.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from networks.curvature.operator import CurvatureOperator, _check_real_tensor, as_operator
from rmt.checks import check_choice, check_finite, check_int, check_positive

Reorthogonalization = Literal["full", "selective", "none"]
REORTHOGONALIZATIONS: Final[tuple[Reorthogonalization, ...]] = get_args(Reorthogonalization)
Stopping = Literal["eigenvalue", "residual", "relative"]
"""What ``tol`` bounds (docs/theory.md §5b): "eigenvalue" the gap-based eigenvalue error bound
:func:`eigenvalue_error_bounds` relative to max|θ| (≈ ‖A‖), "residual" the residual norm ‖Ay − θy‖ relative
to max|θ| (what eigenvector accuracy needs), "relative" the eigenvalue error bound relative to the pair's own
|θ| (ARPACK's scale: an eigenvalue small against ‖A‖ — the bottom of a nearly PSD batch Hessian — to relative
accuracy; a Ritz value of a large null space, θ ≈ 0, never passes it early)."""
STOPPING_RULES: Final[tuple[Stopping, ...]] = get_args(Stopping)

DEFAULT_TOL: Final[float] = 1e-6
"""The one tolerance of every solver: a Ritz pair (θ, y) is converged when its error bound ≤ tol · max|θ|
(max|θ| estimates ‖A‖); the bound is chosen by ``stopping`` (docs/theory.md §5b)."""
DEFAULT_STOPPING: Final[Stopping] = "eigenvalue"
"""Default ``stopping``: the eigenvalue error bound min(r, r²/δ) (Kato–Temple / gap theorem, guarded)."""
BREAKDOWN_TOL: Final[float] = 1e-12
"""β_j ≤ BREAKDOWN_TOL · ‖T‖ (running estimate) is an invariant subspace: the Ritz values are exact."""
REORTH_ETA: Final[float] = 1 / math.sqrt(2)
"""Second Gram–Schmidt pass only if ‖w‖ after the first pass < REORTH_ETA · ‖w‖ before it."""
SELECTIVE_TOL: Final[float] = math.sqrt(float(np.finfo(np.float64).eps))
"""Selective reorthogonalisation: Ritz vectors with residual ≤ SELECTIVE_TOL · ‖T‖ count as converged."""
SEED_MAX: Final[int] = 2**63 - 1


def symmetry_tol(dtype: torch.dtype) -> float:
    """Tolerance of the symmetry probe, √ε of the operator's dtype (1.5e-8 in float64, 3.5e-4 in float32):
    far above the rounding asymmetry of an exact symmetric product, far below a genuine asymmetry."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a real floating torch.dtype (e.g. torch.float64), got {dtype!r}")
    return math.sqrt(float(torch.finfo(dtype).eps))


def eigenvalue_error_bounds(theta: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Eigenvalue error bound of each Ritz pair (docs/theory.md §5b): e_i = min(r_i, r_i² / δ_i).

    r_i = ‖A y_i − θ_i y_i‖ (unit y_i) bounds |λ − θ_i| for some eigenvalue λ of A unconditionally; when the
    other eigenvalues are at least δ_i away from θ_i, the gap theorem (Kato–Temple; Parlett, *The Symmetric
    Eigenvalue Problem*, Thm 11.7.1) gives |λ − θ_i| ≤ r_i²/δ_i. δ_i is estimated from the Ritz values,
    shrunk by the neighbours' residuals (each θ_j has an eigenvalue within r_j):
    δ_i = min_{j≠i} (|θ_i − θ_j| − r_j). When that gap is not resolved (δ_i ≤ r_i: a cluster or an
    unconverged neighbour) the bound falls back to r_i — the second-order bound is used only where it is
    smaller than the first-order one. One Ritz value: e = r.
    """
    theta = check_finite(theta, "theta")
    r = check_finite(residuals, "residuals")
    if theta.ndim != 1 or r.shape != theta.shape:
        raise ValueError(
            f"theta and residuals must be 1-D arrays of one length, got shapes {theta.shape} and {r.shape}"
        )
    if np.any(r < 0):
        raise ValueError("residuals must be >= 0 (norms ‖Ay − θy‖)")
    return _eigenvalue_error_bounds(theta, r)


def _eigenvalue_error_bounds(theta: np.ndarray, r: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """:func:`eigenvalue_error_bounds` without the argument checks (finite 1-D float64 arrays), for the
    Ritz pairs ``rows`` (default all)."""
    rows = np.arange(theta.size) if rows is None else rows
    r_rows = r[rows]
    if theta.size < 2:
        return r_rows.copy()
    dist = np.abs(theta[rows][:, None] - theta[None, :]) - r[None, :]
    dist[np.arange(rows.size), rows] = np.inf
    delta = dist.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        second = np.where(delta > r_rows, r_rows * r_rows / np.where(delta > 0, delta, 1.0), np.inf)
    return np.minimum(r_rows, second)


def _norm(w: Tensor) -> float:
    """‖w‖₂ as a Python float (``torch.linalg.vector_norm``, without the ``Tensor.norm`` wrapper)."""
    return float(torch.linalg.vector_norm(w))


def converged_within(
    bounds: np.ndarray, theta: np.ndarray, tol: float, values: np.ndarray | None = None
) -> np.ndarray:
    """bound ≤ tol · max|θ| (max|θ| over all Ritz values: the estimate of ‖A‖), or, given the pairs' own Ritz
    ``values`` (stopping "relative"), bound ≤ tol · |value| per pair."""
    if values is not None:
        return np.asarray(bounds <= tol * np.maximum(np.abs(values), np.finfo(float).tiny))
    scale = max(float(np.max(np.abs(theta))), np.finfo(float).tiny) if theta.size else 1.0
    return np.asarray(bounds <= tol * scale)


def _check_stopping(stopping: Any) -> Stopping:
    return cast(Stopping, check_choice(stopping, "stopping", STOPPING_RULES))


@dataclass(frozen=True)
class LanczosResult:
    """m Lanczos steps: T = tridiag(betas, alphas, betas), its Ritz values θ (ascending) and vectors s.

    ``weights`` τ_k = (e_1ᵀ s_k)² (sum 1) are the Gauss-quadrature weights of the start vector's spectral
    measure; ``residuals`` β_m |e_mᵀ s_k| = ‖A y_k − θ_k y_k‖ (exact arithmetic); ``error_bounds`` the
    eigenvalue error bounds min(r, r²/δ) (docs/theory.md §5b); ``converged`` flags bound ≤ tol · max|θ| for
    the bound named by ``stopping`` (``error_bounds`` or ``residuals``). ``residual_norm`` is β_m (0 after an
    invariant subspace: the θ are exact).
    """

    alphas: np.ndarray
    betas: np.ndarray
    residual_norm: float
    ritz_values: np.ndarray
    weights: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    ritz_vectors: Tensor | None
    num_products: int
    error_bounds: np.ndarray
    stopping: str = DEFAULT_STOPPING

    @property
    def num_steps(self) -> int:
        return int(self.alphas.shape[0])

    def tridiagonal(self) -> np.ndarray:
        """The dense m×m tridiagonal matrix T."""
        return np.diag(self.alphas) + np.diag(self.betas, 1) + np.diag(self.betas, -1)


# --------------------------------------------------------------------------------------------------------
def _check_seed(seed: Any) -> int:
    return check_int(seed, "seed", minimum=0, maximum=SEED_MAX)


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def _positive_number(value: Any, name: str) -> float:
    """A finite real number > 0 (not an array, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number > 0, got {type(value).__name__}")
    return float(check_positive(float(value), name))


def _check_tol(tol: Any) -> float:
    return _positive_number(tol, "tol")


def _random_unit(size: int, generator: torch.Generator, device: torch.device, rademacher: bool) -> Tensor:
    """A seeded unit vector drawn on the CPU (identical on every device), moved to ``device``."""
    if rademacher:
        v = torch.randint(0, 2, (size,), generator=generator, dtype=torch.int64).to(torch.float64) * 2 - 1
    else:
        v = torch.randn(size, generator=generator, dtype=torch.float64)
    return (v / v.norm()).to(device)


class _Products:
    """Applies the operator to float64 basis vectors and counts the products."""

    def __init__(self, op: CurvatureOperator, basis_device: torch.device) -> None:
        self.op = op
        self.basis_device = basis_device
        self.count = 0

    def __call__(self, v: Tensor) -> Tensor:
        self.count += 1
        w = self.op.matvec(v.to(dtype=self.op.dtype, device=self.op.device))
        return w.to(dtype=torch.float64, device=self.basis_device)


def _orthogonalize(w: Tensor, basis: Tensor, norm: float) -> tuple[Tensor, Tensor, float]:
    """Classical Gram–Schmidt of ``w`` (norm ``norm``) against the rows of ``basis``: one pass, and a second
    only when the norm drops below REORTH_ETA of its value before the pass ("twice is enough").

    ``w`` is updated in place. Returns (w ⟂ basis, the total coefficients basisᵀw of the original w,
    ‖w ⟂ basis‖).
    """
    if basis.shape[0] == 0:
        return w, torch.zeros(0, dtype=w.dtype, device=w.device), norm
    coef = torch.mv(basis, w)
    w = w.addmv_(basis.T, coef, alpha=-1.0)
    new_norm = _norm(w)
    if new_norm < REORTH_ETA * norm:
        extra = torch.mv(basis, w)
        w = w.addmv_(basis.T, extra, alpha=-1.0)
        coef = coef + extra
        new_norm = _norm(w)
    return w, coef, new_norm


def _lanczos_orthogonalize(
    w: Tensor, basis: Tensor, j: int, beta_prev: float, probe: bool
) -> tuple[Tensor, float, float, float]:
    """Orthogonalise w = A v_j (v_j = basis[j], v_{j−1} coupled to it by ``beta_prev``) against basis[:j+1]:
    first the three-term recurrence's own directions (w − β_{j−1} v_{j−1}, α_j = v_jᵀw, w − α_j v_j), then
    one classical Gram–Schmidt pass against the whole contiguous basis (two matrix–vector products) that
    removes what rounding left, and a second pass only when that one drops the norm below REORTH_ETA of its
    value after the three-term step ("twice is enough"). After the local step the full pass only removes
    rounding-level components, so the second pass is rare (it was needed at almost every step when the full
    pass also had to remove α_j v_j).

    Returns (w ⟂ basis, α_j (including the pass's correction), v_{j−1}ᵀ A v_j when ``probe`` (else 0),
    ‖w‖).
    """
    coupling = 0.0
    if j > 0:
        prev = basis[j - 1]
        if probe:
            coupling = float(prev @ w)
        w = torch.add(w, prev, alpha=-beta_prev)
    else:
        w = w.clone()
    alpha = float(basis[j] @ w)
    w.add_(basis[j], alpha=-alpha)
    w, coef, beta = _orthogonalize(w, basis[: j + 1], _norm(w))
    return w, alpha + float(coef[j]), coupling, beta


def _check_symmetric(u_a_v: float, v_a_u: float, norm_estimate: float, dtype: torch.dtype) -> None:
    """Refuse an operator whose probe pair violates |uᵀAv − vᵀAu| ≤ symmetry_tol · ‖A‖ (unit u, v)."""
    tol = symmetry_tol(dtype)
    gap = abs(u_a_v - v_a_u)
    if gap > tol * norm_estimate:
        raise ValueError(
            f"op must be symmetric: on a probe pair of unit vectors |uᵀAv − vᵀAu| = {gap:.3g} > "
            f"{tol:.2g} · ‖A‖ (‖A‖ ≥ {norm_estimate:.3g}); Lanczos methods need a symmetric operator"
        )


def _resolve_basis_device(op: CurvatureOperator, basis_device: Any) -> torch.device:
    if basis_device is None:
        return op.device
    if not isinstance(basis_device, (str, torch.device)):
        raise TypeError(f"basis_device must be None, a string or a torch.device, got {type(basis_device)!r}")
    try:
        device = torch.device(basis_device)
        torch.empty(0, device=device)
    except (RuntimeError, ValueError, AssertionError) as exc:
        raise ValueError(
            f"basis_device must name an available torch device, got {basis_device!r}: {exc}"
        ) from None
    return device


def _start_vector(start: Any, size: int, device: torch.device) -> Tensor:
    if isinstance(start, Tensor):
        _check_real_tensor(start, "start")
        v = start.detach().to(dtype=torch.float64, device=device).reshape(-1)
    elif isinstance(start, np.ndarray):
        if np.iscomplexobj(start):
            raise TypeError(f"start must be a real vector, got dtype {start.dtype}")
        v = torch.from_numpy(np.ascontiguousarray(check_finite(start, "start"))).to(device).reshape(-1)
    else:
        raise TypeError(f"start must be None, a torch tensor or a numpy array, got {type(start)!r}")
    if v.shape[0] != size:
        raise ValueError(f"start must have {size} entries (P), got {v.shape[0]}")
    norm = v.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("start must be a finite non-zero vector")
    return v / norm


def lanczos(
    op: Any,
    num_steps: int,
    *,
    start: Tensor | np.ndarray | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    basis_device: Any = None,
    reorthogonalization: str = "full",
    tol: float = DEFAULT_TOL,
    stopping: str = DEFAULT_STOPPING,
) -> LanczosResult:
    """Run ``num_steps`` Lanczos steps on a symmetric operator (docs/theory.md §5).

    Args:
        op: a CurvatureOperator or anything :func:`as_operator` accepts.
        num_steps: m ≥ 1 (capped at P). Stops early, gracefully, at an invariant subspace (β ≈ 0).
        start: start vector (normalised here); default a seeded Gaussian vector.
        seed: seed of the default start vector, in [0, 2⁶³).
        return_vectors: also return the Ritz vectors V s (P × m, operator dtype/device); needs a stored basis.
        basis_device: where the float64 basis lives (e.g. "cpu").
        reorthogonalization: "full" (Gram–Schmidt against the whole basis, a second pass only when needed),
            "selective" (against converged Ritz vectors only, Parlett–Scott) or "none" (three-term
            recurrence; O(P) memory).
        tol: the ``converged`` flags are bound ≤ tol · max|θ| (default ``DEFAULT_TOL``).
        stopping: which bound ``tol`` applies to: "eigenvalue" (default, the eigenvalue error bound
            min(r, r²/δ) of docs/theory.md §5b) or "residual" (‖Ay − θy‖).

    Returns:
        LanczosResult with float64 arrays.

    Raises:
        TypeError / ValueError: invalid arguments (named); a non-symmetric operator (probe pair) or a
            non-finite product.
    """
    op = as_operator(op)
    mode = cast(
        Reorthogonalization, check_choice(reorthogonalization, "reorthogonalization", REORTHOGONALIZATIONS)
    )
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    seed = _check_seed(seed)
    return_vectors = _check_flag(return_vectors, "return_vectors")
    tol = _check_tol(tol)
    rule = _check_stopping(stopping)
    if return_vectors and mode == "none":
        raise ValueError(
            "return_vectors=True needs a stored basis: use reorthogonalization='full' or 'selective'"
        )
    size = op.shape[0]
    m = min(num_steps, size)
    device = _resolve_basis_device(op, basis_device)
    apply = _Products(op, device)
    if start is None:
        v = _random_unit(size, torch.Generator().manual_seed(seed), device, rademacher=False)
    else:
        v = _start_vector(start, size, device)
    alphas, betas, beta, basis = _recurrence(apply, v, m, mode)
    return _lanczos_result(apply, alphas, betas, beta, basis if return_vectors else None, tol, rule)


def _recurrence(
    apply: _Products, v: Tensor, m: int, mode: Reorthogonalization
) -> tuple[list[float], list[float], float, Tensor]:
    """Up to ``m`` Lanczos steps from the unit vector ``v``: the coefficients α_1.. and β_1.. of T, the last
    β (0 after an invariant subspace) and the basis (its first len(α) rows are the Lanczos vectors when
    ``mode`` stores a basis; two scratch rows for ``mode="none"``)."""
    size, device = v.shape[0], apply.basis_device
    keep_basis = mode != "none"
    basis = torch.empty(m if keep_basis else 2, size, dtype=torch.float64, device=device)
    alphas: list[float] = []
    betas: list[float] = []
    v_prev = torch.zeros_like(v)
    beta_prev = 0.0
    scale = 0.0
    norm_estimate = 0.0
    beta = 0.0
    for j in range(m):
        row = j if keep_basis else j % 2
        basis[row] = v
        v = basis[row]
        w = apply(v)
        if j <= 1:  # ‖A‖ estimate for the symmetry probe
            norm_estimate = max(norm_estimate, _norm(w))
        if mode == "full":
            w, alpha, coupling, beta = _lanczos_orthogonalize(w, basis, j, beta_prev, probe=j == 1)
        else:
            alpha = float(v @ w)
            coupling = float(v_prev @ w) if j == 1 else 0.0
            w = w - alpha * v - beta_prev * v_prev
            if mode == "selective":
                w = _selective(w, basis[: j + 1], alphas + [alpha], betas, float(w.norm()))
            beta = float(w.norm())
        if j == 1:
            _check_symmetric(coupling, beta_prev, norm_estimate, apply.op.dtype)
        alphas.append(alpha)
        scale = max(scale, abs(alpha) + beta + beta_prev)
        if beta <= BREAKDOWN_TOL * max(scale, np.finfo(float).tiny):
            beta = 0.0
            break
        if j == m - 1:
            break
        betas.append(beta)
        v_prev, v, beta_prev = v, w / beta, beta
    return alphas, betas, beta, basis


def _lanczos_result(
    apply: _Products,
    alphas: list[float],
    betas: list[float],
    beta: float,
    basis: Tensor | None,
    tol: float,
    stopping: Stopping,
) -> LanczosResult:
    """The :class:`LanczosResult` of the recurrence's coefficients; Ritz vectors when ``basis`` is given."""
    op, device = apply.op, apply.basis_device
    a = np.asarray(alphas, dtype=np.float64)
    b = np.asarray(betas, dtype=np.float64)
    theta, s = _eigh_tridiagonal(a, b)
    residuals = beta * np.abs(s[-1, :])
    bounds = _eigenvalue_error_bounds(theta, residuals)
    ritz_vectors = None
    if basis is not None:
        vectors = basis[: a.shape[0]].T @ torch.from_numpy(s).to(device)
        ritz_vectors = vectors.to(dtype=op.dtype, device=op.device)
    return LanczosResult(
        alphas=a,
        betas=b,
        residual_norm=beta,
        ritz_values=theta,
        weights=s[0, :] ** 2,
        residuals=residuals,
        converged=converged_within(
            residuals if stopping == "residual" else bounds,
            theta,
            tol,
            theta if stopping == "relative" else None,
        ),
        ritz_vectors=ritz_vectors,
        num_products=apply.count,
        error_bounds=bounds,
        stopping=stopping,
    )


def _eigh_tridiagonal(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if alphas.shape[0] == 1:
        return alphas.copy(), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(alphas, betas)


def _selective(w: Tensor, basis: Tensor, alphas: list[float], betas: list[float], beta: float) -> Tensor:
    """Parlett–Scott: orthogonalise against Ritz vectors of T_j whose residual β|s_jk| ≤ SELECTIVE_TOL ‖T‖."""
    theta, s = _eigh_tridiagonal(np.asarray(alphas), np.asarray(betas))
    norm_t = max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
    good = np.flatnonzero(beta * np.abs(s[-1, :]) <= SELECTIVE_TOL * norm_t)
    if good.size == 0:
        return w
    ritz = torch.from_numpy(np.ascontiguousarray(s[:, good].T)).to(basis.device) @ basis
    return _orthogonalize(w, ritz, float(w.norm()))[0]


__all__ = [
    "BREAKDOWN_TOL",
    "DEFAULT_TOL",
    "REORTH_ETA",
    "SELECTIVE_TOL",
    "LanczosResult",
    "eigenvalue_error_bounds",
    "lanczos",
    "symmetry_tol",
]
