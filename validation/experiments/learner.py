"""The SLQ learner experiment (``batchrmt learner``): train every (arm, seed) cell of a
:class:`~validation.experiments.learner_config.LearnerConfig` and store one record per cell.

The SLQ learner (docs/theory.md §6) sets lr / momentum on the fly from Lanczos; it is compared with a tuned
lineage-SGD baseline and with fixed-lr SGD at the learner's first rate (the arms are listed in
:mod:`validation.experiments.learner_config`). Records go to the run's
:class:`~validation.store.ResultStore` under ``records/learner/`` (atomic writes); the config goes to
``learner-config.json``. As with ``batchrmt run``, a folder that already holds records is refused unless
``resume=True``, which checks that the config is the same and skips every finished cell. Then the summary,
``report.md`` and ``figures/learner.{png,pdf}`` are written (:mod:`validation.experiments.learner_report`).
The wall time of every arm includes its curvature work (the learner's refreshes run inside
``optimizer.step``) and the periodic test evaluation (same for all arms).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from validation import steps
from validation.experiments.learner_config import FIXED_ARM, SLQ_ARMS, LearnerConfig
from validation.store import ResultStore, atomic_write_json, cell_key

STEP = steps.LEARNER
CONFIG_FILE = "learner-config.json"
"""The config of the run, in the run folder (a learner config file that ``batchrmt learner --config``
reads)."""


@dataclass
class ExperimentData:
    """One seed's data: training subset, test images, the learner's curvature batch, data shape."""

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
        raise ValueError(
            f"config fields 'train_size' and 'test_size' must be at most the {len(train_full)} training "
            f"and {len(test_full)} test images of {config.dataset!r}, got {config.train_size} and "
            f"{config.test_size}"
        )
    rng = np.random.default_rng(seed)
    train = train_full.subset(np.sort(rng.permutation(len(train_full))[: config.train_size]))
    test = test_full.subset(np.arange(config.test_size))
    pick = np.random.default_rng(seed + 7919).permutation(config.train_size)[: config.curvature_size]
    index = torch.as_tensor(pick)
    curvature = (train.x[index].to(device), train.y[index].to(device))
    return ExperimentData(train, test, curvature, int(train.num_classes), int(train.x.shape[1]))


def build_model(config: LearnerConfig, data: ExperimentData, seed: int, device: str) -> nn.Module:
    """PreResNet-``depth`` initialised with ``torch.manual_seed(seed)``."""
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
    """The :class:`networks.slq_learner.SLQLearner` of an SLQ arm (``rule`` "sgd" or "heavy_ball")."""
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


@dataclass
class ArmOptimizer:
    """The optimizer of one arm, its lr schedule (lineage arms) and the learner (SLQ arms)."""

    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float] | None = None
    learner: Any = None

    def initial_lr(self) -> float | None:
        """The learning rate of the first step (the learner's, the schedule's, or the fixed one)."""
        if self.learner is not None:
            trace = self.learner.trace_dicts()
            return float(trace[0]["lr"]) if trace else None
        if self.schedule is not None:
            return self.schedule(0)
        return float(self.optimizer.param_groups[0]["lr"])


def arm_optimizer(
    config: LearnerConfig, arm: str, model: nn.Module, data: ExperimentData, seed: int, fixed_lr: float | None
) -> ArmOptimizer:
    """The optimizer of ``arm`` for ``model``; ``fixed_lr`` is the slq-sgd learner's first rate (the
    ``fixed-slq-lr`` arm only)."""
    from networks.training import lineage_schedule, make_optimizer

    if arm in SLQ_ARMS:
        learner = make_learner(config, model, data, "sgd" if arm == "slq-sgd" else "heavy_ball", seed)
        return ArmOptimizer(learner, learner=learner)
    if arm == FIXED_ARM:
        if fixed_lr is None or not fixed_lr > 0:
            raise ValueError(f"the {FIXED_ARM} arm needs the slq-sgd learner's initial lr, got {fixed_lr!r}")
        return ArmOptimizer(
            make_optimizer("sgd", model.parameters(), fixed_lr, weight_decay=config.weight_decay)
        )
    if arm.startswith("lineage-") and arm in config.arm_names():
        base_lr = float(arm.removeprefix("lineage-"))
        optimizer = make_optimizer(
            "momentum",
            model.parameters(),
            base_lr,
            momentum=config.baseline_momentum,
            weight_decay=config.weight_decay,
        )
        return ArmOptimizer(
            optimizer, schedule=lineage_schedule(base_lr, config.epochs * config.steps_per_epoch)
        )
    raise ValueError(f"arm must be one of {config.arm_names()}, got {arm!r}")


def run_cell(
    config: LearnerConfig,
    arm: str,
    seed: int,
    data: ExperimentData,
    device: str,
    fixed_lr: float | None = None,
) -> dict[str, Any]:
    """Train one arm for one seed and return its JSON-able record: the test curve (epoch 0 = before
    training), the learner's curvature trace, costs and the final test accuracy / loss."""
    from networks.training import evaluate, train

    model = build_model(config, data, seed, device)
    loss_fn = nn.CrossEntropyLoss()
    arm_opt = arm_optimizer(config, arm, model, data, seed, fixed_lr)
    initial_loss, initial_accuracy = evaluate(model, loss_fn, data.test)
    start = time.perf_counter()
    history = train(
        model,
        loss_fn,
        data.train,
        optimizer=arm_opt.optimizer,
        batch_size=config.batch_size,
        seed=seed,
        epochs=config.epochs,
        augment=config.augment,
        lr_schedule=arm_opt.schedule,
        eval_data=data.test,
        progress=False,
    )
    wall = time.perf_counter() - start
    start_point = {
        "step": 0,
        "epoch": 0.0,
        "eval_loss": initial_loss,
        "eval_accuracy": initial_accuracy,
        "wall_time": 0.0,
        "lr": None,
        "train_loss": None,
        "diverged": False,
    }
    learner = arm_opt.learner
    trace = learner.trace_dicts() if learner is not None else []
    final = history.final
    return {
        "arm": arm,
        "seed": seed,
        "config": config.to_dict(),
        "device": device,
        "n_params": sum(p.numel() for p in model.parameters()),
        "curve": [start_point, *history.to_dicts()],
        "trace": trace,
        "total_products": learner.total_products if learner is not None else 0,
        "curvature_time": float(sum(r["wall_time"] for r in trace)),
        "initial_lr": arm_opt.initial_lr(),
        "final_accuracy": final.eval_accuracy,
        "final_loss": final.eval_loss,
        "diverged": bool(final.diverged),
        "wall_time": wall,
    }


def _config_json(config: LearnerConfig) -> dict[str, Any]:
    """The config as it reads back from JSON (what records and ``learner-config.json`` hold)."""
    return dict(json.loads(json.dumps(config.to_dict())))


def prepare_folder(store: ResultStore, config: LearnerConfig, resume: bool) -> None:
    """Write ``learner-config.json``; refuse a folder that holds records unless ``resume``, and with
    ``resume`` a folder whose stored config differs."""
    path = store.root / CONFIG_FILE
    if resume and path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != _config_json(config):
            raise ValueError(
                f"--resume: the config differs from the one stored in {path}; use the same config "
                f"(batchrmt learner --config {path} --out {store.root} --resume) or a new --out"
            )
        return
    if not resume and store.records(STEP):
        raise ValueError(
            f"{store.root} already holds a learner run; pass --resume to continue it or choose a new --out"
        )
    atomic_write_json(path, config.to_dict())


def run_learner_experiment(
    config: LearnerConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Run every (arm, seed) cell into the folder ``out`` (with ``resume``, only those without a record of
    this config); write the summary, report and figure; return the report's path."""
    from validation.experiments.learner_report import write_report

    store = ResultStore(out)
    say = log or (lambda _msg: None)
    wanted = _config_json(config)
    full: tuple[Any, Any] | None = None
    with store.locked():
        prepare_folder(store, config, resume)
        for seed in range(config.seeds):
            data: ExperimentData | None = None
            for arm in config.arm_names():
                key = cell_key(arm=arm, seed=seed)
                if resume and store.has(STEP, key) and store.get(STEP, key).get("config") == wanted:
                    continue
                if data is None:
                    full = full if full is not None else load_full_data(config)
                    data = load_experiment_data(config, seed, device, full)
                fixed_lr = None
                if arm == FIXED_ARM:
                    fixed_lr = float(store.get(STEP, cell_key(arm="slq-sgd", seed=seed))["initial_lr"])
                record = store.put(STEP, key, run_cell(config, arm, seed, data, device, fixed_lr=fixed_lr))
                say(
                    f"[learner] {arm:>16s} seed {seed}: test acc {record['final_accuracy']:.4f}, "
                    f"{record['wall_time']:.1f} s ({record['curvature_time']:.1f} s curvature)"
                )
        records = [r for r in store.records(STEP) if r.get("config") == wanted]
        return write_report(config, records, store.root)
