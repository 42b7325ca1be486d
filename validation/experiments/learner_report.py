"""The report of the SLQ learner experiment: ``report.md`` (setup, final test accuracy per arm with 95%
Student-t intervals over seeds, the paired verdicts against the tuned baseline, the learner's curvature
traces),
``summary.json`` (:func:`validation.experiments.learner_summary.summarize`) and the figure
(:mod:`validation.experiments.learner_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from validation.experiments.learner_config import SLQ_ARMS, LearnerConfig
from validation.experiments.learner_figure import plot_learner
from validation.experiments.learner_summary import Record, record_float, summarize
from validation.store import atomic_write_json, atomic_write_text

BN_WORDS = {
    "auto": "auto: batch statistics of the subset",
    "train": "batch statistics of the subset",
    "eval": "running statistics",
}


def fmt(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, ``n/a`` when not finite."""
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _setup(config: LearnerConfig, n_params: int) -> list[str]:
    c = config
    return [
        f"# SLQ on-the-fly learner vs tuned lineage SGD ({c.name} config)",
        "",
        f"Data {c.dataset}: {c.train_size} training images (seeded subset), first {c.test_size} test images; "
        f"PreResNet-{c.depth} ({'bottleneck' if c.bottleneck else 'basic'} blocks, width {c.width:g}, "
        f"{n_params:,} parameters); {c.epochs} epochs at batch {c.batch_size}, weight decay "
        f"{c.weight_decay:g}, augmentation {'on' if c.augment else 'off'}; {c.seeds} seeds "
        "(seed = initialisation, data subset, batch order).",
        f"Learner: {c.lanczos_steps} Lanczos steps on the {c.matrix} of a fixed {c.curvature_size}-image "
        f"curvature subset (BN {BN_WORDS.get(c.bn_mode, c.bn_mode)}) every {c.every} steps; μ by "
        f"'{c.mu_mode}', floor {c.mu_floor_ratio:g}·L, safety {c.safety:g}, lr cap {c.lr_max}. "
        "sgd rule: η = 2/(L+μ); heavy ball: Polyak η = 4/(√L+√μ)², β = ((√L−√μ)/(√L+√μ))².",
        "Wall times include the learner's curvature work and the per-epoch test evaluation (same for all "
        "arms); timings are on a shared machine (contended).",
        "",
    ]


def _accuracy_table(summary: dict[str, Any]) -> list[str]:
    arms, tuned = summary["arms"], summary["tuned_baseline"]
    lines = [
        "## Final test accuracy (mean, 95% Student-t CI over seeds)",
        "",
        "| arm | initial lr | test acc | 95% CI | test loss | last-epoch train loss | wall s | curvature s | "
        "curvature products | diverged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in arms.items():
        if not a["seeds"]:
            continue
        low, high = a["accuracy_ci"]
        name = f"**{arm}** (tuned)" if arm == tuned else arm
        lines.append(
            f"| {name} | {fmt(a['initial_lr_mean'], 4)} | {fmt(a['accuracy_mean'])} | "
            f"[{fmt(low)}, {fmt(high)}] | {fmt(a['loss_mean'])} | {fmt(a['train_loss_mean'])} | "
            f"{fmt(a['wall_time_mean'], 1)} | "
            f"{fmt(a['curvature_time_mean'], 1)} | {a['products_mean']:.0f} | {a['diverged']} |"
        )
    return lines


def _verdicts(config: LearnerConfig, summary: dict[str, Any]) -> list[str]:
    arms, tuned = summary["arms"], summary["tuned_baseline"]
    lines = ["", "## Verdict (paired by seed: arm − tuned baseline, final test accuracy)", ""]
    for arm, c in summary["comparisons"].items():
        low, high = c["ci"]
        lines.append(
            f"- **{arm}** vs {tuned}: Δ = {fmt(c['mean'])} (95% CI [{fmt(low)}, {fmt(high)}], "
            f"{len(c['seeds'])} seeds; per seed {', '.join(fmt(d, 3) for d in c['differences'])}): "
            f"{c['verdict']}."
        )
    lines.append(
        "- Intervals: Student t with n−1 degrees of freedom over seeds. The tuned baseline is the grid point "
        "with the best mean test accuracy on these same seeds, so its selection favours it slightly."
    )
    slq_time = [arms[a]["wall_time_mean"] for a in SLQ_ARMS if arms[a]["seeds"]]
    if tuned is not None and slq_time:
        lines.append(
            f"- Cost: the SLQ arms took {fmt(float(np.mean(slq_time)) / arms[tuned]['wall_time_mean'], 2)}"
            f"× the tuned baseline's wall time per run; but the baseline needed a grid of "
            f"{len(config.baseline_lrs)} runs to be tuned, the learner one."
        )
    return lines


def _traces(records: list[Record]) -> list[str]:
    lines = ["", "## Curvature traces (seed 0)", ""]
    for arm in SLQ_ARMS:
        cell = next((r for r in records if r["arm"] == arm and r["seed"] == 0), None)
        if cell is None:
            continue
        lines += [
            f"### {arm}",
            "",
            "| step | L | μ (raw) | lr | momentum | rmt max lr at B | products | seconds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in cell["trace"]:
            lines.append(
                f"| {t['step']} | {fmt(record_float(t['L']), 3)} | {fmt(record_float(t['mu']), 4)} "
                f"({fmt(record_float(t['mu_raw']), 4)}) | {fmt(record_float(t['lr']), 4)} | "
                f"{fmt(record_float(t['momentum']), 3)} | "
                f"{fmt(record_float(t.get('predicted_max_lr')), 4)} | "
                f"{t['num_products']} | {fmt(record_float(t['wall_time']), 2)} |"
            )
        lines.append("")
    return lines


def render_report(config: LearnerConfig, records: list[Record], summary: dict[str, Any]) -> str:
    """The Markdown text of ``report.md``."""
    n_params = records[0]["n_params"] if records else 0
    lines = [
        *_setup(config, n_params),
        *_accuracy_table(summary),
        *_verdicts(config, summary),
        *_traces(records),
        "'rmt max lr at B': the stability bound for the training batch size, max_lr(λ'(B)) with λ'(B) = "
        "batch_hessian_extremal(L, σ², P, B, N) and Pσ² from per_sample_noise on the curvature subset (L "
        "treated as the full-data λ₁). μ (raw) is μ before clipping to [floor, L].",
        "",
        "![learner](figures/learner.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(config: LearnerConfig, records: list[Record], folder: Path) -> Path:
    """``report.md``, ``summary.json`` and ``figures/learner.{png,pdf}`` under ``folder``; returns the
    report's path."""
    summary = summarize(config, records)
    plot_learner(config, records, summary, folder / "figures")
    atomic_write_json(folder / "summary.json", summary)
    report = folder / "report.md"
    atomic_write_text(report, render_report(config, records, summary))
    return report
