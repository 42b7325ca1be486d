"""Figures of a run, drawn from its stored records only (``batchrmt figures DIR`` redraws without
recomputing).

Each figure is written as PNG and PDF into ``<run>/figures/``:

* ``densities``      — SLQ density of the empirical H against batch H_B densities (B from the noise-spectrum
cells);
* ``lambda_vs_batch`` — λ'_max(B) of H_B and G_B: per-batch points, mean ± 95% bootstrap CI, each model's
curve;
* ``noise_spectrum`` — SLQ density of H_B − H against the semicircle of radius 2ν (ν² measured and predicted);
* ``lr_vs_batch``    — measured η_max(B) (strict, per seed) against predictions and baselines, per optimizer;
* ``montecarlo``     — Monte-Carlo top eigenvalues of spiked Wigner / Wishart matrices against rmt's formulas.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from validation.store import ResultStore

MODEL_STYLES = {
    "additive_homogeneous": ("C0", "-", "additive (homogeneous)"),
    "additive_bulk": ("C1", "--", "additive (measured bulk)"),
    "additive_profile": ("C2", "-.", "additive (row-sum profile)"),
    "multiplicative": ("C3", ":", "multiplicative (Bai–Yao)"),
    "free_fit": ("0.4", "-", "free fit a + b B^-s"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=90, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _f(value: Any) -> float:
    return float(value)


def _log_axes(ax: Any) -> None:
    """Log-log axes with plain major tick labels only (minor labels overlap on short ranges)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _predictions(store: ResultStore) -> list[dict[str, Any]]:
    return store.records("predictions")


def draw_densities(store: ResultStore, folder: Path) -> list[Path]:
    plt = _pyplot()
    specs = store.records("spectra")
    if not specs:
        return []
    fig, axes = plt.subplots(1, len(specs), figsize=(4.2 * len(specs), 3.4), squeeze=False)
    for ax, spec in zip(axes[0], specs, strict=True):
        slq = spec["hessian_slq"]
        ax.semilogy(
            slq["grid"], np.maximum(np.asarray(slq["density"], float), 1e-8), "k-", lw=1.6, label="H (pool)"
        )
        for i, rec in enumerate(store.records("noise_spectrum", model=spec["model"], ckpt=spec["ckpt"])):
            b = rec["batch_slq"]
            ax.semilogy(
                b["grid"],
                np.maximum(np.asarray(b["density"], float), 1e-8),
                color=f"C{i}",
                lw=1,
                label=f"H_B, B={rec['B']}",
            )
        ax.set_title(f"{spec['model']} ckpt {spec['ckpt']}")
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("SLQ density")
        ax.legend(fontsize=7)
    return _save(fig, folder, "densities")


def draw_lambda_vs_batch(store: ResultStore, folder: Path) -> list[Path]:
    plt = _pyplot()
    preds = _predictions(store)
    if not preds:
        return []
    fig, axes = plt.subplots(len(preds), 2, figsize=(10, 3.6 * len(preds)), squeeze=False)
    for row, pred in zip(axes, preds, strict=True):
        for ax, target in zip(row, ("H", "G"), strict=True):
            t = pred["targets"][target]
            grid = np.asarray(pred["grid"], float)
            field = "lam_max_H" if target == "H" else "lam_max_G"
            for rec in store.records("sweep", model=pred["model"], ckpt=pred["ckpt"]):
                ax.plot(rec["B"], _f(rec[field]), ".", color="0.6", ms=4)
            means = np.array([_f(t["measured"][str(b)]["mean"]) for b in pred["grid"]])
            lo = np.array([_f(t["measured"][str(b)]["lo"]) for b in pred["grid"]])
            hi = np.array([_f(t["measured"][str(b)]["hi"]) for b in pred["grid"]])
            ax.errorbar(
                grid, means, yerr=[means - lo, hi - means], fmt="ko", ms=4, capsize=2, label="measured"
            )
            for name, curve in t["curves"].items():
                color, style, label = MODEL_STYLES.get(name, ("C5", "-", name))
                ax.plot(grid, np.asarray(curve, float), color=color, ls=style, label=label)
            b_star = _f(t["critical_batch"])
            if (
                math.isfinite(b_star) and grid.min() / 2 <= b_star <= grid.max() * 2
            ):  # B* inside the plotted range
                ax.axvline(b_star, color="0.8", lw=0.8)
            _log_axes(ax)
            ax.set_xlabel("batch size B")
            ax.set_ylabel(f"λ'_max({target}_B)")
            ax.set_title(
                f"{pred['model']} ckpt {pred['ckpt']}: {target}_B (best: {t['best_model']})", fontsize=9
            )
            ax.legend(fontsize=6)
    return _save(fig, folder, "lambda_vs_batch")


def draw_noise_spectrum(store: ResultStore, folder: Path) -> list[Path]:
    plt = _pyplot()
    recs = store.records("noise_spectrum")
    if not recs:
        return []
    fig, axes = plt.subplots(1, len(recs), figsize=(3.8 * len(recs), 3.2), squeeze=False)
    for ax, rec in zip(axes[0], recs, strict=True):
        from rmt.wigner import semicircle_density

        slq = rec["noise_slq"]
        grid = np.asarray(slq["grid"], float)
        ax.plot(grid, slq["density"], "k-", lw=1.4, label="H_B − H (SLQ)")
        nu = math.sqrt(max(_f(rec["nu2_measured"]), 0.0))
        ax.plot(grid, semicircle_density(grid, nu), "C0--", label=f"semicircle, ν²={nu * nu:.3g} (measured)")
        pred = next((p for p in store.records("predictions", model=rec["model"], ckpt=rec["ckpt"])), None)
        if pred is not None:
            for item in pred["noise_spectrum"]:
                if int(item["B"]) == int(rec["B"]) and _f(item["nu2_predicted"]) > 0:
                    nu_p = math.sqrt(_f(item["nu2_predicted"]))
                    ax.plot(grid, semicircle_density(grid, nu_p), "C3:", label=f"ν²={nu_p**2:.3g} (κPσ²)")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, None)  # log scale shows the tails beyond ±2ν (low-rank per-sample noise)
        ax.set_title(f"{rec['model']} ckpt {rec['ckpt']}, B={rec['B']}", fontsize=9)
        ax.set_xlabel("eigenvalue")
        ax.legend(fontsize=6)
    return _save(fig, folder, "noise_spectrum")


def draw_lr_vs_batch(store: ResultStore, folder: Path) -> list[Path]:
    plt = _pyplot()
    analyses = store.records("lr_analysis")
    if not analyses:
        return []
    n_opt = max(len(a["optimizers"]) for a in analyses)
    fig, axes = plt.subplots(len(analyses), n_opt, figsize=(4.2 * n_opt, 3.5 * len(analyses)), squeeze=False)
    for row, an in zip(axes, analyses, strict=True):
        for ax, (opt, res) in zip(row, an["optimizers"].items(), strict=False):
            for b, vals in res["measured_strict"].items():
                ax.plot([int(b)] * len(vals), vals, ".", color="0.5", ms=4)
            grid = np.asarray(res["batch_sizes"], float)
            ax.plot(grid, res["median_strict"], "ko-", ms=4, label="measured (strict, median)")
            ax.plot(grid, res["median_lenient"], "k^:", ms=4, label="measured (lenient)")
            for i, (name, curve) in enumerate(res["predictors"].items()):
                style = "--" if name.startswith("baseline") else "-"
                ax.plot(grid, np.asarray(curve, float), color=f"C{i % 10}", ls=style, lw=1, label=name)
            _log_axes(ax)
            ax.set_xlabel("batch size B")
            ax.set_ylabel("η_max")
            ax.set_title(f"{an['model']} ckpt {an['ckpt']}: {opt}", fontsize=9)
            ax.legend(fontsize=5)
    return _save(fig, folder, "lr_vs_batch")


def draw_montecarlo(store: ResultStore, folder: Path) -> list[Path]:
    plt = _pyplot()
    recs = [r for r in store.records("montecarlo") if r.get("available")]
    if not recs:
        return []
    rec = recs[0]
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3))
    for ax, part, xlabel in (
        (axes[0], "wigner", "spike θ (ν = 1)"),
        (axes[1], "wishart", "spike ℓ (σ² = 1)"),
    ):
        d = rec[part]
        x = np.asarray(d["spikes"], float)
        ax.plot(x, d["theory"], "k-", label="theory")
        ax.errorbar(
            x, d["mc_mean"], yerr=d["mc_sd"], fmt="C3o", ms=4, capsize=2, label=f"Monte Carlo (P={d['P']})"
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top eigenvalue")
        ax.set_title(d["title"], fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, folder, "montecarlo")


def draw_all(run_dir: str | Path) -> list[Path]:
    """Draw every figure of the run folder from its stored records; returns the written files."""
    store = ResultStore(run_dir)
    folder = store.root / "figures"
    out: list[Path] = []
    for draw in (
        draw_densities,
        draw_lambda_vs_batch,
        draw_noise_spectrum,
        draw_lr_vs_batch,
        draw_montecarlo,
    ):
        out.extend(draw(store, folder))
    return out
