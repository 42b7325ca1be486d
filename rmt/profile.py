"""Field-dependent noise: the quadratic vector equation (QVE) of Wigner-type matrices (docs/theory.md §1b).

A symmetric random matrix ``diag(a) + E`` with independent noise entries of variance ``Var E_jk = S_jk``
has, for large P, a resolvent ``(diag(a) + E − z)⁻¹ ≈ diag(m_1(z), …, m_P(z))`` where m solves

    −1/m_j(z) = z − a_j + Σ_k S_jk m_k(z),      Im m_j > 0 for Im z > 0.

The spectral density is ``ρ(x) = (1/π) Im mean_j m_j(x + i0)``; the bulk edges are the real points where the
real solution branch folds, i.e. where the Perron eigenvalue of ``|m| S |m|`` reaches 1. A rank-r
perturbation ``Φ diag(θ) Φᵀ`` produces outliers at real z outside the bulk with
``det(I_r + Θ Φᵀ diag(m(z)) Φ) = 0``.

Solver: half-damped fixed point ``m ← (m + F(m))/2`` in the upper half plane with η-continuation
(``z = x + iη``, η decreasing geometrically), finished by Newton on ``I − diag(m²) S`` (plain damped
iteration stalls near edges). Edges: Newton continuation of the real branch from far above the spectrum
down to the fold (step halving; Newton started on the physical branch cannot jump across a quadratic fold).

Fast paths (chosen automatically for a dense ``S``):
* block structure: rows of ``[S | a]`` that coincide form one class and the equation has one unknown per
  class (exact). :class:`BlockProfile` states such a profile directly; :meth:`BlockProfile.from_function`
  and :func:`coarse_grain_profile` coarse-grain smooth profiles (error O(K⁻²) for K blocks,
  docs/reference-values.md
  row 26);
* rank one: ``S = g gᵀ`` reduces to the scalar equation ``u = −Σ_k g_k / (z − a_k + g_k u)`` with
  ``m_j = −1/(z − a_j + g_j u)``.
A dense profile with more than 256 distinct rows that is not rank one is solved with one unknown per row
(O(P³) per Newton step): coarse-grain it first for large P.

Finite P: the solver treats S as given. O(1) rows with anomalously large variance (e.g. one row with τ > 2
times the bulk variance) create O(1/P) components of the QVE density around their noise-induced outliers,
so the finite-P "edge" then sits O(P^{-1/2}) above that outlier rather than at the bulk edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from rmt.checks import (
    FloatArray,
    check_finite,
    check_orthonormal_columns,
    leading_dim,
    scalar_or_array,
)
from rmt.profile_systems import (
    _MAX_DOUBLINGS,
    _MAX_NEWTON,
    _RESIDUAL_TOL,
    BlockProfile,
    ComplexArray,
    QVEConvergenceError,
    _build_system,
    _check_magnitude,
    _perron,
    _RankOneSystem,
    _scale,
    _System,
)


def _newton_solve(
    system: _System, state: Any, z: complex, *, upper_half: bool, max_iter: int = _MAX_NEWTON
) -> Any:
    """Newton from ``state``, falling back to half-damped fixed-point steps; None if it does not converge."""
    res = system.residual(state, z)
    for _ in range(max_iter):
        if res < _RESIDUAL_TOL:
            return state
        try:
            new = state + system.newton_step(state, z)
        except np.linalg.LinAlgError:
            new = None
        ok = bool(new is not None and np.all(np.isfinite(new)))
        if ok and upper_half:
            ok = bool(np.all(system.block_m(new, z).imag >= -1e-12 * np.abs(system.block_m(new, z))))
        new_res = system.residual(new, z) if ok else np.inf
        if new_res < res or (ok and new_res < 1e-10):
            state, res = new, new_res
        else:  # half-damped fixed point in the upper half plane
            state = 0.5 * (state + system.fixed_point(state, z))
            res = system.residual(state, z)
    return state if res < 1e3 * _RESIDUAL_TOL else None


def _solve_complex(system: _System, z: complex) -> Any:
    """Solution at z with Im z >= 0 (m(x + i0) for real z), by η-continuation from η ~ the spectral scale."""
    x, eta_target = z.real, z.imag
    scale = _scale(system)
    eta = max(eta_target, 2.0 * scale)
    state = system.initial(complex(x, eta))
    for _ in range(200):  # half-damped fixed point far from the real axis (a contraction there)
        new = 0.5 * (state + system.fixed_point(state, complex(x, eta)))
        if np.max(np.abs(new - state)) < 1e-14 * (1 + np.max(np.abs(state))):
            state = new
            break
        state = new
    eta_floor = max(eta_target, 1e-9 * scale)
    while True:
        eta = max(eta * 0.3, eta_floor)
        new = _newton_solve(system, state, complex(x, eta), upper_half=True)
        if new is None:
            new = state
            for _ in range(2000):
                new = 0.5 * (new + system.fixed_point(new, complex(x, eta)))
            new = _newton_solve(system, new, complex(x, eta), upper_half=True)
            if new is None:
                raise QVEConvergenceError(
                    f"QVE solver did not converge at z = {complex(x, eta)} for this profile S (and shifts a)"
                )
        state = new
        if eta <= eta_floor:
            break
    if eta_target == 0.0:
        final = _newton_solve(system, state, complex(x, 0.0), upper_half=True)
        if final is not None:
            state = final
    return state


def _real_newton(system: _System, z: float, state: Any, sign: float) -> Any:
    """Real Newton at z from ``state``; None unless it converges on the physical branch (sign·m > 0, Perron <
    1)."""
    st = np.real(state).astype(np.float64)
    res = system.residual(st, z)
    for _ in range(_MAX_NEWTON):
        if res < _RESIDUAL_TOL:
            break
        try:
            st = st + system.newton_step(st, z)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(st)):
            return None
        res = system.residual(st, z)
    if res >= 1e2 * _RESIDUAL_TOL:
        return None
    m = system.block_m(st, z)
    if not np.all(sign * m > 0) or _perron(system, st, z) >= 1.0:
        return None
    return st


@dataclass
class _Branch:
    """The real solution branch above the bulk, from the fold (edge) upwards."""

    system: _System
    edge: float
    edge_state: Any
    far: float
    far_state: Any

    def at(self, z: float) -> Any:
        """Real solution at z >= edge by Newton continuation from the nearer end of [edge, far].

        Above ``far`` Newton starts from the far solution (continuing upwards if one jump fails). Between
        the ends the continuation starts at the nearer one; from the edge (a fold, where Newton's Jacobian is
        nearly singular) it may fail, and then the far end takes over.
        """
        if z <= self.edge:
            return self.edge_state
        if z >= self.far:
            return self._continue(self.far, self.far_state, z, strict=True)
        if z - self.edge < self.far - z:
            state = self._continue(self.edge, self.edge_state, z, strict=False)
            if state is not None:
                return state
        return self._continue(self.far, self.far_state, z, strict=True)

    def _continue(self, z0: float, state: Any, z: float, *, strict: bool) -> Any:
        """Newton continuation from the solution ``state`` at ``z0`` to ``z`` in adaptive steps (doubled after
        a success, halved after a failure); None (or an error when ``strict``) if the step size underflows."""
        direction = 1.0 if z > z0 else -1.0
        h = abs(z - z0)
        while z0 != z:
            remaining = abs(z - z0)
            target = z if h >= remaining else z0 + direction * h
            new = _real_newton(self.system, target, state, -1.0)
            if new is None:
                h = min(h, remaining) * 0.5
                if h < 1e-15 * (1 + abs(z)):
                    if not strict:
                        return None
                    raise QVEConvergenceError(
                        f"real QVE branch could not be continued to z = {z} for this profile S (and shifts a)"
                    )
                continue
            z0, state = target, new
            h *= 2.0
        return state


def _upper_branch(system: _System) -> _Branch:
    scale = _scale(system)
    far = float(np.max(system.a) + 2.0 * np.sqrt(np.max(system.row_sums)) + 0.5 * scale)
    far_state = np.real(_solve_complex(system, complex(far, 0.0)))
    far_state = _real_newton(system, far, far_state, -1.0)
    if far_state is None:  # pragma: no cover - the bound above guarantees a real branch
        raise QVEConvergenceError(
            "QVE real branch not found above the spectrum of this profile S (and shifts a)"
        )
    z, st = far, far_state
    h = 0.1 * scale
    tol = 1e-13 * scale
    while h > tol:
        new = _real_newton(system, z - h, st, -1.0)
        if new is None:
            h *= 0.5
        else:
            z, st = z - h, new
            h *= 1.5
    return _Branch(system, z, st, far, far_state)


# ------------------------------------------------------------------------------------------------------------
# Public functions.


def solve_qve(
    S: ArrayLike | BlockProfile, z: ArrayLike, a: ArrayLike | None = None
) -> FloatArray | ComplexArray:
    """Solve ``−1/m_j(z) = z − a_j + Σ_k S_jk m_k(z)`` (the quadratic vector equation, docs/theory.md §1b).

    Args:
        S: P×P symmetric entrywise non-negative variance profile (``S_jk = Var E_jk``), or a
        :class:`BlockProfile`.
        z: spectral parameter(s), real or complex with ``Im z >= 0``; any shape.
        a: optional diagonal shifts (length P), e.g. a spike on a coordinate or a diagonal bulk.

    Returns:
        ``m`` with shape ``z.shape + (P,)`` (``(K,)`` per block for a BlockProfile): complex with ``Im m >
        0`` for
        ``Im z > 0``; for real z the boundary value ``m(x + i0)``, returned as a real array when x lies
        outside
        the spectrum (then, above the spectrum, every ``m_j < 0`` and the Perron eigenvalue of ``|m|S|m|`` is
        < 1).

    Example:
        >>> S = np.full((4, 4), 0.25)   # row sums 1: semicircle on [-2, 2]
        >>> m = solve_qve(S, 3.0)        # all entries (-3 + √5)/2
    """
    system = _build_system(S, a)
    z_arr = np.asarray(z)
    if z_arr.dtype == bool or not np.issubdtype(z_arr.dtype, np.number):
        raise TypeError(f"z must be a real or complex number or array, got dtype {z_arr.dtype}")
    z_arr = z_arr.astype(np.complex128)
    if not np.all(np.isfinite(z_arr)):
        raise ValueError("z must be finite")
    _check_magnitude(np.abs(z_arr).max(initial=0.0), "z")
    if np.any(z_arr.imag < 0):
        raise ValueError("z must lie in the closed upper half plane (Im z >= 0)")
    out = [system.full_m(_solve_complex(system, complex(zz)), complex(zz)) for zz in z_arr.ravel()]
    result = np.array(out).reshape(z_arr.shape + np.shape(out[0]))
    if np.all(z_arr.imag == 0) and np.all(np.abs(result.imag) <= 1e-9 * (1 + np.abs(result))):
        return np.ascontiguousarray(result.real)
    return result


def wigner_type_density(
    S: ArrayLike | BlockProfile, x: ArrayLike, a: ArrayLike | None = None
) -> float | FloatArray:
    """Limiting spectral density ``ρ(x) = (1/π) Im mean_j m_j(x + i0)`` of ``diag(a) + E`` with profile S."""
    system = _build_system(S, a)
    x_arr = check_finite(x, "x")
    _check_magnitude(np.abs(x_arr).max(initial=0.0), "x")
    w = system.weights()
    dens = np.array(
        [
            float(np.sum(w * system.block_m(_solve_complex(system, complex(xx)), complex(xx)).imag)) / np.pi
            for xx in x_arr.ravel()
        ]
    )
    return scalar_or_array(np.maximum(dens, 0.0).reshape(x_arr.shape))


def wigner_type_edges(S: ArrayLike | BlockProfile, a: ArrayLike | None = None) -> tuple[float, float]:
    """(lower, upper) edges of the spectrum of ``diag(a) + E``: where the real QVE branch folds.

    Computed by Newton continuation of the real solution from far outside the spectrum towards it; the fold is
    where the Perron eigenvalue of ``|m| S |m|`` reaches 1 (not a threshold on the density). Accuracy ~1e-12
    relative. The lower edge is minus the upper edge of the reflected problem (a → −a).
    """
    system = _build_system(S, a)
    upper = _upper_branch(system).edge
    lower = -_upper_branch(system.reflected()).edge
    return float(lower), float(upper)


def wigner_type_outliers(
    S: ArrayLike | BlockProfile, thetas: ArrayLike, vectors: ArrayLike, a: ArrayLike | None = None
) -> FloatArray:
    """Outliers of ``Φ diag(θ) Φᵀ + diag(a) + E`` (noise profile S), one per spike, ordered like ``thetas``.

    A spike θ_i > 0 produces the outlier z > E₊ solving ``det(I_r + Θ Φᵀ diag(m(z)) Φ) = 0`` (rank one:
    ``1 + θ Σ_j φ_j² m_j(z) = 0``); negative spikes produce outliers below E₋. Within each side the i-th
    largest
    |θ| is matched with the i-th outermost root. A spike that does not separate returns the nearest edge
    (E₊ for θ >= 0, E₋ for θ < 0). Leading order in P: outliers fluctuate at O(P^-1/2).

    Args:
        S: P×P variance profile (or BlockProfile with integer sizes summing to P; vectors then index blocks
            in order).
        thetas: r spike strengths.
        vectors: P×r matrix with orthonormal columns (a 1-D vector for r = 1).
        a: optional diagonal shifts.
    """
    system = _build_system(S, a)
    thetas_arr = check_finite(thetas, "thetas").reshape(-1)
    _check_magnitude(np.abs(thetas_arr).max(initial=0.0), "thetas")
    # |θ| < 1e-300 (1/θ overflows) never separates from the bulk: the same answer as θ = 0, the edge
    thetas_arr = np.where(np.abs(thetas_arr) < 1e-300, 0.0, thetas_arr)
    r = thetas_arr.size
    expand = _block_expansion(S) if isinstance(S, BlockProfile) else None
    p = (
        int(system.g.size)
        if isinstance(system, _RankOneSystem)
        else (int(expand.size) if expand is not None else int(system.n.sum()))
    )
    if leading_dim(vectors) not in (None, p):
        raise ValueError(
            f"vectors must have one row per coordinate of S (P = {p}), got shape {np.shape(vectors)}"
        )
    phi = check_orthonormal_columns(vectors, "vectors", n_rows=p)
    if phi.shape[1] != r:
        raise ValueError(f"vectors must have one column per spike: {r} thetas but {phi.shape[1]} columns")
    out = np.empty(r)
    upper = _side_outliers(system, thetas_arr, phi, expand)
    lower = -_side_outliers(system.reflected(), -thetas_arr, phi, expand)
    out[thetas_arr >= 0] = upper[thetas_arr >= 0]
    out[thetas_arr < 0] = lower[thetas_arr < 0]
    return out


def _side_outliers(
    system: _System, thetas: FloatArray, phi: FloatArray, expand: NDArray[np.intp] | None
) -> FloatArray:
    """Outliers above the upper edge for the positive entries of ``thetas`` (others: the upper edge)."""
    branch = _upper_branch(system)
    out = np.full(thetas.shape, branch.edge)
    pos = np.flatnonzero(thetas > 0)
    if pos.size == 0:
        return out
    nz = np.flatnonzero(thetas != 0)
    n_neg = int(np.sum(thetas < 0))
    inv_theta = np.diag(1.0 / thetas[nz])
    phi_nz = phi[:, nz]

    def eigs(z: float, state: Any) -> FloatArray:
        # eigenvalues of Θ⁻¹ + Φᵀ diag(m(z)) Φ: non-decreasing in z above the edge, → 1/θ_i as z → ∞
        m = system.full_m(state, z)
        if expand is not None:
            m = m[expand]
        return np.asarray(np.linalg.eigvalsh(inv_theta + phi_nz.T @ (m[:, None] * phi_nz)))

    edge_eigs = eigs(branch.edge, branch.edge_state)
    for k, idx in enumerate(pos[np.argsort(-thetas[pos])]):
        j = n_neg + k  # the k-th largest positive spike crosses zero through this eigenvalue
        if edge_eigs[j] >= 0:
            continue  # does not separate: stays at the edge

        def f(z: float, _j: int = j) -> float:
            return float(eigs(z, branch.at(z))[_j])

        hi = branch.far + float(np.max(np.abs(thetas)))
        for _ in range(_MAX_DOUBLINGS):
            if f(hi) > 0:
                break
            hi = 2.0 * hi + 1.0
        else:  # pragma: no cover - f(z) → 1/θ > 0 as z → ∞
            raise QVEConvergenceError(f"no outlier bracket found for theta = {thetas[idx]:g} (thetas, S)")
        out[idx] = float(brentq(f, branch.edge, hi, xtol=1e-14 * max(1.0, abs(hi)), maxiter=200))
    return out


def _block_expansion(profile: BlockProfile) -> NDArray[np.intp]:
    """Block label of every coordinate of a BlockProfile with integer sizes (blocks in order)."""
    n = profile.sizes
    if not np.allclose(n, np.round(n)):
        raise ValueError("vectors can only index a BlockProfile whose sizes are integers")
    return np.repeat(np.arange(n.size), np.round(n).astype(int))

