"""The one Krylov engine: Lanczos, thick-restart top-k eigenpairs and stochastic Lanczos quadrature (SLQ).

Conventions (THEORY §5). All Krylov arithmetic — the basis, the reorthogonalisation and the tridiagonal
matrix — is float64, whatever the operator's dtype; each product converts the basis vector to the operator's
dtype/device and the result back. The basis lives on ``basis_device`` (default: the operator's device); with
full or selective reorthogonalisation it holds P·(m+1)·8 bytes for m steps (e.g. P = 10⁶, m = 100: 0.8 GB;
pass ``basis_device="cpu"`` to keep it off the accelerator). ``reorthogonalization="none"`` keeps three
vectors (3·P·8 bytes) but Ritz values may then duplicate ("ghosts") after convergence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from networks.curvature.operator import CurvatureOperator, as_operator

REORTHOGONALIZATIONS = ("full", "selective", "none")
WHICH = ("LA", "SA", "LM")
_BREAKDOWN = 1e-12  # β below this multiple of the running ‖T‖ estimate = invariant subspace


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
    """Extremal eigenpairs, most wanted first (LA: descending, SA: ascending, LM: descending |λ|).

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
        if int(j) != j or j < 0:
            raise ValueError(f"moment order j must be a non-negative integer, got {j!r}")
        return float(np.mean(np.sum(self.weights * self.nodes ** int(j), axis=1)))

    def probe_moments(self, j: int) -> np.ndarray:
        """Per-probe quadrature values Σ_k τ_k θ_k^j = vᵀA^j v / vᵀv (exact for j < 2m)."""
        return np.sum(self.weights * self.nodes ** int(j), axis=1)


# --------------------------------------------------------------------------------------------------------
def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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


def _orthogonalize(w: Tensor, basis: Tensor) -> Tensor:
    """Classical Gram-Schmidt against the columns of ``basis``, applied twice ("twice is enough")."""
    if basis.shape[1] == 0:
        return w
    for _ in range(2):
        w = w - basis @ (basis.T @ w)
    return w


def _resolve_basis_device(op: CurvatureOperator, basis_device: Any) -> torch.device:
    return op.device if basis_device is None else torch.device(basis_device)


def lanczos(
    op: Any,
    num_steps: int,
    *,
    start: Tensor | np.ndarray | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    basis_device: Any = None,
    reorthogonalization: str = "full",
    tol: float = 1e-8,
) -> LanczosResult:
    """Run ``num_steps`` Lanczos steps on a symmetric operator (THEORY §5).

    Args:
        op: a CurvatureOperator or anything :func:`as_operator` accepts.
        num_steps: m ≥ 1 (capped at P). Stops early, gracefully, at an invariant subspace (β ≈ 0).
        start: start vector (normalised here); default a seeded Gaussian vector.
        seed: seed of the default start vector.
        return_vectors: also return the Ritz vectors V s (P × m, operator dtype/device); needs a stored basis.
        basis_device: where the float64 basis lives (e.g. "cpu").
        reorthogonalization: "full" (against the whole basis, twice), "selective" (against converged Ritz
            vectors only, Parlett–Scott) or "none" (three-term recurrence; O(P) memory).
        tol: relative residual for the ``converged`` flags.

    Returns:
        LanczosResult with float64 arrays.
    """
    op = as_operator(op)
    if reorthogonalization not in REORTHOGONALIZATIONS:
        raise ValueError(
            f"reorthogonalization must be one of {REORTHOGONALIZATIONS}, got {reorthogonalization!r}"
        )
    num_steps = _check_int(num_steps, "num_steps", 1)
    if return_vectors and reorthogonalization == "none":
        raise ValueError(
            "return_vectors=True needs a stored basis: use reorthogonalization='full' or 'selective'"
        )
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    size = op.shape[0]
    m = min(num_steps, size)
    device = _resolve_basis_device(op, basis_device)
    apply = _Products(op, device)
    if start is None:
        v = _random_unit(size, torch.Generator().manual_seed(int(seed)), device, rademacher=False)
    else:
        v = torch.as_tensor(start).detach().to(dtype=torch.float64, device=device).reshape(-1)
        if v.shape[0] != size:
            raise ValueError(f"start must have {size} entries, got {v.shape[0]}")
        norm = v.norm()
        if not torch.isfinite(norm) or norm == 0:
            raise ValueError("start must be a finite non-zero vector")
        v = v / norm

    keep_basis = reorthogonalization != "none"
    basis = torch.zeros(size, m, dtype=torch.float64, device=device) if keep_basis else None
    alphas: list[float] = []
    betas: list[float] = []
    v_prev = torch.zeros_like(v)
    beta_prev = 0.0
    scale = 0.0
    beta = 0.0
    for j in range(m):
        if basis is not None:
            basis[:, j] = v
        w = apply(v)
        alpha = float(v @ w)
        w = w - alpha * v - beta_prev * v_prev
        if reorthogonalization == "full":
            assert basis is not None
            w = _orthogonalize(w, basis[:, : j + 1])
        elif reorthogonalization == "selective":
            assert basis is not None
            w = _selective(w, basis[:, : j + 1], alphas + [alpha], betas, float(w.norm()))
        alphas.append(alpha)
        beta = float(w.norm())
        scale = max(scale, abs(alpha) + beta + beta_prev)
        if beta <= _BREAKDOWN * max(scale, np.finfo(float).tiny):
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
        assert basis is not None
        vectors = basis[:, : a.shape[0]] @ torch.from_numpy(s).to(device)
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
    """Parlett–Scott: orthogonalise against Ritz vectors of T_j whose residual β|s_jk| ≤ √ε ‖T‖."""
    theta, s = _eigh_tridiagonal(np.asarray(alphas), np.asarray(betas))
    norm_t = max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
    good = np.flatnonzero(beta * np.abs(s[-1, :]) <= np.sqrt(np.finfo(float).eps) * norm_t)
    if good.size == 0:
        return w
    ritz = basis @ torch.from_numpy(s[:, good]).to(basis.device)
    return _orthogonalize(w, ritz)


# --------------------------------------------------------------------------------------------------------
def _order(theta: np.ndarray, which: str) -> np.ndarray:
    """Indices of ``theta`` from most to least wanted."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "SA":
        return np.argsort(theta, kind="stable")
    return np.argsort(-np.abs(theta), kind="stable")


def top_eigenpairs(
    op: Any,
    k: int = 1,
    which: str = "LA",
    tol: float = 1e-6,
    max_products: int | None = None,
    seed: int = 0,
    return_eigenvectors: bool = True,
    *,
    num_lanczos_vectors: int | None = None,
    basis_device: Any = None,
) -> EigenResult:
    """k extremal eigenpairs by thick-restart Lanczos (Wu & Simon 2000) with full reorthogonalisation.

    ``which`` follows scipy's ``eigsh``: "LA" largest algebraic, "SA" smallest algebraic, "LM" largest
    magnitude. Each cycle extends the Krylov basis to ``num_lanczos_vectors`` (default max(2k+1, k+20),
    capped at P), then keeps the k + (ncv−k)/2 most wanted Ritz vectors plus the residual direction. Stops
    when the k wanted Ritz pairs have residual ≤ tol · max|θ| or after ``max_products`` (default 50·ncv)
    products. For P ≤ ncv the operator is materialised (P products) and solved densely.
    Results are sorted most wanted first and are deterministic for a given seed.
    """
    op = as_operator(op)
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    size = op.shape[0]
    k = _check_int(k, "k", 1)
    if k > size:
        raise ValueError(f"k must be <= P = {size}, got {k}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    ncv = min(size, num_lanczos_vectors or max(2 * k + 1, k + 20))
    if ncv <= k and ncv < size:
        raise ValueError(f"num_lanczos_vectors must exceed k = {k}, got {num_lanczos_vectors}")
    limit = max_products if max_products is not None else 50 * ncv
    limit = _check_int(limit, "max_products", 1)
    device = _resolve_basis_device(op, basis_device)
    apply = _Products(op, device)
    if ncv >= size:
        return _dense_eigenpairs(op, apply, k, which, return_eigenvectors)

    generator = torch.Generator().manual_seed(int(seed))
    basis = torch.zeros(size, ncv + 1, dtype=torch.float64, device=device)
    basis[:, 0] = _random_unit(size, generator, device, rademacher=False)
    t = np.zeros((ncv, ncv))
    begin, beta, scale = 0, 0.0, 0.0
    while True:
        for j in range(begin, ncv):
            w = apply(basis[:, j])
            t[j, j] = float(basis[:, j] @ w)
            w = _orthogonalize(w, basis[:, : j + 1])
            beta = float(w.norm())
            scale = max(scale, abs(t[j, j]) + beta)
            if beta <= _BREAKDOWN * max(scale, np.finfo(float).tiny):
                # Invariant subspace: continue with a fresh direction orthogonal to the basis (coupling 0).
                beta = 0.0
                fresh = _orthogonalize(_random_unit(size, generator, device, False), basis[:, : j + 1])
                basis[:, j + 1] = fresh / fresh.norm()
            else:
                basis[:, j + 1] = w / beta
            if j + 1 < ncv:
                t[j, j + 1] = t[j + 1, j] = beta
        theta, s = np.linalg.eigh(t)
        residuals = beta * np.abs(s[-1, :])
        order = _order(theta, which)
        wanted = order[:k]
        threshold = tol * max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
        converged = residuals[wanted] <= threshold
        if bool(converged.all()) or apply.count >= limit:
            break
        n_keep = min(ncv - 1, k + (ncv - k) // 2)
        keep = order[:n_keep]
        s_keep = torch.from_numpy(np.ascontiguousarray(s[:, keep])).to(device)
        basis[:, :n_keep] = basis[:, :ncv] @ s_keep
        basis[:, n_keep] = basis[:, ncv]
        t = np.zeros((ncv, ncv))
        t[np.arange(n_keep), np.arange(n_keep)] = theta[keep]
        t[:n_keep, n_keep] = t[n_keep, :n_keep] = beta * s[-1, keep]
        begin = n_keep

    vectors = None
    if return_eigenvectors:
        s_wanted = torch.from_numpy(np.ascontiguousarray(s[:, wanted])).to(device)
        vectors = (basis[:, :ncv] @ s_wanted).to(dtype=op.dtype, device=op.device)
    return EigenResult(
        eigenvalues=theta[wanted].copy(),
        eigenvectors=vectors,
        residuals=residuals[wanted].copy(),
        converged=converged,
        num_products=apply.count,
        which=which,
    )


def _dense_eigenpairs(
    op: CurvatureOperator, apply: _Products, k: int, which: str, return_eigenvectors: bool
) -> EigenResult:
    size = op.shape[0]
    eye = torch.eye(size, dtype=torch.float64, device=apply.basis_device)
    dense = torch.stack([apply(eye[:, j]) for j in range(size)], dim=1).cpu().numpy()
    theta, vecs = np.linalg.eigh((dense + dense.T) / 2)
    wanted = _order(theta, which)[:k]
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
    tol: float = 1e-6,
    max_products: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The k extremal eigenvalues (numpy, most wanted first); see :func:`top_eigenpairs`."""
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

    ``sigma`` defaults to 1% of the spectral width (max θ − min θ over all probes); the default grid spans
    the Ritz values with a margin of max(5σ, 5% of the width). Each probe's rule reproduces
    vᵀA^j v / vᵀv exactly for j < 2m (Gauss quadrature); averaging over probes is Hutchinson's estimator.
    """
    op = as_operator(op)
    num_probes = _check_int(num_probes, "num_probes", 1)
    num_steps = _check_int(num_steps, "num_steps", 1)
    grid_size = _check_int(grid_size, "grid_size", 2)
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    size = op.shape[0]
    m = min(num_steps, size)
    device = _resolve_basis_device(op, basis_device)
    generator = torch.Generator().manual_seed(int(seed))
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
    sig = float(sigma) if sigma is not None else 0.01 * width
    if grid is None:
        margin = max(5 * sig, 0.05 * width)
        grid_arr = np.linspace(lo - margin, hi + margin, grid_size)
    else:
        grid_arr = np.asarray(grid, dtype=np.float64).reshape(-1)
    z = (grid_arr[:, None, None] - nodes[None, :, :]) / sig
    kernel = np.exp(-0.5 * z**2) / (sig * np.sqrt(2 * np.pi))
    density = np.sum(kernel * weights[None, :, :], axis=(1, 2)) / num_probes
    return SpectralDensity(grid_arr, density, nodes, weights, sig, products)


__all__ = [
    "EigenResult",
    "LanczosResult",
    "SpectralDensity",
    "lanczos",
    "slq_density",
    "top_eigenpairs",
    "top_eigenvalues",
]
