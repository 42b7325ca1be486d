"""Step 5 (predictions vs measurement) and the analysis of step 6 (maximal learning rate vs B).

Reads only stored records. For the top eigenvalue λ'_max of H_B, with the noise estimated independently
(step 3) and N = pool size:

* ``additive_homogeneous`` — spiked Wigner, ``rmt.wigner.batch_hessian_extremal(λ_1, σ², P, B, N)``, σ² =
Pσ²/P;
* ``additive_bulk`` — the spike over the measured bulk μ (SLQ nodes of H without the outliers),
  ``rmt.bulk.bulk_spike_outlier(λ_1, ν(B), μ)``;
* ``additive_profile`` — the rank-one profile ``S̃ = κ(B) r rᵀ/Σr`` with the measured row sums r (it has
exactly
  those row sums), the empirical top eigenvector as the spike vector, ``rmt.profile.wigner_type_outliers``;
  the
  profile is coarse-grained to ``PROFILE_BLOCKS`` blocks of the sorted r, geometric towards the largest row
  sums
  (a ``BlockProfile``: a dense P×P profile does not fit in memory; on a P = 612 MLP the outliers agree with
  the
  exact rank-one solution to 0.3%);
* ``multiplicative`` — Bai–Yao ``rmt.bulk.wishart_bulk_spike_outlier(λ_1(G), q, μ_G)`` with the SLQ bulk of
G and
  ``q = P/(B·C_eff)`` (C_eff = ``ggn_outputs_per_sample`` or classes − 1, the rank of the softmax output
  Hessian);
* ``free_fit`` — ``λ'(B) = a + b·B^(−s)`` fitted by least squares in log space (3 parameters).

The same models (with the GGN's noise) predict λ'_max of G_B. Scores: r = log(pred/measured) per batch; the
median |r| with a bootstrap CI per regime (``edge`` for B < B*, ``outlier`` above; B* from the homogeneous
model), AIC (Gaussian log residuals; k = 1 for the parameter-free models, 4 for the free fit) and the
leave-one-B-out mean squared log error (the free fit is refitted without each B).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from validation.config import RunConfig
from validation.store import ResultStore

STEP = "predictions"
LR_STEP = "lr_analysis"
PROFILE_BLOCKS = 12
SPECTRUM_MODELS = ("additive_homogeneous", "additive_bulk", "additive_profile", "multiplicative", "free_fit")
THEORY_METHODS = {"sgd": ("sgd", 0.0), "momentum": ("heavy_ball", 0.9), "adam": ("adam", 0.0)}


# ----------------------------------------------------------------------------------------------------
# statistics
def bootstrap_median_abs(values: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Median of |values| with a 95% percentile-bootstrap CI (``validation.stats.bootstrap_ci``)."""
    from validation.stats import bootstrap_ci

    a = np.abs(np.asarray(values, dtype=float))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"median": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    ci = bootstrap_ci(a, np.median, n_resamples=n_boot, seed=seed)
    return {"median": ci.estimate, "lo": ci.low, "hi": ci.high, "n": int(a.size)}


def fit_free_exponent(batch: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Least-squares fit of log λ' = log(a + b·B^(−s)) with a, b ≥ 0 and 0 ≤ s ≤ 3 (on positive values)."""
    b = np.asarray(batch, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    b, y = b[ok], y[ok]
    if b.size < 3:
        return {"a": math.nan, "b": math.nan, "s": math.nan}
    log_y = np.log(y)

    def resid(p: np.ndarray) -> np.ndarray:
        return np.log(np.exp(p[0]) + np.exp(p[1]) * b ** (-p[2])) - log_y

    best = None
    for s0 in (0.5, 1.0, 2.0):
        start = np.array([np.log(max(y.min(), 1e-12) / 2), np.log(max(y.max(), 1e-12)), s0])
        fit = least_squares(resid, start, bounds=([-50, -50, 0.0], [50, 50, 3.0]))
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    return {"a": float(np.exp(best.x[0])), "b": float(np.exp(best.x[1])), "s": float(best.x[2])}


def free_curve(params: dict[str, float], batch: np.ndarray) -> np.ndarray:
    return params["a"] + params["b"] * np.asarray(batch, dtype=float) ** (-params["s"])


def score_model(
    batch: np.ndarray,
    measured: np.ndarray,
    predicted_by_b: dict[int, float],
    regime: dict[int, str],
    n_params_fitted: int,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Log-ratio scores of one model's predictions against the per-batch measurements."""
    from validation.stats import aic

    pred = np.array([predicted_by_b.get(int(b), math.nan) for b in batch])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(pred / measured)
    ok = np.isfinite(r)
    out: dict[str, Any] = {"overall": bootstrap_median_abs(r[ok], n_boot, seed)}
    regimes = np.array([regime[int(b)] for b in batch])
    for name in ("edge", "outlier"):
        sel = ok & (regimes == name)
        out[name] = bootstrap_median_abs(r[sel], n_boot, seed + 1)
    n = int(ok.sum())
    rss = float(np.sum(r[ok] ** 2))
    out["aic"] = aic(max(rss, 1e-300), n, n_params_fitted) if n else math.nan
    out["mean_log_ratio"] = float(np.mean(r[ok])) if n else math.nan
    out["fraction_within_1.25"] = float(np.mean(np.abs(r[ok]) <= math.log(1.25))) if n else math.nan
    return out


def leave_one_b_out(
    batch: np.ndarray, measured: np.ndarray, predicted_by_b: dict[int, float] | None
) -> float:
    """Mean over held-out B of the mean squared log error at that B; ``predicted_by_b=None`` refits the free
    exponent model on the other batch sizes."""
    errors = []
    for b in np.unique(batch):
        held = batch == b
        if predicted_by_b is None:
            params = fit_free_exponent(batch[~held], measured[~held])
            pred = float(free_curve(params, np.array([b]))[0])
        else:
            pred = predicted_by_b.get(int(b), math.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(pred / measured[held])
        r = r[np.isfinite(r)]
        if r.size:
            errors.append(float(np.mean(r**2)))
    return float(np.mean(errors)) if errors else math.nan


# ----------------------------------------------------------------------------------------------------
# predictions
def estimated_critical_batch(spectra: dict[str, Any], noise: dict[str, Any], n_data: int) -> float:
    """B* of the homogeneous additive model, ν(B*) = λ_1(H) (THEORY §1a), from steps 2 and 3 only."""
    from rmt.wigner import critical_batch_size

    lam = float(spectra["hessian_top"]["eigenvalues"][0])
    p = int(spectra["n_params"])
    p_sigma2 = float(noise["hessian"]["p_sigma2"])
    if not (lam > 0 and p_sigma2 > 0):
        return math.inf
    return float(critical_batch_size(lam, p_sigma2 / p, p, n_data))


def _profile_outlier(row_sums: np.ndarray, vector: np.ndarray, theta: float, kappa: float) -> float:
    """Top outlier for the rank-one profile S̃ = κ r rᵀ/Σr (coarse-grained to quantile blocks of r)."""
    from rmt.profile import BlockProfile, wigner_type_outliers

    r = np.clip(np.asarray(row_sums, dtype=float), 0.0, None)
    total = r.sum()
    if total <= 0 or kappa <= 0:
        return theta
    g = np.sqrt(kappa / total) * r
    phi = np.asarray(vector, dtype=float)
    phi = phi / np.linalg.norm(phi)
    order = np.argsort(r, kind="stable")
    k = min(PROFILE_BLOCKS, r.size)
    # geometric blocks towards the largest row sums (the heavy tail decides the outlier): P(1 − 2^-j)
    bounds = np.unique(
        np.concatenate([[0], r.size - np.floor(r.size * 0.5 ** np.arange(k)), [r.size]]).astype(int)
    )
    k = bounds.size - 1
    sizes = np.diff(bounds).astype(float)
    g_sorted = g[order]
    g_block = np.array([g_sorted[bounds[i] : bounds[i + 1]].mean() for i in range(k)])
    profile = BlockProfile(np.outer(g_block, g_block), sizes)
    return float(wigner_type_outliers(profile, np.array([theta]), phi[order].reshape(-1, 1))[0])


def _spike_predictions(
    grid: np.ndarray,
    lam: float,
    p_sigma2: float,
    n_params: int,
    n_data: int,
    slq: dict[str, Any],
    spikes: list[float],
    ggn_lam: float,
    ggn_slq: dict[str, Any],
    ggn_spikes: list[float],
    c_eff: int,
    row_sums: np.ndarray | None,
    vector: np.ndarray | None,
) -> dict[str, list[float]]:
    from rmt.bulk import bulk_spike_outlier, wishart_bulk_spike_outlier
    from rmt.wigner import batch_hessian_extremal, kappa, noise_scale
    from validation.experiments.spectra import bulk_measure

    sigma2 = p_sigma2 / n_params
    nu = np.asarray(noise_scale(sigma2, n_params, grid, n_data), dtype=float)
    out: dict[str, list[float]] = {
        "additive_homogeneous": np.atleast_1d(
            batch_hessian_extremal(lam, sigma2, n_params, grid, n_data)
        ).tolist()
    }
    atoms, weights = bulk_measure(slq, spikes)
    out["additive_bulk"] = [float(bulk_spike_outlier(lam, float(v), atoms, weights)) for v in nu]
    if row_sums is not None and vector is not None:
        kap = np.atleast_1d(kappa(grid, n_data))
        out["additive_profile"] = [_profile_outlier(row_sums, vector, lam, float(k)) for k in kap]
    g_atoms, g_weights = bulk_measure(ggn_slq, ggn_spikes)
    g_atoms = np.clip(g_atoms, 0.0, None)
    out["multiplicative"] = [
        float(
            wishart_bulk_spike_outlier(max(ggn_lam, 0.0), n_params / (float(b) * c_eff), g_atoms, g_weights)
        )
        for b in grid
    ]
    return out


def _measured(store: ResultStore, model: str, ckpt: int, field: str) -> tuple[np.ndarray, np.ndarray]:
    recs = store.records("sweep", model=model, ckpt=ckpt)
    b = np.array([r["B"] for r in recs], dtype=float)
    v = np.array([float(r[field]) for r in recs], dtype=float)
    return b, v


def compute_predictions(
    store: ResultStore, config: RunConfig, *, model: str, ckpt: int, grid: list[int]
) -> dict[str, Any]:
    """Predictions of every model on the grid and their scores against the sweep (one record)."""
    from rmt.wigner import kappa
    from validation.store import cell_key

    key = cell_key(model=model, ckpt=ckpt)
    spectra = store.get("spectra", key)
    noise = store.get("noise", key)
    n_data = int(spectra["pool_size"])
    p = int(spectra["n_params"])
    num_classes = _num_classes(store, model)
    c_eff = config.ggn_outputs_per_sample or max(num_classes - 1, 1)
    b_grid = np.asarray(grid, dtype=float)
    top_h = [float(v) for v in spectra["hessian_top"]["eigenvalues"]]
    top_g = [float(v) for v in spectra["ggn_top"]["eigenvalues"]]
    lam_min = float(spectra["hessian_min"]["eigenvalues"][0])
    vectors = store.load_array(spectra["hessian_vectors"])
    row_sums = store.load_array(noise["hessian"]["row_sums"])
    b_star = estimated_critical_batch(spectra, noise, n_data)
    seed = config.seed
    targets: dict[str, Any] = {}
    for target, field, lam, p_sigma2, slq, spikes in (
        ("H", "lam_max_H", top_h[0], noise["hessian"]["p_sigma2"], spectra["hessian_slq"], top_h),
        ("G", "lam_max_G", top_g[0], noise["ggn"]["p_sigma2"], spectra["ggn_slq"], top_g),
    ):
        curves = _spike_predictions(
            b_grid,
            lam,
            float(p_sigma2),
            p,
            n_data,
            slq,
            spikes,
            top_g[0],
            spectra["ggn_slq"],
            top_g,
            c_eff,
            row_sums if target == "H" else None,
            vectors[:, 0] if target == "H" else None,
        )
        batch, meas = _measured(store, model, ckpt, field)
        free = fit_free_exponent(batch, meas)
        curves["free_fit"] = free_curve(free, b_grid).tolist()
        from rmt.wigner import critical_batch_size

        b_star_t = float(critical_batch_size(lam, float(p_sigma2) / p, p, n_data)) if lam > 0 else math.inf
        regime = {int(b): ("edge" if b < b_star_t else "outlier") for b in b_grid}
        scores: dict[str, Any] = {}
        for i, name in enumerate(curves):
            by_b = {int(b): float(v) for b, v in zip(b_grid, curves[name], strict=True)}
            k = 4 if name == "free_fit" else 1
            scores[name] = score_model(batch, meas, by_b, regime, k, config.bootstrap_samples, seed + 17 * i)
            scores[name]["loo_b"] = leave_one_b_out(batch, meas, None if name == "free_fit" else by_b)
        best = min(scores, key=lambda m: math.inf if math.isnan(scores[m]["loo_b"]) else scores[m]["loo_b"])
        per_b = {
            str(int(b)): _summary_at(meas[batch == b], config.bootstrap_samples, seed + int(b))
            for b in b_grid
        }
        targets[target] = {
            "lambda_1": lam,
            "p_sigma2": float(p_sigma2),
            "critical_batch": b_star_t,
            "regime": regime,
            "curves": curves,
            "scores": scores,
            "best_model": best,
            "free_fit": free,
            "measured": per_b,
        }
    from rmt.wigner import batch_hessian_extremal

    sigma2_h = float(noise["hessian"]["p_sigma2"]) / p
    min_pred = np.atleast_1d(batch_hessian_extremal(lam_min, sigma2_h, p, b_grid, n_data)).tolist()
    _, meas_min = _measured(store, model, ckpt, "lam_min_H")
    batch_min, _ = _measured(store, model, ckpt, "lam_min_H")
    noise_spec = []
    for rec in store.records("noise_spectrum", model=model, ckpt=ckpt):
        b = int(rec["B"])
        noise_spec.append(
            {
                "B": b,
                "nu2_measured": float(rec["nu2_measured"]),
                "nu2_predicted": float(kappa(b, n_data)) * float(noise["hessian"]["p_sigma2"]),
            }
        )
    return {
        "model": model,
        "ckpt": ckpt,
        "n_params": p,
        "n_data": n_data,
        "num_classes": num_classes,
        "c_eff": c_eff,
        "grid": [int(b) for b in grid],
        "critical_batch": b_star,
        "lambda_min": lam_min,
        "row_sum_cv": float(noise["hessian"]["row_sum_cv"]),
        "targets": targets,
        "lam_min": {
            "predicted_additive_homogeneous": min_pred,
            "measured": {
                str(int(b)): _summary_at(meas_min[batch_min == b], config.bootstrap_samples, seed)
                for b in b_grid
            },
        },
        "noise_spectrum": noise_spec,
        "profile_blocks": PROFILE_BLOCKS,
        "bulk_rule": "SLQ nodes below the smallest computed top-k eigenvalue, renormalised",
    }


def _summary_at(values: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "values": []}
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"mean": float(v.mean()), "lo": float(lo), "hi": float(hi), "values": v.tolist()}


def _num_classes(store: ResultStore, model: str) -> int:
    recs = store.records("checkpoints", model=model)
    if not recs:
        raise KeyError(f"no checkpoint records for model {model!r} in {store.root}")
    return int(recs[0]["num_classes"])


# ------------------------------------------------------------------------------------------ learning-rate
# analysis
def _fit_exponent(
    batch: np.ndarray, per_seed: np.ndarray, max_batch: float, n_boot: int, seed: int
) -> dict[str, Any]:
    """Exponent s of log η = a + s log B on B ≤ ``max_batch`` with a seed-level bootstrap 95% CI
    (``validation.stats.fit_power_law`` with the seeds as groups, ``classify_exponent`` for the verdict).

    ``per_seed`` is (n_B, n_seeds), NaN where no stable rate was found. When fewer than two batch sizes lie at
    or below ``max_batch`` the fit uses every B and says so in ``fit_range``."""
    from validation.stats import classify_exponent, fit_power_law

    bb, seeds = np.meshgrid(batch, np.arange(per_seed.shape[1]), indexing="ij")
    ok = np.isfinite(per_seed) & (per_seed > 0)
    b, eta, groups = bb[ok], per_seed[ok], seeds[ok]
    limit: float | None = max_batch if math.isfinite(max_batch) else None
    fit_range = f"B <= {max_batch:.3g} (B*/2)"
    if limit is None or np.unique(b[b <= limit]).size < 2:
        limit, fit_range = None, "all B (fewer than two batch sizes below B*/2)"
    if np.unique(b).size < 2:
        nan = math.nan
        return {
            "exponent": nan,
            "lo": nan,
            "hi": nan,
            "verdict": "undecided",
            "fit_range": "too few stable cells",
        }
    fit = fit_power_law(b, eta, groups, max_batch=limit, n_resamples=n_boot, seed=seed)
    return {
        "exponent": fit.exponent,
        "lo": fit.ci.low,
        "hi": fit.ci.high,
        "verdict": classify_exponent(fit),
        "fit_range": fit_range,
        "n_points": fit.n_points,
        "n_seeds": fit.n_groups,
    }


def analyse_thresholds(store: ResultStore, config: RunConfig, *, model: str, ckpt: int) -> dict[str, Any]:
    """Measured η_max(B) per optimizer against predictions and baselines (reads stored records only)."""
    from rmt.learning_rates import adam_max_lr_vs_batch, max_lr, max_lr_vs_batch
    from validation.stats import paired_wilcoxon_holm
    from validation.store import cell_key

    pred = store.get(STEP, cell_key(model=model, ckpt=ckpt))
    th = pred["targets"]["H"]
    p, n_data = int(pred["n_params"]), int(pred["n_data"])
    lam1 = float(th["lambda_1"])
    sigma2 = float(th["p_sigma2"]) / p
    b_star = float(pred["critical_batch"])
    best = th["best_model"]
    grid = [int(b) for b in pred["grid"]]
    out: dict[str, Any] = {
        "model": model,
        "ckpt": ckpt,
        "critical_batch": b_star,
        "best_spectrum_model": best,
        "criteria": {
            "steps": config.thresholds.steps,
            "delta": config.thresholds.delta,
            "halvings": config.thresholds.halvings,
        },
        "optimizers": {},
    }
    sweep = store.records("sweep", model=model, ckpt=ckpt)
    for opt in config.thresholds.optimizers:
        recs = store.records("thresholds", model=model, ckpt=ckpt, optimizer=opt)
        if not recs:
            continue
        sizes = sorted({int(r["B"]) for r in recs})
        seeds = sorted({int(r["seed"]) for r in recs})
        strict = np.full((len(sizes), len(seeds)), np.nan)
        lenient = np.full((len(sizes), len(seeds)), np.nan)
        for r in recs:
            i, j = sizes.index(int(r["B"])), seeds.index(int(r["seed"]))
            # measure_threshold_cell stores a non-finite threshold (no stable / no unstable lr found) as None
            strict[i, j] = np.nan if r["lr_max_strict"] is None else float(r["lr_max_strict"])
            lenient[i, j] = np.nan if r["lr_max_lenient"] is None else float(r["lr_max_lenient"])
        b = np.asarray(sizes, dtype=float)
        method, momentum = THEORY_METHODS[opt]
        const = float(max_lr(1.0, method=method, momentum=momentum))
        lam_b = np.array(
            [float(th["measured"][str(s)]["mean"]) if str(s) in th["measured"] else math.nan for s in sizes]
        )
        best_curve = dict(zip(grid, th["curves"][best], strict=True))
        lam_best = np.array([best_curve.get(s, math.nan) for s in sizes])
        sharp = np.array(
            [
                np.mean([float(r["batch_sharpness"]) for r in sweep if int(r["B"]) == s] or [math.nan])
                for s in sizes
            ]
        )
        med = np.nanmedian(strict, axis=1)
        predictors: dict[str, np.ndarray] = {}
        if opt == "adam":
            predictors["rmt best model, sqrt curvature (Adam)"] = const / np.sqrt(lam_best)
            predictors["additive homogeneous, sqrt curvature"] = np.asarray(
                adam_max_lr_vs_batch(
                    b, lam1, sigma2, p, model="additive", form="sqrt_curvature", n_data=n_data
                ),
                float,
            )
            predictors["measured λ'(B), sqrt curvature"] = const / np.sqrt(lam_b)
        else:
            predictors["rmt best model"] = const / lam_best
            predictors["measured λ'(B)"] = const / lam_b
            predictors["additive homogeneous"] = np.asarray(
                max_lr_vs_batch(
                    b, lam1, sigma2, p, model="additive", method=method, momentum=momentum, n_data=n_data
                ),
                float,
            )
        predictors["baseline constant 2/λ1"] = np.full(b.shape, const / lam1)
        predictors["baseline linear rule"] = med[0] * b / b[0]
        predictors["baseline sqrt rule"] = med[0] * np.sqrt(b / b[0])
        predictors["baseline batch sharpness"] = const / sharp
        scores: dict[str, Any] = {}
        abs_r: dict[str, np.ndarray] = {}
        for name, curve in predictors.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.log(np.asarray(curve, float)[:, None] / strict)
            abs_r[name] = np.abs(r).ravel()
            ok = np.isfinite(r)
            scores[name] = {
                "median_abs_log_ratio": float(np.median(np.abs(r[ok]))) if ok.any() else math.nan,
                "within_1.25": float(np.mean(np.abs(r[ok]) <= math.log(1.25))) if ok.any() else math.nan,
                "within_1.5": float(np.mean(np.abs(r[ok]) <= math.log(1.5))) if ok.any() else math.nan,
            }
        champion = next(iter(predictors))
        common = np.all(np.isfinite(np.vstack(list(abs_r.values()))), axis=0)
        tests: dict[str, Any] = {}
        if common.sum() >= 5:
            compared = {k: v[common] for k, v in abs_r.items() if k == champion or k.startswith("baseline")}
            for row in paired_wilcoxon_holm(compared, champion, alternative="less"):
                tests[row["method"]] = {
                    "p": row["p_value"],
                    "p_holm": row["p_holm"],
                    "n_cells": row["n_cells"],
                    "median_difference": row["median_difference"],
                }
        out["optimizers"][opt] = {
            "batch_sizes": sizes,
            "seeds": seeds,
            "measured_strict": {
                str(s): strict[i][np.isfinite(strict[i])].tolist() for i, s in enumerate(sizes)
            },
            "measured_lenient": {
                str(s): lenient[i][np.isfinite(lenient[i])].tolist() for i, s in enumerate(sizes)
            },
            "median_strict": med.tolist(),
            "median_lenient": np.nanmedian(lenient, axis=1).tolist(),
            "lenient_over_strict": float(np.nanmedian(lenient / strict)),
            "predictors": {k: np.asarray(v, float).tolist() for k, v in predictors.items()},
            "scores": scores,
            "champion": champion,
            "paired_wilcoxon_holm": tests,
            "exponent_strict": _fit_exponent(b, strict, b_star / 2, config.bootstrap_samples, config.seed),
            "exponent_lenient": _fit_exponent(
                b, lenient, b_star / 2, config.bootstrap_samples, config.seed + 1
            ),
            "diverged_cells": int(sum(bool(r.get("diverged_any")) for r in recs)),
        }
    return out


# ------------------------------------------------------------------------------------------------- Monte
# Carlo
def monte_carlo_record(seed: int, n_params: int = 2000, n_reps: int = 40) -> dict[str, Any]:
    """Monte-Carlo top eigenvalues of spiked Wigner (ν = 1) and spiked Wishart (σ² = 1, q = 1/2) matrices from
    ``rmt.sampling`` against ``rmt.wigner.wigner_outlier`` / ``rmt.wishart.wishart_outlier``."""
    try:
        from rmt.sampling import spiked_wigner_top_eigenvalues, spiked_wishart_top_eigenvalues
    except ImportError as exc:
        return {"available": False, "reason": f"rmt.sampling unavailable: {exc}"}
    from rmt.wigner import wigner_outlier
    from rmt.wishart import wishart_outlier

    thetas = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])
    wig = [
        np.asarray(spiked_wigner_top_eigenvalues(t, 1.0, n_params, n_reps, seed + i), float)
        for i, t in enumerate(thetas)
    ]
    ells = np.array([1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0])
    n_samples = 2 * n_params
    wis = [
        np.asarray(spiked_wishart_top_eigenvalues(e, 1.0, n_params, n_samples, n_reps, seed + 100 + i), float)
        for i, e in enumerate(ells)
    ]
    return {
        "available": True,
        "wigner": {
            "spikes": thetas.tolist(),
            "theory": np.asarray(wigner_outlier(thetas, 1.0)).tolist(),
            "mc_mean": [float(w.mean()) for w in wig],
            "mc_sd": [float(w.std()) for w in wig],
            "P": n_params,
            "reps": n_reps,
            "title": "spiked Wigner: θ + ν²/θ or edge 2ν",
        },
        "wishart": {
            "spikes": ells.tolist(),
            "theory": np.asarray(wishart_outlier(ells, 1.0, 0.5)).tolist(),
            "mc_mean": [float(w.mean()) for w in wis],
            "mc_sd": [float(w.std()) for w in wis],
            "P": n_params,
            "reps": n_reps,
            "title": "spiked Wishart q = 1/2: BBP / MP edge",
        },
    }
