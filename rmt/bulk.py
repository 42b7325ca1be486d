"""Spikes over a non-trivial bulk: free additive convolution (docs/theory.md §1c) and Bai–Yao multiplicative
spikes (§2).

Additive (batch Hessian). The bulk of H is a discrete measure ``μ = Σ_i w_i δ_{x_i}`` (e.g. Ritz
values and SLQ weights); the batch spectrum is ``μ ⊞ sc(ν)``. With ``g_μ(w) = ∫ dμ(x)/(w − x)`` and
the subordination map ``h(w) = w + ν² g_μ(w)``:

* a spike θ (eigenvector orthogonal to the bulk's) gives an outlier at ``h(θ)`` iff ``h'(θ) > 0``,
  with squared overlap ``h'(θ)``; otherwise its eigenvalue sticks to the nearest bulk edge;
* the bulk edges are ``h(w*)`` at the real critical points ``h'(w*) = 0`` outside supp μ;
* the Stieltjes transform of ``μ ⊞ sc(ν)`` is ``G(z) = g_μ(ω(z))`` where ω solves ``h(ω) = z``,
  Im ω > 0 (Pastur equation ``G = g_μ(z − ν² G)``), and the density is ``Im ω(x + i0) / (π ν²)``.

Multiplicative (batch GGN), Bai–Yao. Population bulk ``H = Σ_i w_i δ_{t_i}`` (t ≥ 0), ratio ``q = P/n``:
``ψ(α) = α + q α ∫ t dH(t)/(α − t)``; a spike α is an outlier at ``ψ(α)`` iff ``ψ'(α) > 0`` (squared overlap
``α ψ'(α)/ψ(α)``), the bulk edges are the critical values of ψ, and the density follows from the Silverstein
equation ``z = ψ(α)``, ``m̲ = −1/α`` (companion Stieltjes transform). Since
``ψ(α) = α + q E_H[t] + q Σ_i w_i t_i² / (α − t_i)``, ψ is the additive map for the measure with
masses ``w_i t_i²``, coupling q and shift ``q E_H[t]``: both models share one implementation,
:class:`_SpikeMap`.

Do not use the "generic spike" formula ``g_{μ⊞sc}(z) = 1/θ`` here (it assumes a spike eigenvector
random relative to the bulk; docs/theory.md §1c).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmt.checks import (
    FloatArray,
    _power_of_two_unit,
    check_complex,
    check_finite,
    check_measure,
    check_positive,
    refuse_non_finite,
    scalar_or_array,
)

__all__ = [
    "bulk_spike_outlier",
    "bulk_spike_overlap",
    "critical_noise_variance",
    "free_convolution_density",
    "free_convolution_edges",
    "free_convolution_stieltjes",
    "free_convolution_subordination",
    "wishart_bulk_atom",
    "wishart_bulk_density",
    "wishart_bulk_edges",
    "wishart_bulk_spike_outlier",
    "wishart_bulk_spike_overlap",
    "wishart_critical_ratio",
]

ComplexArray = NDArray[np.complex128]

_CHUNK = 2_000_000  # max (points × atoms) evaluated at once
_OPEN_GAP = 1e-12  # a gap is open when max h' on it exceeds this (h' is dimensionless)
_BISECTIONS = 80


def _moment_sums(w: Any, atoms: FloatArray, masses: FloatArray, powers: tuple[int, ...]) -> list[Any]:
    """``Σ_i m_i / (w − x_i)^k`` for each k in ``powers`` (ascending; real or complex w), chunked over w."""
    w = np.asarray(w)
    flat = w.ravel()
    out = [np.empty(flat.shape, dtype=np.result_type(flat.dtype, np.float64)) for _ in powers]
    step = max(1, _CHUNK // max(atoms.size, 1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, flat.size, step):
            inv = 1.0 / (flat[start : start + step, None] - atoms[None, :])
            power, current = 1, inv
            for slot, k in zip(out, powers, strict=True):
                while power < k:
                    current, power = current * inv, power + 1
                slot[start : start + step] = current @ masses
    return [o.reshape(w.shape) for o in out]


@dataclass(frozen=True)
class _SpikeMap:
    """``f(w) = w + shift + coupling · Σ_i m_i / (w − x_i)`` with sorted distinct atoms x and masses m > 0.

    Additive: masses = weights of μ, coupling = ν², shift = 0 (f = h). Multiplicative: masses =
    w t², coupling = q, shift = q E_H[t] (f = ψ).
    """

    atoms: FloatArray
    masses: FloatArray
    coupling: float
    shift: float
    unit: float = 1.0  # the map acts on w / unit: atoms, coupling and shift are stored in these units

    # ----------------------------------------------------------------- in the caller's units
    def image(self, theta: FloatArray) -> FloatArray:
        """:meth:`spike_image` of ``theta`` (caller's units)."""
        return self.unit * self.spike_image(theta / self.unit)

    def overlap(self, theta: FloatArray) -> FloatArray:
        """:meth:`spike_slope` of ``theta`` (dimensionless)."""
        return self.spike_slope(theta / self.unit)

    def value_at(self, w: FloatArray) -> FloatArray:
        """``f(w)`` in the caller's units."""
        return np.asarray(self.unit * self.value(w / self.unit), dtype=np.float64)

    def support_edges(self) -> FloatArray:
        """:meth:`edges` in the caller's units."""
        return self.unit * self.edges()

    # ----------------------------------------------------------------- evaluation
    def value(self, w: Any) -> Any:
        (s1,) = _moment_sums(w, self.atoms, self.masses, (1,))
        return np.asarray(w) + self.shift + self.coupling * s1

    def slope(self, w: Any) -> Any:
        (s2,) = _moment_sums(w, self.atoms, self.masses, (2,))
        return 1.0 - self.coupling * s2

    def _curvature_sign(self, w: Any) -> Any:
        (s3,) = _moment_sums(w, self.atoms, self.masses, (3,))
        return s3

    @property
    def scale(self) -> float:
        span = float(self.atoms[-1] - self.atoms[0]) if self.atoms.size else 0.0
        return max(span, float(np.sqrt(self.coupling * self.masses.sum())), 1e-300)

    # ----------------------------------------------------------------- critical points
    def critical_points(self) -> FloatArray:
        """Sorted real solutions of ``f'(w) = 0`` outside the atoms (one left, one right, 0 or 2 per gap).

        On a gap ``(x_i, x_{i+1})`` the function ``Σ m/(w − x)²`` is convex, so f' is concave with a
        unique maximum (the root of the strictly decreasing ``Σ m/(w − x)³``); the gap stays open
        iff that maximum is positive. Outside the atoms f' is monotone. All roots are found by
        vectorised bisection on sign changes.
        """
        if self.coupling == 0.0 or self.atoms.size == 0:
            return np.empty(0)
        x, m, c = self.atoms, self.masses, self.coupling
        total = float(m.sum())
        # Right of the atoms f' increases from −∞ to 1: f' < 0 at x_max + ½√(c m_max), > 0 at x_max + 2√(c M).
        right = _bisect(
            self.slope, x[-1] + 0.5 * np.sqrt(c * m[-1:]), x[-1] + 2.0 * np.sqrt(c * total) + 0 * m[-1:]
        )
        left = _bisect(
            self.slope, x[0] - 0.5 * np.sqrt(c * m[:1]), x[0] - 2.0 * np.sqrt(c * total) + 0 * m[:1]
        )
        points = [left, right]
        if x.size > 1:
            lo, hi = x[:-1], x[1:]
            # argmax of f' on each gap: Σ m/(w − x)³ goes from +∞ (near lo) to −∞ (near hi)
            peak = _bisect(lambda w: -self._curvature_sign(w), lo, hi)
            open_gap = self.slope(peak) > _OPEN_GAP
            if open_gap.any():
                lo_o, hi_o, pk = lo[open_gap], hi[open_gap], peak[open_gap]
                sqrt_lo = np.sqrt(c * m[:-1][open_gap])
                sqrt_hi = np.sqrt(c * m[1:][open_gap])
                a = lo_o + 0.5 * np.minimum(sqrt_lo, pk - lo_o)  # f'(a) < 0, a < peak
                b = hi_o - 0.5 * np.minimum(sqrt_hi, hi_o - pk)  # f'(b) < 0, b > peak
                points += [_bisect(self.slope, a, pk), _bisect(self.slope, b, pk)]
        return np.sort(np.concatenate(points))

    def edges(self) -> FloatArray:
        """Sorted bulk edges ``f(w*)``; consecutive pairs are the components of the support."""
        return np.sort(np.asarray(self.value(self.critical_points()), dtype=np.float64))

    # ----------------------------------------------------------------- spikes
    def spike_image(self, theta: FloatArray) -> FloatArray:
        """``f(θ)`` where ``f'(θ) > 0``; else the nearest bulk edge (see :func:`bulk_spike_outlier`)."""
        if self.coupling == 0.0:
            return theta.astype(np.float64, copy=True)
        on_atom = np.isin(theta, self.atoms)
        safe = np.where(on_atom, self.atoms[-1] + 1.0 + self.scale, theta)
        slope = np.where(on_atom, -np.inf, self.slope(safe))
        out = np.asarray(self.value(safe), dtype=np.float64).copy()
        absorbed = ~(slope > 0)
        if absorbed.any():
            out[absorbed] = self._nearest_edge(theta[absorbed])
        return out

    def spike_slope(self, theta: FloatArray) -> FloatArray:
        """``max(f'(θ), 0)`` (0 on atoms; 1 elsewhere without noise, coupling 0)."""
        on_atom = np.isin(theta, self.atoms)
        if self.coupling == 0.0:
            return np.where(on_atom, 0.0, 1.0)
        safe = np.where(on_atom, self.atoms[-1] + 1.0 + self.scale, theta)
        return np.where(on_atom, 0.0, np.maximum(self.slope(safe), 0.0))

    def _nearest_edge(self, theta: FloatArray) -> FloatArray:
        cps = self.critical_points()
        edges = np.asarray(self.value(cps), dtype=np.float64)
        n_comp = cps.size // 2
        comp = np.clip((np.searchsorted(cps, theta) - 1) // 2, 0, n_comp - 1)
        lower, upper = cps[2 * comp], cps[2 * comp + 1]
        use_upper = (theta - lower) >= (upper - theta)  # ties go up, like wigner_outlier(0, ν) = 2ν
        out = np.where(use_upper, edges[2 * comp + 1], edges[2 * comp])
        out = np.where(theta > self.atoms[-1], edges[-1], out)
        return np.where(theta < self.atoms[0], edges[0], out)

    # ----------------------------------------------------------------- subordination
    def solve(self, z: ComplexArray) -> ComplexArray:
        """ω with ``f(ω) = z`` on the branch continuous from ``ω ~ z`` at infinity (Im ω >= 0).

        Newton with η-continuation: z_k = Re z + i max(η_k, Im z), η_k divided by 4 per level from
        10·scale; each Newton step is halved until the residual decreases and Im ω stays > 0. Points
        with Im z = 0 finish with Newton at η = 0, reflecting iterates into the closed upper half
        plane (for real z the roots come in conjugate pairs).
        """
        z = np.asarray(z, dtype=np.complex128)
        target = z.ravel() - self.shift
        scale = self.scale
        eta0 = 10.0 * (scale + float(np.abs(self.atoms).max()))
        omega = target.real + 1j * np.maximum(eta0, target.imag)
        # levels from η0 down to 1e-10·scale (in logarithms: the ratio may exceed the float range); bounded
        n_levels = min(int(np.ceil((np.log(eta0) - np.log(1e-10) - np.log(scale)) / np.log(4.0))) + 1, 1200)
        for k in range(n_levels):
            eta = eta0 * 0.25**k
            level = target.real + 1j * np.maximum(eta, target.imag)
            omega = self._newton(omega, level, real_target=False)
        is_real = target.imag == 0
        if is_real.any():
            omega[is_real] = self._newton(omega[is_real], target[is_real], real_target=True)
        return omega.reshape(z.shape)

    def _newton(self, omega: ComplexArray, target: ComplexArray, *, real_target: bool) -> ComplexArray:
        """Damped Newton for ``f(ω) = target``: a step is halved until |residual| decreases (and, for complex
        targets, Im ω stays > 0; for real targets iterates are reflected into Im ω >= 0)."""
        omega = omega.copy()
        tol = 1e-15 * self.scale
        s1, s2 = _moment_sums(omega, self.atoms, self.masses, (1, 2))
        resid = omega + self.coupling * s1 - target
        deriv = 1.0 - self.coupling * s2
        active = np.arange(omega.size)
        for _ in range(60):
            if active.size == 0:
                break
            w, r, d, t = omega[active], resid[active], deriv[active], target[active]
            with np.errstate(divide="ignore", invalid="ignore"):
                step = -r / d
            step = np.where(np.isfinite(step), step, 0.0)
            small = np.abs(step) <= tol * (1.0 + np.abs(w) / self.scale)
            omega[active[small]] = w[small] + step[small]
            keep = ~small
            active, w, r, step, t = active[keep], w[keep], r[keep], step[keep], t[keep]
            size = np.abs(r)
            pending = np.ones(active.size, dtype=bool)
            factor = 1.0
            for _ in range(40):
                if not pending.any():
                    break
                idx = np.flatnonzero(pending)
                cand = w[idx] + factor * step[idx]
                if real_target:
                    cand = np.where(cand.imag < 0, np.conj(cand), cand)
                c1, c2 = _moment_sums(cand, self.atoms, self.masses, (1, 2))
                cand_resid = cand + self.coupling * c1 - t[idx]
                cand_size = np.abs(cand_resid)
                good = (cand_size < size[idx]) & np.isfinite(cand_size)
                if not real_target:
                    good &= cand.imag > 0
                hit = active[idx[good]]
                omega[hit] = cand[good]
                resid[hit] = cand_resid[good]
                deriv[hit] = 1.0 - self.coupling * c2[good]
                pending[idx[good]] = False
                factor *= 0.5
            active = active[~pending]  # points whose step could not be improved have converged
        return omega


def _bisect(fun: Callable[[Any], Any], neg: FloatArray, pos: FloatArray) -> FloatArray:
    """Vectorised bisection for ``fun(w) = 0`` given ``fun < 0`` at (or in the limit towards) ``neg`` and
    ``fun > 0`` towards ``pos`` (``neg`` may exceed ``pos``); the ends themselves are never evaluated."""
    neg = np.array(neg, dtype=np.float64)
    pos = np.array(pos, dtype=np.float64)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (neg + pos)
        val = np.asarray(fun(mid))
        is_neg = val < 0
        neg = np.where(is_neg, mid, neg)
        pos = np.where(is_neg, pos, mid)
    return 0.5 * (neg + pos)


# ===================================================================== argument handling
def _scalar_float(value: Any, name: str, *, allow_zero: bool) -> float:
    arr = check_positive(value, name, allow_zero=allow_zero)
    if arr.ndim != 0:
        raise ValueError(
            f"{name} must be a scalar here (the result's length depends on it), got shape {arr.shape}"
        )
    return float(arr)


def _unit(size: float) -> float:
    """Unit of the scaled maps (:func:`rmt.checks._power_of_two_unit`: 1 in the ordinary range)."""
    return _power_of_two_unit(size)


def _additive_map(nu: float, atoms: FloatArray, weights: FloatArray) -> _SpikeMap:
    """h for ``μ = Σ w δ_x`` and noise ν, stored in units of ``max(|x|, ν)`` (the map is scale covariant:
    h_{sμ, sν}(s w) = s h_{μ,ν}(w)), so that atoms near 1e±300 neither overflow nor underflow."""
    unit = _unit(max(float(np.abs(atoms).max()), float(nu)))
    return _SpikeMap(atoms / unit, weights, (float(nu) / unit) ** 2, 0.0, unit)


def _multiplicative_map(q: float, atoms: FloatArray, weights: FloatArray) -> _SpikeMap:
    """ψ for the population bulk ``H = Σ w δ_t`` (t >= 0) and ratio q, in units of ``max t`` (scale
    covariant: ψ_{sH}(s α) = s ψ_H(α))."""
    keep = atoms > 0
    if not keep.any():
        raise ValueError("bulk_eigenvalues must contain a positive value (a bulk H = δ₀ has no spectrum)")
    unit = _unit(float(atoms.max()))
    scaled = atoms / unit
    mean = float(weights @ scaled)
    return _SpikeMap(scaled[keep], weights[keep] * scaled[keep] ** 2, float(q), float(q) * mean, unit)


def _per_parameter(
    points: FloatArray, parameter: FloatArray, build: Callable[[float], _SpikeMap], method: str
) -> FloatArray:
    """Evaluate ``getattr(build(p), method)(points)`` with broadcasting, building one map per distinct p."""
    pts, par = np.broadcast_arrays(points, parameter)
    out = np.empty(pts.shape, dtype=np.float64)
    for value in np.unique(par):
        sel = par == value
        out[sel] = getattr(build(float(value)), method)(pts[sel])
    return out


# ===================================================================== additive model (docs/theory.md §1c)
@refuse_non_finite()
def bulk_spike_outlier(
    theta: ArrayLike, nu: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Batch eigenvalue of a spike θ over the bulk μ under semicircle noise of scale ν (docs/theory.md §1c).

    ``h(θ) = θ + ν² ∫ dμ(x)/(θ − x)`` if ``h'(θ) = 1 − ν² ∫ dμ(x)/(θ − x)² > 0``; otherwise the
    nearest bulk edge of ``μ ⊞ sc(ν)``: the top edge for θ above supp μ, the bottom edge for θ below
    it, and for θ inside the hull of supp μ the image ``h(w*)`` of the nearer end w* of the interval
    of absorbed points containing θ. The spike's eigenvector must be orthogonal to the bulk's (the Hessian
    case). For μ = δ₀ this is :func:`wigner_outlier`.

    Args:
        theta: spike(s) θ; nu: noise scale ν >= 0 (broadcasts with θ).
        bulk_eigenvalues: atoms of μ (1-D); bulk_weights: their weights (>= 0, normalised; default uniform).
    """
    th = check_finite(theta, "theta")
    nu_ = check_positive(nu, "nu", allow_zero=True)
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights)
    return scalar_or_array(_per_parameter(th, nu_, lambda v: _additive_map(v, atoms, weights), "image"))


@refuse_non_finite()
def bulk_spike_overlap(
    theta: ArrayLike, nu: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Squared overlap ``|⟨u', u⟩|² = max(h'(θ), 0)`` of the batch outlier with the spike (docs/theory.md
    §1c).

    Args: as :func:`bulk_spike_outlier`.
    """
    th = check_finite(theta, "theta")
    nu_ = check_positive(nu, "nu", allow_zero=True)
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights)
    return scalar_or_array(_per_parameter(th, nu_, lambda v: _additive_map(v, atoms, weights), "overlap"))


@refuse_non_finite()
def critical_noise_variance(
    theta: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Critical noise variance ``ν_c² = 1 / ∫ dμ(x)/(θ − x)²`` for the spike θ (docs/theory.md §1c).

    The spike is an outlier iff ``ν² < ν_c²``; with ``ν² = P σ² κ(B)`` this gives the critical batch size.
    0 when θ is an atom of μ. For μ = δ₀: ``ν_c = |θ|``.

    Args:
        theta: spike(s); bulk_eigenvalues, bulk_weights: the bulk measure μ.
    """
    th = check_finite(theta, "theta")
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights)
    unit = _unit(max(float(np.abs(atoms).max()), float(np.abs(th).max(initial=0.0))))
    (s2,) = _moment_sums(th / unit, atoms / unit, weights, (2,))  # ν_c² scales like unit²
    with np.errstate(divide="ignore"):
        nu_c2 = 1.0 / s2 if unit == 1.0 else (unit / np.sqrt(s2)) ** 2
        return scalar_or_array(np.where(np.isin(th, atoms), 0.0, nu_c2))


@refuse_non_finite()
def free_convolution_edges(
    nu: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> FloatArray:
    """Sorted edges of ``μ ⊞ sc(ν)``: ``h(w*)`` at the real roots of ``h'(w*) = 0`` outside supp μ
    (docs/theory.md §1c).

    Consecutive pairs ``(edges[2k], edges[2k+1])`` are the connected components of the support. A gap whose
    maximum of h' is ≤ 1e-12 counts as closed (a cusp is not an edge).

    Args:
        nu: scalar ν > 0; bulk_eigenvalues, bulk_weights: the bulk measure μ.
    """
    nu_ = _scalar_float(nu, "nu", allow_zero=False)
    return _additive_map(nu_, *check_measure(bulk_eigenvalues, bulk_weights)).support_edges()


@refuse_non_finite()
def free_convolution_subordination(
    z: ArrayLike, nu: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> complex | ComplexArray:
    """Subordination function ω(z) of ``μ ⊞ sc(ν)``: the solution of ``ω + ν² g_μ(ω) = z`` with Im ω > 0.

    For real z the limit ``z + i0`` is returned (real outside the support). Complex array (complex
    for scalar).

    Args:
        z: points in the closed upper half plane; nu: scalar ν > 0; bulk_eigenvalues, bulk_weights: μ.
    """
    zs = check_complex(z, "z")
    nu_ = _scalar_float(nu, "nu", allow_zero=False)
    spike_map = _additive_map(nu_, *check_measure(bulk_eigenvalues, bulk_weights))
    omega = spike_map.unit * spike_map.solve(zs / spike_map.unit)
    return complex(omega) if omega.ndim == 0 else omega


@refuse_non_finite()
def free_convolution_stieltjes(
    z: ArrayLike, nu: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> complex | ComplexArray:
    """Stieltjes transform ``G(z) = ∫ dρ(x)/(z − x)`` of ``ρ = μ ⊞ sc(ν)``, via ``G(z) = g_μ(ω(z))``.

    Solves the Pastur equation ``G = g_μ(z − ν² G)``. For real z outside the support G is real.

    Args: as :func:`free_convolution_subordination`.
    """
    zs = check_complex(z, "z")
    nu_ = _scalar_float(nu, "nu", allow_zero=False)
    spike_map = _additive_map(nu_, *check_measure(bulk_eigenvalues, bulk_weights))
    omega = spike_map.solve(zs / spike_map.unit)  # in units of spike_map.unit; G scales like 1/unit
    (g,) = _moment_sums(omega, spike_map.atoms, spike_map.masses, (1,))
    g = g / spike_map.unit
    return complex(g) if np.ndim(g) == 0 else g


@refuse_non_finite()
def free_convolution_density(
    x: ArrayLike, nu: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Density of ``μ ⊞ sc(ν)`` at real x: ``Im ω(x + i0) / (π ν²)`` (docs/theory.md §1c; Biane 1997).

    ω is the subordination function (Newton on ``h(ω) = x`` with η-continuation). The density is ≥
    0, integrates to 1, has mean ``E_μ[x]`` and variance ``Var μ + ν²``, and vanishes outside
    :func:`free_convolution_edges`.

    Args:
        x: real points; nu: scalar ν > 0; bulk_eigenvalues, bulk_weights: μ.
    """
    xs = check_finite(x, "x")
    nu_ = _scalar_float(nu, "nu", allow_zero=False)
    spike_map = _additive_map(nu_, *check_measure(bulk_eigenvalues, bulk_weights))
    omega = spike_map.solve((xs / spike_map.unit).astype(np.complex128))  # in units of spike_map.unit
    return scalar_or_array(np.maximum(omega.imag, 0.0) / (np.pi * spike_map.coupling) / spike_map.unit)


# ===================================================================== multiplicative model (docs/theory.md
# §2, Bai–Yao)
@refuse_non_finite()
def wishart_bulk_spike_outlier(
    alpha: ArrayLike, q: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Sample eigenvalue of a population spike α over the population bulk H, ratio ``q = P/n`` (Bai–Yao; §2).

    ``ψ(α) = α + q α ∫ t dH(t)/(α − t)`` if ``ψ'(α) = 1 − q ∫ t² dH(t)/(α − t)² > 0``; otherwise the
    nearest bulk edge (same rule as :func:`bulk_spike_outlier`). ``ψ(α) − α → q E_H[t]`` as α → ∞
    (not 0). For H = δ_{σ²} this is :func:`rmt.wishart.wishart_outlier`.

    Args:
        alpha: population spike(s) α >= 0; q: P/n > 0 (broadcasts with α).
        bulk_eigenvalues: population bulk atoms t >= 0; bulk_weights: their weights (normalised;
            default uniform).
    """
    al = check_positive(alpha, "alpha", allow_zero=True)
    q_ = check_positive(q, "q")
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights, nonnegative=True)
    return scalar_or_array(_per_parameter(al, q_, lambda v: _multiplicative_map(v, atoms, weights), "image"))


@refuse_non_finite()
def wishart_bulk_spike_overlap(
    alpha: ArrayLike, q: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Squared overlap ``α ψ'(α) / ψ(α)`` of the sample outlier with the population spike (0 when ψ'(α) <= 0).

    For H = δ_{σ²} it equals Paul's formula :func:`rmt.wishart.wishart_overlap`. Args: as
    :func:`wishart_bulk_spike_outlier`.
    """
    al = check_positive(alpha, "alpha", allow_zero=True)
    q_ = check_positive(q, "q")
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights, nonnegative=True)
    slope = _per_parameter(al, q_, lambda v: _multiplicative_map(v, atoms, weights), "overlap")
    # α ψ'(α)/ψ(α) = ψ'(α) / (1 + q Σ w t/(α − t)): ψ(α)/α without the cancellation of ψ at small α
    # (and the limit 1 at α = 0, where ψ(0) = 0: a null direction of Σ stays null)
    al_b, q_b = np.broadcast_arrays(al, q_)
    keep = atoms > 0
    unit = _unit(max(float(atoms.max()), float(al.max(initial=0.0))))
    (s1,) = _moment_sums(al_b / unit, atoms[keep] / unit, weights[keep] * atoms[keep] / unit, (1,))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(slope > 0, slope / (1.0 + q_b * s1), 0.0)
    return scalar_or_array(ratio)


@refuse_non_finite(allow_inf=True)
def wishart_critical_ratio(
    alpha: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Critical ratio ``q_c(α) = 1 / ∫ t² dH(t)/(α − t)²``: the spike α is an outlier iff ``q < q_c``.

    For H = δ₁: ``q_c = (α − 1)²``, i.e. α_c = 1 + √q. 0 when α is an atom of H.

    Args:
        alpha: population spike(s) α >= 0; bulk_eigenvalues, bulk_weights: H (atoms >= 0).
    """
    al = check_positive(alpha, "alpha", allow_zero=True)
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights, nonnegative=True)
    unit = _unit(max(float(atoms.max()), float(al.max(initial=0.0))))  # q_c is scale invariant
    (s2,) = _moment_sums(al / unit, atoms / unit, weights * (atoms / unit) ** 2, (2,))
    with np.errstate(divide="ignore"):
        return scalar_or_array(np.where(np.isin(al, atoms[atoms > 0]), 0.0, 1.0 / s2))


@refuse_non_finite()
def wishart_bulk_edges(
    q: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> FloatArray:
    """Sorted edges of the continuous part of the limiting sample spectrum (critical values of ψ;
    Bai–Yao, §2).

    Consecutive pairs are the support components. The atom at 0 (:func:`wishart_bulk_atom`) is not an edge.
    For H = δ_{σ²}: the Marchenko–Pastur edges ``σ²(1 ± √q)²``.

    Args:
        q: scalar P/n > 0; bulk_eigenvalues: population bulk atoms t >= 0 (not all 0); bulk_weights: weights.
    """
    q_ = _scalar_float(q, "q", allow_zero=False)
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights, nonnegative=True)
    return _multiplicative_map(q_, atoms, weights).support_edges()


@refuse_non_finite()
def wishart_bulk_atom(
    q: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Mass at 0 of the limiting P×P sample spectrum: ``1 − min(1 − H({0}), 1/q)`` (rank ≤ min(P·(1
    − H({0})), n)).

    For H without an atom at 0 this is the Marchenko–Pastur atom ``max(1 − 1/q, 0)``.

    Args:
        q: P/n > 0; bulk_eigenvalues, bulk_weights: population bulk H (atoms >= 0).
    """
    q_ = check_positive(q, "q")
    atoms, weights = check_measure(bulk_eigenvalues, bulk_weights, nonnegative=True)
    positive = float(weights[atoms > 0].sum())
    return scalar_or_array(1.0 - np.minimum(positive, 1.0 / q_))


@refuse_non_finite()
def wishart_bulk_density(
    x: ArrayLike, q: ArrayLike, bulk_eigenvalues: ArrayLike, bulk_weights: ArrayLike | None = None
) -> float | FloatArray:
    """Density of the continuous part of the limiting sample spectrum ``H ⊠ MP_q`` (Silverstein equation; §2).

    Solves ``ψ(α) = x + i0`` (``z = −1/m̲ + q ∫ t dH/(1 + t m̲)`` with ``m̲ = −1/α``) by Newton with
    η-continuation; the P×P density at x > 0 is ``Im(−1/α) / (π q)``; 0 for x <= 0. It integrates to
    ``1 − wishart_bulk_atom`` (the remaining mass is the atom at 0 when q > 1 or H has zeros); its
    second moment (with the atom) is ``E t² + q (E t)²``.

    Args:
        x: real points; q: scalar P/n > 0; bulk_eigenvalues: population atoms t >= 0; bulk_weights: weights.
    """
    xs = check_finite(x, "x")
    q_ = _scalar_float(q, "q", allow_zero=False)
    spike_map = _multiplicative_map(q_, *check_measure(bulk_eigenvalues, bulk_weights, nonnegative=True))
    positive = xs > 0
    alpha = spike_map.solve((np.where(positive, xs, 1.0) / spike_map.unit).astype(np.complex128))
    with np.errstate(divide="ignore", invalid="ignore"):  # alpha is in units of spike_map.unit
        density = np.maximum((-1.0 / alpha).imag, 0.0) / (np.pi * q_) / spike_map.unit
    return scalar_or_array(np.where(positive, density, 0.0))
