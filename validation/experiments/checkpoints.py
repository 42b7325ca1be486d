"""Step 1 of the pipeline: the study's data pool, its models, and checkpoints at fixed loss levels.

A checkpoint w_c is the first point of a small-lr SGD run (from a seeded initialisation, independent of the
batch sizes under test) where the pool loss falls below ``fraction × L(w_0)``. State dicts are written with
``torch.save`` (atomically) and read back with ``torch.load(..., weights_only=True)``.
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
from validation.config import ModelConfig, RunConfig
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


def build_network(
    config: RunConfig, model_cfg: ModelConfig, pool: Pool, objects: Mapping[str, Any] | None = None
) -> nn.Module:
    """A freshly initialised network (seeded by the run seed and the model name), in the run's
    dtype/device: a built-in spec through ``networks.models.build_model``, or your own model
    (:mod:`validation.sources`)."""
    from networks.models import build_model

    kwargs = dict(model_cfg.kwargs)
    if is_reference(model_cfg.spec):
        torch.manual_seed(derived_seed(config.seed, model_cfg.name, "init"))
        model = build_user_model(model_cfg.spec, kwargs, objects)
        return model.to(device=torch.device(config.device), dtype=_DTYPES[config.dtype])
    if (
        model_cfg.spec.lower().startswith("mlp")
        and "in_features" not in kwargs
        and "image_size" not in kwargs
    ):
        kwargs["in_features"] = int(np.prod(pool.x.shape[1:]))
    torch.manual_seed(derived_seed(config.seed, model_cfg.name, "init"))
    model = build_model(model_cfg.spec, num_classes=pool.num_classes, in_channels=pool.in_channels, **kwargs)
    return model.to(device=torch.device(config.device), dtype=_DTYPES[config.dtype])


def pool_dataset(pool: Pool) -> Any:
    """The pool as a ``networks.data.ArrayDataset`` (what ``networks.training`` consumes)."""
    from networks.data import ArrayDataset

    return ArrayDataset(x=pool.x, y=pool.y, num_classes=pool.num_classes, name=pool.name)


def _save_state(store: ResultStore, name: str, model: nn.Module) -> tuple[str, str]:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
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


def checkpoint_keys(config: RunConfig, model_cfg: ModelConfig) -> list[str]:
    return [cell_key(model=model_cfg.name, ckpt=i) for i in range(len(config.checkpoint.levels))]


def make_checkpoints(
    config: RunConfig,
    model_cfg: ModelConfig,
    pool: Pool,
    store: ResultStore,
    objects: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train with small-lr SGD and save one checkpoint file per loss level; return their records (the caller
    stores them).

    Training is deterministic given the config (and the single intra-op thread of every cell, see
    :mod:`validation.execution`), so a partially finished step is simply redone.
    """
    from networks.training import evaluate, make_optimizer, train

    keys = checkpoint_keys(config, model_cfg)
    cfg = config.checkpoint
    loss_fn = loss_function()
    data = pool_dataset(pool)
    with timed() as timer:
        model = build_network(config, model_cfg, pool, objects)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = make_optimizer("sgd", model.parameters(), lr=cfg.lr)
        initial_loss, initial_acc = evaluate(model, loss_fn, data)
        records: list[dict[str, Any]] = []
        step, level, chunk = 0, 0, 0
        loss, acc, diverged = initial_loss, initial_acc, False
        trajectory = [(0, initial_loss)]
        while level < len(keys):
            target = cfg.levels[level] * initial_loss
            reached = loss <= target
            if reached or step >= cfg.max_steps or diverged:
                path, digest = _save_state(store, keys[level], model)
                records.append(
                    {
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
                        "train_lr": cfg.lr,
                        "train_batch_size": cfg.batch_size,
                        "n_params": n_params,
                        "pool_size": len(pool),
                        "num_classes": pool.num_classes,
                        "pool_indices_hash": indices_hash(pool.indices),
                        "dtype": config.dtype,
                        "path": path,
                        "sha256": digest,
                        "trajectory": list(trajectory),
                    }
                )
                level += 1
                continue
            seed = derived_seed(config.seed, model_cfg.name, "ckpt-train", chunk)
            history = train(
                model,
                loss_fn,
                data,
                optimizer=optimizer,
                batch_size=min(cfg.batch_size, len(pool)),
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
