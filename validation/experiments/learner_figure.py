"""The figure of the SLQ learner experiment, ``figures/learner.{png,pdf}``: test accuracy against epoch and
wall time, test loss, and the learning-rate, curvature (L, μ) and momentum traces of the SLQ arms (seed 0)
next to the tuned baseline's schedule and the fixed rate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from validation.experiments.learner_config import FIXED_ARM, SLQ_ARMS, LearnerConfig
from validation.experiments.learner_summary import Record, record_float


def mean_curve(cells: list[Record], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean over seeds of ``key``, mean wall times) on the evaluation points all cells share."""
    length = min(len(c["curve"]) for c in cells)
    epochs = np.array([cells[0]["curve"][i]["epoch"] for i in range(length)])
    values = np.array([[record_float(c["curve"][i][key]) for i in range(length)] for c in cells])
    walls = np.array([[record_float(c["curve"][i]["wall_time"]) for i in range(length)] for c in cells])
    return epochs, np.nanmean(values, axis=0), np.nanmean(walls, axis=0)


def _plot_slq_traces(axes: Any, arm: str, first: Record, color: Any) -> None:
    """lr (and the rmt max-lr prediction), L and μ, and momentum of one SLQ arm's first seed."""
    steps = [p["step"] for p in first["curve"][1:]]
    trace = first["trace"]
    t_steps = [t["step"] for t in trace]
    end = [steps[-1]] if steps else []
    lrs = [t["lr"] for t in trace]
    axes[1, 0].step(t_steps + end, lrs + lrs[-1:] * len(end), where="post", color=color, label=arm)
    predicted = [record_float(t.get("predicted_max_lr")) for t in trace]
    if any(math.isfinite(v) for v in predicted):
        axes[1, 0].plot(t_steps, predicted, "x", color=color, label=f"{arm}: rmt max lr at B")
    axes[1, 1].plot(t_steps, [t["L"] for t in trace], "-o", color=color, ms=3, label=f"L ({arm})")
    axes[1, 1].plot(t_steps, [t["mu"] for t in trace], "--s", color=color, ms=3, label=f"μ ({arm})")
    momenta = [t["momentum"] for t in trace]
    axes[1, 2].step(t_steps + end, momenta + momenta[-1:] * len(end), where="post", color=color, label=arm)


def _plot_arm(
    axes: Any, config: LearnerConfig, arm: str, cells: list[Record], tuned: str | None, color: Any
) -> None:
    """The curves of one arm: mean test accuracy / loss over seeds, and its lr / momentum."""
    label = arm + (" (tuned)" if arm == tuned else "")
    style = "-" if arm in SLQ_ARMS or arm == tuned else ":"
    epochs, acc, wall = mean_curve(cells, "eval_accuracy")
    _, loss, _ = mean_curve(cells, "eval_loss")
    axes[0, 0].plot(epochs, acc, style, color=color, label=label, marker="o", ms=3)
    axes[0, 1].plot(wall, acc, style, color=color, label=label, marker="o", ms=3)
    axes[0, 2].plot(epochs, loss, style, color=color, label=label, marker="o", ms=3)
    first = min(cells, key=lambda c: c["seed"])
    if arm in SLQ_ARMS:
        _plot_slq_traces(axes, arm, first, color)
    elif arm == tuned:
        steps = [p["step"] for p in first["curve"][1:]]
        axes[1, 0].plot(steps, [p["lr"] for p in first["curve"][1:]], ":", color=color, label=label)
        axes[1, 2].axhline(config.baseline_momentum, ls=":", color=color, label=label)
    elif arm == FIXED_ARM:
        axes[1, 0].axhline(record_float(first["initial_lr"]), ls=":", color=color, label=arm)


def _label_axes(axes: Any) -> None:
    axes[0, 0].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy (mean over seeds)")
    axes[0, 1].set(
        xlabel="wall time [s] (curvature work included)",
        ylabel="test accuracy",
        title="test accuracy vs wall time",
    )
    axes[0, 2].set(xlabel="epoch", ylabel="test loss", yscale="log", title="test loss")
    axes[1, 0].set(xlabel="step", ylabel="learning rate", yscale="log", title="learning rate (seed 0)")
    axes[1, 1].set(xlabel="step", ylabel="curvature", yscale="log", title="SLQ L = max|θ| and μ (seed 0)")
    axes[1, 2].set(xlabel="step", ylabel="momentum β", title="momentum (seed 0)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)


def plot_learner(config: LearnerConfig, records: list[Record], summary: dict[str, Any], folder: Path) -> Path:
    """Six panels: test accuracy vs epoch and vs wall time, test loss vs epoch, lr traces, L and μ, momentum;
    written as ``learner.png`` and ``learner.pdf`` under ``folder``; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    palette = plt.get_cmap("tab10")
    for i, arm in enumerate(config.arm_names()):
        cells = [r for r in records if r["arm"] == arm]
        if cells:
            _plot_arm(axes, config, arm, cells, summary["tuned_baseline"], palette(i % 10))
    _label_axes(axes)
    fig.suptitle(
        f"SLQ learner vs lineage SGD — {config.dataset}, PreResNet-{config.depth} width {config.width:g}, "
        f"{config.epochs} epochs, {config.seeds} seeds ({config.name} config)"
    )
    fig.tight_layout()
    png = folder / "learner.png"
    fig.savefig(png, dpi=110)
    fig.savefig(folder / "learner.pdf")
    plt.close(fig)
    return png
