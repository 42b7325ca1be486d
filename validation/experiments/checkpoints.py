"""Step 1 of the pipeline: the study's data pool, its models, and checkpoints at fixed loss levels.

A checkpoint w_c is the first point of a training run (from a seeded initialisation, independent of the
batch sizes under test) where the pool loss falls below ``fraction × L(w_0)`` (checked every ``eval_every``
steps). The protocol (docs/validation.md §3b): plain SGD with batch ``batch_size`` (0: the whole pool, i.e.
gradient descent), computed in ``train_dtype`` — float64 by default — and saved in the run's dtype. The
SGD trajectory of the default VGG is chaotic: float32 rounding differences (another CPU instruction set,
another thread count) grow to O(1) before the first checkpoint, so λ₁(H) there changed by up to 2× between
AVX-512 and AVX2; computed in float64 the same differences start 10⁹ times smaller and the checkpoints agree
to ~10⁻¹⁰ in loss and 10⁻⁸ in λ₁ (§3b's table). Optionally (``lr_rule="sharpness"``) the step size is kept
below the edge of stability, η_t = min(lr, edge_fraction · 2 / λ̂₁(H_t)), with λ̂₁ the top eigenvalue of
the pool-loss Hessian from a few seeded Lanczos products, re-estimated every ``eval_every`` steps (it did
not make the float32 trajectory reproducible: the sensitivity is not only at the edge of stability).

A level that is not reached within ``max_steps`` (or a diverged run) raises
:class:`CheckpointTargetMissed` with ``on_missed="fail"``; with ``"flag"`` its record keeps
``reached: False`` and the report marks it. State dicts are written with ``torch.save`` (atomically) and
read back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from validation import steps
from validation.config import CheckpointConfig, ModelConfig, RunConfig
from validation.errors import RunStopped
from validation.provenance import derived_seed, file_hash, indices_hash, timed

if TYPE_CHECKING:
    from networks.data import ArrayDataset

from validation.sources import build_user_model, is_reference, load_user_data
from validation.store import ResultStore, atomic_write_bytes, cell_key

STEP = steps.CHECKPOINTS

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Pool:
    """The fixed training pool of N samples on which every empirical operator (H, G) is defined."""

    x: Tensor
    y: Tensor
    num_classes: int
    name: str
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1]) if self.x.ndim == 4 else 1

    def subset(self, indices: np.ndarray) -> Pool:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return Pool(self.x[idx], self.y[idx], self.num_classes, self.name, self.indices[np.asarray(indices)])


def load_dataset_of(config: RunConfig, objects: Mapping[str, Any] | None = None) -> ArrayDataset:
    """The configured training set, whole: a built-in one (``networks.data.load_dataset``; raises its
    ``DatasetNotFoundError`` when the files are missing) or your own (:mod:`validation.sources`)."""
    from networks.data import load_dataset

    kwargs: dict[str, Any] = dict(config.data_kwargs)
    if is_reference(config.data):
        return load_user_data(config.data, kwargs, objects)
    if config.data_root is not None:
        kwargs["root"] = config.data_root
    return load_dataset(config.data, train=True, **kwargs)


def subset_pool(config: RunConfig, data: ArrayDataset, indices: np.ndarray) -> Pool:
    """The samples at ``indices`` of ``data`` as a :class:`Pool` in the run's dtype and device."""
    idx = torch.as_tensor(indices)
    x = data.x[idx].to(device=torch.device(config.device), dtype=_DTYPES[config.dtype])
    y = data.y[idx].to(torch.device(config.device))
    return Pool(x=x, y=y, num_classes=int(data.num_classes), name=str(data.name), indices=indices)


def load_pool(config: RunConfig, objects: Mapping[str, Any] | None = None) -> Pool:
    """The study's pool: a seeded subset of ``pool_size`` training samples of the configured data set."""
    data = load_dataset_of(config, objects)
    n_total = len(data)
    if config.pool_size > n_total:
        raise ValueError(
            f"config field 'pool_size' must be at most the {n_total} samples of {config.data!r}, "
            f"got {config.pool_size}"
        )
    rng = np.random.default_rng(derived_seed(config.seed, "pool"))
    indices = np.sort(rng.choice(n_total, size=config.pool_size, replace=False)).astype(np.int64)
    return subset_pool(config, data, indices)


def loss_function() -> nn.Module:
    """The study's loss: mean cross-entropy over the batch (the empirical risk whose Hessian is H)."""
    return nn.CrossEntropyLoss()


def _attempt_key(attempt: int) -> tuple[int, ...]:
    """Extra seed-derivation key of a retraining ``attempt`` (none for the first: its seeds are unchanged)."""
    return (attempt,) if attempt else ()


def build_network(
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: Pool,
    objects: Mapping[str, Any] | None = None,
    attempt: int = 0,
) -> nn.Module:
    """A freshly initialised network (seeded by the run seed and the model name), in the run's
    dtype/device: a built-in spec through ``networks.models.build_model``, or your own model
    (:mod:`validation.sources`)."""
    from networks.models import build_model

    kwargs = dict(model_cfg.kwargs)
    if is_reference(model_cfg.spec):
        torch.manual_seed(derived_seed(config.seed, model_cfg.name, "init", *_attempt_key(attempt)))
        model = build_user_model(model_cfg.spec, kwargs, objects)
        return model.to(device=torch.device(config.device), dtype=_DTYPES[config.dtype])
    if (
        model_cfg.spec.lower().startswith("mlp")
        and "in_features" not in kwargs
        and "image_size" not in kwargs
    ):
        kwargs["in_features"] = int(np.prod(pool.x.shape[1:]))
    torch.manual_seed(derived_seed(config.seed, model_cfg.name, "init", *_attempt_key(attempt)))
    model = build_model(model_cfg.spec, num_classes=pool.num_classes, in_channels=pool.in_channels, **kwargs)
    return model.to(device=torch.device(config.device), dtype=_DTYPES[config.dtype])


def pool_dataset(pool: Pool) -> Any:
    """The pool as a ``networks.data.ArrayDataset`` (what ``networks.training`` consumes)."""
    from networks.data import ArrayDataset

    return ArrayDataset(x=pool.x, y=pool.y, num_classes=pool.num_classes, name=pool.name)


@dataclass
class _Samples:
    """The pool's tensors in the checkpoint training's dtype (what ``networks.training`` consumes)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _in_dtype(pool: Pool, dtype: torch.dtype) -> Pool:
    """The pool with its inputs in ``dtype`` (the checkpoint training's)."""
    if pool.x.dtype == dtype:
        return pool
    return Pool(pool.x.to(dtype), pool.y, pool.num_classes, pool.name, pool.indices)


def _save_state(store: ResultStore, name: str, model: nn.Module, dtype: torch.dtype) -> tuple[str, str]:
    """Write the state dict (floating tensors cast to the run's ``dtype``) atomically; (path, sha256)."""
    buf = io.BytesIO()
    state = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu()
        for k, v in model.state_dict().items()
    }
    torch.save(state, buf)
    path = store.checkpoint_path(name)
    atomic_write_bytes(path, buf.getvalue())
    return str(path.relative_to(store.root)), file_hash(path)


def load_checkpoint(
    store: ResultStore,
    record: dict[str, Any],
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: Pool,
    objects: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The network of a checkpoint record (``torch.load(weights_only=True)``; the file hash is verified)."""
    path = store.root / record["path"]
    if file_hash(path) != record["sha256"]:
        raise RuntimeError(f"checkpoint {path} does not match the hash in its record; rerun without --resume")
    model = build_network(config, model_cfg, pool, objects)
    state = torch.load(path, map_location=torch.device(config.device), weights_only=True)
    model.load_state_dict(state)
    return model


class CheckpointTargetMissed(RunStopped):
    """A checkpoint's training did not reach its loss target (within ``checkpoint.max_steps``, or it
    diverged) and ``checkpoint.on_missed`` is ``"fail"``; the message is one line saying what to change."""


def missed_message(record: Mapping[str, Any]) -> str:
    """The one-line description of a checkpoint record that missed its loss target."""
    if record["diverged"]:
        why = f"diverged after {record['steps']} steps"
        sharp = record["train_lr_rule"] == "sharpness"
        fix = "lower checkpoint.lr" + (" or checkpoint.edge_fraction" if sharp else "")
    else:
        why, fix = f"not reached within {record['steps']} steps", "raise checkpoint.max_steps"
    tries = f" in all {record['attempt'] + 1} attempts (checkpoint.retries)" if record.get("attempt") else ""
    return (
        f"checkpoint training of model {record['model']!r} missed loss level {record['ckpt']}{tries} "
        f"(fraction {record['loss_fraction']:g} of the initial loss {record['initial_loss']:.4g}): pool loss "
        f"{record['loss']:.4g} vs target {record['target_loss']:.4g}, {why} (batch "
        f"{record['train_batch_size']}, lr {record['train_lr']:g}, lr rule {record['train_lr_rule']}); "
        f"{fix}, or set checkpoint.on_missed=flag to keep the checkpoint and flag it in the report"
    )


def sharpness(model: nn.Module, loss_fn: nn.Module, pool: Pool, max_products: int, seed: int) -> float:
    """λ̂₁: the largest eigenvalue of the Hessian of the mean pool loss at the current weights, in the
    mode training uses (BatchNorm on batch statistics), from at most ``max_products`` Lanczos products
    (a Ritz value: a lower bound that is accurate to a few per cent for a separated top eigenvalue)."""
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import top_eigenpairs

    hess = HessianOperator(model, loss_fn, (pool.x, pool.y), bn_mode="train")
    result = top_eigenpairs(
        hess, k=1, which="LA", tol=1e-3, max_products=max_products, seed=seed, return_eigenvectors=False
    )
    return float(np.asarray(result.eigenvalues, dtype=float)[0])


def step_size(cfg: CheckpointConfig, lam: float | None) -> float:
    """The lr of the next ``eval_every`` steps: ``cfg.lr`` (rule ``"constant"``, or no positive λ̂₁), else
    min(lr, edge_fraction · 2/λ̂₁) (docs/validation.md §3b)."""
    if cfg.lr_rule == "constant" or lam is None or not lam > 0:
        return float(cfg.lr)
    return float(min(cfg.lr, cfg.edge_fraction * 2.0 / lam))


def checkpoint_keys(config: RunConfig, model_cfg: ModelConfig) -> list[str]:
    return [cell_key(model=model_cfg.name, ckpt=i) for i in range(len(config.checkpoint.levels))]


def make_checkpoints(
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: Pool,
    store: ResultStore,
    objects: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train by the checkpoint protocol (module docstring) and save one checkpoint file per loss level;
    return their records (the caller stores them).

    Training is deterministic given the config (and the single intra-op thread of every cell, see
    :mod:`validation.execution`), so a partially finished step is simply redone. A missed level raises
    :class:`CheckpointTargetMissed` (``on_missed="fail"``) before anything of it is saved; with
    ``on_missed="retry"`` the network is retrained from a re-drawn initialisation (attempt 1, 2, …: the seeds
    of attempt a > 0 are derived with a as an extra key) at most ``checkpoint.retries`` times first.
    """
    cfg = config.checkpoint
    attempts = cfg.retries + 1 if cfg.on_missed == "retry" else 1
    for attempt in range(attempts):
        try:
            return _train_attempt(config, model_cfg, pool, store, objects, attempt)
        except CheckpointTargetMissed:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _train_attempt(
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: Pool,
    store: ResultStore,
    objects: Mapping[str, Any] | None,
    attempt: int,
) -> list[dict[str, Any]]:
    """One training run of :func:`make_checkpoints` (initialisation and batches seeded by ``attempt``)."""
    from networks.training import evaluate, make_optimizer, train

    keys = checkpoint_keys(config, model_cfg)
    cfg = config.checkpoint
    loss_fn = loss_function()
    train_pool = _in_dtype(pool, _DTYPES[cfg.train_dtype])
    data = _Samples(train_pool.x, train_pool.y)
    batch = len(pool) if cfg.batch_size == 0 else min(cfg.batch_size, len(pool))
    with timed() as timer:
        model = build_network(config, model_cfg, pool, objects, attempt).to(_DTYPES[cfg.train_dtype])
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = make_optimizer("sgd", model.parameters(), lr=cfg.lr)
        initial_loss, initial_acc = evaluate(model, loss_fn, data)
        records: list[dict[str, Any]] = []
        step, level, chunk = 0, 0, 0
        loss, acc, diverged = initial_loss, initial_acc, False
        lam: float | None = None
        lr = float(cfg.lr)
        trajectory = [(0, initial_loss)]
        while level < len(keys):
            target = cfg.levels[level] * initial_loss
            reached = loss <= target
            if reached or step >= cfg.max_steps or diverged:
                record = {
                    "model": model_cfg.name,
                    "spec": model_cfg.spec,
                    "model_kwargs": model_cfg.kwargs,
                    "ckpt": level,
                    "loss_fraction": cfg.levels[level],
                    "target_loss": target,
                    "reached": bool(reached),
                    "loss": loss,
                    "accuracy": acc,
                    "initial_loss": initial_loss,
                    "steps": step,
                    "diverged": diverged,
                    "train_optimizer": "sgd",
                    "train_lr": cfg.lr,
                    "train_lr_rule": cfg.lr_rule,
                    "train_edge_fraction": cfg.edge_fraction,
                    "train_sharpness_products": cfg.sharpness_products,
                    "train_batch_size": batch,
                    "train_full_batch": batch == len(pool),
                    "train_eval_every": cfg.eval_every,
                    "train_max_steps": cfg.max_steps,
                    "train_on_missed": cfg.on_missed,
                    "attempt": attempt,
                    "train_dtype": cfg.train_dtype,
                    "train_last_lr": lr,
                    "train_last_sharpness": lam,
                    "n_params": n_params,
                    "pool_size": len(pool),
                    "num_classes": pool.num_classes,
                    "pool_indices_hash": indices_hash(pool.indices),
                    "dtype": config.dtype,
                    "trajectory": list(trajectory),
                }
                if not reached and cfg.on_missed in ("fail", "retry"):
                    raise CheckpointTargetMissed(missed_message(record))
                path, digest = _save_state(store, keys[level], model, _DTYPES[config.dtype])
                records.append({**record, "path": path, "sha256": digest})
                level += 1
                continue
            if cfg.lr_rule == "sharpness":
                key = ("ckpt-sharpness", chunk, *_attempt_key(attempt))
                seed = derived_seed(config.seed, model_cfg.name, *key)
                lam = sharpness(model, loss_fn, train_pool, cfg.sharpness_products, seed)
                lr = step_size(cfg, lam)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            seed = derived_seed(config.seed, model_cfg.name, "ckpt-train", chunk, *_attempt_key(attempt))
            history = train(
                model,
                loss_fn,
                data,
                optimizer=optimizer,
                batch_size=batch,
                seed=seed,
                steps=cfg.eval_every,
            )
            chunk += 1
            step += cfg.eval_every
            diverged = history.diverged
            loss, acc = evaluate(model, loss_fn, data)
            trajectory.append((step, loss))
    for rec in records:
        rec.update(timer.fields())
    return records
