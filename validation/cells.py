"""The measuring cells of the pipeline's steps, as module-level functions a worker process can run.

Each function takes a :class:`RunContext` (the validated config, the run folder and the run's provenance — all
picklable) plus the cell's identity, and returns the cell's JSON record (for the checkpoint step: the records
of every loss level of one model). Workers never write records — the pipeline, the run's only record writer,
stores what they return — but they do write the cell's own array and checkpoint files (write-once, atomic,
named by the cell), so a record never points at a file that is not there.

Each process keeps the data pool and the loaded checkpoints of the run in a small cache, so a worker that runs
many cells of one checkpoint loads it once. The cached models are never modified: operators and trials leave a
model's parameters, buffers and mode as they found them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from validation.config import ModelConfig, RunConfig
from validation.store import ResultStore, cell_key

if TYPE_CHECKING:
    from torch import nn

    from validation.experiments.checkpoints import Pool


@dataclass(frozen=True)
class RunContext:
    """What every cell of a run needs: the config, the run folder, the run-level provenance, and the live
    objects (your model or data, handed to :func:`validation.study.run_study`) that ``object:NAME``
    references in the config name."""

    config: RunConfig
    root: str
    env: dict[str, Any]
    objects: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> ResultStore:
        return ResultStore(self.root)

    def model_config(self, name: str) -> ModelConfig:
        for model_cfg in self.config.models:
            if model_cfg.name == name:
                return model_cfg
        names = [m.name for m in self.config.models]
        raise ValueError(f"model {name!r} is not in the config (models: {names})")


_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_MODELS = 4  # checkpoints kept per process (a default-run checkpoint is < 1 MB)


def pool_of(ctx: RunContext) -> Pool:
    """The run's data pool, loaded once per process."""
    from validation.experiments import checkpoints as ckpt_step

    key = ("pool", ctx.root)
    if key not in _CACHE:
        _CACHE[key] = ckpt_step.load_pool(ctx.config, ctx.objects)
    pool: Pool = _CACHE[key]
    return pool


def checkpoint_model(ctx: RunContext, model_name: str, ckpt: int) -> nn.Module:
    """The network of a stored checkpoint (hash-verified), loaded once per process."""
    from validation.experiments import checkpoints as ckpt_step

    record = ctx.store.get(ckpt_step.STEP, cell_key(model=model_name, ckpt=ckpt))
    key = ("model", ctx.root, model_name, ckpt, record["sha256"])
    if key not in _CACHE:
        models = [k for k in _CACHE if k[0] == "model"]
        for old in models[: max(0, len(models) - _CACHE_MODELS + 1)]:
            del _CACHE[old]
        _CACHE[key] = ckpt_step.load_checkpoint(
            ctx.store, record, ctx.config, ctx.model_config(model_name), pool_of(ctx), ctx.objects
        )
    model: nn.Module = _CACHE[key]
    return model


def _with_env(ctx: RunContext, record: dict[str, Any]) -> dict[str, Any]:
    record["provenance"] = ctx.env
    return record


def checkpoints_cell(ctx: RunContext, model_name: str) -> dict[str, Any]:
    """Step 1 for one model: ``{"records": [one record per loss level]}`` (state files written)."""
    from validation.experiments import checkpoints as ckpt_step

    records = ckpt_step.make_checkpoints(
        ctx.config, ctx.model_config(model_name), pool_of(ctx), ctx.store, ctx.objects
    )
    return {"records": [_with_env(ctx, rec) for rec in records]}


def _whole_pool_cell(ctx: RunContext, model_name: str, ckpt: int, measure: Any) -> dict[str, Any]:
    """A checkpoint-level measurement on the whole pool (``measure`` has the signature of
    ``measure_spectra`` / ``measure_noise``), with the run's provenance."""
    from validation.experiments import checkpoints as ckpt_step

    rec = measure(
        ctx.config,
        checkpoint_model(ctx, model_name, ckpt),
        ckpt_step.loss_function(),
        pool_of(ctx),
        ctx.store,
        model_name=model_name,
        ckpt=ckpt,
        key=cell_key(model=model_name, ckpt=ckpt),
    )
    return _with_env(ctx, rec)


def spectra_cell(ctx: RunContext, model_name: str, ckpt: int) -> dict[str, Any]:
    """Step 2 for one checkpoint: top-k of H and G, λ_min(H), SLQ densities."""
    from validation.experiments import spectra as spectra_step

    return _whole_pool_cell(ctx, model_name, ckpt, spectra_step.measure_spectra)


def noise_cell(ctx: RunContext, model_name: str, ckpt: int) -> dict[str, Any]:
    """Step 3 for one checkpoint: per-sample noise statistics of H and G."""
    from validation.experiments import noise as noise_step

    return _whole_pool_cell(ctx, model_name, ckpt, noise_step.measure_noise)


def per_sample_cell(ctx: RunContext, model_name: str, ckpt: int) -> dict[str, Any]:
    """Step 3b for one checkpoint: per-sample curvature of H_i and G_i on samples outside the pool."""
    from validation.experiments import checkpoints as ckpt_step
    from validation.experiments import per_sample as per_sample_step
    from validation.experiments import spectra as spectra_step

    key = cell_key(model=model_name, ckpt=ckpt)
    rec = per_sample_step.measure_per_sample(
        ctx.config,
        checkpoint_model(ctx, model_name, ckpt),
        ckpt_step.loss_function(),
        pool_of(ctx),
        ctx.store,
        ctx.store.get(spectra_step.STEP, key),
        model_name=model_name,
        ckpt=ckpt,
        key=key,
        objects=ctx.objects,
    )
    return _with_env(ctx, rec)


def sweep_cell(
    ctx: RunContext, model_name: str, ckpt: int, batch_size: int, batch_index: int
) -> dict[str, Any]:
    """Step 4, one batch: extremal eigenvalues of H_B and G_B, overlaps, batch sharpness."""
    import torch

    from validation.experiments import checkpoints as ckpt_step
    from validation.experiments import spectra as spectra_step
    from validation.experiments import sweep as sweep_step

    pool = pool_of(ctx)
    cache_key = ("top_vectors", ctx.root, model_name, ckpt)
    if cache_key not in _CACHE:  # read and checksum-verified once per process, not once per batch
        spectra = ctx.store.get(spectra_step.STEP, cell_key(model=model_name, ckpt=ckpt))
        vectors = ctx.store.load_array(spectra["hessian_vectors"])
        _CACHE[cache_key] = torch.as_tensor(vectors).to(pool.x.device)
    top_vectors = _CACHE[cache_key]
    rec = sweep_step.measure_batch_cell(
        ctx.config,
        checkpoint_model(ctx, model_name, ckpt),
        ckpt_step.loss_function(),
        pool,
        top_vectors,
        model_name=model_name,
        ckpt=ckpt,
        batch_size=batch_size,
        batch_index=batch_index,
    )
    return _with_env(ctx, rec)


def noise_spectrum_cell(ctx: RunContext, model_name: str, ckpt: int, batch_size: int) -> dict[str, Any]:
    """Step 4, noise operator: SLQ of H_B − H and of H_B for batch 0 of size B."""
    from validation.experiments import checkpoints as ckpt_step
    from validation.experiments import sweep as sweep_step

    rec = sweep_step.measure_noise_spectrum(
        ctx.config,
        checkpoint_model(ctx, model_name, ckpt),
        ckpt_step.loss_function(),
        pool_of(ctx),
        model_name=model_name,
        ckpt=ckpt,
        batch_size=batch_size,
    )
    return _with_env(ctx, rec)


def threshold_cell(
    ctx: RunContext, model_name: str, ckpt: int, optimizer: str, batch_size: int, seed_index: int
) -> dict[str, Any]:
    """Step 6, one (optimizer, B, seed): divergence thresholds, strict and lenient."""
    from networks.options import Optimizer
    from validation.experiments import checkpoints as ckpt_step
    from validation.experiments.thresholds import measure_threshold_cell
    from validation.provenance import derived_seed, timed

    config = ctx.config
    batch_seed = derived_seed(config.seed, model_name, ckpt, "threshold", optimizer, batch_size, seed_index)
    with timed() as timer:
        rec = measure_threshold_cell(
            checkpoint_model(ctx, model_name, ckpt),
            ckpt_step.loss_function(),
            ckpt_step.pool_dataset(pool_of(ctx)),
            optimizer=cast(Optimizer, optimizer),
            batch_size=batch_size,
            seed=batch_seed,
            settings=config.thresholds.trial_settings(config.bn_mode),
        )
    rec["diverged_any"] = any(bool(t.get("diverged")) for t in rec["trials"])
    rec.update(
        {
            "model": model_name,
            "ckpt": ckpt,
            "optimizer": optimizer,
            "B": batch_size,
            "seed": seed_index,
            "batch_seed": batch_seed,
            **timer.fields(),
        }
    )
    return _with_env(ctx, rec)


def predictions_cell(ctx: RunContext, model_name: str, ckpt: int, grid: list[int]) -> dict[str, Any]:
    """Step 5, one checkpoint: every spectrum model's prediction scored against the stored sweep."""
    from validation.experiments import spectrum_scoring

    record = spectrum_scoring.compute_predictions(
        ctx.store, ctx.config, model=model_name, ckpt=ckpt, grid=grid
    )
    return record.to_dict()


def _model_and_pool(ctx: RunContext, model_name: str, ckpt: int) -> tuple[Any, Any, Any]:
    """The checkpoint's model and the pool (x in the model's dtype, both on its device)."""
    from networks.training import model_device

    model = checkpoint_model(ctx, model_name, ckpt)
    pool = pool_of(ctx)
    device = model_device(model)
    return model, pool.x.to(device=device, dtype=next(model.parameters()).dtype), pool.y.to(device)


def finite_horizon_cell(ctx: RunContext, model_name: str, ckpt: int) -> dict[str, Any]:
    """Step 6c, one threshold checkpoint: the pool's per-sample gradient and curvature moments along the
    step-2 top eigenvectors of H (``validation.experiments.finite_horizon_stats``, docs/theory.md §3d)."""
    from validation.experiments import checkpoints as ckpt_step
    from validation.experiments import spectra as spectra_step
    from validation.experiments.finite_horizon_stats import finite_horizon_record
    from validation.provenance import timed

    model, x, y = _model_and_pool(ctx, model_name, ckpt)
    spectra = ctx.store.get(spectra_step.STEP, cell_key(model=model_name, ckpt=ckpt))
    vectors = ctx.store.load_array(spectra["hessian_vectors"])
    with timed() as timer:
        rec = finite_horizon_record(ctx.config, model, ckpt_step.loss_function(), x, y, vectors)
    rec.update(model=model_name, ckpt=ckpt, **timer.fields())
    return _with_env(ctx, rec)


def preconditioned_cell(ctx: RunContext, model_name: str, ckpt: int, batch_size: int) -> dict[str, Any]:
    """Step 6b, one (checkpoint, B): λ_max(P⁻¹H_B) of Adam's warm-up preconditioner per trial seed."""
    from validation.experiments import checkpoints as ckpt_step
    from validation.experiments.preconditioned import measure_preconditioned_cell
    from validation.provenance import timed

    model, x, y = _model_and_pool(ctx, model_name, ckpt)
    with timed() as timer:
        rec = measure_preconditioned_cell(
            ctx.config,
            model,
            ckpt_step.loss_function(),
            x,
            y,
            model_name=model_name,
            ckpt=ckpt,
            batch_size=batch_size,
        )
    rec.update(timer.fields())
    return _with_env(ctx, rec)
