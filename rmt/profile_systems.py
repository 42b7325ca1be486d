"""The quadratic vector equation's reduced systems (docs/theory.md §1b): the profile's classes of equal rows
(:class:`BlockProfile`, one unknown per class, exact) and the rank-one profile ``S = g gᵀ`` (one scalar
unknown), with the input checks shared by the solvers of :mod:`rmt.profile`.

Both systems expose the same interface to the solver: ``residual``, ``jacobian``-based Newton steps, the
Perron eigenvalue of ``|m| S |m|`` and the expansion of the class unknowns to the P rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmt.checks import (
    FloatArray,
    check_finite,
    check_int,
    check_positive,
    check_size,
    check_square_matrix,
)

ComplexArray = NDArray[np.complex128]
_RESIDUAL_TOL = 1e-13
_MAX_NEWTON = 80
_BLOCK_LIMIT = 256  # use the class reduction when it leaves at most this many classes (else try rank one)
_MAX_MAGNITUDE = 1e100  # |a|, |z|, |θ| and the noise scale sqrt(max_j Σ_k S_jk) must stay below this
_MAX_DOUBLINGS = 2000  # bracket expansions of the outlier equation (each doubles the upper end)


class QVEConvergenceError(ValueError):
    """The QVE solver did not converge for these arguments (a ``ValueError``: the arguments are outside the
    range the solver handles)."""


@dataclass(frozen=True)
class BlockProfile:
    """A variance profile that is constant on blocks of coordinates.

    Coordinates form K blocks; block c holds ``sizes[c]`` coordinates, all with diagonal shift ``shifts[c]``,
    and
    ``S_jk = variances[c(j), c(k)]``. Then ``Σ_k S_jk m_k = Σ_c' variances[c, c'] sizes[c'] m_c'`` and the
    QVE has
    one unknown per block. ``sizes`` may be non-integer weights (a coarse-grained continuum) and may be 0 (a
    probe
    coordinate that feels the others but does not act back, e.g. a localized spike in the large-P limit).

    Example:
        >>> prof = BlockProfile(np.array([[2.0, 0.5], [0.5, 1.0]]) / 2000, np.array([1000.0, 1000.0]))
        >>> lo, hi = wigner_type_edges(prof)
    """

    variances: FloatArray
    sizes: FloatArray
    shifts: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        variances = check_square_matrix(self.variances, "variances", symmetric=True, nonnegative=True)
        sizes = check_positive(self.sizes, "sizes", allow_zero=True)
        if sizes.shape != (variances.shape[0],):
            raise ValueError(f"sizes must have shape ({variances.shape[0]},), got {sizes.shape}")
        if not (sizes > 0).any():
            raise ValueError("sizes must contain at least one positive block size")
        shifts = np.zeros(sizes.shape) if np.size(self.shifts) == 0 else check_finite(self.shifts, "shifts")
        if shifts.shape != sizes.shape:
            raise ValueError(f"shifts must have shape {sizes.shape}, got {shifts.shape}")
        object.__setattr__(self, "variances", variances)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "shifts", shifts)

    @property
    def n_blocks(self) -> int:
        return int(self.sizes.shape[0])

    @classmethod
    def from_function(
        cls,
        variance: Callable[[FloatArray, FloatArray], FloatArray],
        n_blocks: int,
        shift: Callable[[FloatArray], FloatArray] | None = None,
    ) -> BlockProfile:
        """Midpoint coarse-graining of a continuum profile on x ∈ [0, 1] (K = ``n_blocks`` equal blocks).

        The continuum QVE is ``−1/m(x) = z − a(x) + ∫_0^1 s(x, y) m(y) dy``; it is the large-P limit of
        ``S_jk = s(x_j, x_k)/P``, ``a_j = a(x_j)``. Blocks have weight 1/K and midpoints ``x_c = (c + ½)/K``;
        the
        error of edges and outliers is O(K⁻²) for smooth s and a (docs/reference-values.md row 26).
        """
        if not callable(variance):
            raise TypeError(f"variance must be a callable s(x, y), got {type(variance).__name__}")
        if shift is not None and not callable(shift):
            raise TypeError(f"shift must be a callable a(x) or None, got {type(shift).__name__}")
        k = check_int(n_blocks, "n_blocks", minimum=1)
        check_size(k * k, "n_blocks", copies=4)
        x = (np.arange(k) + 0.5) / k
        var = check_finite(variance(x[:, None], x[None, :]), "variance") * np.ones((k, k))
        if var.shape != (k, k):
            raise ValueError(f"variance(x, y) must broadcast to shape ({k}, {k}), got {var.shape}")
        shifts = np.zeros(k) if shift is None else check_finite(shift(x), "shift") * np.ones(k)
        if shifts.shape != (k,):
            raise ValueError(f"shift(x) must broadcast to shape ({k},), got {shifts.shape}")
        check_square_matrix(var, "variance", symmetric=True, nonnegative=True)
        return cls(var, np.full(k, 1.0 / k), shifts)


def coarse_grain_profile(S: ArrayLike, n_blocks: int, a: ArrayLike | None = None) -> BlockProfile:
    """Average a dense profile (and shifts) over ``n_blocks`` contiguous blocks of indices.

    Order the coordinates so that the profile varies smoothly with the index (e.g. sort by the field a_j)
    before
    calling; the error is then O(K⁻²).
    """
    S_arr = check_square_matrix(S, "S", symmetric=True, nonnegative=True)
    p = S_arr.shape[0]
    if p == 0:
        raise ValueError("S must be a non-empty square matrix")
    k = check_int(n_blocks, "n_blocks", minimum=1)
    if k > p:
        raise ValueError(f"n_blocks must be <= the size of S (P = {p}), got {k}")
    _check_magnitude(S_arr.max(), "S", squared=True)
    a_arr = _check_shifts(a, p)
    bounds = np.linspace(0, p, k + 1).round().astype(int)
    labels = np.repeat(np.arange(k), np.diff(bounds))
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    ind = np.zeros((k, p))
    ind[labels, np.arange(p)] = 1.0
    T = (ind @ S_arr @ ind.T) / np.outer(sizes, sizes)
    return BlockProfile(0.5 * (T + T.T), sizes, (ind @ a_arr) / sizes)


# ------------------------------------------------------------------------------------------------------------
# Reduced systems: one unknown per block, or one scalar for a rank-one profile.


class _BlockSystem:
    """``−1/m_c = z − a_c + Σ_c' T_cc' n_c' m_c'`` (state: m per block)."""

    def __init__(self, T: FloatArray, n: FloatArray, a: FloatArray, labels: NDArray[np.intp] | None) -> None:
        self.T, self.n, self.a, self.labels = T, n, a, labels
        self.Tn = T * n[None, :]
        self.row_sums = self.Tn.sum(axis=1)

    def reflected(self) -> _BlockSystem:
        return _BlockSystem(self.T, self.n, -self.a, self.labels)

    def field(self, state: Any, z: complex) -> Any:
        return z - self.a + self.Tn @ state

    def initial(self, z: complex) -> Any:
        return -1.0 / (z - self.a)

    def fixed_point(self, state: Any, z: complex) -> Any:
        return -1.0 / self.field(state, z)

    def residual(self, state: Any, z: complex) -> float:
        return float(np.max(np.abs(1.0 + state * self.field(state, z))))

    def newton_step(self, state: Any, z: complex) -> Any:
        f = self.field(state, z)
        jac = np.diag(f) + state[:, None] * self.Tn
        return np.linalg.solve(jac, -(1.0 + state * f))

    def perron(self, state: Any) -> float:
        r = np.sqrt(self.n) * np.abs(state)
        return float(np.linalg.eigvalsh(r[:, None] * self.T * r[None, :])[-1])

    def block_m(self, state: Any, z: complex) -> Any:
        return state

    def full_m(self, state: Any, z: complex) -> Any:
        return state if self.labels is None else state[self.labels]

    def weights(self) -> FloatArray:
        return self.n / self.n.sum()


class _RankOneSystem:
    """``S = g gᵀ``: ``m_j = −1/(z − a_j + g_j u)`` with the scalar ``u = Σ_k g_k m_k`` (state: u as shape
    (1,))."""

    def __init__(self, g: FloatArray, a: FloatArray) -> None:
        self.g, self.a = g, a
        self.row_sums = g * g.sum()

    def reflected(self) -> _RankOneSystem:
        return _RankOneSystem(self.g, -self.a)

    def _m(self, state: Any, z: complex) -> Any:
        return -1.0 / (z - self.a + self.g * state[0])

    def initial(self, z: complex) -> Any:
        return np.array([np.sum(self.g * (-1.0 / (z - self.a)))])

    def fixed_point(self, state: Any, z: complex) -> Any:
        return np.array([np.sum(self.g * self._m(state, z))])

    def residual(self, state: Any, z: complex) -> float:
        scale = 1.0 + float(np.sum(self.g * np.abs(self._m(state, z))))
        return float(abs(state[0] - np.sum(self.g * self._m(state, z)))) / scale

    def newton_step(self, state: Any, z: complex) -> Any:
        m = self._m(state, z)
        phi = state[0] - np.sum(self.g * m)
        dphi = 1.0 - np.sum(self.g**2 * m**2)
        return np.array([-phi / dphi])

    def block_m(self, state: Any, z: complex) -> Any:
        return self._m(state, z)

    def full_m(self, state: Any, z: complex) -> Any:
        return self._m(state, z)

    def weights(self) -> FloatArray:
        return np.full(self.g.shape, 1.0 / self.g.size)


_System = _BlockSystem | _RankOneSystem


def _perron(system: _System, state: Any, z: float) -> float:
    """Perron eigenvalue of |m| S |m| (for the rank-one profile: Σ_j g_j² m_j²)."""
    if isinstance(system, _RankOneSystem):
        m = system.block_m(state, z)
        return float(np.sum(system.g**2 * np.abs(m) ** 2))
    return system.perron(state)


def _check_shifts(a: Any, p: int) -> FloatArray:
    if a is None:
        return np.zeros(p)
    a_arr = check_finite(a, "a")
    if a_arr.shape != (p,):
        raise ValueError(f"a must have shape ({p},) to match S, got {a_arr.shape}")
    _check_magnitude(np.abs(a_arr).max(initial=0.0), "a")
    return a_arr


def _check_magnitude(value: Any, name: str, *, squared: bool = False) -> None:
    """The solver's range: |a|, |z|, |θ| <= 1e100 and S (a variance: a squared scale) <= 1e200."""
    limit = _MAX_MAGNITUDE**2 if squared else _MAX_MAGNITUDE
    if not float(value) <= limit:
        raise ValueError(
            f"{name} must be at most {limit:g} in magnitude (the QVE solver's range), got {float(value):g}"
        )


def _build_system(S: Any, a: Any = None) -> _System:
    if isinstance(S, BlockProfile):
        if a is not None:
            raise ValueError("a must be None for a BlockProfile (its shifts are part of the profile)")
        with np.errstate(over="ignore"):
            row_sums = (S.variances * S.sizes[None, :]).sum(axis=1)
        _check_magnitude(row_sums.max(), "S", squared=True)
        _check_magnitude(np.abs(S.shifts).max(initial=0.0), "S")
        return _BlockSystem(S.variances, S.sizes, S.shifts, None)
    if isinstance(S, (str, bytes)) or S is None:
        raise TypeError(f"S must be a square matrix or a BlockProfile, got {type(S).__name__}")
    S_arr = check_square_matrix(S, "S", symmetric=True, nonnegative=True)
    p = S_arr.shape[0]
    if p == 0:
        raise ValueError("S must be a non-empty square matrix")
    _check_magnitude(S_arr.max(), "S", squared=True)
    _check_magnitude(S_arr.max() * p, "S", squared=True)
    S_arr = 0.5 * (S_arr + S_arr.T)
    a_arr = _check_shifts(a, p)
    labels, first = _row_classes(S_arr, a_arr)
    k = first.size
    if k > _BLOCK_LIMIT:
        g = np.sqrt(np.diag(S_arr))
        scale = max(float(S_arr.max()), 1e-300)
        if np.max(np.abs(S_arr - np.outer(g, g))) <= 1e-12 * scale:
            return _RankOneSystem(g, a_arr)
    T = S_arr[np.ix_(first, first)]
    n = np.bincount(labels, minlength=k).astype(np.float64)
    return _BlockSystem(T, n, a_arr[first], labels)


def _row_classes(S: FloatArray, a: FloatArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Class label of every row of ``[S | a]`` (equal rows share a class; exact, by hashing row bytes) and the
    first row of each class."""
    seen: dict[bytes, int] = {}
    labels = np.empty(S.shape[0], dtype=np.intp)
    first: list[int] = []
    for j in range(S.shape[0]):
        key = S[j].tobytes() + a[j].tobytes()
        c = seen.setdefault(key, len(first))
        if c == len(first):
            first.append(j)
        labels[j] = c
    return labels, np.asarray(first, dtype=np.intp)


def _scale(system: _System) -> float:
    return float(np.max(np.abs(system.a), initial=0.0) + 2.0 * np.sqrt(np.max(system.row_sums)) + 1e-3)
