"""The one Krylov engine: Lanczos, thick-restart top-k eigenpairs and stochastic Lanczos quadrature (SLQ).

Conventions (docs/theory.md §5). All Krylov arithmetic — the basis, the reorthogonalisation and the
tridiagonal matrix — is float64, whatever the operator's dtype; each product converts the basis vector to the
operator's dtype/device and the result back. The basis is one preallocated float64 tensor of m + 1 rows of
length P (row-major, i.e. a column-major P×(m+1) basis: every basis vector is contiguous) on
``basis_device`` (default: the operator's device): P·(m+1)·8 bytes (e.g. P = 10⁶, m = 100: 0.8 GB; pass
``basis_device="cpu"`` to keep it off the accelerator). ``reorthogonalization="none"`` keeps three vectors
(3·P·8 bytes) but Ritz values may then duplicate ("ghosts") after convergence.

Full reorthogonalisation is classical Gram–Schmidt against the stored basis, done once and repeated only
when the vector's norm drops below ``REORTH_ETA`` times its norm before the pass ("twice is enough",
Kahan–Parlett / DGKS). Every run checks that the operator is symmetric on its first probe pair (v₁ random,
v₂ the next Lanczos vector): |v₁ᵀAv₂ − v₂ᵀAv₁| ≤ :func:`symmetry_tol` · ‖A‖, at no extra product.

Defaults, one named constant per meaning (scipy ``eigsh`` analogues in brackets):
  * ``DEFAULT_TOL`` = 1e-6: a Ritz pair (θ, y) is converged when ‖Ay − θy‖ ≤ tol · max|θ| (``tol``);
  * ``default_num_lanczos_vectors(k)`` = max(2k + 1, k + 20), capped at P (``ncv`` = max(2k + 1, 20));
  * ``MAX_PRODUCTS_PER_VECTOR`` = 50: default product budget 50 · ncv (``maxiter``);
  * ``BREAKDOWN_TOL`` = 1e-12: β ≤ 1e-12 · ‖T‖ means an invariant subspace (the Ritz values are exact);
  * ``REORTH_ETA`` = 1/√2: the "twice is enough" threshold of the second Gram–Schmidt pass;
  * ``SELECTIVE_TOL`` = √ε: Ritz vectors with residual ≤ √ε · ‖T‖ are orthogonalised against in selective
    reorthogonalisation (Parlett–Scott);
  * ``DEFAULT_SLQ_SIGMA_FRACTION`` = 0.01: the SLQ smoothing width as a fraction of the spectral width.
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
Which = Literal["LA", "SA", "LM", "BE"]
"""Wanted eigenvalues (scipy ``eigsh``): largest / smallest algebraic, largest magnitude, both ends (k//2
from the bottom, the rest from the top)."""
WHICH: Final[tuple[Which, ...]] = get_args(Which)

DEFAULT_TOL: Final[float] = 1e-6
"""Relative residual of a converged Ritz pair: ‖Ay − θy‖ ≤ tol · max|θ| (stopping rule and flags)."""
BREAKDOWN_TOL: Final[float] = 1e-12
"""β_j ≤ BREAKDOWN_TOL · ‖T‖ (running estimate) is an invariant subspace: the Ritz values are exact."""
REORTH_ETA: Final[float] = 1 / math.sqrt(2)
"""Second Gram–Schmidt pass only if ‖w‖ after the first pass < REORTH_ETA · ‖w‖ before it."""
SELECTIVE_TOL: Final[float] = math.sqrt(float(np.finfo(np.float64).eps))
"""Selective reorthogonalisation: Ritz vectors with residual ≤ SELECTIVE_TOL · ‖T‖ count as converged."""
MIN_LANCZOS_VECTORS: Final[int] = 20
"""Smallest default Krylov dimension ncv of thick-restart Lanczos: max(2k + 1, k + MIN_LANCZOS_VECTORS)."""
MAX_PRODUCTS_PER_VECTOR: Final[int] = 50
"""Default product budget of :func:`top_eigenpairs`: MAX_PRODUCTS_PER_VECTOR · ncv."""
DEFAULT_SLQ_SIGMA_FRACTION: Final[float] = 0.01
"""Default Gaussian width of :func:`slq_density`, as a fraction of the spectral width of the Ritz values."""
MAX_GRID_SIZE: Final[int] = 10**7
"""Largest SLQ grid (the density is evaluated point by point: 8 bytes × grid × steps per probe)."""
MAX_QUADRATURE_NODES: Final[int] = 10**8
"""Largest num_probes × num_steps of :func:`slq_density` (its node and weight arrays must fit in memory)."""
SEED_MAX: Final[int] = 2**63 - 1


def default_num_lanczos_vectors(k: int, size: int) -> int:
    """ncv = min(P, max(2k + 1, k + MIN_LANCZOS_VECTORS)) (scipy's eigsh uses max(2k + 1, 20))."""
    k = check_int(k, "k", minimum=1)
    size = check_int(size, "size", minimum=1)
    return min(size, max(2 * k + 1, k + MIN_LANCZOS_VECTORS))


def symmetry_tol(dtype: torch.dtype) -> float:
    """Tolerance of the symmetry probe, √ε of the operator's dtype (1.5e-8 in float64, 3.5e-4 in float32):
    far above the rounding asymmetry of an exact symmetric product, far below a genuine asymmetry."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a real floating torch.dtype (e.g. torch.float64), got {dtype!r}")
    return math.sqrt(float(torch.finfo(dtype).eps))


@dataclass(frozen=True)
class LanczosResult:
    """m Lanczos steps: T = tridiag(betas, alphas, betas), its Ritz values θ (ascending) and vectors s.

    ``weights`` τ_k = (e_1ᵀ s_k)² (sum 1) are the Gauss-quadrature weights of the start vector's spectral
    measure; ``residuals`` β_m |e_mᵀ s_k| = ‖A y_k − θ_k y_k‖ (exact arithmetic); ``converged`` flags
    residual ≤ tol · max|θ|. ``residual_norm`` is β_m (0 after an invariant subspace: the θ are exact).
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

    @property
    def num_steps(self) -> int:
        return int(self.alphas.shape[0])

    def tridiagonal(self) -> np.ndarray:
        """The dense m×m tridiagonal matrix T."""
        return np.diag(self.alphas) + np.diag(self.betas, 1) + np.diag(self.betas, -1)


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


@dataclass(frozen=True)
class SpectralDensity:
    """SLQ spectral density (normalised to integrate to 1) smoothed by a Gaussian of width ``sigma``.

    ``nodes``/``weights`` (num_probes × m) are the per-probe Gauss quadrature rules (probes that broke down
    early are padded with zero weights). ``moment(j)`` = mean over probes of Σ_k τ_k θ_k^j ≈ tr(A^j)/P.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    num_products: int

    @property
    def num_probes(self) -> int:
        return int(self.nodes.shape[0])

    def moment(self, j: int) -> float:
        """Hutchinson–Gauss estimate of tr(A^j)/P."""
        return float(np.mean(self.probe_moments(j)))

    def probe_moments(self, j: int) -> np.ndarray:
        """Per-probe quadrature values Σ_k τ_k θ_k^j = vᵀA^j v / vᵀv (exact for j < 2m)."""
        order = float(check_int(j, "j", minimum=0))
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.sum(self.weights * self.nodes**order, axis=1)
        if not np.isfinite(values).all():
            raise ValueError(f"the moment of order j = {j} overflows float64 (|θ|^j); use a lower order j")
        return values


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

    Returns (w ⟂ basis, the total coefficients basisᵀw of the original w, ‖w ⟂ basis‖).
    """
    if basis.shape[0] == 0:
        return w, torch.zeros(0, dtype=w.dtype, device=w.device), norm
    coef = torch.mv(basis, w)
    w = torch.addmv(w, basis.T, coef, alpha=-1.0)
    new_norm = float(w.norm())
    if new_norm < REORTH_ETA * norm:
        extra = torch.mv(basis, w)
        w = torch.addmv(w, basis.T, extra, alpha=-1.0)
        coef = coef + extra
        new_norm = float(w.norm())
    return w, coef, new_norm


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
        tol: relative residual for the ``converged`` flags (default ``DEFAULT_TOL``).

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
        norm_w = float(w.norm())
        norm_estimate = max(norm_estimate, norm_w)
        if mode == "full":
            w, coef, beta = _orthogonalize(w, basis[: j + 1], norm_w)
            alpha = float(coef[j])
            coupling = float(coef[j - 1]) if j > 0 else 0.0
        else:
            alpha = float(v @ w)
            coupling = float(v_prev @ w) if j == 1 else 0.0
            w = w - alpha * v - beta_prev * v_prev
            if mode == "selective":
                w = _selective(w, basis[: j + 1], alphas + [alpha], betas, float(w.norm()))
            beta = float(w.norm())
        if j == 1:
            _check_symmetric(coupling, beta_prev, norm_estimate, op.dtype)
        alphas.append(alpha)
        scale = max(scale, abs(alpha) + beta + beta_prev)
        if beta <= BREAKDOWN_TOL * max(scale, np.finfo(float).tiny):
            beta = 0.0
            break
        if j == m - 1:
            break
        betas.append(beta)
        v_prev, v, beta_prev = v, w / beta, beta

    a = np.asarray(alphas, dtype=np.float64)
    b = np.asarray(betas, dtype=np.float64)
    theta, s = _eigh_tridiagonal(a, b)
    residuals = beta * np.abs(s[-1, :])
    ritz_vectors = None
    if return_vectors:
        vectors = basis[: a.shape[0]].T @ torch.from_numpy(s).to(device)
        ritz_vectors = vectors.to(dtype=op.dtype, device=op.device)
    return LanczosResult(
        alphas=a,
        betas=b,
        residual_norm=beta,
        ritz_values=theta,
        weights=s[0, :] ** 2,
        residuals=residuals,
        converged=residuals <= tol * max(float(np.max(np.abs(theta))), np.finfo(float).tiny),
        ritz_vectors=ritz_vectors,
        num_products=apply.count,
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

    generator = torch.Generator().manual_seed(seed)
    basis = torch.zeros(ncv + 1, size, dtype=torch.float64, device=device)
    basis[0] = _random_unit(size, generator, device, rademacher=False)
    t = np.zeros((ncv, ncv))
    begin, beta, scale, norm_estimate = 0, 0.0, 0.0, 0.0
    first_cycle = True
    while True:
        for j in range(begin, ncv):
            w = apply(basis[j])
            norm_w = float(w.norm())
            norm_estimate = max(norm_estimate, norm_w)
            w, coef, beta = _orthogonalize(w, basis[: j + 1], norm_w)
            t[j, j] = float(coef[j])
            if first_cycle and j == 1:
                _check_symmetric(float(coef[0]), t[0, 1], norm_estimate, op.dtype)
            scale = max(scale, abs(t[j, j]) + beta)
            if beta <= BREAKDOWN_TOL * max(scale, np.finfo(float).tiny):
                # Invariant subspace: continue with a fresh direction orthogonal to the basis (coupling 0).
                beta = 0.0
                fresh = _random_unit(size, generator, device, False)
                fresh = _orthogonalize(fresh, basis[: j + 1], 1.0)[0]
                basis[j + 1] = fresh / fresh.norm()
            else:
                basis[j + 1] = w / beta
            used = j + 1
            theta, s = np.linalg.eigh(t[:used, :used])
            residuals = beta * np.abs(s[-1, :])
            order = _order(theta, which)
            if used >= k:
                wanted = order[:k]
                threshold = tol * max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
                converged = residuals[wanted] <= threshold
                if eig_tol is not None and used > 1:
                    converged |= _eigenvalue_converged(theta, residuals, wanted, eig_tol)
                if bool(converged.all()) or apply.count >= limit:
                    return _eigen_result(
                        op,
                        basis[:used],
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
                t[j, used] = t[used, j] = beta
        first_cycle = False
        n_keep = min(ncv - 1, k + (ncv - k) // 2)
        keep = order[:n_keep]
        s_keep = torch.from_numpy(np.ascontiguousarray(s[:, keep].T)).to(device)
        basis[:n_keep] = s_keep @ basis[:ncv]
        basis[n_keep] = basis[ncv]
        t = np.zeros((ncv, ncv))
        t[np.arange(n_keep), np.arange(n_keep)] = theta[keep]
        t[:n_keep, n_keep] = t[n_keep, :n_keep] = beta * s[-1, keep]
        begin = n_keep


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


# --------------------------------------------------------------------------------------------------------
def slq_density(
    op: Any,
    num_probes: int = 1,
    num_steps: int = 50,
    *,
    grid: np.ndarray | None = None,
    grid_size: int = 512,
    sigma: float | None = None,
    seed: int = 0,
    basis_device: Any = None,
    reorthogonalization: str = "full",
) -> SpectralDensity:
    r"""Stochastic Lanczos quadrature: :math:`\rho(x) \approx \frac1{n_v}\sum_v\sum_k \tau_k^{(v)}
    \mathcal N(x;\theta_k^{(v)},\sigma^2)` from ``num_probes`` Rademacher probes of ``num_steps`` steps each.

    ``sigma`` defaults to DEFAULT_SLQ_SIGMA_FRACTION (1%) of the spectral width (max θ − min θ over all
    probes); the default grid (``grid_size`` points, at most MAX_GRID_SIZE) spans the Ritz values with a
    margin of max(5σ, 5% of the width). Each probe's rule reproduces vᵀA^j v / vᵀv exactly for j < 2m (Gauss
    quadrature); averaging over probes is Hutchinson's estimator.
    """
    op = as_operator(op)
    num_probes = check_int(num_probes, "num_probes", minimum=1)
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    grid_size = check_int(grid_size, "grid_size", minimum=2, maximum=MAX_GRID_SIZE)
    seed = _check_seed(seed)
    check_choice(reorthogonalization, "reorthogonalization", REORTHOGONALIZATIONS)
    sig_given = None if sigma is None else _check_sigma(sigma)
    grid_given = None if grid is None else _check_grid(grid)
    size = op.shape[0]
    m = min(num_steps, size)
    if num_probes * m > MAX_QUADRATURE_NODES:
        raise ValueError(
            f"num_probes × num_steps = {num_probes} × {m} quadrature nodes cannot fit in memory: the product "
            f"must be <= {MAX_QUADRATURE_NODES:.0e}"
        )
    device = _resolve_basis_device(op, basis_device)
    generator = torch.Generator().manual_seed(seed)
    nodes = np.zeros((num_probes, m))
    weights = np.zeros((num_probes, m))
    products = 0
    for probe in range(num_probes):
        start = _random_unit(size, generator, device, rademacher=True)
        result = lanczos(op, m, start=start, basis_device=device, reorthogonalization=reorthogonalization)
        n = result.num_steps
        nodes[probe, :n] = result.ritz_values
        nodes[probe, n:] = result.ritz_values[-1]
        weights[probe, :n] = result.weights
        products += result.num_products
    lo, hi = float(nodes.min()), float(nodes.max())
    width = hi - lo if hi > lo else max(abs(hi), 1.0)
    sig = sig_given if sig_given is not None else DEFAULT_SLQ_SIGMA_FRACTION * width
    if grid_given is None:
        margin = max(5 * sig, 0.05 * width)
        grid_arr = np.linspace(lo - margin, hi + margin, grid_size)
    else:
        grid_arr = grid_given
    density = np.zeros_like(grid_arr)
    for probe in range(num_probes):  # one probe at a time: memory grid × m, not grid × probes × m
        z = (grid_arr[:, None] - nodes[probe][None, :]) / sig
        density += np.exp(-0.5 * z**2) @ weights[probe]
    density /= num_probes * sig * np.sqrt(2 * np.pi)
    return SpectralDensity(grid_arr, density, nodes, weights, sig, products)


def _check_sigma(sigma: Any) -> float:
    return _positive_number(sigma, "sigma")


def _check_grid(grid: Any) -> np.ndarray:
    arr = check_finite(grid, "grid")
    if arr.ndim != 1 or arr.size == 0 or arr.size > MAX_GRID_SIZE:
        raise ValueError(
            f"grid must be a 1-D array of 1..{MAX_GRID_SIZE} finite points, got shape {arr.shape}"
        )
    return np.ascontiguousarray(arr)


__all__ = [
    "BREAKDOWN_TOL",
    "DEFAULT_SLQ_SIGMA_FRACTION",
    "DEFAULT_TOL",
    "MAX_GRID_SIZE",
    "MAX_PRODUCTS_PER_VECTOR",
    "MAX_QUADRATURE_NODES",
    "MIN_LANCZOS_VECTORS",
    "REORTH_ETA",
    "SELECTIVE_TOL",
    "EigenResult",
    "LanczosResult",
    "SpectralDensity",
    "default_num_lanczos_vectors",
    "lanczos",
    "slq_density",
    "symmetry_tol",
    "top_eigenpairs",
    "top_eigenvalues",
]
