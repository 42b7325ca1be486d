"""Divergence trials: is a learning rate stable from a fixed checkpoint? (docs/validation.md §1)

A trial measures stability at one learning rate η from a checkpoint w_c: K steps with fresh batches of B pool
samples at rate η; *strict* stability means the pool loss L never exceeds (1 + δ)·L(w_c) and stays finite,
*lenient* stability means the final L ≤ 2·L(w_c) and finite. Divergence (a non-finite loss, an update that
overflows the parameters' dtype) is a result, never an exception.

Every setting of a trial and of the threshold search built on it (:func:`networks.thresholds.find_max_lr`)
is a field of :class:`TrialSettings`, whose defaults are the only ones: :class:`TrialRunner`,
:func:`divergence_trial` and ``validation.experiments.thresholds.measure_threshold_cell`` take it whole.

Two implementations of the same trial: one ``torch.optim`` optimizer per trial on a copy of the model
(sequential; any optimizer factory, BatchNorm with batch statistics), and G trials at once with stacked
parameter copies stepped by functional SGD / heavy ball / Adam under ``torch.func.vmap`` (vectorised; named
optimizers, BatchNorm with running statistics). They agree to float rounding
(tests/networks/test_training.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from networks.options import (
    OPTIMIZERS,
    BNMode,
    Criterion,
    Optimizer,
)
from networks.training import (
    ArrayDataset,
    batch_loss,
    check_dataset,
    loss_targets,
    make_optimizer,
    model_device,
    overflow_safe_step,
)
from networks.trial_settings import TrialSettings
from rmt.checks import check_choice, check_int, check_positive

__all__ = [
    "OptimizerFactory",
    "TrialResult",
    "TrialRunner",
    "TrialSettings",
    "divergence_trial",
    "evaluation_subset",
]

OptimizerFactory = Callable[[Any, float], torch.optim.Optimizer]
"""``(params, lr) -> torch.optim.Optimizer``: a trial optimizer that is not one of the named ones."""

VECTORISE_MAX_BATCH = 32
"""``vectorise="auto"`` vectorises for B ≤ this: measured on 2 shared CPU cores (VGG-11/16 and WRN-10-1/4 on
28×28 inputs, K = 20, 8 lrs per pass) the vmap pass is 1.5–2.6× faster per trial at B = 2 and no faster (up
to 2× slower) at B = 64, where batched grouped convolutions lose to plain ones."""

EVAL_CHUNK = 1024
"""Pool samples per forward pass when the trial loss is evaluated."""


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one divergence trial at learning rate ``lr`` from the checkpoint w_c.

    ``initial_loss`` = L(w_c) and ``final_loss`` / ``max_loss`` are pool losses (on the trial's evaluation
    subset); ``stable_strict``: every evaluated L ≤ (1 + δ)·L(w_c) and finite; ``stable_lenient``: the final
    L ≤ 2·L(w_c) and finite; ``diverged``: some loss or parameter became non-finite; ``steps``: steps run."""

    lr: float
    stable_strict: bool
    stable_lenient: bool
    diverged: bool
    initial_loss: float
    final_loss: float
    max_loss: float
    steps: int

    def stable(self, criterion: Criterion) -> bool:
        return self.stable_strict if criterion == "strict" else self.stable_lenient

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _set_trial_mode(model: nn.Module, bn_mode: BNMode) -> None:
    """Eval mode (no dropout) with BatchNorm layers in train mode when ``bn_mode == "train"``."""
    model.eval()
    if bn_mode == "train":
        for module in model.modules():
            if _is_batch_norm(module):
                module.train()


def evaluation_subset(n: int, eval_size: int | None) -> Tensor:
    """The fixed pool subset on which the trial loss is evaluated: a seed-0 random subset of ``eval_size``
    samples (the whole pool when ``eval_size`` is None or ≥ n). Independent of the trial seed."""
    if eval_size is None or eval_size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:eval_size]


def _batch_sequence(n: int, batch_size: int, seed: int, count: int) -> list[Tensor]:
    """``count`` fresh batches of ``batch_size`` distinct pool indices, from ``torch.Generator(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=gen)[:batch_size] for _ in range(count)]


def _classify(lr: float, losses: list[float], initial: float, delta: float, steps_run: int) -> TrialResult:
    """Apply the strict and lenient criteria to the pool-loss trajectory ``losses`` (evaluated steps)."""
    finite = all(math.isfinite(v) for v in losses) and math.isfinite(initial)
    max_loss = max(losses) if finite else math.inf
    final = losses[-1] if losses else initial
    return TrialResult(
        lr=float(lr),
        stable_strict=finite and max_loss <= (1.0 + delta) * initial,
        stable_lenient=finite and math.isfinite(final) and final <= 2.0 * initial,
        diverged=not finite,
        initial_loss=float(initial),
        final_loss=float(final) if finite else math.inf,
        max_loss=float(max_loss),
        steps=steps_run,
    )


@dataclass(frozen=True)
class _TrialSetup:
    """What every trial of one runner shares: the pool tensors, the cell's B and seed, the settings."""

    loss_fn: Callable[..., Tensor]
    x: Tensor
    y: Tensor
    eval_x: Tensor
    eval_y: Tensor
    batch_size: int
    seed: int
    settings: TrialSettings

    def batches(self) -> list[Tensor]:
        s = self.settings
        return _batch_sequence(self.x.shape[0], self.batch_size, self.seed, s.warmup_steps + s.steps)

    def evaluated(self, steps_run: int) -> bool:
        """Is the pool loss evaluated after ``steps_run`` (post-warm-up) steps?"""
        return steps_run % self.settings.eval_every == 0 or steps_run == self.settings.steps


def _run_sequential(
    model: nn.Module, setup: _TrialSetup, factory: OptimizerFactory, lr: float
) -> TrialResult:
    """One trial on a deep copy of ``model`` with a torch optimizer built by ``factory(params, lr)``.

    An update that overflows the parameters' dtype ends the trial with loss +inf (diverged)."""
    work = copy.deepcopy(model)
    bn_mode = setup.settings.bn_mode
    _set_trial_mode(work, bn_mode)
    loss_fn = setup.loss_fn

    @torch.no_grad()
    def pool_loss() -> float:
        if bn_mode == "train":  # batch statistics: the evaluation subset is one batch
            return float(batch_loss(work, loss_fn, setup.eval_x, setup.eval_y)[0])
        total = 0.0
        for s in range(0, setup.eval_x.shape[0], EVAL_CHUNK):
            xc, yc = setup.eval_x[s : s + EVAL_CHUNK], setup.eval_y[s : s + EVAL_CHUNK]
            total += float(batch_loss(work, loss_fn, xc, yc)[0]) * xc.shape[0]
        return total / setup.eval_x.shape[0]

    initial = pool_loss()
    optimizer = factory(work.parameters(), lr)
    losses: list[float] = []
    steps_run = 0
    for t, idx in enumerate(setup.batches()):
        warm = t < setup.settings.warmup_steps
        for group in optimizer.param_groups:
            group["lr"] = 0.0 if warm else lr
        optimizer.zero_grad(set_to_none=True)
        loss, _ = batch_loss(work, loss_fn, setup.x[idx], setup.y[idx])
        loss.backward()
        ok, _ = overflow_safe_step(optimizer)
        steps_run += 0 if warm else 1
        if not ok:
            losses.append(math.inf)
            break
        if not warm and setup.evaluated(steps_run):
            losses.append(pool_loss())
            if not math.isfinite(losses[-1]):
                break
    return _classify(lr, losses, initial, setup.settings.delta, steps_run)


class _StackedOptimizer:
    """Functional SGD / heavy ball / Adam on G stacked parameter copies (PyTorch update rules, weight decay
    0): ``direction`` returns the update u with w ← w − η·u (per-copy η applied by the caller).

    * sgd: u = g;  heavy ball: v ← βv + g (v₁ = g), u = v;
    * adam: m ← β1·m + (1−β1)g, v ← β2·v + (1−β2)g², u = (m/(1−β1ᵏ)) / (√(v/(1−β2ᵏ)) + ε), k = step + 1.
    """

    def __init__(self, name: Optimizer, settings: TrialSettings) -> None:
        self.name = name
        self.momentum = settings.momentum
        self.beta1, self.beta2 = settings.adam_betas
        self.eps = settings.adam_eps
        self.state: dict[str, dict[str, Tensor]] = {}

    def direction(self, key: str, p: Tensor, g: Tensor, t: int) -> Tensor:
        if self.name == "sgd":
            return g
        if self.name == "momentum":
            buf = self.state.setdefault(key, {}).get("buf")
            update = g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
            self.state[key]["buf"] = update
            return update
        st = self.state.setdefault(key, {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
        st["m"].mul_(self.beta1).add_(g, alpha=1 - self.beta1)
        st["v"].mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        k = t + 1
        denom = (st["v"] / (1 - self.beta2**k)).sqrt_().add_(self.eps)
        return st["m"] / (1 - self.beta1**k) / denom


def _run_vectorised(
    model: nn.Module, setup: _TrialSetup, name: Optimizer, lrs: Sequence[float]
) -> list[TrialResult]:
    """Trials at all ``lrs`` at once: G stacked parameter copies stepped by :class:`_StackedOptimizer` with
    ``torch.func.vmap`` over ``functional_call``. Every copy sees the same batch sequence, as separate
    sequential trials with the same seed would. An lr that overflows the dtype gives that copy ±inf/NaN
    parameters (diverged) without touching the others."""
    from torch.func import functional_call, grad, vmap

    template = copy.deepcopy(model)
    _set_trial_mode(template, "eval")
    buffers = {n: b.detach() for n, b in template.named_buffers()}
    g = len(lrs)
    params = {n: p.detach().unsqueeze(0).repeat(g, *([1] * p.ndim)) for n, p in template.named_parameters()}
    loss_fn = setup.loss_fn

    def loss_of(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(template, (p, buffers), (x,))
        return loss_fn(out, loss_targets(loss_fn, out, y))

    batched_grad = vmap(grad(loss_of), in_dims=(0, None, None))
    batched_loss = vmap(loss_of, in_dims=(0, None, None))

    @torch.no_grad()
    def pool_losses(p: dict[str, Tensor]) -> Tensor:
        total = torch.zeros(g, dtype=torch.float64)
        for s in range(0, setup.eval_x.shape[0], EVAL_CHUNK):
            xc, yc = setup.eval_x[s : s + EVAL_CHUNK], setup.eval_y[s : s + EVAL_CHUNK]
            total += batched_loss(p, xc, yc).double().cpu() * xc.shape[0]
        return total / setup.eval_x.shape[0]

    some = next(iter(params.values()))
    lr_t = torch.tensor([float(v) for v in lrs], dtype=some.dtype, device=some.device)
    initial = float(pool_losses(params)[0])
    stepper = _StackedOptimizer(name, setup.settings)
    history: list[Tensor] = []
    alive = torch.ones(g, dtype=torch.bool)
    steps_run = 0
    for t, idx in enumerate(setup.batches()):
        warm = t < setup.settings.warmup_steps
        grads = batched_grad(params, setup.x[idx], setup.y[idx])
        for n, p in params.items():
            update = stepper.direction(n, p, grads[n], t)
            if not warm:  # warm-up: the optimizer state moves, the weights do not
                params[n] = p - lr_t.view(g, *([1] * (p.ndim - 1))) * update
        if warm:
            continue
        steps_run += 1
        if setup.evaluated(steps_run):
            current = pool_losses(params)
            history.append(current)
            alive &= torch.isfinite(current)
            if not bool(alive.any()):
                break
    results = []
    for j, lr in enumerate(lrs):
        traj = [float(h[j]) for h in history]
        first_bad = next((i for i, v in enumerate(traj) if not math.isfinite(v)), None)
        if first_bad is not None:
            traj = traj[: first_bad + 1]
        results.append(_classify(lr, traj, initial, setup.settings.delta, steps_run))
    return results


class TrialRunner:
    """Divergence trials from a fixed checkpoint with fixed settings, callable at any learning rate.

    ``runner(lr)`` runs one trial; ``runner.run_many(lrs)`` runs several — in one vectorised pass (groups of
    at most ``settings.max_parallel``) when the optimizer is a name and BatchNorm is in eval mode (or absent)
    and ``settings.vectorise`` allows it, else one by one. Results are cached by lr, so the strict and lenient
    searches share trials. The caller's model is never modified (trials run on copies).

    Args:
        model, loss_fn, pool: the checkpoint w_c, the mean-reduced loss and the pool of samples.
        optimizer: ``"sgd" | "momentum" | "adam"`` (hyper-parameters from ``settings``) or a factory
            ``(params, lr) -> torch.optim.Optimizer`` (always run sequentially).
        batch_size: B, at most the pool size.
        seed: fixes the batch sequence (``torch.Generator(seed)``), the same for every lr.
        settings: :class:`TrialSettings` (default ``TrialSettings()``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., Tensor],
        pool: ArrayDataset,
        *,
        optimizer: Optimizer | OptimizerFactory,
        batch_size: int,
        seed: int,
        settings: TrialSettings | None = None,
    ) -> None:
        check_dataset(pool, "pool")
        settings = TrialSettings() if settings is None else settings
        if not isinstance(settings, TrialSettings):
            raise TypeError(f"settings must be a TrialSettings, got {type(settings).__name__}")
        n = len(pool)
        batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=n)
        if isinstance(optimizer, str):
            check_choice(optimizer, "optimizer", OPTIMIZERS)
        elif not callable(optimizer):
            raise TypeError(
                f"optimizer must be a name in {OPTIMIZERS} or a callable(params, lr), "
                f"got {type(optimizer).__name__}"
            )
        self.model = model
        self.optimizer = optimizer
        self.settings = settings
        self.max_parallel = settings.max_parallel
        device = model_device(model)
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        x = pool.x.to(device=device, dtype=dtype)
        y = pool.y.to(device)
        eval_idx = evaluation_subset(n, settings.eval_size).to(device)
        self.setup = _TrialSetup(
            loss_fn=loss_fn,
            x=x,
            y=y,
            eval_x=x[eval_idx],
            eval_y=y[eval_idx],
            batch_size=batch_size,
            seed=check_int(seed, "seed", minimum=0),
            settings=settings,
        )
        vectorise = settings.vectorise
        wanted = batch_size <= VECTORISE_MAX_BATCH if vectorise == "auto" else bool(vectorise)
        has_bn = any(_is_batch_norm(m) for m in model.modules())
        self.vectorised = wanted and isinstance(optimizer, str) and (settings.bn_mode == "eval" or not has_bn)
        self.cache: dict[float, TrialResult] = {}

    @property
    def num_trials(self) -> int:
        return len(self.cache)

    @property
    def eval_size(self) -> int:
        """The number of pool samples on which the trial loss is evaluated."""
        return int(self.setup.eval_x.shape[0])

    def _factory(self) -> OptimizerFactory:
        if isinstance(self.optimizer, str):
            name, kwargs = self.optimizer, self.settings.optimizer_kwargs(self.optimizer)
            return lambda params, lr: make_optimizer(name, params, lr, **kwargs)
        return self.optimizer

    def run_many(self, lrs: Sequence[float]) -> list[TrialResult]:
        """The trials at every lr of ``lrs`` (each finite and > 0), in that order; new ones are run."""
        for lr in lrs:
            check_positive(lr, "lr")
        todo = sorted({float(lr) for lr in lrs if float(lr) not in self.cache})
        if self.vectorised and isinstance(self.optimizer, str):
            for s in range(0, len(todo), self.max_parallel):
                chunk = todo[s : s + self.max_parallel]
                for r in _run_vectorised(self.model, self.setup, self.optimizer, chunk):
                    self.cache[r.lr] = r
        else:
            factory = self._factory()
            for lr in todo:
                self.cache[lr] = _run_sequential(self.model, self.setup, factory, lr)
        return [self.cache[float(lr)] for lr in lrs]

    def __call__(self, lr: float) -> TrialResult:
        return self.run_many([lr])[0]


def divergence_trial(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    pool: ArrayDataset,
    *,
    optimizer: Optimizer | OptimizerFactory,
    lr: float,
    batch_size: int,
    seed: int,
    settings: TrialSettings | None = None,
) -> TrialResult:
    """One local divergence trial (docs/validation.md §1) at ``lr`` from the model's current weights w_c.

    K = ``settings.steps`` steps at rate ``lr`` with fresh batches of ``batch_size`` distinct pool samples
    (``torch.Generator(seed)``), after ``settings.warmup_steps`` lr-0 steps; the pool loss L is evaluated
    every ``settings.eval_every`` steps and after the last. Strict: L ≤ (1 + δ)·L(w_c) and finite at every
    evaluation; lenient: final L ≤ 2·L(w_c) and finite. The caller's model is never modified. Same as
    ``TrialRunner(...)(lr)``.
    """
    runner = TrialRunner(
        model, loss_fn, pool, optimizer=optimizer, batch_size=batch_size, seed=seed, settings=settings
    )
    return runner(lr)
