"""Figures of a run, drawn from its stored records only (``batchrmt figures DIR`` redraws without
recomputing).

Each figure is written as PNG and PDF into ``<run>/figures/``:

* ``densities``       — SLQ density of the pool Hessian H against batch Hessians H_B (B of the noise-spectrum
  cells);
* ``lambda_vs_batch`` — λ'_max(B) of H_B and G_B: per-batch points, mean ± 95% bootstrap CI, each spectrum
  model's curve (names and colours from ``validation.experiments.spectrum_models.SPECTRUM_MODELS``);
* ``per_sample``      — the per-sample curvature distribution (step 3b, samples outside the pool): survival
  function of the top eigenvalue of H_i and G_i, |λ_min(H_i)| and u_1ᵀG_iu_1, in units of λ_1 of the pool
  matrix; the λ'(B) panels of ``lambda_vs_batch`` carry the sample-spike model's 10–90% band and B_×;
* ``noise_spectrum``  — SLQ density of H_B − H against the semicircle of radius 2ν (ν² measured and
  predicted);
* ``lr_vs_batch``     — measured η_max(B) (strict per seed and median, lenient median) against the predictors
  and baselines of ``validation.experiments.lr_analysis.LR_PREDICTORS``, per optimizer;
* ``montecarlo``      — Monte-Carlo top eigenvalues of spiked Wigner / Wishart matrices against the
  closed forms.

Readable at README size: text ≥ 8 pt at a width of at most ~10 inches, batch-size axes labelled at every
decade with the measured B marked as ticks, one legend per figure where the panels share their curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from validation import steps
from validation.config import REPLICA_SEPARATOR
from validation.experiments.analysis_records import LRAnalysisRecord, PredictionRecord
from validation.experiments.lr_analysis import LR_PREDICTORS
from validation.experiments.montecarlo import STEP as MONTECARLO_STEP
from validation.experiments.spectrum_models import SPECTRUM_MODELS, TARGETS
from validation.experiments.spectrum_scoring import STEP as PREDICTION_STEP
from validation.records import decode_float
from validation.store import ResultStore

__all__ = ["FONT_SIZE", "LEGEND_SIZE", "draw_all"]

FONT_SIZE = 9.0
LEGEND_SIZE = 8.5
"""Legend text in points (≥ 8: readable when a figure is shown at README width)."""
DPI = 100
MAX_COLUMNS = 3
PANEL = (3.3, 2.9)
"""Width and height of one panel in inches."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": FONT_SIZE,
            "axes.titlesize": FONT_SIZE,
            "axes.labelsize": FONT_SIZE,
            "xtick.labelsize": 8.5,
            "ytick.labelsize": 8.5,
            "legend.fontsize": LEGEND_SIZE,
        }
    )
    return plt


def _subplots(n_panels: int, n_cols: int, extra_height: float = 0.0) -> tuple[Any, list[Any]]:
    """A constrained-layout grid of ``n_panels`` panels in at most ``n_cols`` columns (unused axes hidden)."""
    plt = _pyplot()
    cols = max(1, min(n_cols, n_panels))
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(PANEL[0] * cols, PANEL[1] * rows + extra_height),
        squeeze=False,
        layout="constrained",
    )
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def _save(fig: Any, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=DPI, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _number(value: float) -> str:
    return f"{value:g}"


def batch_axis(ax: Any, batch_sizes: Sequence[float]) -> None:
    """Log x axis labelled at every decade in range, with the measured batch sizes as (labelled) ticks;
    a B label within a factor 1.3 of a decade label or of the previous B label is left off (its tick
    stays), so labels such as "8" and "10" never touch at the 8.5 pt tick font."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    b = sorted({float(v) for v in batch_sizes if v > 0})
    if not b:
        return
    ax.set_xscale("log")
    lo, hi = b[0] / 1.3, b[-1] * 1.3
    ax.set_xlim(lo, hi)
    decades = [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    decades = [d for d in decades if lo <= d <= hi]
    labelled: list[float] = list(decades)
    for v in b:
        if all(max(v, d) / min(v, d) >= 1.3 for d in labelled):
            labelled.append(v)
    ax.xaxis.set_major_locator(FixedLocator(sorted(labelled)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _number(v)))
    ax.xaxis.set_minor_locator(FixedLocator([v for v in b if v not in labelled]))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size B")


def log_value_axis(ax: Any) -> None:
    """Log y axis with plain-number labels at every decade, and at 2× and 5× when it spans less than two
    decades (so that at least two labels show)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    span = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    subs = (1.0, 2.0, 5.0) if span < 2 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _number(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _figure_legend(fig: Any, axes: Sequence[Any], n_cols: int) -> None:
    """One legend under the panels with every distinct label of ``axes``."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()), list(handles), loc="outside lower center", ncols=n_cols, frameon=False
        )


def _registry_order(curves: dict[str, Any]) -> dict[str, Any]:
    """``curves`` keyed by predictor, in registration order (unregistered keys of older records last)."""
    order = {key: i for i, key in enumerate(LR_PREDICTORS.keys())}
    return dict(sorted(curves.items(), key=lambda kv: order.get(kv[0], len(order))))


def _predictions(store: ResultStore) -> list[PredictionRecord]:
    return [PredictionRecord.from_dict(r) for r in store.records(PREDICTION_STEP)]


def draw_densities(store: ResultStore, folder: Path) -> list[Path]:
    specs = store.records(steps.SPECTRA)
    if not specs:
        return []
    fig, axes = _subplots(len(specs), MAX_COLUMNS)
    for ax, spec in zip(axes, specs, strict=True):
        slq = spec["hessian_slq"]
        density = np.maximum(np.asarray(slq["density"], float), 1e-8)
        ax.semilogy(slq["grid"], density, "k-", lw=1.6, label="H (pool)")
        for i, rec in enumerate(store.records(steps.NOISE_SPECTRUM, model=spec["model"], ckpt=spec["ckpt"])):
            b = rec["batch_slq"]
            batch_density = np.maximum(np.asarray(b["density"], float), 1e-8)
            ax.semilogy(b["grid"], batch_density, color=f"C{i}", lw=1, label=f"H_B, B = {rec['B']}")
        ax.set_title(f"{spec['model']}, checkpoint {spec['ckpt']}")
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("spectral density (SLQ)")
        ax.legend(loc="upper right")
    return _save(fig, folder, "densities")


def _lambda_panel(ax: Any, store: ResultStore, pred: PredictionRecord, target: str) -> None:
    t = pred.targets[target]
    grid = np.asarray(pred.grid, float)
    spec = TARGETS[target]
    sign = -1.0 if spec.side == "bottom" else 1.0
    cells = store.records(steps.SWEEP, model=pred.model, ckpt=pred.ckpt)
    ax.plot(
        [c["B"] for c in cells],
        [sign * decode_float(c[spec.sweep_field]) for c in cells],
        ".",
        color="0.6",
        ms=4,
        label="measured, per batch",
    )
    means = np.array([t.measured[b].mean for b in pred.grid])
    lo = np.array([t.measured[b].lo for b in pred.grid])
    hi = np.array([t.measured[b].hi for b in pred.grid])
    ax.errorbar(
        grid, means, yerr=[means - lo, hi - means], fmt="ko", ms=4, capsize=2, label="measured mean ± 95% CI"
    )
    for key in SPECTRUM_MODELS.keys() + [k for k in t.curves if k not in SPECTRUM_MODELS]:
        if key in t.curves:
            color, style = SPECTRUM_MODELS.style(key)
            ax.plot(
                grid,
                np.asarray(t.curves[key], float),
                color=color,
                ls=style,
                lw=1.4,
                label=SPECTRUM_MODELS.label(key),
            )
    band = t.bands.get("sample_spikes")
    if band is not None:
        color, _ = SPECTRUM_MODELS.style("sample_spikes")
        ax.fill_between(
            grid,
            np.asarray(band.low, float),
            np.asarray(band.high, float),
            color=color,
            alpha=0.18,
            lw=0,
            label="sample spikes: 10–90% band over batches",
        )
        bx = band.crossover_batch
        if math.isfinite(bx) and grid.min() / 1.3 <= bx <= grid.max() * 1.3:
            ax.axvline(bx, color=color, ls=":", lw=1.2, label="B_× (sample spikes ↔ shared spike)")
    if math.isfinite(t.critical_batch) and grid.min() / 1.3 <= t.critical_batch <= grid.max() * 1.3:
        ax.axvline(t.critical_batch, color="0.75", lw=0.8, label="B* (homogeneous additive)")
    batch_axis(ax, pred.grid)
    log_value_axis(ax)
    ax.set_ylabel(spec.quantity)
    extra = ""
    if band is not None:
        extra = f"\nB_× = {band.crossover_batch:.3g}, band coverage {band.coverage:.0%}"
    ax.set_title(
        f"{pred.model}, checkpoint {pred.ckpt}: {spec.matrix}\n"
        f"best: {SPECTRUM_MODELS.label(t.best_model)}{extra}"
    )


def _training_seed(model: str) -> int:
    """The training-seed index of a model record's name (``vgg.s2`` → 2; a plain name → 0)."""
    _, sep, tail = model.rpartition(f"{REPLICA_SEPARATOR}s")
    return int(tail) if sep and tail.isdigit() else 0


def draw_lambda_vs_batch(store: ResultStore, folder: Path) -> list[Path]:
    """λ'(B) panels, one row per (model, checkpoint) and one column per target: ``lambda_vs_batch`` for
    training seed 0 (or the only seed), ``lambda_vs_batch_s<k>`` for each further training seed, so a figure
    keeps one row per configured model and checkpoint however many seeds the run has."""
    by_seed: dict[int, list[PredictionRecord]] = {}
    for pred in _predictions(store):
        by_seed.setdefault(_training_seed(pred.model), []).append(pred)
    out: list[Path] = []
    n_cols = len(TARGETS)
    for seed, preds in sorted(by_seed.items()):
        fig, axes = _subplots(n_cols * len(preds), n_cols, extra_height=0.8)
        for i, pred in enumerate(preds):
            for j, target in enumerate(TARGETS):
                ax = axes[n_cols * i + j]
                if target in pred.targets:
                    _lambda_panel(ax, store, pred, target)
                else:
                    ax.set_axis_off()  # H has no negative eigenvalue at this checkpoint
        _figure_legend(fig, axes, n_cols)
        out += _save(fig, folder, "lambda_vs_batch" if seed == 0 else f"lambda_vs_batch_s{seed}")
    return out


def _survival(ax: Any, values: np.ndarray, label: str, color: str, style: str = "-") -> None:
    """Empirical survival function P(X ≥ x) of the positive ``values`` on log–log axes."""
    v = np.sort(values[np.isfinite(values) & (values > 0)])
    if v.size == 0:
        return
    ax.step(v, 1.0 - np.arange(v.size) / v.size, where="post", color=color, ls=style, lw=1.4, label=label)


def draw_per_sample(store: ResultStore, folder: Path) -> list[Path]:
    recs = [r for r in store.records(steps.PER_SAMPLE) if r.get("available", True)]
    if not recs:
        return []
    fig, axes = _subplots(len(recs), MAX_COLUMNS, extra_height=0.8)
    for ax, rec in zip(axes, recs, strict=True):
        spec = store.get(steps.SPECTRA, rec["key"])
        lam_h = decode_float(spec["hessian_top"]["eigenvalues"][0])
        lam_g = decode_float(spec["ggn_top"]["eigenvalues"][0])
        h, g = rec["hessian"], rec["ggn"]
        load = store.load_array
        _survival(ax, np.asarray(load(h["top"]), float) / lam_h, "λ_max(H_i) / λ_1(H)", "C0")
        _survival(ax, -np.asarray(load(h["bottom"]), float) / lam_h, "|λ_min(H_i)| / λ_1(H)", "C0", "--")
        _survival(ax, np.asarray(load(g["eigenvalues"]), float)[:, 0] / lam_g, "λ_max(G_i) / λ_1(G)", "C3")
        ray = np.asarray(load(g["rayleigh"]), float)
        if ray.ndim == 2 and ray.shape[1]:
            _survival(ax, ray[:, 0] / lam_g, "u_1ᵀG_iu_1 / λ_1(G)", "C3", ":")
        ax.axvline(1.0, color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("per-sample value / λ_1 of the pool matrix")
        ax.set_ylabel("fraction of samples ≥ x")
        ax.set_title(
            f"{rec['model']}, checkpoint {rec['ckpt']}: {rec['num_samples']} held-out samples\n"
            f"rank G_i ≤ {g['rank_max']}, P_eff = {decode_float(g['p_eff']):.3g}"
        )
    _figure_legend(fig, axes, 2)
    return _save(fig, folder, "per_sample")


def draw_noise_spectrum(store: ResultStore, folder: Path) -> list[Path]:
    from rmt.wigner import semicircle_density

    recs = store.records(steps.NOISE_SPECTRUM)
    if not recs:
        return []
    predicted = {
        (p.model, p.ckpt, item.B): item.nu2_predicted
        for p in _predictions(store)
        for item in p.noise_spectrum
    }
    fig, axes = _subplots(len(recs), MAX_COLUMNS)
    for ax, rec in zip(axes, recs, strict=True):
        slq = rec["noise_slq"]
        grid = np.asarray(slq["grid"], float)
        ax.plot(grid, slq["density"], "k-", lw=1.4, label="SLQ of H_B − H")
        nu2 = max(decode_float(rec["nu2_measured"]), 0.0)
        ax.plot(
            grid,
            semicircle_density(grid, math.sqrt(nu2)),
            "C0--",
            label=f"semicircle, measured ν² = {nu2:.3g}",
        )
        nu2_p = predicted.get((rec["model"], int(rec["ckpt"]), int(rec["B"])), math.nan)
        if math.isfinite(nu2_p) and nu2_p > 0:
            ax.plot(
                grid,
                semicircle_density(grid, math.sqrt(nu2_p)),
                "C3:",
                lw=1.6,
                label=f"semicircle, κ(B)·Pσ² = {nu2_p:.3g}",
            )
        ax.set_yscale("log")
        ax.set_ylim(1e-4, None)  # the log scale shows the tails beyond ±2ν (low-rank per-sample noise)
        ax.set_title(f"{rec['model']}, checkpoint {rec['ckpt']}, B = {rec['B']}")
        ax.set_xlabel("eigenvalue of H_B − H")
        ax.set_ylabel("spectral density")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    return _save(fig, folder, "noise_spectrum")


def _lr_panel(ax: Any, an: LRAnalysisRecord, opt: str) -> None:
    res = an.optimizers[opt]
    for b, vals in res.measured_strict.items():
        ax.plot([b] * len(vals), vals, ".", color="0.55", ms=5, label="measured, strict, per seed")
    grid = np.asarray(res.batch_sizes, float)
    ax.plot(grid, res.median_strict, "ko-", ms=4, label="measured, strict (median)")
    ax.plot(grid, res.median_lenient, "k^:", ms=4, label="measured, lenient (median)")
    shown = [v for vals in res.measured_strict.values() for v in vals if v > 0]
    for key, curve in _registry_order(res.predictors).items():
        color, style = LR_PREDICTORS.style(key)
        ax.plot(grid, np.asarray(curve, float), color=color, ls=style, lw=1.3, label=LR_PREDICTORS.label(key))
        if key not in LR_PREDICTORS or LR_PREDICTORS[key].kind != "baseline":
            shown += [v for v in curve if math.isfinite(v) and v > 0]
    if shown:  # baselines far outside the measured and predicted range are cut off (see the report table)
        ax.set_ylim(min(shown) / 2, max(shown) * 2)
    batch_axis(ax, res.batch_sizes)
    log_value_axis(ax)
    ax.set_ylabel("maximal stable learning rate η_max")
    curvature = "c/√λ'" if opt == "adam" else "c/λ'"
    ax.set_title(f"{an.model}, checkpoint {an.ckpt}: {opt} ({curvature})")


def draw_lr_vs_batch(store: ResultStore, folder: Path) -> list[Path]:
    analyses = [LRAnalysisRecord.from_dict(r) for r in store.records(steps.LR_ANALYSIS)]
    panels = [(an, opt) for an in analyses for opt in an.optimizers]
    if not panels:
        return []
    fig, axes = _subplots(len(panels), MAX_COLUMNS, extra_height=0.9)
    for ax, (an, opt) in zip(axes, panels, strict=True):
        _lr_panel(ax, an, opt)
    _figure_legend(fig, axes, 3)
    return _save(fig, folder, "lr_vs_batch")


def draw_montecarlo(store: ResultStore, folder: Path) -> list[Path]:
    recs = [r for r in store.records(MONTECARLO_STEP) if r.get("available")]
    if not recs:
        return []
    rec = recs[0]
    fig, axes = _subplots(2, 2, extra_height=0.4)
    for ax, part, xlabel in (
        (axes[0], "wigner", "spike θ (noise scale ν = 1)"),
        (axes[1], "wishart", "spike ℓ (σ² = 1)"),
    ):
        d = rec[part]
        x = np.asarray(d["spikes"], float)
        ax.plot(x, d["theory"], "k-", label="theory")
        ax.errorbar(
            x,
            d["mc_mean"],
            yerr=d["mc_sd"],
            fmt="C3o",
            ms=4,
            capsize=2,
            label=f"Monte Carlo mean ± 1 sd (P = {d['P']}, {d['reps']} draws)",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top eigenvalue")
        ax.set_title(d["title"])
    _figure_legend(fig, axes, 2)
    return _save(fig, folder, "montecarlo")


FIGURES: dict[str, Callable[[ResultStore, Path], list[Path]]] = {
    "densities": draw_densities,
    "lambda_vs_batch": draw_lambda_vs_batch,
    "per_sample": draw_per_sample,
    "noise_spectrum": draw_noise_spectrum,
    "lr_vs_batch": draw_lr_vs_batch,
    "montecarlo": draw_montecarlo,
}
"""Every figure of a run: name → its drawing function (each independent of the others)."""
FIGURE_COST = {"lambda_vs_batch": 4.0, "noise_spectrum": 2.5, "densities": 2.0, "per_sample": 2.0}
"""Relative drawing time (for ordering parallel drawing; 1 when absent)."""


def draw_figure(run_dir: str, name: str) -> dict[str, list[str]]:
    """Draw the figure ``name`` of :data:`FIGURES` from the run folder's records; ``{"paths": [...]}`` (the
    form of a :class:`validation.execution.Cell` result, so that figures can be drawn on worker processes)."""
    store = ResultStore(run_dir)
    return {"paths": [str(p) for p in FIGURES[name](store, store.root / "figures")]}


def draw_all(run_dir: str | Path) -> list[Path]:
    """Draw every figure of the run folder from its stored records; returns the written files."""
    return [Path(p) for name in FIGURES for p in draw_figure(str(run_dir), name)["paths"]]
