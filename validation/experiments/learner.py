"""The SLQ learner experiment: on-the-fly lr / momentum from Lanczos against a tuned lineage SGD baseline.

Arms, all with the same model initialisation, batch order, epochs and weight decay per seed:

* ``slq-sgd``: :class:`networks.slq_learner.SLQLearner`, rule "sgd" (η = 2/(L+μ), no momentum);
* ``slq-heavy-ball``: the same with Polyak's heavy-ball η, β;
* ``lineage-<lr>``: SGD with momentum 0.9 and the lineage schedule (constant 50%, linear to 1% at 90%) for
  each lr of a small grid; the *tuned baseline* is the grid point with the best mean final test accuracy;
* ``fixed-slq-lr``: plain SGD at the learning rate the ``slq-sgd`` learner picks at initialisation.

One JSON record per (arm, seed) in ``records/learner/`` (atomic writes; finished cells are skipped on a
rerun), then ``report.md`` and ``figures/learner.{png,pdf}``. The wall time of every arm includes its
curvature work (the learner's refreshes run inside ``optimizer.step``) and the periodic test evaluation (same
for all arms).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from validation import steps

CONFIG_NAMES = ("smoke", "default", "paper-cifar100")
STEP = steps.LEARNER
SLQ_ARMS = ("slq-sgd", "slq-heavy-ball")
FIXED_ARM = "fixed-slq-lr"


@dataclass(frozen=True)
class LearnerConfig:
    """Everything one learner experiment depends on (stored in every record)."""

    name: str
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    train_size: int = 2048
    test_size: int = 1000
    depth: int = 20
    bottleneck: bool = False
    width: float = 0.25
    epochs: int = 3
    batch_size: int = 64
    seeds: int = 3
    augment: bool = False
    weight_decay: float = 3e-4
    baseline_lrs: tuple[float, ...] = (0.03, 0.1, 0.3)
    baseline_momentum: float = 0.9
    curvature_size: int = 128
    every_epochs: float = 1.0
    lanczos_steps: int = 12
    matrix: str = "hessian"
    mu_mode: str = "positive"
    safety: float = 1.0
    mu_floor_ratio: float = 1e-2
    lr_max: float | None = 2.0
    predict: bool = False  # the rmt max-lr prediction costs a per-sample noise estimate per refresh
    noise_samples: int = 16
    bn_mode: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> LearnerConfig:
        ints = {
            "train_size": 2,
            "test_size": 1,
            "depth": 2,
            "epochs": 1,
            "batch_size": 1,
            "seeds": 1,
            "curvature_size": 1,
            "lanczos_steps": 2,
        }
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.batch_size > self.train_size or self.curvature_size > self.train_size:
            raise ValueError(f"batch_size and curvature_size must be <= train_size ({self.train_size})")
        for name in ("width", "every_epochs", "safety"):
            if not (isinstance(getattr(self, name), (int, float)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not self.baseline_lrs or any(not lr > 0 for lr in self.baseline_lrs):
            raise ValueError(
                f"baseline_lrs must be a non-empty tuple of positive rates, got {self.baseline_lrs!r}"
            )
        if not 0 <= self.baseline_momentum < 1:
            raise ValueError(f"baseline_momentum must lie in [0, 1), got {self.baseline_momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        return self

    @property
    def steps_per_epoch(self) -> int:
        return self.train_size // self.batch_size

    @property
    def every(self) -> int:
        """Refresh period of the learner in optimiser steps."""
        return max(1, round(self.every_epochs * self.steps_per_epoch))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["baseline_lrs"] = list(self.baseline_lrs)
        return out


def learner_config(name: str = "default", **overrides: Any) -> LearnerConfig:
    """The named config (``smoke`` ≤ 40 s, ``default`` ≈ 4 CPU-minutes, ``paper-cifar100`` for a GPU)
    with field overrides (``None`` values are ignored)."""
    presets: dict[str, dict[str, Any]] = {
        "smoke": dict(
            train_size=256,
            test_size=200,
            depth=8,
            width=0.25,
            epochs=2,
            batch_size=32,
            seeds=2,
            baseline_lrs=(0.05, 0.2),
            curvature_size=64,
            lanczos_steps=6,
            predict=False,
        ),
        "default": {},
        "paper-cifar100": dict(
            dataset="cifar100",
            train_size=50_000,
            test_size=10_000,
            depth=110,
            bottleneck=True,
            width=1.0,
            epochs=200,
            batch_size=128,
            augment=True,
            weight_decay=3e-4,
            baseline_lrs=(0.05, 0.1, 0.2),
            curvature_size=1024,
            every_epochs=1.0,
            lanczos_steps=20,
            lr_max=None,
        ),
    }
    if name not in presets:
        raise ValueError(f"config must be one of {CONFIG_NAMES}, got {name!r}")
    fields = {"name": name, **presets[name], **{k: v for k, v in overrides.items() if v is not None}}
    return LearnerConfig(**fields).validate()


def arm_names(config: LearnerConfig) -> list[str]:
    """Arms in run order (the fixed-lr arm needs the slq-sgd record of the same seed)."""
    return [*SLQ_ARMS, *(f"lineage-{lr:g}" for lr in config.baseline_lrs), FIXED_ARM]


# ----------------------------------------------------------------------------------------------------
# one (arm, seed) cell
# ----------------------------------------------------------------------------------------------------
@dataclass
class ExperimentData:
    train: Any
    test: Any
    curvature: tuple[torch.Tensor, torch.Tensor]
    num_classes: int
    in_channels: int


def load_full_data(config: LearnerConfig) -> tuple[Any, Any]:
    """The full training and test sets of ``config.dataset`` (loaded once per experiment)."""
    from networks.data import load_dataset

    return (
        load_dataset(config.dataset, root=config.data_root, train=True),
        load_dataset(config.dataset, root=config.data_root, train=False),
    )


def load_experiment_data(
    config: LearnerConfig, seed: int, device: str, full: tuple[Any, Any] | None = None
) -> ExperimentData:
    """Seeded training subset, the first ``test_size`` test images, and the curvature subset (a fixed part of
    the training subset; no augmentation)."""
    train_full, test_full = full if full is not None else load_full_data(config)
    if config.train_size > len(train_full) or config.test_size > len(test_full):
        raise ValueError(f"train_size/test_size exceed the data ({len(train_full)}/{len(test_full)} images)")
    rng = np.random.default_rng(seed)
    train = train_full.subset(np.sort(rng.permutation(len(train_full))[: config.train_size]))
    test = test_full.subset(np.arange(config.test_size))
    pick = np.random.default_rng(seed + 7919).permutation(config.train_size)[: config.curvature_size]
    index = torch.as_tensor(pick)
    curvature = (train.x[index].to(device), train.y[index].to(device))
    return ExperimentData(train, test, curvature, int(train.num_classes), int(train.x.shape[1]))


def build_model(config: LearnerConfig, data: ExperimentData, seed: int, device: str) -> nn.Module:
    from networks.models import preresnet

    torch.manual_seed(seed)
    model = preresnet(
        config.depth,
        num_classes=data.num_classes,
        bottleneck=config.bottleneck,
        width=config.width,
        in_channels=data.in_channels,
    )
    return model.to(device)


def make_learner(config: LearnerConfig, model: nn.Module, data: ExperimentData, rule: str, seed: int) -> Any:
    from networks.slq_learner import SLQLearner

    return SLQLearner(
        model.parameters(),
        model,
        nn.CrossEntropyLoss(),
        data.curvature,
        every=config.every,
        lanczos_steps=config.lanczos_steps,
        matrix=config.matrix,
        rule=rule,
        mu_mode=config.mu_mode,
        safety=config.safety,
        mu_floor_ratio=config.mu_floor_ratio,
        lr_max=config.lr_max,
        weight_decay=config.weight_decay,
        bn_mode=config.bn_mode,
        seed=seed,
        predicted_batch_size=config.batch_size if config.predict else None,
        n_data=config.train_size,
        noise_samples=config.noise_samples,
        noise_probes=1,
    )


def run_cell(
    config: LearnerConfig,
    arm: str,
    seed: int,
    data: ExperimentData,
    device: str,
    fixed_lr: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one arm for one seed and return its JSON-able record."""
    from networks.training import evaluate, lineage_schedule, make_optimizer, train

    model = build_model(config, data, seed, device)
    loss_fn = nn.CrossEntropyLoss()
    total_steps = config.epochs * config.steps_per_epoch
    schedule: Callable[[int], float] | None = None
    learner = None
    if arm in SLQ_ARMS:
        learner = make_learner(config, model, data, "sgd" if arm == "slq-sgd" else "heavy_ball", seed)
        optimizer = learner
    elif arm == FIXED_ARM:
        if fixed_lr is None or not fixed_lr > 0:
            raise ValueError(f"the {FIXED_ARM} arm needs the slq-sgd learner's initial lr, got {fixed_lr!r}")
        optimizer = make_optimizer("sgd", model.parameters(), fixed_lr, weight_decay=config.weight_decay)
    elif arm.startswith("lineage-"):
        base_lr = float(arm.removeprefix("lineage-"))
        optimizer = make_optimizer(
            "momentum",
            model.parameters(),
            base_lr,
            momentum=config.baseline_momentum,
            weight_decay=config.weight_decay,
        )
        schedule = lineage_schedule(base_lr, total_steps)
    else:
        raise ValueError(f"unknown arm {arm!r}; arms are {arm_names(config)}")
    initial_loss, initial_accuracy = evaluate(model, loss_fn, data.test)
    start = time.perf_counter()
    history = train(
        model,
        loss_fn,
        data.train,
        optimizer=optimizer,
        batch_size=config.batch_size,
        seed=seed,
        epochs=config.epochs,
        augment=config.augment,
        lr_schedule=schedule,
        eval_data=data.test,
        progress=progress,
    )
    wall = time.perf_counter() - start
    curve = [
        {
            "step": 0,
            "epoch": 0.0,
            "eval_loss": initial_loss,
            "eval_accuracy": initial_accuracy,
            "wall_time": 0.0,
            "lr": None,
            "train_loss": None,
            "diverged": False,
        },
        *history.to_dicts(),
    ]
    final = history.final
    trace = learner.trace_dicts() if learner is not None else []
    return {
        "arm": arm,
        "seed": seed,
        "config": config.to_dict(),
        "device": device,
        "n_params": sum(p.numel() for p in model.parameters()),
        "curve": curve,
        "trace": trace,
        "total_products": learner.total_products if learner is not None else 0,
        "curvature_time": float(sum(r["wall_time"] for r in trace)),
        "initial_lr": trace[0]["lr"]
        if trace
        else (fixed_lr if arm == FIXED_ARM else schedule(0) if schedule else None),
        "final_accuracy": final.eval_accuracy,
        "final_loss": final.eval_loss,
        "diverged": bool(final.diverged),
        "wall_time": wall,
    }


# ----------------------------------------------------------------------------------------------------
# the whole experiment
# ----------------------------------------------------------------------------------------------------
def run_learner_experiment(
    config: LearnerConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Run every (arm, seed) cell not yet stored under ``out``; write report and figures; return the "
    "report."""
    from validation.store import ResultStore, cell_key

    store = ResultStore(out)
    say = log or (lambda _msg: None)
    full: tuple[Any, Any] | None = None
    with store.locked():
        for seed in range(config.seeds):
            data: ExperimentData | None = None
            for arm in arm_names(config):
                key = cell_key(arm=arm, seed=seed)
                if store.has(STEP, key) and store.get(STEP, key).get("config") == _jsonable_config(config):
                    continue
                if data is None:
                    full = full if full is not None else load_full_data(config)
                    data = load_experiment_data(config, seed, device, full)
                fixed_lr = None
                if arm == FIXED_ARM:
                    fixed_lr = float(store.get(STEP, cell_key(arm="slq-sgd", seed=seed))["initial_lr"])
                record = run_cell(config, arm, seed, data, device, fixed_lr=fixed_lr, progress=False)
                store.put(STEP, key, record)
                say(
                    f"[learner] {arm:>16s} seed {seed}: test acc {record['final_accuracy']:.4f}, "
                    f"{record['wall_time']:.1f} s ({record['curvature_time']:.1f} s curvature)"
                )
        records = [r for r in store.records(STEP) if r.get("config") == _jsonable_config(config)]
        return write_report(config, records, Path(out))


def _jsonable_config(config: LearnerConfig) -> dict[str, Any]:
    from validation.store import _jsonable

    return dict(_jsonable(config.to_dict()))


# ----------------------------------------------------------------------------------------------------
# summary, verdict, report and figure
# ----------------------------------------------------------------------------------------------------
def _value(x: Any) -> float:
    return float(x) if x is not None else math.nan


def _ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t CI of the mean, ``x̄ ± t_{(1+c)/2, n−1} · s/√n`` (s with ddof 1); (nan, nan) for n < 2.

    With 3–5 seeds a bootstrap interval of the mean is far too narrow (3 values have 10 distinct resamples);
    the t interval is exact for normal seed-to-seed scatter and honest about the few degrees of freedom.
    """
    from scipy.stats import t as student_t

    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size < 2:
        return math.nan, math.nan
    quantile = float(student_t.ppf(0.5 + confidence / 2, finite.size - 1))
    half = quantile * float(np.std(finite, ddof=1)) / math.sqrt(finite.size)
    mean = float(np.mean(finite))
    return mean - half, mean + half


def _last_train_loss(cells: list[dict[str, Any]]) -> float:
    """Mean over seeds of the training loss averaged over the last epoch (nan without cells)."""
    values = [_value(c["curve"][-1]["train_loss"]) for c in cells]
    return float(np.nanmean(values)) if values else math.nan


def summarize(config: LearnerConfig, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-arm final accuracy / loss (mean, CI), costs, the tuned baseline and paired differences to it."""
    by_arm: dict[str, dict[int, dict[str, Any]]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], {})[int(r["seed"])] = r
    arms: dict[str, Any] = {}
    for arm in arm_names(config):
        cells = by_arm.get(arm, {})
        acc = [_value(c["final_accuracy"]) for c in cells.values()]
        arms[arm] = {
            "seeds": sorted(cells),
            "accuracy": acc,
            "accuracy_mean": float(np.nanmean(acc)) if acc else math.nan,
            "accuracy_ci": _ci(acc),
            "loss_mean": float(np.nanmean([_value(c["final_loss"]) for c in cells.values()]))
            if cells
            else math.nan,
            "train_loss_mean": _last_train_loss(list(cells.values())),
            "wall_time_mean": float(np.mean([c["wall_time"] for c in cells.values()])) if cells else math.nan,
            "curvature_time_mean": float(np.mean([c["curvature_time"] for c in cells.values()]))
            if cells
            else 0.0,
            "products_mean": float(np.mean([c["total_products"] for c in cells.values()])) if cells else 0.0,
            "initial_lr_mean": float(np.mean([_value(c["initial_lr"]) for c in cells.values()]))
            if cells
            else math.nan,
            "diverged": int(sum(bool(c["diverged"]) for c in cells.values())),
        }
    lineage = [a for a in arms if a.startswith("lineage-") and arms[a]["seeds"]]
    tuned = max(lineage, key=lambda a: np.nan_to_num(arms[a]["accuracy_mean"], nan=-1.0)) if lineage else None
    comparisons: dict[str, Any] = {}
    if tuned is not None:
        for arm in (*SLQ_ARMS, FIXED_ARM):
            seeds = sorted(set(by_arm.get(arm, {})) & set(by_arm[tuned]))
            diffs = [
                _value(by_arm[arm][s]["final_accuracy"]) - _value(by_arm[tuned][s]["final_accuracy"])
                for s in seeds
            ]
            low, high = _ci(diffs)
            if not diffs:
                verdict = "not run"
            elif math.isnan(low):
                verdict = "too few seeds for an interval"
            elif high < 0:
                verdict = "worse than the tuned baseline"
            elif low > 0:
                verdict = "better than the tuned baseline"
            else:
                verdict = "not distinguishable from the tuned baseline at this number of seeds"
            comparisons[arm] = {
                "seeds": seeds,
                "differences": diffs,
                "mean": float(np.mean(diffs)) if diffs else math.nan,
                "ci": (low, high),
                "verdict": verdict,
            }
    return {"arms": arms, "tuned_baseline": tuned, "comparisons": comparisons}


def _mean_curve(cells: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, wall times) of ``key`` over seeds, on the common evaluation points."""
    length = min(len(c["curve"]) for c in cells)
    epochs = np.array([c["curve"][i]["epoch"] for i in range(length) for c in cells[:1]])
    values = np.array([[_value(c["curve"][i][key]) for i in range(length)] for c in cells])
    walls = np.array([[_value(c["curve"][i]["wall_time"]) for i in range(length)] for c in cells])
    return epochs, np.nanmean(values, axis=0), np.nanmean(walls, axis=0)


def plot_learner(
    config: LearnerConfig, records: list[dict[str, Any]], summary: dict[str, Any], folder: Path
) -> Path:
    """Six panels: test accuracy vs epoch and vs wall time, test loss vs epoch, lr traces, L and μ, "
    "momentum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    palette = plt.get_cmap("tab10")
    colors = {arm: palette(i % 10) for i, arm in enumerate(arm_names(config))}
    tuned = summary["tuned_baseline"]
    for arm in arm_names(config):
        cells = [r for r in records if r["arm"] == arm]
        if not cells:
            continue
        label = arm + (" (tuned)" if arm == tuned else "")
        style = "-" if arm in SLQ_ARMS or arm == tuned else ":"
        epochs, acc, wall = _mean_curve(cells, "eval_accuracy")
        _, loss, _ = _mean_curve(cells, "eval_loss")
        axes[0, 0].plot(epochs, acc, style, color=colors[arm], label=label, marker="o", ms=3)
        axes[0, 1].plot(wall, acc, style, color=colors[arm], label=label, marker="o", ms=3)
        axes[0, 2].plot(epochs, loss, style, color=colors[arm], label=label, marker="o", ms=3)
        first = min(cells, key=lambda c: c["seed"])
        steps = [p["step"] for p in first["curve"][1:]]
        if arm in SLQ_ARMS:
            trace = first["trace"]
            t_steps = [t["step"] for t in trace]
            end = [steps[-1]] if steps else []
            lrs = [t["lr"] for t in trace]
            axes[1, 0].step(
                t_steps + end, lrs + lrs[-1:] * len(end), where="post", color=colors[arm], label=arm
            )
            predicted = [_value(t.get("predicted_max_lr")) for t in trace]
            if any(math.isfinite(v) for v in predicted):
                axes[1, 0].plot(t_steps, predicted, "x", color=colors[arm], label=f"{arm}: rmt max lr at B")
            axes[1, 1].plot(
                t_steps, [t["L"] for t in trace], "-o", color=colors[arm], ms=3, label=f"L ({arm})"
            )
            axes[1, 1].plot(
                t_steps, [t["mu"] for t in trace], "--s", color=colors[arm], ms=3, label=f"μ ({arm})"
            )
            axes[1, 2].step(
                t_steps + end,
                [t["momentum"] for t in trace] + [trace[-1]["momentum"]] * len(end),
                where="post",
                color=colors[arm],
                label=arm,
            )
        elif arm == tuned:
            axes[1, 0].plot(steps, [p["lr"] for p in first["curve"][1:]], ":", color=colors[arm], label=label)
            axes[1, 2].axhline(config.baseline_momentum, ls=":", color=colors[arm], label=label)
        elif arm == FIXED_ARM:
            axes[1, 0].axhline(_value(first["initial_lr"]), ls=":", color=colors[arm], label=arm)
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


def _bn_words(bn_mode: str) -> str:
    return {
        "auto": "auto: batch statistics of the subset",
        "train": "batch statistics of the subset",
        "eval": "running statistics",
    }.get(bn_mode, bn_mode)


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def render_report(config: LearnerConfig, records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    arms, tuned = summary["arms"], summary["tuned_baseline"]
    n_params = records[0]["n_params"] if records else 0
    lines = [
        f"# SLQ on-the-fly learner vs tuned lineage SGD ({config.name} config)",
        "",
        f"Data {config.dataset}: {config.train_size} training images (seeded subset), first "
        f"{config.test_size} "
        f"test images; PreResNet-{config.depth} ({'bottleneck' if config.bottleneck else 'basic'} blocks, "
        "width "
        f"{config.width:g}, {n_params:,} parameters); {config.epochs} epochs at batch {config.batch_size}, "
        "weight "
        f"decay {config.weight_decay:g}, augmentation {'on' if config.augment else 'off'}; {config.seeds} "
        "seeds "
        "(seed = initialisation, data subset, batch order).",
        f"Learner: {config.lanczos_steps} Lanczos steps on the {config.matrix} of a fixed "
        f"{config.curvature_size}-"
        f"image curvature subset (BN {_bn_words(config.bn_mode)}) every {config.every} steps; μ by "
        f"'{config.mu_mode}', "
        f"floor {config.mu_floor_ratio:g}·L, safety {config.safety:g}, lr cap {config.lr_max}. "
        "sgd rule: η = 2/(L+μ); heavy ball: Polyak η = 4/(√L+√μ)², β = ((√L−√μ)/(√L+√μ))².",
        "Wall times include the learner's curvature work and the per-epoch test evaluation (same for all "
        "arms); "
        "timings are on a shared machine (contended).",
        "",
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
            f"| {name} | {_fmt(a['initial_lr_mean'], 4)} | {_fmt(a['accuracy_mean'])} | "
            f"[{_fmt(low)}, {_fmt(high)}] | {_fmt(a['loss_mean'])} | {_fmt(a['train_loss_mean'])} | "
            f"{_fmt(a['wall_time_mean'], 1)} | "
            f"{_fmt(a['curvature_time_mean'], 1)} | {a['products_mean']:.0f} | {a['diverged']} |"
        )
    lines += ["", "## Verdict (paired by seed: arm − tuned baseline, final test accuracy)", ""]
    for arm, c in summary["comparisons"].items():
        low, high = c["ci"]
        lines.append(
            f"- **{arm}** vs {tuned}: Δ = {_fmt(c['mean'])} (95% CI [{_fmt(low)}, {_fmt(high)}], "
            f"{len(c['seeds'])} seeds; per seed {', '.join(_fmt(d, 3) for d in c['differences'])}): "
            f"{c['verdict']}."
        )
    lines.append(
        "- Intervals: Student t with n−1 degrees of freedom over seeds. The tuned baseline is the grid point "
        "with the best mean test accuracy on these same seeds, so its selection favours it slightly."
    )
    slq_time = [arms[a]["wall_time_mean"] for a in SLQ_ARMS if arms[a]["seeds"]]
    if tuned is not None and slq_time:
        lines.append(
            f"- Cost: the SLQ arms took {_fmt(float(np.mean(slq_time)) / arms[tuned]['wall_time_mean'], 2)}"
            f"× the tuned baseline's wall time per run; but the baseline needed a grid of "
            f"{len(config.baseline_lrs)} runs to be tuned, the learner one."
        )
    lines += ["", "## Curvature traces (seed 0)", ""]
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
                f"| {t['step']} | {_fmt(_value(t['L']), 3)} | {_fmt(_value(t['mu']), 4)} "
                f"({_fmt(_value(t['mu_raw']), 4)}) | {_fmt(_value(t['lr']), 4)} | "
                f"{_fmt(_value(t['momentum']), 3)} | {_fmt(_value(t.get('predicted_max_lr')), 4)} | "
                f"{t['num_products']} | {_fmt(_value(t['wall_time']), 2)} |"
            )
        lines.append("")
    lines += [
        "'rmt max lr at B': the stability bound for the training batch size, max_lr(λ'(B)) with λ'(B) = "
        "batch_hessian_extremal(L, σ², P, B, N) and Pσ² from per_sample_noise on the curvature subset (L "
        "treated "
        "as the full-data λ₁). μ (raw) is μ before clipping to [floor, L].",
        "",
        "![learner](figures/learner.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(config: LearnerConfig, records: list[dict[str, Any]], folder: Path) -> Path:
    """``report.md``, ``summary.json`` and ``figures/learner.{png,pdf}`` under ``folder``; returns the "
    "report."""
    from validation.store import atomic_write_json, atomic_write_text

    summary = summarize(config, records)
    plot_learner(config, records, summary, folder / "figures")
    atomic_write_json(folder / "summary.json", summary)
    report = folder / "report.md"
    atomic_write_text(report, render_report(config, records, summary))
    return report
