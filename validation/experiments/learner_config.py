"""Settings of the SLQ learner experiment (``batchrmt learner``), read like the configs of ``batchrmt run``.

A :class:`LearnerConfig` comes from a TOML or JSON file: a built-in one by name (``smoke``, ``default``,
``paper-cifar100`` are the files ``validation/configs/learner-<name>.json``, shipped as package data) or any
file path, with ``field=value`` overrides (``--set``). Reading, overrides and errors are those of
:mod:`validation.config` (:func:`~validation.config.read_config_file`,
:func:`~validation.config.apply_overrides`, :class:`~validation.config.ConfigError`); every field is checked
with its validators, and an error names the file and the field. A config file states every field; only the
nullable ones (``data_root``, ``lr_max``) may be left out, meaning ``null`` (TOML has no null).

The arms (all with the same initialisation, batch order, epochs and weight decay per seed):

* ``slq-sgd``: :class:`networks.slq_learner.SLQLearner`, rule "sgd" (η = 2/(L+μ), no momentum);
* ``slq-heavy-ball``: the same with Polyak's heavy-ball η, β;
* ``lineage-<lr>``: SGD with momentum ``baseline_momentum`` and the lineage schedule for each lr of
  ``baseline_lrs``; the tuned baseline is the grid point with the best mean final test accuracy;
* ``fixed-slq-lr``: plain SGD at the learning rate the ``slq-sgd`` learner picks at initialisation.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from networks.options import LEARNER_BN_MODES, MATRICES, MU_MODES
from validation.config import (
    CONFIG_DIR,
    CONFIG_SUFFIXES,
    DATASETS,
    ConfigError,
    _choice,
    _fail,
    _int,
    _real,
    apply_overrides,
    config_path,
    read_config_file,
)

PREFIX = "learner-"
"""Built-in learner configs are ``validation/configs/learner-<name>.json`` (or ``.toml``)."""
DATASETS_WITH_IMAGES = tuple(d for d in DATASETS if d != "gaussian-mixture")
"""Data sets the learner's PreResNet can train on (image tensors)."""
SLQ_ARMS = ("slq-sgd", "slq-heavy-ball")
FIXED_ARM = "fixed-slq-lr"
NULLABLE = frozenset({"data_root", "lr_max"})


@dataclass(frozen=True)
class LearnerConfig:
    """Everything one learner experiment depends on (stored with every record and in the run folder).

    Data: ``train_size`` images of ``dataset`` (a seeded subset) and its first ``test_size`` test images.
    Model: PreResNet-``depth`` (``bottleneck`` blocks or basic), channel multiplier ``width``. Training:
    ``epochs`` epochs at ``batch_size``, ``weight_decay``, ``augment``, ``seeds`` seeds (seed =
    initialisation, data subset and batch order). Baseline: momentum ``baseline_momentum`` and the lineage
    schedule at each of ``baseline_lrs``. Learner (``networks.slq_learner.SLQLearner``, docs/theory.md §6):
    ``lanczos_steps`` Lanczos steps on the ``matrix`` of a fixed ``curvature_size``-image subset (BatchNorm
    ``bn_mode``) every ``every_epochs`` epochs; μ by ``mu_mode`` floored at ``mu_floor_ratio``·L;
    ``safety`` scales η, capped at ``lr_max``; ``predict`` adds the rmt max-lr prediction at the training
    batch size (a per-sample noise estimate from ``noise_samples`` samples per refresh).
    """

    name: str
    dataset: str
    data_root: str | None
    train_size: int
    test_size: int
    depth: int
    bottleneck: bool
    width: float
    epochs: int
    batch_size: int
    seeds: int
    augment: bool
    weight_decay: float
    baseline_lrs: tuple[float, ...]
    baseline_momentum: float
    curvature_size: int
    every_epochs: float
    lanczos_steps: int
    matrix: str
    mu_mode: str
    safety: float
    mu_floor_ratio: float
    lr_max: float | None
    predict: bool
    noise_samples: int
    bn_mode: str

    def validate(self) -> LearnerConfig:
        """Check every field; raise ``ValueError`` naming the first bad one and its accepted range."""
        if not isinstance(self.name, str) or not self.name or not self.name.replace("-", "").isalnum():
            raise _fail("name", "a non-empty alphanumeric name (dashes allowed)", self.name)
        _choice(self.dataset, "dataset", DATASETS_WITH_IMAGES)
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise _fail("data_root", "a path string or null", self.data_root)
        for name in ("bottleneck", "augment", "predict"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(name, "true or false", getattr(self, name))
        _int(self.train_size, "train_size", 2)
        for name, low in (("test_size", 1), ("depth", 2), ("epochs", 1), ("seeds", 1), ("lanczos_steps", 2)):
            _int(getattr(self, name), name, low)
        _int(self.batch_size, "batch_size", 1, self.train_size)
        _int(self.curvature_size, "curvature_size", 1, self.train_size)
        _int(self.noise_samples, "noise_samples", 2)
        for name in ("width", "every_epochs"):
            _real(getattr(self, name), name, 0.0)
        _real(self.safety, "safety", 0.0, 2.0)
        _real(self.mu_floor_ratio, "mu_floor_ratio", 0.0, 1.0, open_low=False)
        _real(self.weight_decay, "weight_decay", 0.0, open_low=False)
        _real(self.baseline_momentum, "baseline_momentum", 0.0, 1.0, open_low=False)
        if self.baseline_momentum == 1:
            raise _fail("baseline_momentum", "a real number in [0, 1)", self.baseline_momentum)
        if self.lr_max is not None:
            _real(self.lr_max, "lr_max", 0.0)
        lrs = self.baseline_lrs
        if not isinstance(lrs, (tuple, list)) or not lrs:
            raise _fail("baseline_lrs", "a non-empty list of positive learning rates", lrs)
        for i, lr in enumerate(lrs):
            _real(lr, f"baseline_lrs[{i}]", 0.0)
        if len({f"{lr:g}" for lr in lrs}) != len(lrs):
            raise _fail("baseline_lrs", "distinct learning rates (each names an arm)", lrs)
        _choice(self.matrix, "matrix", MATRICES)
        _choice(self.mu_mode, "mu_mode", MU_MODES)
        _choice(self.bn_mode, "bn_mode", LEARNER_BN_MODES)
        return self

    @property
    def steps_per_epoch(self) -> int:
        return self.train_size // self.batch_size

    @property
    def every(self) -> int:
        """Refresh period of the learner in optimiser steps: ``max(1, round(every_epochs · steps/epoch))``."""
        return max(1, round(self.every_epochs * self.steps_per_epoch))

    def arm_names(self) -> list[str]:
        """Arms in run order (the fixed-lr arm needs the slq-sgd record of the same seed)."""
        return [*SLQ_ARMS, *(f"lineage-{lr:g}" for lr in self.baseline_lrs), FIXED_ARM]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["baseline_lrs"] = list(self.baseline_lrs)
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(LearnerConfig)}
_REALS = frozenset(n for n, f in _FIELDS.items() if "float" in str(f.type))


def _as_float(value: Any) -> Any:
    """Integers in a real-valued field become floats (``1`` and ``1.0`` give the same config)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    return value


def learner_config_from_dict(raw: dict[str, Any]) -> LearnerConfig:
    """Build and validate a :class:`LearnerConfig` from the raw mapping of a config file; unknown or missing
    fields raise ``ValueError`` naming them."""
    if not isinstance(raw, dict):
        raise TypeError(f"config must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; accepted: {sorted(_FIELDS)}")
    missing = sorted(set(_FIELDS) - set(raw) - NULLABLE)
    if missing:
        raise ValueError(
            f"missing config field(s) {missing} (start from `batchrmt config show {PREFIX}default`)"
        )
    fields: dict[str, Any] = {name: raw.get(name) for name in _FIELDS}
    fields["baseline_lrs"] = (
        tuple(_as_float(v) for v in fields["baseline_lrs"])
        if isinstance(fields["baseline_lrs"], list)
        else fields["baseline_lrs"]
    )
    for name in _REALS - {"baseline_lrs"}:
        fields[name] = _as_float(fields[name])
    return LearnerConfig(**fields).validate()


def available_learner_configs() -> list[str]:
    """Names of the built-in learner configs (files ``validation/configs/learner-<name>.json|toml``)."""
    return sorted(
        {
            p.stem.removeprefix(PREFIX)
            for suffix in CONFIG_SUFFIXES
            for p in CONFIG_DIR.glob(f"{PREFIX}*{suffix}")
        }
    )


def learner_config_path(name_or_path: str | Path) -> Path:
    """The file of a built-in learner config (``default`` or ``learner-default``) or a ``.toml``/``.json``
    file path."""
    text = str(name_or_path)
    if not Path(text).suffix and text.removeprefix(PREFIX) in available_learner_configs():
        return config_path(PREFIX + text.removeprefix(PREFIX))
    if Path(text).is_file():
        return config_path(text)
    raise ConfigError(
        f"learner config {text!r} is neither a built-in one ({', '.join(available_learner_configs())}) "
        "nor a .toml/.json file"
    )


def load_learner_config(name_or_path: str | Path = "default", overrides: Iterable[str] = ()) -> LearnerConfig:
    """A built-in learner config by name or a TOML/JSON file, with ``field=value`` overrides applied (values
    read as JSON, else as text); raises :class:`~validation.config.ConfigError` naming the file and field."""
    path = learner_config_path(name_or_path)
    raw = apply_overrides(read_config_file(path), overrides)
    try:
        return learner_config_from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None
