"""Run configurations of the validation pipeline: built-in configs (``smoke``, ``default``,
``paper-cifar100``, shipped as package data) and TOML or JSON config files, validated field by field.

A config is a tree of frozen dataclasses. ``load_config(name_or_path, overrides)`` returns one (``--set
section.field=value`` overrides are applied to the raw mapping first); ``config.replace_fields``
applies command-line overrides; ``validate()`` raises ``ValueError`` naming the offending field (dotted
path) and the accepted range. Every choice the report
must state (K, δ, tolerances, grid, seeds) lives here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from networks.options import BN_MODES, OPTIMIZERS, BNMode
from networks.trial_settings import TrialSettings
from rmt.checks import check_in_range, check_int
from validation.sources import check_reference, is_reference

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100", "imagenet32", "gaussian-mixture")
CHECKPOINT_MODES = ("train", "as-given")
SAMPLE_SPIKE_METHODS = ("orthogonal", "subordinated", "exact")
DTYPES = ("float32",)  # networks.data.ArrayDataset holds float32 inputs
DEVICES = ("cpu", "cuda")


def _fail(name: str, accepted: str, value: object) -> ValueError:
    return ValueError(f"config field {name!r} must be {accepted}, got {value!r}")


def _as_field_error(check: Callable[..., object], value: object, name: str, **limits: Any) -> None:
    """Run one of :mod:`rmt.checks`' validators on a config value; its error (a ``ValueError`` whatever the
    validator raised, since a config file's values are data) names the dotted field."""
    try:
        check(value, f"config field {name!r}", **limits)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _int(value: object, name: str, low: int = 1, high: int | None = None) -> None:
    """An integer in [low, high] (``rmt.checks.check_int``)."""
    _as_field_error(check_int, value, name, minimum=low, maximum=high)


def _real(
    value: object, name: str, low: float = 0.0, high: float = math.inf, *, open_low: bool = True
) -> None:
    """A finite real number in (low, high] (or [low, high] with ``open_low=False``;
    ``rmt.checks.check_in_range``)."""
    _as_field_error(check_in_range, value, name, low=low, high=high, low_open=open_low)
    if isinstance(value, (list, tuple)) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise _fail(name, "one finite real number", value)


def _choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(name, f"one of {list(choices)}", value)


REPLICA_SEPARATOR = "."
"""Joins a configured model name and its training seed into a replica name: ``vgg`` → ``vgg.s0``, ``vgg.s1``
(docs/validation.md §4b). A configured name cannot contain it, so a replica never collides with a configured
model; it is valid in cell keys and file names (``validation.store.cell_key``)."""


def replica_name(base: str, training_seed: int, training_seeds: int) -> str:
    """The name of training seed ``training_seed`` of the configured model ``base``: ``base`` itself when the
    run has one training seed (old runs and their records are unchanged), else ``f"{base}.s{training_seed}"``
    (docs/validation.md §4b). Every seed of a replica's run (initialisation, training batches, measurements)
    is derived from the run seed and this name, hence from (run seed, base, training seed)."""
    return base if training_seeds == 1 else f"{base}{REPLICA_SEPARATOR}s{training_seed}"


@dataclass(frozen=True)
class ModelConfig:
    """One network of the study: ``spec`` for ``networks.models.build_model`` plus keyword arguments.

    In a :class:`RunConfig` every configured model is expanded into one replica per training seed
    (docs/validation.md §4b): ``name`` is the replica's name (:func:`replica_name`), ``base`` the configured
    name and ``training_seed`` its index in ``range(RunConfig.training_seeds)``. A model built directly has
    ``base = name`` and ``training_seed = 0``."""

    name: str
    spec: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    base: str = ""
    training_seed: int = 0

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)

    @property
    def is_replica(self) -> bool:
        """Whether this is a training-seed replica with its own name (``name != base``)."""
        return self.name != self.base

    def configured(self) -> ModelConfig:
        """The configured model this replica was expanded from (name = ``base``, training seed 0)."""
        return ModelConfig(name=self.base, spec=self.spec, kwargs=self.kwargs)

    def validate(self, prefix: str) -> None:
        base = self.base
        if not isinstance(base, str) or not base or not base.replace("-", "").isalnum():
            raise _fail(f"{prefix}.name", "a non-empty alphanumeric name (dashes allowed)", base)
        _int(self.training_seed, f"{prefix}.training_seed", 0)
        if self.is_replica and self.name != replica_name(base, self.training_seed, 2):
            raise _fail(
                f"{prefix}.name",
                f"the replica name {replica_name(base, self.training_seed, 2)!r} of model {base!r}",
                self.name,
            )
        if not isinstance(self.spec, str) or not self.spec:
            raise _fail(
                f"{prefix}.spec", "a model spec such as 'vgg11' or a reference 'module:factory'", self.spec
            )
        if is_reference(self.spec):
            check_reference(self.spec, f"config field '{prefix}.spec'")
        if not isinstance(self.kwargs, dict):
            raise _fail(f"{prefix}.kwargs", "a mapping of keyword arguments", self.kwargs)


LrRule = Literal["constant", "sharpness"]
"""The checkpoint training's step size: ``lr`` throughout, or min(lr, edge_fraction · 2/λ̂₁(H))."""
LR_RULES: tuple[str, ...] = get_args(LrRule)
OnMissed = Literal["fail", "flag", "retry"]
"""What a checkpoint whose training misses its loss target does: stop the run, keep it flagged, or retrain
from a re-drawn initialisation (at most ``retries`` times, then stop)."""
ON_MISSED: tuple[str, ...] = get_args(OnMissed)
TrainDtype = Literal["float32", "float64"]
"""The dtype the checkpoint training computes in (the checkpoint is saved in the run's ``dtype``)."""
TRAIN_DTYPES: tuple[str, ...] = get_args(TrainDtype)


@dataclass(frozen=True)
class CheckpointConfig:
    """Step 1 (docs/validation.md §3b): SGD from initialisation, computed in ``train_dtype`` (float64 by
    default: float32 rounding makes a chaotic trajectory, and λ₁(H) at its checkpoints, depend on the CPU's
    instruction set), with batch ``batch_size`` (0: the whole pool, i.e. gradient descent) at step size
    ``lr`` (``lr_rule="constant"``) or min(lr, edge_fraction · 2/λ̂₁(H)) with λ̂₁ re-estimated every
    ``eval_every`` steps from ``sharpness_products`` Lanczos products (``lr_rule="sharpness"``). A checkpoint
    is saved (in the run's ``dtype``) the first time the pool loss falls below ``loss_fractions[i] *
    initial_loss`` (at most ``max_steps`` steps, loss checked every ``eval_every`` steps). A level missed
    within ``max_steps`` (or a diverged run) stops the run (``on_missed="fail"``), is kept and flagged in
    the report (``"flag"``), or (``"retry"``) the network is trained again from a re-drawn initialisation,
    at most ``retries`` times, before the run stops; every record states its ``attempt``."""

    lr: float = 0.05
    batch_size: int = 64
    loss_fractions: tuple[float, ...] = (0.8, 0.5)
    max_steps: int = 400
    eval_every: int = 10
    mode: str = "train"
    train_dtype: TrainDtype = "float64"
    lr_rule: LrRule = "constant"
    edge_fraction: float = 0.5
    sharpness_products: int = 12
    on_missed: OnMissed = "fail"
    retries: int = 2

    @property
    def levels(self) -> tuple[float, ...]:
        """The loss fractions of the checkpoints: ``loss_fractions``, or ``(1.0,)`` with ``mode="as-given"``
        (one checkpoint: the weights as built or handed over, no training)."""
        return (1.0,) if self.mode == "as-given" else tuple(self.loss_fractions)

    def validate(self, prefix: str) -> None:
        _choice(self.mode, f"{prefix}.mode", CHECKPOINT_MODES)
        _real(self.lr, f"{prefix}.lr", 0.0, 10.0)
        _int(self.batch_size, f"{prefix}.batch_size", 0)
        _int(self.max_steps, f"{prefix}.max_steps")
        _int(self.eval_every, f"{prefix}.eval_every")
        _choice(self.lr_rule, f"{prefix}.lr_rule", LR_RULES)
        _real(self.edge_fraction, f"{prefix}.edge_fraction", 0.0, 1.0)
        _int(self.sharpness_products, f"{prefix}.sharpness_products", 2, 1000)
        _choice(self.on_missed, f"{prefix}.on_missed", ON_MISSED)
        _int(self.retries, f"{prefix}.retries", 0, 10)
        _choice(self.train_dtype, f"{prefix}.train_dtype", TRAIN_DTYPES)
        fr = self.loss_fractions
        if not isinstance(fr, (tuple, list)) or not 1 <= len(fr) <= 5:
            raise _fail(f"{prefix}.loss_fractions", "1 to 5 fractions in (0, 1]", fr)
        for i, f in enumerate(fr):
            _real(f, f"{prefix}.loss_fractions[{i}]", 0.0, 1.0)
        if list(fr) != sorted(fr, reverse=True) or len(set(fr)) != len(fr):
            raise _fail(f"{prefix}.loss_fractions", "strictly decreasing", fr)


@dataclass(frozen=True)
class CurvatureConfig:
    """Steps 2 and 4: top-k Lanczos (``top_k`` extremal pairs to relative residual ``tol`` within
    ``max_products`` products) and SLQ densities (``slq_probes`` start vectors × ``slq_steps`` steps)."""

    top_k: int = 12
    tol: float = 1e-3
    max_products: int = 120
    slq_probes: int = 1
    slq_steps: int = 30
    sweep_max_products: int = 40
    sweep_tol: float = 1e-2

    def validate(self, prefix: str) -> None:
        _int(self.top_k, f"{prefix}.top_k", 1, 1000)
        _real(self.tol, f"{prefix}.tol", 0.0, 1.0)
        _int(self.max_products, f"{prefix}.max_products", 2)
        _int(self.slq_probes, f"{prefix}.slq_probes")
        _int(self.slq_steps, f"{prefix}.slq_steps", 2)
        _int(self.sweep_max_products, f"{prefix}.sweep_max_products", 2)
        _real(self.sweep_tol, f"{prefix}.sweep_tol", 0.0, 1.0)


@dataclass(frozen=True)
class NoiseConfig:
    """Step 3: per-sample curvature noise (docs/theory.md §4) from ``num_samples`` samples × ``num_probes``
    probes."""

    num_samples: int = 32
    num_probes: int = 2

    def validate(self, prefix: str) -> None:
        _int(self.num_samples, f"{prefix}.num_samples", 2)
        _int(self.num_probes, f"{prefix}.num_probes")


@dataclass(frozen=True)
class PerSampleConfig:
    """Per-sample statistics of H_i and G_i (docs/theory.md §1e) on ``num_samples`` samples drawn (seeded)
    from the data set OUTSIDE the pool (disjoint from every sweep batch; fewer if fewer exist),
    ``lanczos_steps`` Lanczos steps and ``trace_probes`` Hutchinson probes per sample, in chunks of
    ``chunk_size``; the sample-spike prediction of step 5 resamples ``n_batches`` batches per B (``method`` of
    ``rmt.sample_spikes.predict_batch_extremal``) with the top ``n_spikes`` eigenvalues of H / G as the shared
    spikes."""

    num_samples: int = 128
    lanczos_steps: int = 20
    trace_probes: int = 4
    chunk_size: int = 16
    n_batches: int = 1000
    n_spikes: int = 1
    method: str = "orthogonal"

    def validate(self, prefix: str = "per_sample") -> PerSampleConfig:
        _int(self.num_samples, f"{prefix}.num_samples", 2)
        _int(self.lanczos_steps, f"{prefix}.lanczos_steps", 2)
        _int(self.trace_probes, f"{prefix}.trace_probes", 1)
        _int(self.chunk_size, f"{prefix}.chunk_size", 1)
        _int(self.n_batches, f"{prefix}.n_batches", 2)
        _int(self.n_spikes, f"{prefix}.n_spikes", 1)
        _choice(self.method, f"{prefix}.method", SAMPLE_SPIKE_METHODS)
        return self


@dataclass(frozen=True)
class SweepConfig:
    """Step 4: batch sizes. ``batch_sizes`` empty ⇒ a log-2 grid from ``min_batch`` to
    min(N, max(``max_batch``, ``critical_multiple`` × B*)) with B* estimated from steps 2–3."""

    batch_sizes: tuple[int, ...] = ()
    min_batch: int = 2
    max_batch: int = 256
    critical_multiple: float = 4.0
    batches_per_size: int = 5
    noise_spectrum_sizes: int = 2
    min_grid_points: int = 6

    def validate(self, prefix: str) -> None:
        if not isinstance(self.batch_sizes, (tuple, list)):
            raise _fail(
                f"{prefix}.batch_sizes", "a list of batch sizes (empty for automatic)", self.batch_sizes
            )
        for i, b in enumerate(self.batch_sizes):
            _int(b, f"{prefix}.batch_sizes[{i}]")
        _int(self.min_batch, f"{prefix}.min_batch")
        _int(self.max_batch, f"{prefix}.max_batch", self.min_batch)
        _real(self.critical_multiple, f"{prefix}.critical_multiple", 0.0, 1e6)
        _int(self.batches_per_size, f"{prefix}.batches_per_size", 2)
        _int(self.noise_spectrum_sizes, f"{prefix}.noise_spectrum_sizes", 0)
        _int(self.min_grid_points, f"{prefix}.min_grid_points", 2)


@dataclass(frozen=True)
class ThresholdConfig:
    """Step 6: local divergence thresholds (docs/validation.md §1): K = ``steps`` steps, strict δ = ``delta``,
    bisection on log η between ``lr_low`` and ``lr_high`` with ``halvings`` halvings;
    ``seeds`` seeds per cell. The trial and search fields take their defaults from
    :class:`networks.trial_settings.TrialSettings` (defined there once); :meth:`trial_settings` hands them
    over whole."""

    optimizers: tuple[str, ...] = OPTIMIZERS
    batch_sizes: tuple[int, ...] = ()
    seeds: int = 5
    steps: int = TrialSettings.steps
    delta: float = TrialSettings.delta
    halvings: int = TrialSettings.halvings
    lr_low: float = TrialSettings.lr_low
    lr_high: float = TrialSettings.lr_high
    warmup_steps: int = TrialSettings.warmup_steps
    checkpoints: tuple[int, ...] = (0,)
    max_batch_sizes: int = 6
    eval_every: int = TrialSettings.eval_every
    eval_size: int | None = TrialSettings.eval_size
    models: tuple[str, ...] = ()
    preconditioned_batches: int = 2
    """Step 6b: Adam trial seeds (≤ ``seeds``) whose warm-up preconditioner is rebuilt per B (0: none)."""

    def trial_settings(self, bn_mode: str) -> TrialSettings:
        """The :class:`networks.trial_settings.TrialSettings` of every threshold cell of the run (the
        run's BatchNorm mode; the search and trial fields of this section; everything else its one
        default)."""
        return TrialSettings(
            steps=self.steps,
            delta=self.delta,
            warmup_steps=self.warmup_steps,
            eval_every=self.eval_every,
            eval_size=self.eval_size,
            bn_mode=cast(BNMode, bn_mode),
            lr_low=self.lr_low,
            lr_high=self.lr_high,
            halvings=self.halvings,
        )

    def validate(self, prefix: str) -> None:
        if not isinstance(self.optimizers, (tuple, list)):
            raise _fail(f"{prefix}.optimizers", f"a list drawn from {list(OPTIMIZERS)}", self.optimizers)
        for i, o in enumerate(self.optimizers):
            _choice(o, f"{prefix}.optimizers[{i}]", OPTIMIZERS)
        if not isinstance(self.batch_sizes, (tuple, list)):
            raise _fail(
                f"{prefix}.batch_sizes", "a list of batch sizes (empty: the sweep grid)", self.batch_sizes
            )
        for i, b in enumerate(self.batch_sizes):
            _int(b, f"{prefix}.batch_sizes[{i}]")
        _int(self.seeds, f"{prefix}.seeds", 1)
        _int(self.steps, f"{prefix}.steps", 1)
        _real(self.delta, f"{prefix}.delta", 0.0, 100.0)
        _int(self.halvings, f"{prefix}.halvings", 1, 60)
        _real(self.lr_low, f"{prefix}.lr_low", 0.0, 1e6)
        _real(self.lr_high, f"{prefix}.lr_high", float(self.lr_low), 1e6)
        _int(self.warmup_steps, f"{prefix}.warmup_steps", 0)
        if not isinstance(self.checkpoints, (tuple, list)) or not self.checkpoints:
            raise _fail(f"{prefix}.checkpoints", "a non-empty list of checkpoint indices", self.checkpoints)
        for i, c in enumerate(self.checkpoints):
            _int(c, f"{prefix}.checkpoints[{i}]", 0)
        _int(self.max_batch_sizes, f"{prefix}.max_batch_sizes", 2)
        _int(self.eval_every, f"{prefix}.eval_every", 1)
        if not isinstance(self.models, (tuple, list)) or not all(isinstance(m, str) for m in self.models):
            raise _fail(f"{prefix}.models", "a list of model names (empty: every model)", self.models)
        if self.eval_size is not None:
            _int(self.eval_size, f"{prefix}.eval_size", 1)
        _int(self.preconditioned_batches, f"{prefix}.preconditioned_batches", 0)


def expand_models(models: Iterable[ModelConfig], training_seeds: int) -> tuple[ModelConfig, ...]:
    """One replica per configured model and training seed, in config order (model-major):
    ``ModelConfig(name=replica_name(base, s, training_seeds), base=base, training_seed=s)`` for s in
    ``range(training_seeds)`` (docs/validation.md §4b). Replicas in ``models`` are first collapsed to their
    configured model (the first replica of each base), so expanding twice, or after ``dataclasses.replace``
    with another ``training_seeds``, gives the same replicas as expanding once."""
    configured: list[ModelConfig] = []
    collapsed: set[str] = set()
    for m in models:
        if m.is_replica:  # keep one configured model per base; plain duplicates stay (validate rejects them)
            if m.base in collapsed:
                continue
            collapsed.add(m.base)
        configured.append(m.configured())
    return tuple(
        dataclasses.replace(m, name=replica_name(m.base, s, training_seeds), base=m.base, training_seed=s)
        for m in configured
        for s in range(training_seeds)
    )


@dataclass(frozen=True)
class RunConfig:
    """A whole run: data, models, and the settings of each pipeline step.

    ``training_seeds`` (≥ 1): independent training seeds per configured network. ``models`` holds the
    replicas (:func:`expand_models`, one per configured model and training seed, named by
    :func:`replica_name`), so every stage runs each replica as a network of its own; sections that name models
    (``thresholds.models``) name the configured (base) model and select all its replicas;
    :meth:`to_dict` writes the configured models (docs/validation.md §4b)."""

    name: str
    data: str = "fashion-mnist"
    data_root: str | None = None
    pool_size: int = 1024
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    models: tuple[ModelConfig, ...] = ()
    training_seeds: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    bn_mode: str = "eval"
    ggn_outputs_per_sample: int | None = None
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    curvature: CurvatureConfig = field(default_factory=CurvatureConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    per_sample: PerSampleConfig = field(default_factory=PerSampleConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
    bootstrap_samples: int = 1000
    expected_cost: str = ""

    def __post_init__(self) -> None:
        n = self.replicas_per_model
        ok = isinstance(n, int) and not isinstance(n, bool) and n >= 1
        models = self.models
        if ok and isinstance(models, (tuple, list)) and all(isinstance(m, ModelConfig) for m in models):
            object.__setattr__(self, "models", expand_models(models, n))

    @property
    def replicas_per_model(self) -> int:
        """Replicas of each configured model: ``training_seeds``, or 1 with ``checkpoint.mode = "as-given"``
        (no training, so nothing for a training seed to change; docs/validation.md §4b)."""
        return 1 if getattr(self.checkpoint, "mode", "train") == "as-given" else self.training_seeds

    @property
    def configured_models(self) -> tuple[ModelConfig, ...]:
        """The configured models (one per base name, in config order), before expansion into replicas."""
        return tuple(m.configured() for m in self.models if m.training_seed == 0)

    def replicas(self, base: str) -> tuple[ModelConfig, ...]:
        """The replicas of the configured model ``base``, in training-seed order."""
        return tuple(m for m in self.models if m.base == base)

    def validate(self) -> RunConfig:
        """Check every field; raise ``ValueError`` naming the first bad one. Returns ``self``."""
        if not isinstance(self.name, str) or not self.name:
            raise _fail("name", "a non-empty string", self.name)
        if not isinstance(self.data, str):
            raise _fail("data", f"one of {list(DATASETS)} or a reference 'module:factory'", self.data)
        if is_reference(self.data):
            check_reference(self.data, "config field 'data'")
        else:
            _choice(self.data, "data", DATASETS)
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise _fail("data_root", "a path string or null", self.data_root)
        _int(self.pool_size, "pool_size", 8)
        if not isinstance(self.data_kwargs, dict):
            raise _fail("data_kwargs", "a mapping", self.data_kwargs)
        if not isinstance(self.models, (tuple, list)) or not self.models:
            raise _fail("models", "a non-empty list of models", self.models)
        _int(self.training_seeds, "training_seeds", 1, 1000)
        names = [m.base for m in self.configured_models]
        for m in self.models:
            m.validate(f"models[{names.index(m.base) if m.base in names else m.name}]")
        if len(set(names)) != len(names) or len({m.name for m in self.models}) != len(self.models):
            raise _fail("models", "models with distinct names", names)
        _int(self.seed, "seed", 0)
        _choice(self.device, "device", DEVICES)
        _choice(self.dtype, "dtype", DTYPES)
        _choice(self.bn_mode, "bn_mode", BN_MODES)
        if self.ggn_outputs_per_sample is not None:
            _int(self.ggn_outputs_per_sample, "ggn_outputs_per_sample")
        self.checkpoint.validate("checkpoint")
        self.curvature.validate("curvature")
        self.noise.validate("noise")
        self.per_sample.validate("per_sample")
        self.sweep.validate("sweep")
        self.thresholds.validate("thresholds")
        for i, wanted in enumerate(self.thresholds.models):
            if wanted not in names:
                raise _fail(f"thresholds.models[{i}]", f"one of the model names {names}", wanted)
        n_ckpt = len(self.checkpoint.levels)
        for i, c in enumerate(self.thresholds.checkpoints):
            if c >= n_ckpt:
                raise _fail(f"thresholds.checkpoints[{i}]", f"an index < {n_ckpt} (number of loss levels)", c)
        requested = (("sweep", self.sweep.batch_sizes), ("thresholds", self.thresholds.batch_sizes))
        for section, sizes in requested:
            for i, b in enumerate(sizes):
                if b > self.pool_size:
                    raise _fail(f"{section}.batch_sizes[{i}]", f"at most pool_size = {self.pool_size}", b)
        if self.sweep.min_batch > self.pool_size:
            raise _fail("sweep.min_batch", f"at most pool_size = {self.pool_size}", self.sweep.min_batch)
        if self.noise.num_samples > self.pool_size:
            raise _fail("noise.num_samples", f"at most pool_size = {self.pool_size}", self.noise.num_samples)
        _int(self.bootstrap_samples, "bootstrap_samples", 10)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data that :func:`config_from_dict` reads back into an equal config; ``models`` lists the
        configured models (``{name, spec, kwargs}``), not their replicas."""
        out = dataclasses.asdict(self)
        out["models"] = [
            {"name": m.name, "spec": m.spec, "kwargs": dict(m.kwargs)} for m in self.configured_models
        ]
        return out

    def replace_fields(self, **changes: Any) -> RunConfig:
        """A copy with top-level fields replaced (``None`` values are ignored), validated."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept).validate()


_SECTIONS: dict[str, type] = {
    "checkpoint": CheckpointConfig,
    "curvature": CurvatureConfig,
    "noise": NoiseConfig,
    "per_sample": PerSampleConfig,
    "sweep": SweepConfig,
    "thresholds": ThresholdConfig,
}


def _tuplify(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build and validate a ``RunConfig`` from plain JSON data; unknown keys raise ``ValueError``."""
    if not isinstance(raw, dict):
        raise TypeError(f"config must be a JSON object, got {type(raw).__name__}")
    top_fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(raw) - top_fields)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; accepted: {sorted(top_fields)}")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            cls = _SECTIONS[key]
            if not isinstance(value, dict):
                raise _fail(key, "a JSON object", value)
            allowed = {f.name for f in dataclasses.fields(cls)}
            bad = sorted(set(value) - allowed)
            if bad:
                raise ValueError(
                    f"unknown config field(s) {[f'{key}.{b}' for b in bad]}; accepted: {sorted(allowed)}"
                )
            kwargs[key] = cls(**{k: _tuplify(v) for k, v in value.items()})
        elif key == "models":
            if not isinstance(value, list):
                raise _fail("models", "a list of {name, spec, kwargs} objects", value)
            models = []
            for i, m in enumerate(value):
                if (
                    not isinstance(m, dict)
                    or set(m) - {"name", "spec", "kwargs"}
                    or not {"name", "spec"} <= set(m)
                ):
                    raise _fail(f"models[{i}]", "an object with keys name, spec and optional kwargs", m)
                models.append(ModelConfig(name=m["name"], spec=m["spec"], kwargs=dict(m.get("kwargs", {}))))
            kwargs[key] = tuple(models)
        else:
            kwargs[key] = value
    if "name" not in kwargs:
        raise ValueError("config field 'name' is required")
    return RunConfig(**kwargs).validate()


CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_SUFFIXES = (".toml", ".json")
MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this (1 MiB) is refused before it is parsed."""


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file, line and field."""


def available_configs() -> list[str]:
    """Names of the built-in configs (``validation/configs/<name>.json`` or ``.toml``, shipped in the
    wheel)."""
    names = {p.stem for suffix in CONFIG_SUFFIXES for p in CONFIG_DIR.glob(f"*{suffix}")}
    return sorted(n for n in names if not n.startswith("learner-"))  # ``batchrmt learner``'s own configs


def config_path(name_or_path: str | Path) -> Path:
    """The file of a built-in config name or a config file path (``.toml`` or ``.json``)."""
    text = str(name_or_path)
    path = Path(text)
    if not path.suffix:
        for suffix in CONFIG_SUFFIXES:
            if (CONFIG_DIR / f"{text}{suffix}").is_file():
                return CONFIG_DIR / f"{text}{suffix}"
    if path.is_file():
        if path.suffix not in CONFIG_SUFFIXES:
            raise ConfigError(f"config file {path}: unknown format {path.suffix!r}; use .toml or .json")
        return path
    raise ConfigError(
        f"config {text!r} is neither a built-in config ({', '.join(available_configs())}) "
        f"nor a .toml/.json file"
    )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a TOML or JSON config file; syntax errors name the file, line and column."""
    import tomllib

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path}: {size} bytes is over the {MAX_CONFIG_BYTES}-byte limit")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path}, line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: the top level must be a table/object")
    return _anchor_file_references(raw, path.resolve().parent)


def _anchor_file_references(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Make relative ``file.py:factory`` references of a config file relative to the file's folder."""

    def anchor(spec: Any) -> Any:
        if isinstance(spec, str) and ":" in spec:
            target, _, attr = spec.rpartition(":")
            if target.endswith(".py") and not Path(target).is_absolute():
                return f"{folder / target}:{attr}"
        return spec

    if "data" in raw:
        raw["data"] = anchor(raw["data"])
    for model in raw.get("models", []) if isinstance(raw.get("models"), list) else []:
        if isinstance(model, dict) and "spec" in model:
            model["spec"] = anchor(model["spec"])
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.field=value`` → (["section", "field"], value); the value is read as JSON when it parses
    (numbers, true/false, null, lists, objects) and as a plain string otherwise."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value")
    dotted, _, value_text = text.partition("=")
    path = dotted.strip().split(".")
    if not all(part.isidentifier() for part in path):
        raise ConfigError(f"override {text!r}: {dotted!r} is not a dotted field name")
    try:
        value = json.loads(value_text)
    except json.JSONDecodeError:
        value = value_text
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of the raw config mapping with each ``section.field=value`` applied (validation happens when
    the config is built, so an out-of-range value is reported with its dotted field name)."""
    out = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                if part in _SECTIONS and child is None:
                    child = node[part] = {}
                else:
                    raise ConfigError(f"override {text!r}: {part!r} is not a config section")
            node = child
        node[path[-1]] = value
    return out


def load_config(name_or_path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """A built-in config by name (``smoke``, ``default``, ``paper-cifar100``, ``study``) or a TOML/JSON file,
    with ``section.field=value`` overrides applied; errors name the file and the field."""
    path = config_path(name_or_path)
    raw = apply_overrides(read_config_file(path), overrides)
    try:
        return config_from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None


def show_config(name_or_path: str | Path) -> str:
    """The text of a built-in config (or config file), to copy and edit."""
    return config_path(name_or_path).read_text(encoding="utf-8")
