"""Step 6 analysis: the measured maximal learning rate η_max(B) per optimizer against its predictors and
baselines (docs/validation.md §4). Reads only stored records (thresholds, sweep, the step-5 record).

Predictors are registered once in :data:`LR_PREDICTORS`; each maps an :class:`LRInputs` to η_max at the
threshold batch sizes. ``theory``: the stability constant c of the optimizer (``rmt.learning_rates.max_lr``)
over the best spectrum model's λ'(B) (the *champion*), over the measured mean λ'(B), and the homogeneous
additive model's closed form — for Adam over √λ' (the sqrt-curvature form). ``baseline``: c/λ_1 at every B,
the linear and square-root rules from the smallest B, and c / batch sharpness
(``validation.baselines``). The fresh-batch predictors (docs/theory.md §3b, §3c): ``mean_square`` — the
mean-square threshold along the top eigenvectors of H (per-sample Rayleigh variances measured on held-out
samples, step 3b) and along the sample-spike directions (the expected largest per-sample top of the pool);
``mean_square_leakage`` — the same with Wu–Ma–E's off-direction term; ``adam_frozen_p`` and
``adam_frozen_p_pool`` — Adam's frozen-preconditioner threshold (2 + 2β₁)/((1 − β₁)·λ_max(P⁻¹H_B)) (resp.
P⁻¹H) from step 6b; ``finite_horizon`` — the first η at which the expected loss of the quadratic model
exceeds the strict criterion within the trial's K steps (warm-up included; docs/theory.md §3d), from the
optional per-sample gradient/curvature record of :data:`FINITE_HORIZON_STEP` (a candidate for the next
pre-registration, not a champion). A predictor that does not apply to an optimizer (:data:`APPLIES_TO`) is
left out of its record.

The champion — the predictor the paired tests compare against every baseline — is fixed per optimizer in
advance (:data:`CHAMPIONS`, chosen before any score was seen, never by the scores): the mean-square threshold
for SGD and momentum (the exact linear-stability threshold of fresh-batch SGD / heavy ball), the frozen-P
threshold for Adam (the bound on the matrix Adam iterates). Where the champion is defined on fewer than 5
cells (e.g. no per-sample record) the rule falls back to :data:`CHAMPION` (c/λ' of the best spectrum model).

Scores: median |log(pred/measured)| and the fractions within 1.25× and 1.5× over the (B, seed) cells
(``validation.stats.median_abs_log_ratio``); paired Wilcoxon tests of the champion against each baseline on
the common cells, Holm-corrected; the exponent of log η_max vs log B on B ≤ B*/2 with a seed-bootstrap CI and
the pre-registered verdict (``validation.stats.fit_power_law``, ``classify_exponent``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from networks.options import DEFAULT_MOMENTUM
from validation import steps
from validation.baselines import (
    batch_sharpness_baseline,
    constant_baseline,
    linear_rule_baseline,
    sqrt_rule_baseline,
)
from validation.config import RunConfig
from validation.experiments.analysis_records import (
    ExponentFit,
    LRAnalysisRecord,
    LRScore,
    OptimizerAnalysis,
    PairedTest,
    PredictionRecord,
)
from validation.experiments.registry import Kind, Predictor, Registry
from validation.experiments.spectrum_models import FloatArray
from validation.records import decode_float
from validation.stats import classify_exponent, fit_power_law, median_abs_log_ratio, paired_wilcoxon_holm
from validation.store import ResultStore, cell_key

__all__ = [
    "APPLIES_TO",
    "CHAMPION",
    "CHAMPIONS",
    "FINITE_HORIZON_STEP",
    "FiniteHorizonInputs",
    "LR_PREDICTORS",
    "LR_STEP",
    "LRInputs",
    "MeanSquareInputs",
    "PreconditionedInputs",
    "analyse_thresholds",
    "applies",
    "champion_for",
    "finite_horizon_inputs",
]

LR_STEP = steps.LR_ANALYSIS
THEORY_METHODS = {"sgd": ("sgd", 0.0), "momentum": ("heavy_ball", DEFAULT_MOMENTUM), "adam": ("adam", 0.0)}
"""Optimizer → (``rmt.learning_rates`` method, momentum β) of its stability constant."""

LR_PREDICTORS = Registry("learning-rate predictors")
CHAMPION = "rmt_best_model"
"""The fallback champion: c/λ'(B) of the best spectrum model (the champion before the fresh-batch
predictors; used where the pre-registered one of :data:`CHAMPIONS` is defined on fewer than 5 cells)."""
CHAMPIONS: dict[str, str] = {"sgd": "mean_square", "momentum": "mean_square", "adam": "adam_frozen_p"}
"""Pre-registered champion per optimizer (docs/theory.md §3b, §3c): fixed before any score was seen."""
APPLIES_TO: dict[str, tuple[str, ...]] = {
    "mean_square_leakage": ("sgd", "momentum"),
    "adam_frozen_p": ("adam",),
    "adam_frozen_p_pool": ("adam",),
    "adam_frozen_p_step": ("adam",),
    "finite_horizon": ("sgd", "momentum"),
}
"""Predictors defined for some optimizers only (every other predictor applies to all)."""
MIN_CHAMPION_CELLS = 5
FINITE_HORIZON_STATISTICS = (
    "grad_mean", "grad_variance", "curvature_mean", "curvature_variance", "covariance", "eval_grad",
    "eval_curvature",
)  # fmt: skip
"""The per-direction fields of a :data:`FINITE_HORIZON_STEP` record, the keyword arguments of
``rmt.finite_horizon``."""
FINITE_HORIZON_STEP = steps.FINITE_HORIZON
"""Records (one per checkpoint) of the per-direction statistics of :class:`FiniteHorizonInputs`
(``validation.experiments.finite_horizon_stats``); the step is optional: without its record the
``finite_horizon`` predictor is NaN."""


@dataclass(frozen=True)
class MeanSquareInputs:
    """Per-direction statistics for the mean-square threshold of SGD / heavy ball (docs/theory.md §3b), all
    independent of the thresholds: ``means`` λ_j > 0 (top eigenvalues of the pool Hessian, step 2),
    ``variances`` the held-out samples' variance of u_jᵀH_iu_j and ``leakages`` their mean
    ‖(I − u_ju_jᵀ)H_iu_j‖² (step 3b), ``spike_top`` the expected largest per-sample top eigenvalue among the
    ``pool_size`` pool samples (from the held-out per-sample tops)."""

    pool_size: int
    means: FloatArray
    variances: FloatArray
    leakages: FloatArray
    spike_top: float


@dataclass(frozen=True)
class PreconditionedInputs:
    """Step 6b per threshold B (NaN where missing), each the median over the rebuilt trial seeds:
    λ_max(P⁻¹H_B), λ_max(P⁻¹H) and the population mean / variance of the pool samples' curvature along the
    top eigenvector of P^{-1/2}HP^{-1/2}; ``lambda_step`` λ_max(P⁻¹H_B) with P including the batch's own g²
    (Adam's first real step); ``beta1`` Adam's β₁; ``pool_size`` N."""

    lambda_batch: FloatArray
    lambda_step: FloatArray
    lambda_pool: FloatArray
    sample_mean: FloatArray
    sample_variance: FloatArray
    beta1: float
    pool_size: int


@dataclass(frozen=True)
class FiniteHorizonInputs:
    """The quadratic model of a divergence trial (docs/theory.md §3d) along k directions (the top
    eigenvectors of H): the pool's per-sample gradient projections (``grad_mean``, population
    ``grad_variance``), curvatures (``curvature_mean``, ``curvature_variance``) and their ``covariance``; the
    evaluation subset's gradient ``eval_grad`` and curvature ``eval_curvature``; ``initial_loss`` L(w_c) on
    that subset; the trial's ``steps`` K, ``warmup_steps``, strict ``delta`` δ and pool size N."""

    grad_mean: FloatArray
    grad_variance: FloatArray
    curvature_mean: FloatArray
    curvature_variance: FloatArray
    covariance: FloatArray
    eval_grad: FloatArray
    eval_curvature: FloatArray
    initial_loss: float
    steps: int
    warmup_steps: int
    delta: float
    pool_size: int

    def statistics(self) -> dict[str, FloatArray]:
        """The per-direction keyword arguments of ``rmt.finite_horizon``."""
        return {n: np.asarray(getattr(self, n), dtype=float) for n in FINITE_HORIZON_STATISTICS}


@dataclass(frozen=True)
class LRInputs:
    """What an η_max predictor may use, at the threshold batch sizes ``batch_sizes`` of one optimizer."""

    optimizer: str
    batch_sizes: FloatArray
    constant: float
    lambda_1: float
    sigma2: float
    n_params: int
    n_data: int
    lam_measured: FloatArray
    lam_best: FloatArray
    batch_sharpness: FloatArray
    median_strict: FloatArray
    mean_square: MeanSquareInputs | None = None
    preconditioned: PreconditionedInputs | None = None
    finite_horizon: FiniteHorizonInputs | None = None

    @property
    def adam(self) -> bool:
        return self.optimizer == "adam"

    def over_curvature(self, lam: FloatArray) -> FloatArray:
        """c/λ, or c/√λ for Adam; NaN where λ ≤ 0."""
        lam = np.where(np.asarray(lam, float) > 0, lam, np.nan)
        return np.asarray(self.constant / (np.sqrt(lam) if self.adam else lam), dtype=float)


LRFunction = Callable[[LRInputs], FloatArray]


def _register(
    key: str, label: str, kind: Kind, color: str, ls: str = "-"
) -> Callable[[LRFunction], LRFunction]:
    def add(function: LRFunction) -> LRFunction:
        LR_PREDICTORS.register(Predictor(key, label, kind, function, color, ls))
        return function

    return add


def _where_positive(values: FloatArray, function: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """``function`` of the positive finite entries of ``values``, NaN elsewhere."""
    values = np.asarray(values, float)
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values) & (values > 0)
    if ok.any():
        out[ok] = function(values[ok])
    return out


@_register(CHAMPION, "c / λ'(B), best RMT model", "theory", "C4")
def best_model_predictor(inputs: LRInputs) -> FloatArray:
    """The stability constant over the best spectrum model's λ'(B) (√λ' for Adam)."""
    return inputs.over_curvature(inputs.lam_best)


@_register("measured_curvature", "c / λ'(B), measured", "theory", "C5")
def measured_curvature_predictor(inputs: LRInputs) -> FloatArray:
    """The stability constant over the sweep's mean λ'_max(H_B) (√ for Adam)."""
    return inputs.over_curvature(inputs.lam_measured)


@_register("additive_homogeneous", "additive, homogeneous noise (closed form)", "theory", "C0")
def additive_homogeneous_predictor(inputs: LRInputs) -> FloatArray:
    """``rmt.learning_rates.max_lr_vs_batch`` (Adam: ``adam_max_lr_vs_batch``, sqrt-curvature form) of the
    homogeneous additive model."""
    from rmt.learning_rates import adam_max_lr_vs_batch, max_lr_vs_batch

    b, lam, s2, p, n = inputs.batch_sizes, inputs.lambda_1, inputs.sigma2, inputs.n_params, inputs.n_data
    if inputs.adam:
        out = adam_max_lr_vs_batch(b, lam, s2, p, model="additive", form="sqrt_curvature", n_data=n)
    else:
        method, momentum = THEORY_METHODS[inputs.optimizer]
        out = max_lr_vs_batch(b, lam, s2, p, model="additive", method=method, momentum=momentum, n_data=n)
    return np.asarray(out, dtype=float)


@_register("constant", "constant c / λ_1 (full batch)", "baseline", "C7", "--")
def constant_predictor(inputs: LRInputs) -> FloatArray:
    """``validation.stats.constant_baseline`` with the optimizer's constant."""
    if not (math.isfinite(inputs.lambda_1) and inputs.lambda_1 > 0):
        return np.full(inputs.batch_sizes.shape, np.nan)
    return constant_baseline(inputs.batch_sizes, inputs.lambda_1, scale=inputs.constant)


def _rule(inputs: LRInputs, rule: Callable[[FloatArray, float, float], FloatArray]) -> FloatArray:
    """A scaling rule anchored at the median strict η_max of the smallest B; NaN at that B itself: the rule
    is tuned on those cells, so it is scored (and paired-tested) only on the cells it was not tuned on."""
    eta_ref, b_ref = float(inputs.median_strict[0]), float(inputs.batch_sizes[0])
    if not (math.isfinite(eta_ref) and eta_ref > 0):
        return np.full(inputs.batch_sizes.shape, np.nan)
    out = np.asarray(rule(inputs.batch_sizes, eta_ref, b_ref), dtype=float)
    out[inputs.batch_sizes == b_ref] = np.nan
    return out


@_register("linear_rule", "linear rule from the smallest B", "baseline", "C8", "--")
def linear_rule_predictor(inputs: LRInputs) -> FloatArray:
    """``validation.stats.linear_rule_baseline`` from the median strict η_max at the smallest B."""
    return _rule(inputs, linear_rule_baseline)


@_register("sqrt_rule", "square-root rule from the smallest B", "baseline", "C9", "--")
def sqrt_rule_predictor(inputs: LRInputs) -> FloatArray:
    """``validation.stats.sqrt_rule_baseline`` from the median strict η_max at the smallest B."""
    return _rule(inputs, sqrt_rule_baseline)


@_register("batch_sharpness", "c / batch sharpness", "baseline", "C6", "--")
def batch_sharpness_predictor(inputs: LRInputs) -> FloatArray:
    """``validation.stats.batch_sharpness_baseline`` of the sweep's mean batch sharpness per B (NaN where it
    is not positive)."""
    return _where_positive(
        inputs.batch_sharpness, lambda s: batch_sharpness_baseline(s, scale=inputs.constant)
    )


def _nan(inputs: LRInputs) -> FloatArray:
    return np.full(inputs.batch_sizes.shape, np.nan)


def _sgd_mean_square(inputs: LRInputs, leakage: bool) -> FloatArray:
    """min over the top directions of H and the sample-spike direction of ``rmt.mean_square``'s threshold."""
    from rmt.mean_square import mean_square_max_lr, multi_direction_max_lr, single_sample_moments

    ms = inputs.mean_square
    if ms is None or ms.means.size == 0:
        return _nan(inputs)
    method, momentum = THEORY_METHODS[inputs.optimizer]
    kw: dict[str, Any] = {"method": method, "momentum": momentum}
    b = np.minimum(inputs.batch_sizes, ms.pool_size)
    out = np.asarray(
        multi_direction_max_lr(
            ms.means, ms.variances, b, ms.pool_size, leakages=ms.leakages if leakage else 0.0, **kw
        ),
        dtype=float,
    )
    if math.isfinite(ms.spike_top) and ms.spike_top > 0:
        m, s2 = single_sample_moments(ms.spike_top, ms.pool_size)
        out = np.minimum(out, np.asarray(mean_square_max_lr(m, s2, b, ms.pool_size, **kw), dtype=float))
    return out


@_register("mean_square", "mean-square, fresh batches (top directions + sample spikes)", "theory", "C1")
def mean_square_predictor(inputs: LRInputs) -> FloatArray:
    """SGD / momentum: ``rmt.mean_square.multi_direction_max_lr`` over the top eigenvectors of H (means λ_j,
    held-out Rayleigh variances) and the sample-spike direction (docs/theory.md §3b). Adam: the mean-square
    frozen-P threshold along the top eigenvector of P^{-1/2}HP^{-1/2} from step 6b (§3c)."""
    if not inputs.adam:
        return _sgd_mean_square(inputs, leakage=False)
    from rmt.mean_square import mean_square_max_lr

    pre = inputs.preconditioned
    if pre is None:
        return _nan(inputs)
    ok = np.isfinite(pre.sample_mean) & (pre.sample_mean > 0) & np.isfinite(pre.sample_variance)
    out = _nan(inputs)
    if ok.any():
        b = np.minimum(inputs.batch_sizes[ok], pre.pool_size)
        out[ok] = mean_square_max_lr(
            pre.sample_mean[ok], pre.sample_variance[ok], b, pre.pool_size, method="adam", beta1=pre.beta1
        )
    return out


@_register("mean_square_leakage", "mean-square with off-direction leakage (Wu-Ma-E)", "theory", "C2")
def mean_square_leakage_predictor(inputs: LRInputs) -> FloatArray:
    """As ``mean_square`` for SGD / momentum, with the held-out mean ‖(I − u_ju_jᵀ)H_iu_j‖² added to the
    variance: the one-step E‖(I − ηH_B)u_j‖² ≤ 1 form (docs/theory.md §3b)."""
    return _sgd_mean_square(inputs, leakage=True)


def _adam_frozen(inputs: LRInputs, lam: FloatArray | None) -> FloatArray:
    from rmt.learning_rates import max_lr

    pre = inputs.preconditioned
    if pre is None or lam is None:
        return _nan(inputs)
    return _where_positive(lam, lambda v: np.asarray(max_lr(v, method="adam", beta1=pre.beta1), dtype=float))


@_register("adam_frozen_p", "(2+2β₁)/((1−β₁) λ_max(P⁻¹H_B)), frozen P", "theory", "C3")
def adam_frozen_p_predictor(inputs: LRInputs) -> FloatArray:
    """Adam: ``rmt.learning_rates.max_lr(λ_max(P⁻¹H_B), method="adam")`` with P Adam's warm-up
    preconditioner and H_B the trial's first batch (step 6b; docs/theory.md §3c)."""
    pre = inputs.preconditioned
    return _adam_frozen(inputs, None if pre is None else pre.lambda_batch)


@_register("adam_frozen_p_pool", "(2+2β₁)/((1−β₁) λ_max(P⁻¹H)), frozen P, pool", "theory", "k")
def adam_frozen_p_pool_predictor(inputs: LRInputs) -> FloatArray:
    """Adam: the frozen-P threshold on the pool Hessian H (the deterministic full-batch limit of
    ``adam_frozen_p``)."""
    pre = inputs.preconditioned
    return _adam_frozen(inputs, None if pre is None else pre.lambda_pool)


@_register("adam_frozen_p_step", "frozen P of Adam's first step (P holds the batch's g²)", "theory", "m", ":")
def adam_frozen_p_step_predictor(inputs: LRInputs) -> FloatArray:
    """Adam, exploratory (added after the smoke run showed ``adam_frozen_p`` dominated by coordinates with
    √v̂ < ε; not a champion): the frozen-P threshold with P the v̂ of Adam's first real step, which holds the
    g² of the very batch whose H_B it multiplies."""
    pre = inputs.preconditioned
    return _adam_frozen(inputs, None if pre is None else pre.lambda_step)


@_register("finite_horizon", "finite horizon: E loss of the K-step trial (quadratic model)", "theory", "y")
def finite_horizon_predictor(inputs: LRInputs) -> FloatArray:
    """SGD / momentum: ``rmt.finite_horizon.finite_horizon_max_lr`` — the smallest η at which the expected
    evaluation loss of the quadratic model along the top eigenvectors of H exceeds (1 + δ)·L(w_c) within the
    trial's K steps after its lr-0 warm-up (docs/theory.md §3d). Exploratory (added after the default run's
    scores were seen): a candidate for the next pre-registration, never a champion here."""
    from rmt.finite_horizon import finite_horizon_max_lr

    fh = inputs.finite_horizon
    if fh is None or not (math.isfinite(fh.initial_loss) and fh.initial_loss > 0):
        return _nan(inputs)
    _, momentum = THEORY_METHODS[inputs.optimizer]
    out = _nan(inputs)
    kw: dict[str, Any] = {**fh.statistics(), "n_data": fh.pool_size, "steps": fh.steps,
                          "warmup_steps": fh.warmup_steps, "momentum": momentum}  # fmt: skip
    limit = fh.delta * fh.initial_loss
    for i, b in enumerate(inputs.batch_sizes):
        out[i] = finite_horizon_max_lr(limit, batch_size=min(float(b), fh.pool_size), **kw)
    return np.where(np.isfinite(out), out, np.nan)


def applies(key: str, optimizer: str) -> bool:
    """Whether the predictor ``key`` is defined for ``optimizer`` (:data:`APPLIES_TO`)."""
    return optimizer in APPLIES_TO.get(key, (optimizer,))


def champion_for(optimizer: str, abs_r: dict[str, FloatArray]) -> str:
    """The pre-registered champion of ``optimizer`` (:data:`CHAMPIONS`), or :data:`CHAMPION` where it has
    fewer than :data:`MIN_CHAMPION_CELLS` finite cells (``abs_r``: |log ratio| per cell). The rule looks at
    which cells are defined, never at the scores."""
    key = CHAMPIONS.get(optimizer, CHAMPION)
    cells = abs_r.get(key)
    if cells is None or int(np.isfinite(cells).sum()) < MIN_CHAMPION_CELLS:
        return CHAMPION
    return key


# ------------------------------------------------------------------------------------------ analysis
def fit_exponent(
    batch: FloatArray, per_seed: FloatArray, max_batch: float, n_boot: int, seed: int
) -> ExponentFit:
    """Exponent s of log η = a + s log B on B ≤ ``max_batch`` with a seed-level bootstrap 95% CI
    (``validation.stats.fit_power_law`` with the seeds as groups, ``classify_exponent`` for the verdict).

    ``per_seed`` is (n_B, n_seeds), NaN where no stable rate was found. When fewer than two batch sizes lie at
    or below ``max_batch`` the fit uses every B and says so (``fit_on_all_b``)."""
    bb, seeds = np.meshgrid(batch, np.arange(per_seed.shape[1]), indexing="ij")
    ok = np.isfinite(per_seed) & (per_seed > 0)
    b, eta, groups = bb[ok], per_seed[ok], seeds[ok]
    limit: float | None = max_batch if math.isfinite(max_batch) else None
    fit_range = f"B <= {max_batch:.3g} (B*/2)"
    if limit is None or np.unique(b[b <= limit]).size < 2:
        limit, fit_range = None, "all B (fewer than two batch sizes below B*/2)"
    if np.unique(b).size < 2:
        nan = math.nan
        return ExponentFit(nan, nan, nan, "undecided", "too few stable cells")
    fit = fit_power_law(b, eta, groups, max_batch=limit, n_resamples=n_boot, seed=seed)
    return ExponentFit(
        exponent=fit.exponent,
        lo=fit.ci.low,
        hi=fit.ci.high,
        verdict=classify_exponent(fit),
        fit_range=fit_range,
        fit_on_all_b=limit is None,
        n_points=fit.n_points,
        n_seeds=fit.n_groups,
    )


def _score(curve: FloatArray, strict: FloatArray, n_boot: int, seed: int) -> tuple[LRScore, FloatArray]:
    """Score of one predictor's curve (per B) against the strict thresholds (B × seed); also |r| per cell
    (NaN where undefined) for the paired tests."""
    pred = np.broadcast_to(np.asarray(curve, float)[:, None], strict.shape).ravel()
    meas = strict.ravel()
    ok = np.isfinite(pred) & np.isfinite(meas) & (pred > 0) & (meas > 0)
    abs_r = np.full(meas.shape, np.nan)
    if not ok.any():
        return LRScore(math.nan, math.nan, math.nan), abs_r
    abs_r[ok] = np.abs(np.log(pred[ok] / meas[ok]))
    acc = median_abs_log_ratio(pred[ok], meas[ok], n_resamples=n_boot, seed=seed)
    return LRScore(acc.median_abs.estimate, acc.within_1_25, acc.within_1_5), abs_r


def _paired_tests(abs_r: dict[str, FloatArray], champion: str) -> dict[str, PairedTest]:
    """``champion`` vs each baseline on the cells where all of them are defined (at least 5)."""
    compared = {k: v for k, v in abs_r.items() if k == champion or LR_PREDICTORS[k].kind == "baseline"}
    common = np.all(np.isfinite(np.vstack(list(compared.values()))), axis=0)
    if common.sum() < 5:
        return {}
    return {
        row["method"]: PairedTest(row["p_value"], row["p_holm"], row["n_cells"], row["median_difference"])
        for row in paired_wilcoxon_holm({k: v[common] for k, v in compared.items()}, champion,
                                        alternative="less")
    }  # fmt: skip


def _threshold_matrix(
    recs: list[dict[str, Any]], field: str, sizes: list[int], seeds: list[int]
) -> FloatArray:
    out = np.full((len(sizes), len(seeds)), np.nan)
    for r in recs:
        out[sizes.index(int(r["B"])), seeds.index(int(r["seed"]))] = decode_float(r[field])
    return out


def _nanmedian_rows(values: FloatArray) -> FloatArray:
    """Median of the finite entries of each row (NaN for a row without any)."""
    return np.array([np.median(r[np.isfinite(r)]) if np.isfinite(r).any() else np.nan for r in values])


def _finite_rows(values: FloatArray, sizes: list[int]) -> dict[int, tuple[float, ...]]:
    return {s: tuple(values[i][np.isfinite(values[i])].tolist()) for i, s in enumerate(sizes)}


def analyse_optimizer(
    opt: str,
    recs: list[dict[str, Any]],
    pred: PredictionRecord,
    sweep: list[dict[str, Any]],
    config: RunConfig,
    mean_square: MeanSquareInputs | None = None,
    preconditioned: PreconditionedInputs | None = None,
    finite_horizon: FiniteHorizonInputs | None = None,
) -> OptimizerAnalysis:
    """Step 6 for one optimizer's threshold records (``mean_square``, ``preconditioned``,
    ``finite_horizon``: the inputs of the fresh-batch predictors, None where not measured)."""
    from rmt.learning_rates import max_lr

    th = pred.targets["H"]
    sizes = sorted({int(r["B"]) for r in recs})
    seeds = sorted({int(r["seed"]) for r in recs})
    strict = _threshold_matrix(recs, "lr_max_strict", sizes, seeds)
    lenient = _threshold_matrix(recs, "lr_max_lenient", sizes, seeds)
    b = np.asarray(sizes, dtype=float)
    method, momentum = THEORY_METHODS[opt]
    best_curve = dict(zip(pred.grid, th.curves[th.best_model], strict=True))
    sharp = [[float(r["batch_sharpness"]) for r in sweep if int(r["B"]) == s] for s in sizes]
    med = _nanmedian_rows(strict)
    inputs = LRInputs(
        optimizer=opt,
        batch_sizes=b,
        constant=float(max_lr(1.0, method=method, momentum=momentum)),
        lambda_1=th.lambda_1,
        sigma2=th.p_sigma2 / pred.n_params,
        n_params=pred.n_params,
        n_data=pred.n_data,
        lam_measured=np.array([th.measured[s].mean if s in th.measured else math.nan for s in sizes]),
        lam_best=np.array([best_curve.get(s, math.nan) for s in sizes]),
        batch_sharpness=np.array([float(np.mean(v)) if v else math.nan for v in sharp]),
        median_strict=med,
        mean_square=mean_square,
        preconditioned=preconditioned,
        finite_horizon=finite_horizon,
    )
    predictors = {
        p.key: np.asarray(p.function(inputs), dtype=float) for p in LR_PREDICTORS if applies(p.key, opt)
    }
    scored = {k: _score(v, strict, config.bootstrap_samples, config.seed) for k, v in predictors.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (lenient / strict).ravel()
    ratio = ratio[np.isfinite(ratio)]
    b_half = pred.critical_batch / 2
    abs_r = {k: r for k, (_, r) in scored.items()}
    champion = champion_for(opt, abs_r)
    return OptimizerAnalysis(
        batch_sizes=tuple(sizes),
        seeds=tuple(seeds),
        measured_strict=_finite_rows(strict, sizes),
        measured_lenient=_finite_rows(lenient, sizes),
        median_strict=tuple(med.tolist()),
        median_lenient=tuple(_nanmedian_rows(lenient).tolist()),
        lenient_over_strict=float(np.median(ratio)) if ratio.size else math.nan,
        predictors={k: tuple(v.tolist()) for k, v in predictors.items()},
        scores={k: s for k, (s, _) in scored.items()},
        champion=champion,
        paired_wilcoxon_holm=_paired_tests(abs_r, champion),
        exponent_strict=fit_exponent(b, strict, b_half, config.bootstrap_samples, config.seed),
        exponent_lenient=fit_exponent(b, lenient, b_half, config.bootstrap_samples, config.seed + 1),
        diverged_cells=int(sum(bool(r.get("diverged_any")) for r in recs)),
    )


def analyse_thresholds(store: ResultStore, config: RunConfig, *, model: str, ckpt: int) -> LRAnalysisRecord:
    """Measured η_max(B) per optimizer against predictions and baselines (reads stored records only)."""
    from validation.experiments.spectrum_scoring import STEP

    pred = PredictionRecord.from_dict(store.get(STEP, cell_key(model=model, ckpt=ckpt)))
    sweep = store.records(steps.SWEEP, model=model, ckpt=ckpt)
    optimizers = {}
    mean_square = mean_square_inputs(store, config, model=model, ckpt=ckpt)
    finite = finite_horizon_inputs(store, model=model, ckpt=ckpt)
    for opt in config.thresholds.optimizers:
        recs = store.records(steps.THRESHOLDS, model=model, ckpt=ckpt, optimizer=opt)
        if recs:
            sizes = sorted({int(r["B"]) for r in recs})
            pre = preconditioned_inputs(store, model=model, ckpt=ckpt, sizes=sizes) if opt == "adam" else None
            optimizers[opt] = analyse_optimizer(opt, recs, pred, sweep, config, mean_square, pre, finite)
    return LRAnalysisRecord(
        model=model,
        ckpt=ckpt,
        critical_batch=pred.critical_batch,
        best_spectrum_model=pred.targets["H"].best_model,
        criteria={
            "steps": config.thresholds.steps,
            "delta": config.thresholds.delta,
            "halvings": config.thresholds.halvings,
        },
        optimizers=optimizers,
    )


# ---------------------------------------------------------------------------------- fresh-batch inputs
def expected_maximum(values: FloatArray, count: int) -> float:
    """E[max of ``count`` i.i.d. draws from the empirical distribution of ``values``]:
    Σ_k x_(k) ((k/n)^count − ((k − 1)/n)^count) over the sorted values x_(1) ≤ … ≤ x_(n)."""
    x = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    if x.size == 0:
        return math.nan
    k = np.arange(1, x.size + 1) / x.size
    return float(np.sum(x * (k**count - (k - 1 / x.size) ** count)))


def mean_square_inputs(
    store: ResultStore, config: RunConfig, *, model: str, ckpt: int
) -> MeanSquareInputs | None:
    """The step-2 top eigenvalues of H and the step-3b per-sample statistics (held-out samples) of one
    checkpoint as :class:`MeanSquareInputs`; None where the per-sample record is missing or unavailable."""
    key = cell_key(model=model, ckpt=ckpt)
    if not store.has(steps.PER_SAMPLE, key):
        return None
    per = store.get(steps.PER_SAMPLE, key)
    if not per.get("available", False):
        return None
    spectra = store.get(steps.SPECTRA, key)
    lam = np.asarray(spectra["hessian_top"]["eigenvalues"], dtype=float)
    ray = np.atleast_2d(store.load_array(per["hessian"]["rayleigh"]))
    coupling = np.atleast_2d(store.load_array(per["hessian"]["coupling"]))
    tops = np.asarray(store.load_array(per["hessian"]["top"]), dtype=float)
    k = min(lam.size, ray.shape[1])
    keep = np.isfinite(lam[:k]) & (lam[:k] > 0)
    ddof = 1 if ray.shape[0] > 1 else 0
    return MeanSquareInputs(
        pool_size=int(spectra.get("pool_size", config.pool_size)),
        means=lam[:k][keep],
        variances=np.var(ray[:, :k], axis=0, ddof=ddof)[keep],
        leakages=np.mean(coupling[:, :k], axis=0)[keep],
        spike_top=expected_maximum(tops, int(spectra.get("pool_size", config.pool_size))),
    )


def preconditioned_inputs(
    store: ResultStore, *, model: str, ckpt: int, sizes: list[int]
) -> PreconditionedInputs | None:
    """Step 6b's records of one checkpoint at the threshold batch sizes (medians over the rebuilt seeds);
    None where there are none."""
    recs = {int(r["B"]): r for r in store.records(steps.PRECONDITIONED, model=model, ckpt=ckpt)}
    if not recs:
        return None

    def median(field: str) -> FloatArray:
        out = np.full(len(sizes), np.nan)
        for i, b in enumerate(sizes):
            vals = [decode_float(s[field]) for s in recs[b]["seeds"].values()] if b in recs else []
            vals = [v for v in vals if math.isfinite(v)]
            out[i] = float(np.median(vals)) if vals else np.nan
        return out

    first = next(iter(recs.values()))
    return PreconditionedInputs(
        lambda_batch=median("lambda_batch"),
        lambda_step=median("lambda_step"),
        lambda_pool=median("lambda_pool"),
        sample_mean=median("per_sample_mean"),
        sample_variance=median("per_sample_variance"),
        beta1=float(first["adam_betas"][0]),
        pool_size=int(first["pool_size"]),
    )


def finite_horizon_inputs(store: ResultStore, *, model: str, ckpt: int) -> FiniteHorizonInputs | None:
    """The :data:`FINITE_HORIZON_STEP` record of one checkpoint as :class:`FiniteHorizonInputs`; None where
    there is none (the step is optional)."""
    key = cell_key(model=model, ckpt=ckpt)
    if not store.has(FINITE_HORIZON_STEP, key):
        return None
    rec = store.get(FINITE_HORIZON_STEP, key)
    stats = {n: np.asarray([decode_float(v) for v in rec[n]], dtype=float) for n in FINITE_HORIZON_STATISTICS}
    return FiniteHorizonInputs(
        **stats,
        initial_loss=decode_float(rec["initial_loss"]),
        steps=int(rec["steps"]),
        warmup_steps=int(rec["warmup_steps"]),
        delta=float(rec["delta"]),
        pool_size=int(rec["pool_size"]),
    )
