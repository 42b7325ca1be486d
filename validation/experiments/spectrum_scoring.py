"""Step 5: every registered spectrum model (``validation.experiments.spectrum_models``) scored against the
batch-size sweep, for the top eigenvalue of H_B and of G_B (the models of G use the GGN's noise).

Reads only stored records (steps 2–4). Scores per model, with r = log(pred/measured) per sweep cell
(``validation.stats``): the median |r| with a bootstrap CI overall and per regime (``edge`` below B*,
``outlier`` above; ``rmt.learning_rates.batch_regime`` of the homogeneous additive model), AIC of the
Gaussian log residuals with k = fitted parameters + 1 (the variance), and the leave-one-B-out mean squared
log error (``validation.stats.leave_one_b_out``; a fitted model is refitted without each B). The best model
has the smallest leave-one-B-out error. The target statistic of docs/validation.md §4d — the median over B
of |log(pred(B) / measured median at B)| (``validation.stats.median_over_b_error``, CI from resampling the
batches within each B) — and its leave-one-B-out version (``leave_one_b_out_median_error``) are scored
beside them; unlike the per-cell median |r| it does not grow with the batch-to-batch spread at one B. A
model that predicts a distribution over batches (``sample_spikes``)
also gets its 10–90% band on the grid, the fraction of measured sweep cells inside it (coverage) and the
crossover batch size B_× (:class:`~validation.experiments.analysis_records.PredictedBand`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from validation import steps
from validation.config import RunConfig
from validation.experiments.analysis_records import (
    MeanCI,
    MedianCI,
    ModelScore,
    NoiseSpectrumItem,
    PredictedBand,
    PredictionRecord,
    TargetPrediction,
)
from validation.experiments.spectrum_models import (
    BAND_LEVELS,
    DESIGN_LEVELS,
    PROFILE_BLOCKS,
    SPECTRUM_MODELS,
    TARGETS,
    FloatArray,
    SampleSpikeInputs,
    SpectrumInputs,
    model_curves,
)
from validation.stats import (
    aic,
    bootstrap_ci,
    fit_offset_power_law,
    leave_one_b_out,
    leave_one_b_out_median_error,
    median_abs_log_ratio,
    median_over_b_error,
)
from validation.store import ResultStore, cell_key

__all__ = ["STEP", "compute_predictions", "critical_batch", "estimated_critical_batch", "score_model"]

STEP = steps.PREDICTIONS
BULK_RULE = "SLQ nodes below the smallest computed top-k eigenvalue, renormalised"


def critical_batch(lam: float, p_sigma2: float, n_params: int, n_data: int) -> float:
    """B* of the homogeneous additive model, ν(B*) = λ (``rmt.wigner.critical_batch_size``, docs/theory.md
    §1a); ``inf`` when λ ≤ 0 or Pσ² ≤ 0 (no separated spike)."""
    from rmt.wigner import critical_batch_size

    if not (lam > 0 and p_sigma2 > 0):
        return math.inf
    return float(critical_batch_size(lam, p_sigma2 / n_params, n_params, n_data))


def estimated_critical_batch(spectra: dict[str, Any], noise: dict[str, Any], n_data: int) -> float:
    """B* of H from the records of steps 2 (λ_1(H), P) and 3 (Pσ²) only."""
    lam = float(spectra["hessian_top"]["eigenvalues"][0])
    return critical_batch(lam, float(noise["hessian"]["p_sigma2"]), int(spectra["n_params"]), n_data)


def _positive_pairs(pred: FloatArray, meas: FloatArray) -> np.ndarray:
    """Cells where r = log(pred/measured) is a log ratio of two positive finite values."""
    return np.isfinite(pred) & np.isfinite(meas) & (pred > 0) & (meas > 0)


def _median_ci(pred: FloatArray, meas: FloatArray, n_boot: int, seed: int) -> MedianCI:
    ok = _positive_pairs(pred, meas)
    if not ok.any():
        return MedianCI.empty()
    acc = median_abs_log_ratio(pred[ok], meas[ok], n_resamples=n_boot, seed=seed)
    return MedianCI(acc.median_abs.estimate, acc.median_abs.low, acc.median_abs.high, acc.n_cells)


def score_model(
    batch: FloatArray,
    measured: FloatArray,
    predicted: FloatArray,
    regimes: FloatArray | np.ndarray,
    *,
    aic_parameters: int,
    loo_b: float,
    n_boot: int,
    seed: int,
    per_b_loo: float = math.nan,
) -> ModelScore:
    """Scores of one model's ``predicted`` values (aligned with the sweep cells ``batch``/``measured``;
    ``regimes`` = "edge"/"outlier" per cell) — see the module docstring. ``per_b_loo``: the leave-one-B-out
    target statistic (NaN: the model is not refitted, so it equals the target statistic itself)."""
    ok = _positive_pairs(predicted, measured)
    r = np.log(predicted[ok] / measured[ok])
    n = int(r.size)
    overall = _median_ci(predicted, measured, n_boot, seed)
    per_regime = {
        name: _median_ci(predicted[regimes == name], measured[regimes == name], n_boot, seed + 1)
        for name in ("edge", "outlier")
    }
    within = float(np.mean(np.abs(r) <= math.log(1.25) + 1e-12)) if n else math.nan
    target = (
        median_over_b_error(batch, measured, predicted, n_resamples=n_boot, seed=seed + 2)
        if n
        else None
    )
    per_b = (
        MedianCI(target.estimate, target.low, target.high, len(np.unique(batch[ok])))
        if target is not None
        else MedianCI.empty()
    )
    return ModelScore(
        overall=overall,
        edge=per_regime["edge"],
        outlier=per_regime["outlier"],
        aic=aic(float(np.sum(r**2)), n, aic_parameters) if n else math.nan,
        mean_log_ratio=float(np.mean(r)) if n else math.nan,
        within_1_25=within,
        loo_b=loo_b,
        per_b=per_b,
        per_b_loo=per_b.median if math.isnan(per_b_loo) else per_b_loo,
    )


def _mean_ci(values: FloatArray, n_boot: int, seed: int) -> MeanCI:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return MeanCI(math.nan, math.nan, math.nan, ())
    ci = bootstrap_ci(v, np.mean, n_resamples=n_boot, seed=seed)
    return MeanCI(ci.estimate, ci.low, ci.high, tuple(float(x) for x in v))


def _loo_errors(key: str, inputs: SpectrumInputs, curve: dict[int, float]) -> tuple[float, float]:
    """Leave-one-B-out errors of model ``key`` — the mean squared log error over cells and the target
    statistic (median over B against the measured median; NaN for a theory model, whose curve does not
    depend on the sweep): a fitted model is refitted without each B."""
    model = SPECTRUM_MODELS[key]
    refits: dict[float, float] = {}  # one refit per held-out B, shared by both statistics

    def predict(_b: FloatArray, _y: FloatArray, held: float) -> float:
        if model.kind != "fit":
            return curve.get(int(held), math.nan)
        if held not in refits:
            refits[held] = float(model.function(inputs.without_batch(held), np.array([held]))[0])
        return refits[held]

    mse = leave_one_b_out(inputs.batch, inputs.measured, predict)
    if model.kind != "fit":
        return mse, math.nan
    return mse, leave_one_b_out_median_error(inputs.batch, inputs.measured, predict)


def band_coverage(
    batch: FloatArray, measured: FloatArray, grid: FloatArray, low: FloatArray, high: FloatArray
) -> float:
    """Fraction of sweep cells (``batch``, ``measured``) with low(B) ≤ measured ≤ high(B) (NaN: no cell)."""
    lo = {int(b): float(v) for b, v in zip(grid, low, strict=True)}
    hi = {int(b): float(v) for b, v in zip(grid, high, strict=True)}
    inside = [lo[int(b)] <= m <= hi[int(b)] for b, m in zip(batch, measured, strict=True) if int(b) in lo]
    return float(np.mean(inside)) if inside else math.nan


def design_check(
    inputs: SampleSpikeInputs, batch: FloatArray, measured: FloatArray, grid: FloatArray, observed: float
) -> dict[str, float]:
    """The target statistic E of the sample-spike model under its own predicted distribution, with as many
    batches per B as the sweep measured (``validation.stats.median_over_b_null``, docs/validation.md §4d);
    empty where no B has a measured batch or E is undefined."""
    from validation.provenance import derived_seed
    from validation.stats import median_over_b_null

    ok = np.isfinite(measured) & (measured > 0)
    counts = np.array([int(np.sum(ok & (batch == b))) for b in grid])
    keep = counts > 0
    if not keep.any() or not math.isfinite(observed):
        return {}
    qf = inputs.quantile_function(grid)[keep]
    if not (np.all(np.isfinite(qf)) and np.all(qf > 0)):
        return {}
    check = median_over_b_null(
        DESIGN_LEVELS, qf, counts[keep], observed, math.log(1.15), seed=derived_seed(inputs.seed, "design")
    )
    return check.to_dict()


def sample_spike_band(
    inputs: SampleSpikeInputs,
    batch: FloatArray,
    measured: FloatArray,
    grid: FloatArray,
    observed: float = math.nan,
) -> PredictedBand:
    """The sample-spike model's 10/50/90% band on ``grid``, its coverage of the sweep cells, B_× and the
    design check of its target statistic ``observed`` (:func:`design_check`)."""
    q = inputs.quantiles(grid)
    low, median, high = q[:, 0], q[:, 1], q[:, 2]
    return PredictedBand(
        levels=BAND_LEVELS,
        low=tuple(float(v) for v in low),
        median=tuple(float(v) for v in median),
        high=tuple(float(v) for v in high),
        coverage=band_coverage(batch, measured, grid, low, high),
        n_cells=int(np.isin(batch.astype(int), grid.astype(int)).sum()),
        crossover_batch=inputs.crossover(),
        p_eff=inputs.p_eff,
        n_samples=int(inputs.scales.shape[0]),
        n_batches=inputs.n_batches,
        method=inputs.method,
        replace=inputs.replace,
        design=design_check(inputs, batch, measured, grid, observed),
    )


def predict_target(inputs: SpectrumInputs, grid: FloatArray, n_boot: int, seed: int) -> TargetPrediction:
    """Every model's curve on ``grid`` and its scores against the target's sweep cells."""
    from rmt.learning_rates import batch_regime

    curves = model_curves(inputs, grid)
    regime_of = np.atleast_1d(
        batch_regime(grid, inputs.lam, inputs.sigma2, inputs.n_params, model="additive", n_data=inputs.n_data)
    )
    regime = {int(b): str(g) for b, g in zip(grid, regime_of, strict=True)}
    cell_regimes = np.array([regime[int(b)] for b in inputs.batch])
    scores: dict[str, ModelScore] = {}
    for i, (key, curve) in enumerate(curves.items()):
        by_b = {int(b): float(v) for b, v in zip(grid, curve, strict=True)}
        predicted = np.array([by_b.get(int(b), math.nan) for b in inputs.batch])
        loo_mse, loo_target = _loo_errors(key, inputs, by_b)
        scores[key] = score_model(
            inputs.batch,
            inputs.measured,
            predicted,
            cell_regimes,
            aic_parameters=SPECTRUM_MODELS[key].fitted_parameters + 1,
            loo_b=loo_mse,
            n_boot=n_boot,
            seed=seed + 17 * i,
            per_b_loo=loo_target,
        )
    best = min(scores, key=lambda m: math.inf if math.isnan(scores[m].loo_b) else scores[m].loo_b)
    bands = {}
    if inputs.per_sample is not None:
        observed = scores["sample_spikes"].per_b.median if "sample_spikes" in scores else math.nan
        bands["sample_spikes"] = sample_spike_band(
            inputs.per_sample, inputs.batch, inputs.measured, grid, observed
        )
    return TargetPrediction(
        lambda_1=inputs.lam,
        p_sigma2=inputs.p_sigma2,
        critical_batch=critical_batch(inputs.lam, inputs.p_sigma2, inputs.n_params, inputs.n_data),
        regime=regime,
        curves={k: tuple(float(v) for v in c) for k, c in curves.items()},
        scores=scores,
        best_model=best,
        free_fit=fit_offset_power_law(inputs.batch, inputs.measured).to_dict(),
        measured={int(b): _mean_ci(inputs.measured[inputs.batch == b], n_boot, seed + int(b)) for b in grid},
        bands=bands,
    )


def _sweep_cells(store: ResultStore, model: str, ckpt: int, field: str) -> tuple[FloatArray, FloatArray]:
    recs = store.records(steps.SWEEP, model=model, ckpt=ckpt)
    b = np.array([r["B"] for r in recs], dtype=float)
    v = np.array([float(r[field]) for r in recs], dtype=float)
    return b, v


def _num_classes(store: ResultStore, model: str) -> int:
    recs = store.records(steps.CHECKPOINTS, model=model)
    if not recs:
        raise KeyError(f"no checkpoint records for model {model!r} in {store.root}")
    return int(recs[0]["num_classes"])


def _sample_spike_inputs(
    store: ResultStore, config: RunConfig, *, model: str, ckpt: int, tops: dict[str, list[float]], max_b: int
) -> dict[str, SampleSpikeInputs | None]:
    """The sample-spike pools of H and G from the per-sample record (step 3b) of one checkpoint; ``None``
    for both when the step has no record (a run made before it existed).

    G: the exact per-sample GGN eigenvalues (n, C) as scales with the exact overlaps of every direction with
    the u_k when the record has them (docs/theory.md §1f), else u_kᵀG_iu_k attributed to each sample's top
    direction (``rmt.PerSampleCurvature.from_summary``). H: top, bottom (if < 0) and the Hutchinson trace
    (clipped into the range the rank allows) of each H_i with rank C_G + 1, u_kᵀH_iu_k likewise. Batches draw
    pool rows without replacement when the pool holds the largest B, else with replacement."""
    from rmt.sample_spikes import PerSampleCurvature
    from validation.provenance import derived_seed

    key = cell_key(model=model, ckpt=ckpt)
    if not store.has(steps.PER_SAMPLE, key):
        return {"H": None, "G": None, "H_min": None}
    rec = store.get(steps.PER_SAMPLE, key)
    if not rec.get("available", True):
        return {"H": None, "G": None, "H_min": None}
    cfg = config.per_sample
    h, g = rec["hessian"], rec["ggn"]
    eig = np.asarray(store.load_array(g["eigenvalues"]), dtype=float)
    n = eig.shape[0]
    c = max(int(g["rank_max"]), 1)
    k = min(cfg.n_spikes, len(tops["H"]), len(tops["G"]))
    p_eff = float(g["p_eff"])
    replace_rows = n < max_b
    g_ray = np.asarray(store.load_array(g["rayleigh"]), dtype=float)[:, :k]
    g_scales = np.clip(eig[:, :c], 0.0, None)
    if "overlaps" in g:  # exact v_irᵀu_k of every direction of G_i (docs/theory.md §1f)
        g_over = np.asarray(store.load_array(g["overlaps"]), dtype=float)[:, :c, :k]
        norm = np.sqrt((g_over**2).sum(axis=2, keepdims=True))
        g_overlaps = g_over / np.maximum(norm, 1.0)  # round-off above 1
    else:  # older records: u_kᵀG_iu_k attributed to the top direction
        g_overlaps = PerSampleCurvature.from_summary(eig[:, 0], rank=c, rayleigh=g_ray, seed=0).overlaps
    h_top = np.asarray(store.load_array(h["top"]), dtype=float)
    h_bot = np.minimum(np.asarray(store.load_array(h["bottom"]), dtype=float), 0.0)
    h_tr = np.asarray(store.load_array(h["traces"]), dtype=float)
    h_ray = np.asarray(store.load_array(h["rayleigh"]), dtype=float)[:, :k]
    c_h = c + 1
    n_rest = c_h - 2
    trace = None
    if n_rest > 0:
        trace = np.clip(h_tr, h_top + h_bot, h_top + h_bot + n_rest * np.clip(h_top, 0.0, None))
    h_pool = PerSampleCurvature.from_summary(
        np.clip(h_top, 0.0, None), trace=trace, rank=c_h, bottom=h_bot, rayleigh=h_ray, seed=0
    )
    # H_min: H's most negative eigenvalue joins the shared spikes along its own eigenvector u_min, with the
    # per-sample quotients u_minᵀH_iu_min (negative ones carried by each sample's bottom direction); a record
    # made before they were measured gives zero overlaps (the per-sample terms then do not shift it)
    if "rayleigh_bottom" in h:
        h_ray_min = np.asarray(store.load_array(h["rayleigh_bottom"]), dtype=float)[:, :1]
    else:
        h_ray_min = np.zeros((h_ray.shape[0], 1))
    h_min_pool = PerSampleCurvature.from_summary(
        np.clip(h_top, 0.0, None),
        trace=trace,
        rank=c_h,
        bottom=h_bot,
        rayleigh=np.concatenate([h_ray, h_ray_min], axis=1),
        seed=0,
    )
    h_min_spikes = [*tops["H"][:k], *tops["H_min"][:1]]
    out: dict[str, SampleSpikeInputs | None] = {}
    for target, scales, overlaps, spikes in (
        ("H", h_pool.scales, h_pool.overlaps, tops["H"][:k]),
        ("G", g_scales, g_overlaps, tops["G"][:k]),
        ("H_min", h_min_pool.scales, h_min_pool.overlaps, h_min_spikes),
    ):
        out[target] = SampleSpikeInputs(
            scales=np.asarray(scales, dtype=float),
            overlaps=np.asarray(overlaps, dtype=float),
            spikes=np.asarray(spikes, dtype=float),
            p_eff=p_eff,
            n_batches=cfg.n_batches,
            seed=derived_seed(config.seed, model, ckpt, "sample_spikes", target),
            method=cfg.method,
            replace=replace_rows,
            side=TARGETS[target].side,
        )
    return out


def _target_inputs(
    store: ResultStore, config: RunConfig, *, model: str, ckpt: int
) -> tuple[dict[str, SpectrumInputs], dict[str, Any], dict[str, Any]]:
    """The :class:`SpectrumInputs` of H and G from the stored records of one checkpoint."""
    from validation.experiments.spectra import bulk_measure

    key = cell_key(model=model, ckpt=ckpt)
    spectra, noise = store.get(steps.SPECTRA, key), store.get(steps.NOISE, key)
    p, n_data = int(spectra["n_params"]), int(spectra["pool_size"])
    c_eff = config.ggn_outputs_per_sample or max(_num_classes(store, model) - 1, 1)
    top_h = [float(v) for v in spectra["hessian_top"]["eigenvalues"]]
    top_g = [float(v) for v in spectra["ggn_top"]["eigenvalues"]]
    g_atoms, g_weights = bulk_measure(spectra["ggn_slq"], top_g)
    vectors = store.load_array(spectra["hessian_vectors"])
    max_b = int(max(_sweep_cells(store, model, ckpt, "lam_max_H")[0], default=1))
    bottom_h = [float(v) for v in spectra["hessian_min"]["eigenvalues"]]
    pools = _sample_spike_inputs(
        store, config, model=model, ckpt=ckpt, tops={"H": top_h, "G": top_g, "H_min": bottom_h}, max_b=max_b
    )
    h_slq = spectra["hessian_slq"]
    mirrored_slq = {k: -np.asarray(v, dtype=float) if k == "nodes" else v for k, v in h_slq.items()}
    inputs = {}
    for target, top, slq, matrix in (
        ("H", top_h, spectra["hessian_slq"], "hessian"),
        ("G", top_g, spectra["ggn_slq"], "ggn"),
        ("H_min", [-v for v in bottom_h], mirrored_slq, "hessian"),
    ):
        side = TARGETS[target].side
        if side == "bottom" and not top[0] > 0:
            continue  # H has no negative eigenvalue: nothing to predict at the bottom
        atoms, weights = bulk_measure(slq, top)
        batch, measured = _sweep_cells(store, model, ckpt, TARGETS[target].sweep_field)
        if side == "bottom":
            measured = -measured
        inputs[target] = SpectrumInputs(
            side=side,
            lam=top[0],
            p_sigma2=float(noise[matrix]["p_sigma2"]),
            n_params=p,
            n_data=n_data,
            atoms=atoms,
            weights=weights,
            ggn_lam=top_g[0],
            ggn_atoms=g_atoms,
            ggn_weights=g_weights,
            c_eff=c_eff,
            row_sums=store.load_array(noise["hessian"]["row_sums"]) if target == "H" else None,
            vector=vectors[:, 0] if target == "H" else None,
            batch=batch,
            measured=measured,
            per_sample=pools[target],
        )
    return inputs, spectra, noise


def compute_predictions(
    store: ResultStore, config: RunConfig, *, model: str, ckpt: int, grid: list[int]
) -> PredictionRecord:
    """Predictions of every model on the grid and their scores against the sweep (one record)."""
    from rmt.wigner import kappa

    inputs, spectra, noise = _target_inputs(store, config, model=model, ckpt=ckpt)
    h = inputs["H"]
    b_grid = np.asarray(grid, dtype=float)
    n_boot, seed = config.bootstrap_samples, config.seed
    targets = {name: predict_target(inp, b_grid, n_boot, seed) for name, inp in inputs.items()}
    lam_min = float(spectra["hessian_min"]["eigenvalues"][0])
    noise_spec = tuple(
        NoiseSpectrumItem(
            B=int(rec["B"]),
            nu2_measured=float(rec["nu2_measured"]),
            nu2_predicted=float(kappa(int(rec["B"]), h.n_data)) * h.p_sigma2,
        )
        for rec in store.records(steps.NOISE_SPECTRUM, model=model, ckpt=ckpt)
    )
    return PredictionRecord(
        model=model,
        ckpt=ckpt,
        n_params=h.n_params,
        n_data=h.n_data,
        num_classes=_num_classes(store, model),
        c_eff=h.c_eff,
        grid=tuple(int(b) for b in grid),
        critical_batch=estimated_critical_batch(spectra, noise, h.n_data),
        lambda_min=lam_min,
        row_sum_cv=float(noise["hessian"]["row_sum_cv"]),
        targets=targets,
        noise_spectrum=noise_spec,
        profile_blocks=PROFILE_BLOCKS,
        bulk_rule=BULK_RULE,
    )
