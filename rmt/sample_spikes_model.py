"""The sample-spike model of docs/theory.md §1e: a pool of per-sample curvature statistics
(:class:`PerSampleCurvature`), the batch model built on it (:class:`SampleSpikeModel`), batch draws and the
effective dimension. The model, its exact reduction and the conventions are stated in
:mod:`rmt.sample_spikes`, which re-exports every public name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rmt.checks import (
    FloatArray,
    _finite_or,
    _real_scalar,
    check_choice,
    check_finite,
    check_in_range,
    check_int,
    check_positive,
    check_size,
    check_square_matrix,
)
from rmt.sampling import SeedLike, as_generator

__all__ = [
    "PerSampleCurvature",
    "SampleSpikeModel",
    "draw_batches",
    "effective_dimension",
]

_OVERLAP_TOL = 1e-9
_CHUNK = 4_000_000
_MAX_INDEX = 2**62  # pool sizes beyond int64 indices


# ------------------------------------------------------------------------------------------------------------
# Per-sample statistics.


def _attributed_overlap2(rayleigh: FloatArray, scale: FloatArray) -> FloatArray:
    """c² = rayleigh/scale where both have the same sign (else 0), clipped to [0, 1], each row rescaled so
    that Σ_k c² ≤ 1 (one direction's squared overlaps with orthonormal u_k)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        c2 = np.where(
            (scale[:, None] != 0) & (rayleigh * scale[:, None] > 0),
            np.clip(rayleigh / scale[:, None], 0.0, 1.0),
            0.0,
        )
    total = c2.sum(axis=1, keepdims=True)
    return np.asarray(np.where(total > 1.0, c2 / np.maximum(total, 1e-300), c2), dtype=float)


@dataclass(frozen=True)
class PerSampleCurvature:
    """A pool of per-sample curvature statistics: ``n`` samples, rank ≤ C, k shared directions.

    Attributes:
        scales: (n, C) per-sample eigenvalues ``s_ir`` (any sign; 0 pads a rank below C).
        overlaps: (n, C, k) overlaps ``c_irk = ⟨v_ir, u_k⟩`` with ``|c_ir| ≤ 1`` (k may be 0).
    """

    scales: FloatArray
    overlaps: FloatArray

    def __init__(self, scales: Any, overlaps: Any = None) -> None:
        s = check_finite(scales, "scales")
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
            raise ValueError(f"scales must be a non-empty (n_samples, rank) array, got shape {s.shape}")
        if overlaps is None:
            c = np.zeros((*s.shape, 0))
        else:
            c = check_finite(overlaps, "overlaps")
            if c.ndim == 2 and s.shape[1] == 1 and c.shape[0] == s.shape[0]:
                c = c[:, None, :]
            if c.ndim != 3 or c.shape[:2] != s.shape:
                raise ValueError(
                    "overlaps must have shape (n_samples, rank, n_spikes) = "
                    f"({s.shape[0]}, {s.shape[1]}, k) matching scales, got {c.shape}"
                )
            norm2 = (c**2).sum(axis=2)
            if (norm2 > 1.0 + _OVERLAP_TOL).any():
                raise ValueError(
                    f"overlaps must satisfy Σ_k c_irk² <= 1 (unit vectors), got max {norm2.max():.6g}"
                )
        object.__setattr__(self, "scales", s)
        object.__setattr__(self, "overlaps", c)

    @property
    def n_samples(self) -> int:
        return int(self.scales.shape[0])

    @property
    def rank(self) -> int:
        return int(self.scales.shape[1])

    @property
    def n_spikes(self) -> int:
        return int(self.overlaps.shape[2])

    @property
    def tops(self) -> FloatArray:
        """Per-sample top scale ``max_r s_ir`` (= λ_max(G_i) when the sample's directions are orthonormal)."""
        return np.asarray(self.scales.max(axis=1))

    @property
    def bottoms(self) -> FloatArray:
        """Per-sample bottom scale ``min_r s_ir``."""
        return np.asarray(self.scales.min(axis=1))

    @property
    def traces(self) -> FloatArray:
        """Per-sample trace ``Σ_r s_ir`` (exact: tr G_i = Σ_r s_ir |v_ir|²)."""
        return np.asarray(self.scales.sum(axis=1))

    @property
    def rayleigh(self) -> FloatArray:
        """(n, k) per-sample Rayleigh quotients ``u_kᵀ G_i u_k = Σ_r s_ir c_irk²``."""
        return np.asarray(np.einsum("nr,nrk->nk", self.scales, self.overlaps**2))

    @property
    def shared_block(self) -> FloatArray:
        """Pool mean of ``Uᵀ G_i U = Σ_r s_ir c_ir c_irᵀ`` (k×k)."""
        block = np.einsum("nr,nrk,nrl->kl", self.scales, self.overlaps, self.overlaps) / self.n_samples
        return np.asarray(0.5 * (block + block.T))  # exactly symmetric (einsum's summation order is not)

    @property
    def coupling(self) -> FloatArray:
        """(k×k) pool mean of ``Σ_r s_ir² β_ir² c_ir c_irᵀ`` (= E‖(I − UUᵀ) G_i u‖² on the diagonal when the
        sample's directions are orthonormal): B × the variance ν² of the large-B outlier (§1e)."""
        beta2 = 1.0 - (self.overlaps**2).sum(axis=2)
        w = self.scales**2 * beta2
        block = np.einsum("nr,nrk,nrl->kl", w, self.overlaps, self.overlaps) / self.n_samples
        return np.asarray(0.5 * (block + block.T))

    @classmethod
    def from_summary(
        cls,
        top: Any,
        *,
        trace: Any = None,
        rank: int = 1,
        bottom: Any = None,
        rayleigh: Any = None,
        seed: SeedLike = 0,
    ) -> PerSampleCurvature:
        """Pool from measured summaries of each G_i (or H_i), docs/theory.md §1e [model choices stated].

        ``scales[:, 0] = top``; with ``rank = C > 1`` the remaining trace ``trace − top`` (minus ``bottom``)
        is spread evenly over the other ``C − 1`` (``C − 2``) directions (needs ``0 <= rest <= top``); an
        indefinite sample adds ``bottom`` (< 0) as the last scale. ``rayleigh`` (n, k) = ``u_kᵀ G_i u_k`` is
        attributed to the direction of its sign: a positive quotient to the top direction,
        ``c_i1k = ± √(rayleigh/top)``, a negative one to the bottom direction (when ``bottom`` is given),
        ``c_iCk = ± √(rayleigh/bottom)`` — each clipped to [0, 1] and rescaled so that Σ_k c² ≤ 1 per
        direction, so ``Σ_r s_ir c_irk² = rayleigh_ik`` whenever that fits — signs random (seeded) for k > 1:
        cross-couplings between shared directions are not measured and average out.
        """
        tops = check_finite(top, "top").reshape(-1)
        n = tops.size
        c_rank = check_int(rank, "rank", minimum=1)
        if n < 1:
            raise ValueError("top must hold at least one sample")
        check_size(n * c_rank, "rank")
        n_bottom = 0 if bottom is None else 1
        if c_rank < 1 + n_bottom:
            raise ValueError(f"rank must be >= {1 + n_bottom} when bottom is given, got {c_rank}")
        scales = np.zeros((n, c_rank))
        scales[:, 0] = tops
        if bottom is not None:
            bots = check_finite(bottom, "bottom").reshape(-1)
            if bots.shape != tops.shape or (bots > 0).any():
                raise ValueError("bottom must have one value <= 0 per sample (same length as top)")
            scales[:, -1] = bots
        n_rest = c_rank - 1 - n_bottom
        if trace is not None:
            tr = check_finite(trace, "trace").reshape(-1)
            if tr.shape != tops.shape:
                raise ValueError(f"trace must have one value per sample of top ({n}), got {tr.size}")
            rest = tr - tops - scales[:, -1] * n_bottom
            if n_rest == 0:
                if np.abs(rest).max() > 1e-9 * max(float(np.abs(tr).max()), 1e-300):
                    raise ValueError("trace must equal top (+ bottom) when rank leaves no other direction")
            else:
                per = rest / n_rest
                if (per < -1e-12 * np.abs(tops)).any() or (per > tops * (1 + 1e-12)).any():
                    raise ValueError(
                        "trace must lie in [top + bottom, top + bottom + (rank − 1 − #bottom)·top] per sample"
                    )
                scales[:, 1 : 1 + n_rest] = np.clip(per, 0.0, None)[:, None]
        overlaps = None
        if rayleigh is not None:
            ray = check_finite(rayleigh, "rayleigh")
            if ray.ndim < 2 and ray.size % n == 0 and ray.size:
                ray = ray.reshape(n, -1)
            if ray.ndim != 2 or ray.shape[0] != n:
                raise ValueError(f"rayleigh must have shape (n_samples = len(top) = {n}, k), got {ray.shape}")
            check_size(n * c_rank * ray.shape[1], "rank*rayleigh")
            c2_top = _attributed_overlap2(ray, tops)
            signs = np.ones_like(c2_top)
            if c2_top.shape[1] > 1:
                signs = as_generator(seed).choice([-1.0, 1.0], size=c2_top.shape)
            overlaps = np.zeros((n, c_rank, c2_top.shape[1]))
            overlaps[:, 0, :] = signs * np.sqrt(c2_top)
            if n_bottom:
                overlaps[:, -1, :] = signs * np.sqrt(_attributed_overlap2(ray, scales[:, -1]))
        return cls(scales, overlaps)

    @classmethod
    def parametric(
        cls,
        n_samples: int,
        *,
        distribution: str = "pareto",
        shape: float = 2.5,
        scale: float = 1.0,
        rank: int = 1,
        overlap2_mean: float = 0.0,
        n_spikes: int = 1,
        seed: SeedLike = 0,
    ) -> PerSampleCurvature:
        """A seeded pool drawn from a parametric law of the per-sample top scale (rank-one terms padded by 0).

        ``distribution``: ``"pareto"`` (P(s > x) = (scale/x)^shape, x ≥ scale), ``"lognormal"`` (log s ~
        N(log scale, shape²)) or ``"exponential"`` (mean ``scale``). Squared overlaps of the top direction
        with each of the ``n_spikes`` shared directions: ``Beta(½, ½(1 − m)/m)`` with mean
        ``m = overlap2_mean`` (0: none), random signs, rescaled so that Σ_k c² ≤ 1.
        """
        n = check_int(n_samples, "n_samples", minimum=1)
        c_rank = check_int(rank, "rank", minimum=1)
        k = check_int(n_spikes, "n_spikes", minimum=0)
        kind = check_choice(distribution, "distribution", ("pareto", "lognormal", "exponential"))
        a = float(check_positive(_real_scalar(shape, "shape"), "shape"))
        x0 = float(check_positive(_real_scalar(scale, "scale"), "scale"))
        mean2 = float(
            check_in_range(
                _real_scalar(overlap2_mean, "overlap2_mean"), "overlap2_mean", 0.0, 1.0, high_open=True
            )
        )
        check_size(n * c_rank * (k + 1), "n_samples*rank*(n_spikes+1)", copies=2)
        rng = as_generator(seed)
        with np.errstate(over="ignore", invalid="ignore"):
            if kind == "pareto":
                tops = x0 * (1.0 - rng.random(n)) ** (-1.0 / a)
            elif kind == "lognormal":
                tops = x0 * np.exp(a * rng.standard_normal(n))
            else:
                tops = rng.exponential(x0, n)
        if not np.isfinite(tops).all():
            raise ValueError(
                f"shape = {a:g} and scale = {x0:g} draw per-sample scales beyond float64 (overflow): "
                "use a smaller scale or a lighter tail"
            )
        scales = np.zeros((n, c_rank))
        scales[:, 0] = tops
        overlaps = np.zeros((n, c_rank, k))
        if k and mean2 > 0:
            c2 = rng.beta(0.5, 0.5 * (1.0 - mean2) / mean2, size=(n, k))
            total = c2.sum(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):  # total = 0 (all c² underflowed) is kept
                c2 = np.where(total > 0.999, 0.999 * c2 / total, c2)
            overlaps[:, 0, :] = rng.choice([-1.0, 1.0], size=(n, k)) * np.sqrt(c2)
        return cls(scales, overlaps)


@dataclass(frozen=True)
class SampleSpikeModel:
    """The generative model of docs/theory.md §1e: ``M_B = U A Uᵀ + (1/B) Σ_{i∈S} G_i``.

    Attributes:
        per_sample: the pool of per-sample statistics (rows drawn per batch).
        shared: k×k symmetric shared block A (in the basis of the shared directions U).
        n_params: the (effective) dimension P in which the per-sample directions are uniformly random
            (``inf``: exactly orthogonal). Estimate it by :func:`effective_dimension`.
    """

    per_sample: PerSampleCurvature
    shared: FloatArray
    n_params: float

    def __init__(self, per_sample: PerSampleCurvature, shared: Any = None, n_params: Any = math.inf) -> None:
        if not isinstance(per_sample, PerSampleCurvature):
            raise TypeError(f"per_sample must be a PerSampleCurvature, got {type(per_sample).__name__}")
        k = per_sample.n_spikes
        a: Any
        if shared is None:
            a = np.zeros((k, k))
        else:
            a = check_finite(shared, "shared")
            if a.ndim == 1:
                a = np.diag(a)
            a = check_square_matrix(a, "shared", symmetric=True)
            if a.shape != (k, k):
                raise ValueError(f"shared must be {k}×{k} (one row per shared direction), got {a.shape}")
        p_arr = check_positive(n_params, "n_params", allow_inf=True)
        if p_arr.ndim != 0:
            raise ValueError(f"n_params must be a scalar (P, or inf), got shape {p_arr.shape}")
        p = float(p_arr)
        rank = per_sample.rank
        if p < k + rank:
            raise ValueError(f"n_params must be >= n_spikes + rank = {k + rank}, got {p:g}")
        object.__setattr__(self, "per_sample", per_sample)
        with np.errstate(over="ignore", invalid="ignore"):  # |A| near the float64 limit: halve first
            sym = _finite_or(0.5 * (a + a.T), 0.5 * a + 0.5 * a.T)
        object.__setattr__(self, "shared", sym)
        object.__setattr__(self, "n_params", p)

    @classmethod
    def from_full_spikes(
        cls, spikes: Any, per_sample: PerSampleCurvature, n_params: Any = math.inf
    ) -> SampleSpikeModel:
        """Model whose full matrix E[M_B] has the spikes λ_k on U: ``A = diag(λ) − E_i[Σ_r s c cᵀ]``.

        A per-sample pool without overlaps (k = 0) gets zero overlaps with ``len(spikes)`` directions: the
        shared spikes are then deterministic (A = diag λ) and the per-sample terms orthogonal to them.
        """
        if not isinstance(per_sample, PerSampleCurvature):
            raise TypeError(f"per_sample must be a PerSampleCurvature, got {type(per_sample).__name__}")
        lam = check_finite(spikes, "spikes").reshape(-1)
        if per_sample.n_spikes == 0 and lam.size:
            per_sample = PerSampleCurvature(
                per_sample.scales, np.zeros((per_sample.n_samples, per_sample.rank, lam.size))
            )
        if lam.size != per_sample.n_spikes:
            raise ValueError(
                f"spikes must have one value per shared direction of per_sample ({per_sample.n_spikes}), "
                f"got {lam.size}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            shared = np.diag(lam) - per_sample.shared_block
        if not np.isfinite(shared).all():
            raise ValueError("spikes minus the pool's shared block overflow float64: spikes too large")
        return cls(per_sample, shared, n_params)

    @property
    def n_spikes(self) -> int:
        return self.per_sample.n_spikes

    @property
    def full_block(self) -> FloatArray:
        """k×k block ``A + E_i[Σ_r s c cᵀ]`` of the full matrix on U (its eigenvalues are the spikes)."""
        return np.asarray(self.shared + self.per_sample.shared_block)

    def negated(self) -> SampleSpikeModel:
        """The model of ``−M_B`` (bottom eigenvalues of M_B are minus the top ones of −M_B)."""
        ps = PerSampleCurvature(-self.per_sample.scales, self.per_sample.overlaps)
        return SampleSpikeModel(ps, -self.shared, self.n_params)


# ------------------------------------------------------------------------------------------------------------
# Batches.


def draw_batches(
    n_samples: int, batch_size: int, n_batches: int, seed: SeedLike = 0, *, replace: bool = True
) -> NDArray[np.intp]:
    """(n_batches, B) row indices into a pool of ``n_samples``: i.i.d. rows (``replace``, the pool as an
    empirical law) or B distinct rows per batch (needs B <= n_samples)."""
    n = check_int(n_samples, "n_samples", minimum=1, maximum=_MAX_INDEX)
    b = check_int(batch_size, "batch_size", minimum=1)
    r = check_int(n_batches, "n_batches", minimum=1)
    if not isinstance(replace, (bool, np.bool_)):
        raise TypeError(f"replace must be a bool, got {type(replace).__name__}")
    check_size(r * b, "n_batches*batch_size")
    rng = as_generator(seed)
    if replace:
        return rng.integers(0, n, size=(r, b))
    if b > n:
        raise ValueError(f"batch_size must be <= n_samples = {n} without replacement, got {b}")
    check_size(n, "n_samples", copies=2)  # the random keys of one batch and their ordering
    out = np.empty((r, b), dtype=np.intp)
    step = max(1, _CHUNK // n)
    for start in range(0, r, step):
        keys = rng.random((min(step, r - start), n))
        out[start : start + keys.shape[0]] = (
            np.argpartition(keys, b - 1, axis=1)[:, :b] if b < n else (np.argsort(keys, axis=1))
        )
    return out


def effective_dimension(cos2: Any) -> float:
    """Effective dimension ``P_eff = 1 / mean(cos²)`` from squared cosines between the top directions of
    *different* samples (for independent uniform unit vectors in P dimensions E cos² = 1/P; docs/theory.md
    §1e). Shared-direction components inflate cos²: measure it on the components orthogonal to U.
    """
    x = check_in_range(cos2, "cos2", 0.0, 1.0).reshape(-1)
    if x.size == 0:
        raise ValueError("cos2 must hold at least one value")
    mean = float(x.mean())
    if mean <= 0:
        raise ValueError("cos2 must have a positive mean")
    if mean < 1.0 / np.finfo(np.float64).max:
        raise ValueError(f"cos2 must have a mean >= {1.0 / np.finfo(np.float64).max:.3g} (P_eff overflows)")
    return 1.0 / mean
