"""Symbolic source of truth for the closed forms of :mod:`rmt` (sympy; docs/theory.md §1a, §1c, §2, §3).

``derivation(topic)`` returns a :class:`Derivation`: an ordered list of named steps, each a sympy
expression or equation, derived (solved, differentiated, simplified) by sympy rather than typed in. The numpy
closed forms in :mod:`rmt.wigner`, :mod:`rmt.wishart` and :mod:`rmt.bulk` are hand-written for speed;
``tests/rmt/test_symbolic.py`` checks them against these expressions at many points
(:meth:`Derivation.function` lambdifies a step).

Topics: ``"wigner"`` (spiked semicircle: outlier from the Stieltjes equation, BBP threshold, edge, overlap,
fluctuations, noise scale), ``"wishart"`` (Baik–Silverstein outlier, threshold, edge, Paul overlap
and variance), ``"critical_batch_size"`` (ν(B*) = λ with and without finite N), ``"exponents"``
(η_max(B) laws and their local exponents d log η / d log B per regime), ``"bulk"`` (free-convolution
map h, Bai–Yao ψ, two-atom example), and ``"all"``.

sympy is imported lazily (inside the builders) so that ``import rmt`` stays fast; derivations are cached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TOPICS", "Derivation", "Step", "UnknownStepError", "derivation"]

TOPICS: tuple[str, ...] = ("wigner", "wishart", "critical_batch_size", "exponents", "bulk")


class UnknownStepError(KeyError, ValueError):
    """A step name that the derivation does not have (a ``KeyError`` for mapping-style lookups and a
    ``ValueError`` for the argument contract)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Step:
    """One named result: ``expr`` is a sympy expression or ``Eq``; ``description`` says what it is."""

    name: str
    description: str
    expr: Any


@dataclass(frozen=True)
class Derivation:
    """Ordered derivation steps of one or more topics, with the sympy symbols they use (by name)."""

    topic: str
    steps: tuple[Step, ...]
    symbols: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Names of the steps, in order."""
        return [s.name for s in self.steps]

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str):
            raise TypeError(f"name must be a step name (a string), got {type(name).__name__}")
        for step in self.steps:
            if step.name == name:
                return step.expr
        raise UnknownStepError(
            f"no step named {name!r} in derivation {self.topic!r}: name must be one of {self.names()}"
        )

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.steps)

    @property
    def expressions(self) -> dict[str, Any]:
        """``{name: sympy expression}``."""
        return {s.name: s.expr for s in self.steps}

    def function(self, name: str, *args: str) -> Callable[..., Any]:
        """Numpy function of the step ``name`` (its right-hand side for an equation) in the symbols
        ``args``.
        """
        import sympy

        expr = self[name]
        for a in args:
            if not isinstance(a, str) or a not in self.symbols:
                raise ValueError(
                    f"args must be symbol names of this derivation {sorted(self.symbols)}, got {a!r}"
                )
        if isinstance(expr, sympy.Equality):
            expr = expr.rhs
        abstract = expr.atoms(sympy.Derivative) | expr.atoms(sympy.core.function.AppliedUndef)
        if abstract:
            raise ValueError(
                f"name: step {name!r} contains abstract functions {sorted(map(str, abstract))} and has no "
                "numpy form; use its sympy expression"
            )
        return sympy.lambdify([self.symbols[a] for a in args], expr, modules="numpy")

    def latex(self) -> str:
        """LaTeX, one ``description: \\[ expr \\]`` block per step."""
        import sympy

        return "\n".join(
            f"% {s.name}\n\\text{{{s.description}}}:\\quad {sympy.latex(s.expr)}\\\\" for s in self.steps
        )

    def text(self, pretty: bool = False) -> str:
        """Plain text, one ``name — description`` line and the expression per step (2-D layout with
        ``pretty``).
        """
        import sympy

        if not isinstance(pretty, bool):
            raise TypeError(f"pretty must be a bool, got {type(pretty).__name__}")
        lines = [f"Derivation: {self.topic}"]
        for s in self.steps:
            body = sympy.pretty(s.expr, use_unicode=True) if pretty else sympy.sstr(s.expr)
            lines.append(f"[{s.name}] {s.description}")
            lines.extend("    " + row for row in body.splitlines())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def derivation(topic: str = "all") -> Derivation:
    """The sympy derivation of ``topic`` (one of :data:`TOPICS` or ``"all"``), cached."""
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a string, one of {TOPICS + ('all',)}, got {type(topic).__name__}")
    if topic != "all" and topic not in TOPICS:
        raise ValueError(f"topic must be one of {TOPICS + ('all',)}, got {topic!r}")
    return _build(topic)


@functools.cache
def _build(topic: str) -> Derivation:
    if topic == "all":
        parts = [_build(t) for t in TOPICS]
        steps = tuple(s for p in parts for s in p.steps)
        symbols: dict[str, Any] = {}
        for p in parts:
            symbols.update(p.symbols)
        return Derivation("all", steps, symbols)
    return _BUILDERS[topic]()


@functools.cache
def _symbols() -> dict[str, Any]:
    import sympy

    positive = dict(positive=True, real=True)
    names = {
        "theta": sympy.Symbol("theta", **positive),
        "nu": sympy.Symbol("nu", **positive),
        "z": sympy.Symbol("z"),
        "g": sympy.Symbol("g"),
        "P": sympy.Symbol("P", **positive),
        "N": sympy.Symbol("N", **positive),
        "B": sympy.Symbol("B", **positive),
        "C": sympy.Symbol("C", **positive),
        "sigma2": sympy.Symbol("sigma2", **positive),
        "lam": sympy.Symbol("lambda", **positive),
        "q": sympy.Symbol("q", **positive),
        "ell": sympy.Symbol("ell", **positive),
        "alpha": sympy.Symbol("alpha", real=True),
        "w": sympy.Symbol("w", real=True),
        "eps": sympy.Symbol("epsilon", **positive),
        "u": sympy.Symbol("u", **positive),
        "n": sympy.Symbol("n", **positive),
        "kappa": sympy.Symbol("kappa", **positive),
    }
    return names


def _wigner() -> Derivation:
    import sympy

    S = _symbols()
    theta, nu, z, g, P, N, B, s2 = S["theta"], S["nu"], S["z"], S["g"], S["P"], S["N"], S["B"], S["sigma2"]
    steps: list[Step] = []
    kappa = (N - B) / (B * (N - 1))
    steps.append(Step("kappa", "variance factor of a batch mean without replacement, κ(B)", kappa))
    steps.append(Step("kappa_infinite_pool", "κ(B) as N → ∞", sympy.limit(kappa, N, sympy.oo)))
    steps.append(Step("noise_scale", "noise scale ν(B) = sqrt(P σ² κ(B))", sympy.sqrt(P * s2 * kappa)))
    stieltjes_eq = sympy.Eq(nu**2 * g**2 - z * g + 1, 0)
    steps.append(Step("stieltjes_equation", "semicircle Stieltjes transform g_sc(z) satisfies", stieltjes_eq))
    roots = sympy.solve(stieltjes_eq, g)
    g_sc = next(r for r in roots if sympy.limit(r * z, z, sympy.oo) == 1)  # branch with g ~ 1/z
    steps.append(Step("g_sc", "physical branch g_sc(z) (g ~ 1/z at infinity)", g_sc))
    outlier_eq = stieltjes_eq.subs(g, 1 / theta)
    steps.append(Step("outlier_equation", "outlier condition g_sc(z) = 1/θ", outlier_eq))
    (outlier,) = sympy.solve(outlier_eq, z)
    outlier = sympy.expand(outlier)
    steps.append(Step("outlier", "outlier location (|θ| > ν)", outlier))
    edge = sympy.simplify(g_sc.subs(z, 2 * nu))
    steps.append(
        Step("g_at_edge", "g_sc at the edge 2ν (its maximum on the real axis right of the bulk)", edge)
    )
    (threshold,) = sympy.solve(sympy.Eq(1 / theta, edge), theta)
    steps.append(Step("threshold", "BBP threshold: 1/θ = g_sc(2ν)", threshold))
    steps.append(
        Step("edge", "outlier at the threshold = bulk edge", sympy.simplify(outlier.subs(theta, threshold)))
    )
    dz_dg = sympy.diff(sympy.solve(stieltjes_eq, z)[0], g)
    overlap = sympy.simplify(-1 / (theta**2 / dz_dg.subs(g, 1 / theta)))
    steps.append(Step("overlap", "squared overlap −1/(θ² g_sc'(λ')) (g' = 1/(dz/dg))", sympy.expand(overlap)))
    var = 2 * nu**2 * (1 - nu**2 / theta**2) / P
    steps.append(Step("fluctuation_variance", "GOE outlier variance (docs/theory.md §1d)", var))
    steps.append(
        Step(
            "outlier_slope_at_threshold",
            "dλ'/dθ at θ = ν (C¹ match with the flat edge)",
            sympy.diff(outlier, theta).subs(theta, threshold),
        )
    )
    return Derivation("wigner", tuple(steps), dict(S))


def _wishart() -> Derivation:
    import sympy

    S = _symbols()
    ell, s2, q, alpha, n = S["ell"], S["sigma2"], S["q"], S["alpha"], S["n"]
    steps: list[Step] = []
    psi = alpha + q * alpha * s2 / (alpha - s2)
    steps.append(Step("psi", "Bai–Yao ψ(α) = α + qα∫t dH/(α − t) for H = δ_{σ²}", psi))
    outlier = sympy.factor(psi.subs(alpha, ell))
    steps.append(Step("outlier", "outlier ψ(ℓ) = ℓ(1 + qσ²/(ℓ − σ²)) (ℓ above threshold)", outlier))
    crit = sympy.solve(sympy.diff(psi, alpha), alpha)
    threshold = max(crit, key=lambda r: r.subs({q: 1, s2: 1}))
    steps.append(Step("threshold", "threshold ψ'(ℓ_c) = 0 (upper root)", sympy.factor(threshold)))
    lower = min(crit, key=lambda r: r.subs({q: 1, s2: 1}))
    steps.append(
        Step("edge", "MP upper edge ψ(ℓ_c)", sympy.factor(sympy.simplify(psi.subs(alpha, threshold))))
    )
    steps.append(
        Step(
            "lower_edge",
            "MP lower edge ψ at the lower critical point",
            sympy.factor(sympy.simplify(psi.subs(alpha, lower))),
        )
    )
    overlap = sympy.simplify((alpha * sympy.diff(psi, alpha) / psi).subs(alpha, ell))
    steps.append(Step("overlap", "squared overlap ℓψ'(ℓ)/ψ(ℓ) (Paul 2007)", overlap))
    var = 2 * ell**2 * (1 - q * s2**2 / (ell - s2) ** 2) / n
    steps.append(Step("fluctuation_variance", "outlier variance (Paul 2007; n samples)", var))
    steps.append(Step("large_spike_shift", "ψ(ℓ) − ℓ as ℓ → ∞", sympy.limit(outlier - ell, ell, sympy.oo)))
    return Derivation("wishart", tuple(steps), dict(S))


def _critical_batch_size() -> Derivation:
    import sympy

    S = _symbols()
    P, N, B, s2, lam = S["P"], S["N"], S["B"], S["sigma2"], S["lam"]
    steps: list[Step] = []
    eq_inf = sympy.Eq(P * s2 / B, lam**2)
    steps.append(Step("condition_infinite", "ν(B*)² = λ² with κ = 1/B", eq_inf))
    (b_inf,) = sympy.solve(eq_inf, B)
    steps.append(Step("critical_batch_size_infinite", "B* (N = ∞)", b_inf))
    eq_fin = sympy.Eq(P * s2 * (N - B) / (B * (N - 1)), lam**2)
    steps.append(Step("condition_finite", "ν(B*)² = λ² with κ = (N − B)/(B(N − 1))", eq_fin))
    (b_fin,) = sympy.solve(eq_fin, B)
    steps.append(Step("critical_batch_size_finite", "B* (finite N)", sympy.simplify(b_fin)))
    steps.append(Step("finite_to_infinite", "B*(N) as N → ∞", sympy.limit(b_fin, N, sympy.oo)))
    return Derivation("critical_batch_size", tuple(steps), dict(S))


def _exponent(expr: Any, B: Any) -> Any:
    import sympy

    return sympy.simplify(B * sympy.diff(sympy.log(expr), B))


def _exponents() -> Derivation:
    import sympy

    S = _symbols()
    P, N, B, C, s2, lam = S["P"], S["N"], S["B"], S["C"], S["sigma2"], S["lam"]
    steps: list[Step] = []
    kappa_inf, kappa_fin = 1 / B, (N - B) / (B * (N - 1))
    # additive, edge regime: λ' = 2ν
    eta_edge = 2 / (2 * sympy.sqrt(P * s2 * kappa_inf))
    steps.append(
        Step("eta_additive_edge", "SGD η_max = 2/λ' at the edge λ' = 2ν(B) (B < B*, N = ∞)", eta_edge)
    )
    steps.append(
        Step("exponent_additive_edge", "d log η/d log B at the edge (N = ∞)", _exponent(eta_edge, B))
    )
    eta_edge_fin = 2 / (2 * sympy.sqrt(P * s2 * kappa_fin))
    steps.append(
        Step("exponent_additive_edge_finite", "edge exponent with finite N", _exponent(eta_edge_fin, B))
    )
    # additive, outlier regime: λ' = λ + ν²/λ
    eta_out = 2 / (lam + P * s2 * kappa_inf / lam)
    steps.append(Step("eta_additive_outlier", "SGD η_max = 2/(λ + ν²/λ) (B > B*, N = ∞)", eta_out))
    b_star = P * s2 / lam**2
    mccandlish = (2 / lam) / (1 + b_star / B)
    steps.append(
        Step(
            "mccandlish_identity",
            "η_max − η_∞/(1 + B*/B), η_∞ = 2/λ, B* = Pσ²/λ²",
            sympy.simplify(eta_out - mccandlish),
        )
    )
    expo_out = _exponent(eta_out, B)
    steps.append(
        Step("exponent_additive_outlier", "d log η/d log B above threshold (= B*/(B + B*))", expo_out)
    )
    steps.append(
        Step(
            "exponent_additive_outlier_at_threshold",
            "outlier exponent at B = B* (≤ 1/2 above)",
            sympy.simplify(expo_out.subs(B, b_star)),
        )
    )
    # multiplicative: q = P/(B C)
    q = P / (B * C)
    eta_mult = 2 / (lam * (1 + q * s2 / (lam - s2)))
    steps.append(
        Step("eta_multiplicative_outlier", "SGD η_max with λ' = λ(1 + qσ²/(λ − σ²)), q = P/(BC)", eta_mult)
    )
    expo_mult = _exponent(eta_mult, B)
    steps.append(
        Step("exponent_multiplicative_outlier", "d log η/d log B, multiplicative outlier", expo_mult)
    )
    steps.append(
        Step(
            "exponent_multiplicative_outlier_P_large",
            "limit P → ∞ (P ≫ n = BC)",
            sympy.limit(expo_mult, P, sympy.oo),
        )
    )
    eta_mult_edge = 2 / (s2 * (1 + sympy.sqrt(q)) ** 2)
    steps.append(Step("eta_multiplicative_edge", "SGD η_max at the MP edge σ²(1 + √q)²", eta_mult_edge))
    expo_mult_edge = _exponent(eta_mult_edge, B)
    steps.append(Step("exponent_multiplicative_edge", "d log η/d log B at the MP edge", expo_mult_edge))
    steps.append(
        Step("exponent_multiplicative_edge_P_large", "limit P → ∞", sympy.limit(expo_mult_edge, P, sympy.oo))
    )
    return Derivation("exponents", tuple(steps), dict(S))


def _bulk() -> Derivation:
    import sympy

    S = _symbols()
    w, eps, u, theta, alpha, q = S["w"], S["eps"], S["u"], S["theta"], S["alpha"], S["q"]
    t = sympy.Symbol("t", positive=True)
    steps: list[Step] = []
    g_mu = sympy.Function("g_mu")
    h = w + eps * g_mu(w)
    steps.append(Step("h", "subordination map h(w) = w + ν² g_μ(w), ε = ν² (docs/theory.md §1c)", h))
    steps.append(
        Step(
            "h_prime",
            "h'(w) (outlier iff h'(θ) > 0; overlap h'(θ); edges h(w*) at h'(w*) = 0)",
            sympy.diff(h, w),
        )
    )
    g_two = sympy.Rational(1, 2) * (1 / (w - 1) + 1 / (w + 1))
    h_two = w + eps * g_two
    steps.append(Step("h_two_atoms", "h for μ = ½(δ₋₁ + δ₁)", sympy.simplify(h_two)))
    crit = sympy.solve(sympy.numer(sympy.together(sympy.diff(h_two, w))).subs(w, sympy.sqrt(u)), u)
    steps.append(Step("critical_points_two_atoms", "u = w*² solving h'(w*) = 0", sympy.Tuple(*crit)))
    steps.append(Step("outlier_two_atoms", "spike θ over ½(δ₋₁ + δ₁)", sympy.simplify(h_two.subs(w, theta))))
    steps.append(
        Step("overlap_two_atoms", "overlap h'(θ)", sympy.simplify(sympy.diff(h_two, w).subs(w, theta)))
    )
    steps.append(
        Step(
            "critical_noise_two_atoms",
            "ε_c(θ) = 1/∫dμ/(θ − x)²",
            sympy.simplify(1 / (-sympy.diff(g_two, w).subs(w, theta))),
        )
    )
    psi = alpha + q * alpha * sympy.Integral(t * sympy.Function("dH")(t) / (alpha - t), t)
    steps.append(Step("psi", "Bai–Yao ψ(α) = α + qα∫t dH(t)/(α − t) (docs/theory.md §2)", psi))
    psi_two = alpha + q * alpha * sympy.Rational(1, 2) * (1 / (alpha - 1) + 2 / (alpha - 2))
    steps.append(Step("psi_two_atoms", "ψ for H = ½δ₁ + ½δ₂", sympy.simplify(psi_two)))
    steps.append(
        Step("psi_prime_two_atoms", "ψ'(α) for H = ½δ₁ + ½δ₂", sympy.simplify(sympy.diff(psi_two, alpha)))
    )
    return Derivation("bulk", tuple(steps), dict(S))


_BUILDERS: dict[str, Callable[[], Derivation]] = {
    "wigner": _wigner,
    "wishart": _wishart,
    "critical_batch_size": _critical_batch_size,
    "exponents": _exponents,
    "bulk": _bulk,
}


# ------------------------------------------------------------------------------------------------------------
# Sample-side spikes (docs/theory.md §1e): registered below, self-contained.


def _sample_spikes() -> Derivation:
    """Secular equation of a shared spike plus orthogonal rank-one sample terms, its two-level and large-B
    limits, and the crossover batch size of a Pareto law of per-sample tops (rmt.sample_spikes)."""
    import sympy

    pos = dict(positive=True, real=True)
    t, z, lam, nu, x_min, alpha, B, L = (
        sympy.Symbol(name, **pos) for name in ("t", "z", "lambda", "nu", "x_min", "alpha", "B", "L")
    )
    c = sympy.Symbol("c", real=True)
    a0, b, d, w, x = (sympy.Symbol(name, real=True) for name in ("a_0", "b", "d", "omega", "x"))
    p = sympy.Symbol("p", **pos)
    symbols = {
        "t": t, "z": z, "lam": lam, "nu": nu, "x_min": x_min, "alpha": alpha, "B": B, "L": L, "c": c,
        "a0": a0, "b": b, "d": d, "omega": w, "x": x, "p": p,
    }  # fmt: skip
    steps: list[Step] = []
    beta2 = 1 - c**2
    term = t * c**2 + (t * sympy.sqrt(beta2) * c) ** 2 / (z - t * beta2)
    steps.append(
        Step(
            "secular_term",
            "one sample term in the Schur complement: t c² + (t β c)²/(z − t β²), β² = 1 − c²",
            term,
        )
    )
    simplified = sympy.factor(sympy.simplify(term))
    steps.append(Step("secular_term_simplified", "= t z c²/(z − t β²)", simplified))
    steps.append(
        Step(
            "secular_term_identity",
            "difference to t z c²/(z − t(1 − c²)) (zero)",
            sympy.simplify(term - t * z * c**2 / (z - t * beta2)),
        )
    )
    two = sympy.Matrix([[a0, b], [b, d]])
    top = max(two.eigenvals().keys(), key=lambda e: e.subs({a0: 1, b: 1, d: 0}))
    steps.append(Step("two_level_top", "top of [[uᵀMu, b], [b, d]]: level repulsion at the crossover", top))
    roots = sympy.solve(sympy.Eq(w, lam + nu**2 / w), w)
    root = next(r for r in roots if r.subs({lam: 1, nu: 1}) > 0)
    steps.append(Step("large_batch_root", "ω = λ + ν²/ω (P = ∞, atoms d → 0)", root))
    steps.append(
        Step(
            "large_batch_series",
            "expansion in ν²: λ + ν²/λ − ν⁴/λ³ + … (the §1a form at first order)",
            sympy.series(root, nu, 0, 6).removeO(),
        )
    )
    cdf = 1 - (x_min / x) ** alpha
    (quantile,) = sympy.solve(sympy.Eq(cdf, p ** (1 / B)), x)
    steps.append(Step("pareto_max_quantile", "level-p quantile of max of B Pareto(α, x_min) tops", quantile))
    steps.append(
        Step(
            "log_level_limit",
            "lim_{B→∞} B (1 − p^{1/B}) = ln(1/p) =: L",
            sympy.limit(B * (1 - p ** (1 / B)), B, sympy.oo),
        )
    )
    large = x_min * (B / L) ** (1 / alpha)
    steps.append(Step("pareto_max_quantile_large_batch", "the quantile for B ≫ L", large))
    condition = sympy.Eq(large / B, lam)
    steps.append(Step("crossover_condition", "branch max_i μ_i / B meets the spike λ", condition))
    (b_cross,) = sympy.solve(condition, B)
    b_cross = sympy.powsimp(sympy.simplify(b_cross), force=True)
    steps.append(Step("crossover_batch_size", "B_× (α > 1)", b_cross))
    steps.append(
        Step(
            "sample_branch_exponent",
            "d log(Q/B)/d log B of the sample-spike branch",
            sympy.simplify(B * sympy.diff(sympy.log(large / B), B)),
        )
    )
    return Derivation("sample_spikes", tuple(steps), symbols)


TOPICS = (*TOPICS, "sample_spikes")
_BUILDERS["sample_spikes"] = _sample_spikes


# ------------------------------------------------------------------------------------------------------------
# Mean-square stability with fresh batches (docs/theory.md §3b, §3c): registered below, self-contained.


def _mean_square() -> Derivation:
    """Second-moment thresholds of SGD, heavy ball and frozen-preconditioner Adam with i.i.d. fresh batches
    (rmt.mean_square), and the sample-spike bound 2B/λ as a special value of the same formula."""
    import sympy

    pos = dict(positive=True, real=True)
    eta, m, v, s2, lam, N, B = (
        sympy.Symbol(name, **pos) for name in ("eta", "m", "v", "s2", "lambda", "N", "B")
    )
    beta, beta1 = sympy.Symbol("beta", nonnegative=True, real=True), sympy.Symbol("beta_1", **pos)
    z = sympy.Symbol("z")
    symbols = {"eta": eta, "m": m, "v": v, "s2": s2, "lam": lam, "N": N, "B": B, "beta": beta,
               "beta1": beta1, "z": z}  # fmt: skip
    steps: list[Step] = []
    rho = 1 - 2 * eta * m + eta**2 * (m**2 + v)
    steps.append(Step("sgd_factor", "E(1 − ηh)², E h = m, Var h = v", rho))
    (sgd,) = [r for r in sympy.solve(sympy.Eq(rho, 1), eta) if r != 0]
    steps.append(Step("sgd_threshold", "SGD: E(1 − ηh)² = 1 at η = 2m/(m² + v)", sympy.simplify(sgd)))
    a_mean = 1 + beta - eta * m
    ea2 = a_mean**2 + eta**2 * v
    moment = sympy.Matrix([[ea2, -2 * beta * a_mean, beta**2], [a_mean, -beta, 0], [1, 0, 0]])
    steps.append(
        Step("heavy_ball_moment_map", "(x_t², x_t x_{t−1}, x_{t−1}²) ↦ E[...] one step later", moment)
    )
    char = sympy.factor(sympy.expand((sympy.eye(3) * z - moment).det()))
    steps.append(Step("heavy_ball_charpoly", "det(zI − M)", char))
    at_one = sympy.factor(char.subs(z, 1))
    steps.append(Step("heavy_ball_det_at_one", "det(I − M): zero where an eigenvalue crosses 1", at_one))
    roots = [r for r in sympy.solve(at_one, eta) if sympy.simplify(r) != 0]
    (hb,) = roots
    hb = sympy.simplify(hb)
    steps.append(Step("heavy_ball_threshold", "η* = 2(1+β)m/(m² + v(1+β)/(1−β))", hb))
    steps.append(
        Step(
            "heavy_ball_threshold_identity",
            "η* − 2(1+β)m/(m² + v(1+β)/(1−β)) (zero)",
            sympy.simplify(hb - 2 * (1 + beta) * m / (m**2 + v * (1 + beta) / (1 - beta))),
        )
    )
    steps.append(
        Step("heavy_ball_deterministic", "v = 0: the deterministic 2(1+β)/m", sympy.simplify(hb.subs(v, 0)))
    )
    adam = sympy.simplify(hb.subs(beta, beta1) / (1 - beta1))
    steps.append(Step("adam_threshold", "frozen-P Adam = heavy ball(β₁) at lr η(1 − β₁)", adam))
    kap = (N - B) / (B * (N - 1))
    spike = sgd.subs({m: lam / N, v: kap * lam**2 * (N - 1) / N**2})
    steps.append(
        Step(
            "sample_spike_threshold",
            "SGD with m = λ/N, s² = λ²(N−1)/N², v = κ(B)s²: 2B/λ",
            sympy.simplify(spike),
        )
    )
    return Derivation("mean_square", tuple(steps), symbols)


TOPICS = (*TOPICS, "mean_square")
_BUILDERS["mean_square"] = _mean_square
