"""Training loop, learning-rate schedule, evaluation, and short divergence trials.

Conventions shared by every function here:

* ``data`` is an :class:`networks.data.ArrayDataset` (anything with tensor attributes ``.x`` / ``.y`` and
  ``__len__`` works). Inputs are moved to the device of the model's first parameter.
* ``loss_fn`` is a mean-reduced loss such as ``nn.CrossEntropyLoss()`` or ``nn.MSELoss()``. For ``nn.MSELoss``
  with integer class labels and 2-D outputs, the labels are one-hot encoded (the usual "MSE on classification"
  convention); otherwise ``loss_fn(model(x), y)`` is called as is.
* Batches are drawn without replacement from a seeded ``torch.Generator`` permutation per epoch; an
  incomplete last batch is dropped, so every optimizer step sees exactly ``batch_size`` samples.

The divergence trial (VALIDATION.md §1) measures the local threshold η_div(B) at a fixed checkpoint w_c:
K steps with fresh batches at rate η from w_c; *strict* stability means the pool loss L never exceeds
(1 + δ)·L(w_c) and stays finite, *lenient* stability means the final L ≤ 2·L(w_c) and finite.
:func:`find_max_lr` bisects on log η and checks monotonicity below the answer.
"""

from __future__ import annotations

import copy
import importlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn


class ArrayDataset(Protocol):
    """What this module needs of a :class:`networks.data.ArrayDataset` (structural type)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int: ...


__all__ = [
    "ThresholdResult",
    "TrainHistory",
    "TrainRecord",
    "TrialResult",
    "TrialRunner",
    "divergence_trial",
    "evaluate",
    "find_max_lr",
    "lineage_schedule",
    "loss_targets",
    "make_optimizer",
    "train",
]

OPTIMIZER_NAMES = ("sgd", "momentum", "adam")


# ----------------------------------------------------------------------------------------------------
# argument checks (torch layer; same wording as rmt.checks)
# ----------------------------------------------------------------------------------------------------
def _check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    lower = 0 if allow_zero else 1
    if value < lower:
        raise ValueError(f"{name} must be >= {lower}, got {value}")
    return int(value)


def _check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value


def _check_dataset(name: str, data: Any) -> None:
    if not (hasattr(data, "x") and hasattr(data, "y") and hasattr(data, "__len__")):
        raise TypeError(
            f"{name} must be an ArrayDataset (with .x, .y and __len__), got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"{name} must contain at least one sample")


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------------
# schedule, optimizer, loss helpers
# ----------------------------------------------------------------------------------------------------
def lineage_schedule(base_lr: float, total_steps: int) -> Callable[[int], float]:
    """The training recipe's schedule: lr(t) = base_lr for t/T ≤ 0.5, linear from base_lr to 0.01·base_lr
    on 0.5 ≤ t/T ≤ 0.9, and 0.01·base_lr afterwards (T = ``total_steps``, t = the 0-based step)."""
    base_lr = _check_positive_float("base_lr", base_lr)
    total_steps = _check_positive_int("total_steps", total_steps)

    def schedule(step: int) -> float:
        frac = step / total_steps
        if frac <= 0.5:
            factor = 1.0
        elif frac <= 0.9:
            factor = 1.0 - 0.99 * (frac - 0.5) / 0.4
        else:
            factor = 0.01
        return base_lr * factor

    return schedule


def make_optimizer(
    name: str,
    params: Any,
    lr: float,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``"sgd"`` (plain SGD), ``"momentum"`` (heavy ball, PyTorch convention v ← βv + g, w ← w − ηv) or
    ``"adam"``. ``params`` is anything ``torch.optim`` accepts (an iterable of tensors or of param groups)."""
    if not isinstance(name, str) or name not in OPTIMIZER_NAMES:
        raise ValueError(f"name must be one of {OPTIMIZER_NAMES}, got {name!r}")
    lr = _check_positive_float("lr", lr, allow_zero=True)
    weight_decay = _check_positive_float("weight_decay", weight_decay, allow_zero=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        return torch.optim.SGD(params, lr=lr, momentum=float(momentum), weight_decay=weight_decay)
    if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")
    eps = _check_positive_float("eps", eps)
    return torch.optim.Adam(
        params, lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps, weight_decay=weight_decay
    )


def loss_targets(loss_fn: Callable[..., Tensor], outputs: Tensor, y: Tensor) -> Tensor:
    """The target tensor to pass to ``loss_fn``: one-hot labels for ``nn.MSELoss`` on integer labels with
    2-D outputs, ``y`` unchanged otherwise."""
    if isinstance(loss_fn, nn.MSELoss) and not y.is_floating_point() and outputs.ndim == 2:
        return nn.functional.one_hot(y, outputs.shape[1]).to(outputs.dtype)
    return y


def _batch_loss(
    model: nn.Module, loss_fn: Callable[..., Tensor], x: Tensor, y: Tensor
) -> tuple[Tensor, Tensor]:
    outputs = model(x)
    return loss_fn(outputs, loss_targets(loss_fn, outputs, y)), outputs


@torch.no_grad()
def evaluate(
    model: nn.Module, loss_fn: Callable[..., Tensor], data: ArrayDataset, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean loss and accuracy over ``data`` in eval mode under ``no_grad`` (model mode restored afterwards).

    The mean loss weights each chunk by its size, so it equals the mean-reduced loss over all of ``data``.
    Accuracy is the fraction of argmax predictions equal to integer labels; NaN when the labels are not
    integer class indices (regression)."""
    _check_dataset("data", data)
    batch_size = _check_positive_int("batch_size", batch_size)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        total_loss, correct, n = 0.0, 0, len(data)
        classify = not data.y.is_floating_point()
        for start in range(0, n, batch_size):
            x = data.x[start : start + batch_size].to(device)
            y = data.y[start : start + batch_size].to(device)
            loss, outputs = _batch_loss(model, loss_fn, x, y)
            total_loss += float(loss) * x.shape[0]
            if classify and outputs.ndim == 2:
                correct += int((outputs.argmax(dim=1) == y).sum())
        accuracy = correct / n if classify else math.nan
        return total_loss / n, accuracy
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------------------------------
# training loop
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainRecord:
    """One row of a training history. ``epoch`` is fractional (steps / steps per epoch); ``train_loss`` is the
    mean minibatch loss since the previous record; ``eval_*`` are None without ``eval_data``; ``lr`` is the
    first param group's lr after the last step; ``wall_time`` is seconds since the start of training."""

    step: int
    epoch: float
    train_loss: float
    eval_loss: float | None
    eval_accuracy: float | None
    lr: float
    wall_time: float
    diverged: bool


@dataclass
class TrainHistory:
    """The records of one run (a sequence of :class:`TrainRecord`)."""

    records: list[TrainRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TrainRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> TrainRecord:
        return self.records[index]

    @property
    def diverged(self) -> bool:
        """True if the run stopped because the loss became non-finite or exceeded the cap."""
        return bool(self.records) and self.records[-1].diverged

    @property
    def final(self) -> TrainRecord:
        if not self.records:
            raise ValueError("the history is empty")
        return self.records[-1]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.records]


def _is_divergent(loss: float, loss_cap: float | None) -> bool:
    return not math.isfinite(loss) or (loss_cap is not None and loss > loss_cap)


def train(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    train_data: ArrayDataset,
    *,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    seed: int,
    epochs: int | None = None,
    steps: int | None = None,
    augment: bool = False,
    lr_schedule: Callable[[int], float] | None = None,
    eval_data: ArrayDataset | None = None,
    eval_every: int | None = None,
    progress: bool = False,
    loss_cap: float | None = None,
    use_closure: bool = False,
) -> TrainHistory:
    """Train ``model`` in place with minibatches of ``batch_size`` and return its history.

    The run lasts ``epochs`` epochs or ``steps`` optimizer steps (the earlier, if both are given). The batch
    order depends only on ``seed``; augmentation (``networks.data.random_crop_flip``) uses its own generator
    seeded from ``seed`` so that switching it on does not change the batch order.

    ``lr_schedule(step) -> lr`` sets every param group's lr to that absolute value before step ``step``
    (0-based). ``lr_schedule=None`` leaves the lr alone, which is what an optimizer that sets its own lr
    (e.g. the SLQ learner) needs. The optimizer's ``step()`` is called plainly, after ``loss.backward()``;
    with ``use_closure=True`` it is called as ``step(closure)`` with a closure that recomputes loss and
    gradients (LBFGS-style optimizers).

    A record is written every ``eval_every`` steps (default: once per epoch) and at the end. Divergence — a
    non-finite minibatch loss, one above ``loss_cap``, or a non-finite final eval loss — stops the run and is
    recorded with ``diverged=True``; it never raises. The model's train/eval mode is restored on return.
    """
    _check_dataset("train_data", train_data)
    if eval_data is not None:
        _check_dataset("eval_data", eval_data)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    batch_size = _check_positive_int("batch_size", batch_size)
    n = len(train_data)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of training samples ({n}), got {batch_size}")
    seed = _check_positive_int("seed", seed, allow_zero=True)
    if epochs is None and steps is None:
        raise ValueError("give epochs or steps (or both; training stops at the earlier)")
    steps_per_epoch = n // batch_size
    limits = []
    if epochs is not None:
        limits.append(_check_positive_int("epochs", epochs) * steps_per_epoch)
    if steps is not None:
        limits.append(_check_positive_int("steps", steps))
    total_steps = min(limits)
    eval_every = steps_per_epoch if eval_every is None else _check_positive_int("eval_every", eval_every)
    if loss_cap is not None:
        loss_cap = _check_positive_float("loss_cap", loss_cap)

    augmenter: Callable[[Tensor, torch.Generator], Tensor] | None = None
    if augment:
        # lazy import: networks.data is a sibling package written independently of this module
        augmenter = importlib.import_module("networks.data").random_crop_flip

    device = _model_device(model)
    batch_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed + 1_000_003)
    history = TrainHistory()
    was_training = model.training
    start = time.perf_counter()
    loss_sum, loss_count, step = 0.0, 0, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc="train")

    def current_lr() -> float:
        return float(optimizer.param_groups[0]["lr"])

    def record(diverged: bool) -> None:
        nonlocal loss_sum, loss_count
        eval_loss: float | None = None
        eval_acc: float | None = None
        if eval_data is not None and not diverged:
            eval_loss, eval_acc = evaluate(model, loss_fn, eval_data)
            diverged = _is_divergent(eval_loss, loss_cap)
        train_loss = loss_sum / loss_count if loss_count else math.nan
        history.records.append(
            TrainRecord(
                step=step,
                epoch=step / steps_per_epoch,
                train_loss=train_loss,
                eval_loss=eval_loss,
                eval_accuracy=eval_acc,
                lr=current_lr(),
                wall_time=time.perf_counter() - start,
                diverged=diverged,
            )
        )
        loss_sum, loss_count = 0.0, 0
        model.train()

    try:
        model.train()
        perm = torch.randperm(n, generator=batch_gen)
        while step < total_steps:
            pos = step % steps_per_epoch
            if pos == 0 and step > 0:
                perm = torch.randperm(n, generator=batch_gen)
            idx = perm[pos * batch_size : (pos + 1) * batch_size]
            x = train_data.x[idx]
            if augmenter is not None:
                x = augmenter(x, aug_gen)
            x, y = x.to(device), train_data.y[idx].to(device)
            if lr_schedule is not None:
                lr = float(lr_schedule(step))
                for group in optimizer.param_groups:
                    group["lr"] = lr

            if use_closure:

                def closure(x: Tensor = x, y: Tensor = y) -> float:
                    optimizer.zero_grad(set_to_none=True)
                    closure_loss, _ = _batch_loss(model, loss_fn, x, y)
                    closure_loss.backward()
                    return closure_loss  # type: ignore[return-value]  # torch optimizers accept tensors

                stepped: Any = optimizer.step(closure)
                loss_value = float(stepped.detach()) if isinstance(stepped, Tensor) else float(stepped)
            else:
                optimizer.zero_grad(set_to_none=True)
                loss, _ = _batch_loss(model, loss_fn, x, y)
                loss_value = float(loss.detach())
                if _is_divergent(loss_value, loss_cap):
                    loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
                    record(diverged=True)
                    return history
                loss.backward()
                optimizer.step()
            step += 1
            loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
            if bar is not None:
                bar.update(1)
            if _is_divergent(loss_value, loss_cap):
                record(diverged=True)
                return history
            if step % eval_every == 0 or step == total_steps:
                record(diverged=False)
                if history.records[-1].diverged:
                    return history
        return history
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()


# ----------------------------------------------------------------------------------------------------
# divergence trials (VALIDATION.md §1)
# ----------------------------------------------------------------------------------------------------
OptimizerFactory = Callable[[Any, float], torch.optim.Optimizer]
BN_MODES = ("eval", "train")
CRITERIA = ("strict", "lenient")
VECTORISE_MAX_BATCH = 32


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

    def stable(self, criterion: str) -> bool:
        return self.stable_strict if criterion == "strict" else self.stable_lenient

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _set_trial_mode(model: nn.Module, bn_mode: str) -> None:
    """Eval mode (no dropout) with BatchNorm layers in train mode when ``bn_mode == "train"``."""
    model.eval()
    if bn_mode == "train":
        for module in model.modules():
            if _is_batch_norm(module):
                module.train()


def _eval_indices(n: int, eval_size: int | None) -> Tensor:
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
    loss_fn: Callable[..., Tensor]
    x: Tensor
    y: Tensor
    eval_x: Tensor
    eval_y: Tensor
    batch_size: int
    steps: int
    seed: int
    delta: float
    warmup_steps: int
    eval_every: int
    bn_mode: str
    eval_chunk: int


def _run_sequential(
    model: nn.Module, setup: _TrialSetup, factory: OptimizerFactory, lr: float
) -> TrialResult:
    """One trial on a deep copy of ``model`` with a torch optimizer built by ``factory(params, lr)``."""
    work = copy.deepcopy(model)
    _set_trial_mode(work, setup.bn_mode)
    loss_fn = setup.loss_fn

    @torch.no_grad()
    def pool_loss() -> float:
        if setup.bn_mode == "train":  # batch statistics: the evaluation subset is one batch
            return float(_batch_loss(work, loss_fn, setup.eval_x, setup.eval_y)[0])
        total = 0.0
        for s in range(0, setup.eval_x.shape[0], setup.eval_chunk):
            xc, yc = setup.eval_x[s : s + setup.eval_chunk], setup.eval_y[s : s + setup.eval_chunk]
            total += float(_batch_loss(work, loss_fn, xc, yc)[0]) * xc.shape[0]
        return total / setup.eval_x.shape[0]

    initial = pool_loss()
    optimizer = factory(work.parameters(), lr)
    batches = _batch_sequence(
        setup.x.shape[0], setup.batch_size, setup.seed, setup.warmup_steps + setup.steps
    )
    losses: list[float] = []
    steps_run = 0
    for t, idx in enumerate(batches):
        warm = t < setup.warmup_steps
        for group in optimizer.param_groups:
            group["lr"] = 0.0 if warm else lr
        optimizer.zero_grad(set_to_none=True)
        loss, _ = _batch_loss(work, loss_fn, setup.x[idx], setup.y[idx])
        loss.backward()
        optimizer.step()
        if warm:
            continue
        steps_run += 1
        if steps_run % setup.eval_every == 0 or steps_run == setup.steps:
            losses.append(pool_loss())
            if not math.isfinite(losses[-1]):
                break
    return _classify(lr, losses, initial, setup.delta, steps_run)


def _run_vectorised(
    model: nn.Module, setup: _TrialSetup, name: str, lrs: Sequence[float], hyper: dict[str, Any]
) -> list[TrialResult]:
    """Trials at all ``lrs`` at once: G stacked parameter copies stepped by a functional SGD / heavy-ball /
    Adam (PyTorch update rules, weight decay 0) with ``torch.func.vmap`` over ``functional_call``.
    Every copy sees the same batch sequence, as separate sequential trials with the same seed would."""
    from torch.func import functional_call, grad, vmap

    template = copy.deepcopy(model)
    _set_trial_mode(template, "eval")
    names = [n for n, _ in template.named_parameters()]
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
        n_eval = setup.eval_x.shape[0]
        for s in range(0, n_eval, setup.eval_chunk):
            xc, yc = setup.eval_x[s : s + setup.eval_chunk], setup.eval_y[s : s + setup.eval_chunk]
            total += batched_loss(p, xc, yc).double().cpu() * xc.shape[0]
        return total / n_eval

    some = next(iter(params.values()))
    lr_t = torch.tensor([float(v) for v in lrs], dtype=some.dtype, device=some.device)

    def per_copy(v: Tensor, ndim: int) -> Tensor:
        return v.view(g, *([1] * ndim))

    initial = float(pool_losses(params)[0])
    state: dict[str, dict[str, Tensor]] = {}
    momentum = float(hyper.get("momentum", 0.9))
    beta1, beta2 = (float(b) for b in hyper.get("betas", (0.9, 0.999)))
    eps = float(hyper.get("eps", 1e-8))
    batches = _batch_sequence(
        setup.x.shape[0], setup.batch_size, setup.seed, setup.warmup_steps + setup.steps
    )
    history: list[Tensor] = []
    alive = torch.ones(g, dtype=torch.bool)
    steps_run = 0
    for t, idx in enumerate(batches):
        warm = t < setup.warmup_steps
        grads = batched_grad(params, setup.x[idx], setup.y[idx])
        for n in names:
            p, gr = params[n], grads[n]
            scale = per_copy(lr_t, p.ndim - 1) * (0.0 if warm else 1.0)
            if name == "sgd":
                update = gr
            elif name == "momentum":
                buf = state.setdefault(n, {}).get("buf")
                update = gr.clone() if buf is None else buf.mul_(momentum).add_(gr)
                state[n]["buf"] = update
            else:  # adam
                st = state.setdefault(n, {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
                st["m"].mul_(beta1).add_(gr, alpha=1 - beta1)
                st["v"].mul_(beta2).addcmul_(gr, gr, value=1 - beta2)
                k = t + 1
                denom = (st["v"] / (1 - beta2**k)).sqrt_().add_(eps)
                update = st["m"] / (1 - beta1**k) / denom
            params[n] = p - scale * update
        if warm:
            continue
        steps_run += 1
        if steps_run % setup.eval_every == 0 or steps_run == setup.steps:
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
        results.append(_classify(lr, traj, initial, setup.delta, steps_run))
    return results


class TrialRunner:
    """Divergence trials from a fixed checkpoint with fixed settings, callable at any learning rate.

    ``runner(lr)`` runs one trial; ``runner.run_many(lrs)`` runs several — in one vectorised pass (groups of
    at most ``max_parallel``) when the optimizer is a name and BatchNorm is in eval mode, else one by one.
    Results are cached by lr, so the strict and lenient searches share trials. The caller's model is never
    modified (trials run on copies). ``vectorise="auto"`` vectorises for B ≤ 32 only: measured on 2 shared
    CPU cores (VGG-11/16 and WRN-10-1/4 on 28×28 inputs, K = 20, 8 lrs per pass) the vmap pass is 1.5–2.6×
    faster per trial at B = 2 and no faster (up to 2× slower) at B = 64, where batched grouped convolutions
    lose to plain ones."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., Tensor],
        pool: ArrayDataset,
        *,
        optimizer: str | OptimizerFactory,
        batch_size: int,
        steps: int = 100,
        seed: int = 0,
        delta: float = 0.5,
        warmup_steps: int = 0,
        eval_every: int = 1,
        eval_size: int | None = None,
        bn_mode: str = "eval",
        optimizer_kwargs: dict[str, Any] | None = None,
        vectorise: bool | str = "auto",
        max_parallel: int = 8,
    ) -> None:
        _check_dataset("pool", pool)
        n = len(pool)
        batch_size = _check_positive_int("batch_size", batch_size)
        if batch_size > n:
            raise ValueError(f"batch_size must be <= the pool size ({n}), got {batch_size}")
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZER_NAMES:
                raise ValueError(
                    f"optimizer must be one of {OPTIMIZER_NAMES} or a factory, got {optimizer!r}"
                )
        elif not callable(optimizer):
            raise TypeError(
                f"optimizer must be a name or a callable(params, lr), got {type(optimizer).__name__}"
            )
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        delta = _check_positive_float("delta", delta)
        if eval_size is not None:
            eval_size = _check_positive_int("eval_size", eval_size)
        self.model = model
        self.optimizer = optimizer
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.max_parallel = _check_positive_int("max_parallel", max_parallel)
        device = _model_device(model)
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        x = pool.x.to(device=device, dtype=dtype)
        y = pool.y.to(device)
        eval_idx = _eval_indices(n, eval_size).to(device)
        self.setup = _TrialSetup(
            loss_fn=loss_fn,
            x=x,
            y=y,
            eval_x=x[eval_idx],
            eval_y=y[eval_idx],
            batch_size=batch_size,
            steps=_check_positive_int("steps", steps),
            seed=_check_positive_int("seed", seed, allow_zero=True),
            delta=delta,
            warmup_steps=_check_positive_int("warmup_steps", warmup_steps, allow_zero=True),
            eval_every=_check_positive_int("eval_every", eval_every),
            bn_mode=bn_mode,
            eval_chunk=1024,
        )
        if vectorise not in (True, False, "auto"):
            raise ValueError(f"vectorise must be True, False or 'auto', got {vectorise!r}")
        wanted = batch_size <= VECTORISE_MAX_BATCH if vectorise == "auto" else bool(vectorise)
        has_bn = any(_is_batch_norm(m) for m in model.modules())
        self.vectorised = wanted and isinstance(optimizer, str) and (bn_mode == "eval" or not has_bn)
        self.cache: dict[float, TrialResult] = {}

    @property
    def num_trials(self) -> int:
        return len(self.cache)

    def _factory(self) -> OptimizerFactory:
        if isinstance(self.optimizer, str):
            name, kwargs = self.optimizer, self.optimizer_kwargs
            return lambda params, lr: make_optimizer(name, params, lr, **kwargs)
        return self.optimizer

    def run_many(self, lrs: Sequence[float]) -> list[TrialResult]:
        for lr in lrs:
            _check_positive_float("lr", lr)
        todo = sorted({float(lr) for lr in lrs if float(lr) not in self.cache})
        if self.vectorised and isinstance(self.optimizer, str):
            for s in range(0, len(todo), self.max_parallel):
                chunk = todo[s : s + self.max_parallel]
                for r in _run_vectorised(
                    self.model, self.setup, self.optimizer, chunk, self.optimizer_kwargs
                ):
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
    optimizer: str | OptimizerFactory,
    lr: float,
    batch_size: int,
    steps: int = 100,
    seed: int = 0,
    delta: float = 0.5,
    warmup_steps: int = 0,
    eval_every: int = 1,
    eval_size: int | None = None,
    bn_mode: str = "eval",
    optimizer_kwargs: dict[str, Any] | None = None,
    vectorise: bool | str = "auto",
) -> TrialResult:
    """One local divergence trial (VALIDATION.md §1) from the model's current weights w_c.

    ``steps`` = K steps at rate ``lr`` with fresh batches of ``batch_size`` distinct pool samples
    (``torch.Generator(seed)``: the seed fixes the batch sequence). The pool loss L (mean over a fixed subset
    of ``eval_size`` pool samples, default the whole pool) is evaluated every ``eval_every`` steps and after
    the last one. Strict: L ≤ (1 + ``delta``)·L(w_c) and finite at every evaluation; lenient: final
    L ≤ 2·L(w_c) and finite. ``warmup_steps`` steps at lr 0 with the same B come first: they fill Adam's
    moments (and the momentum buffer) without moving the weights.

    ``optimizer``: ``"sgd" | "momentum" | "adam"`` (hyper-parameters in ``optimizer_kwargs``, as for
    :func:`make_optimizer`) or a factory ``(params, lr) -> torch.optim.Optimizer``. The caller's model is
    never modified. ``bn_mode``: BatchNorm with running ("eval") or batch ("train") statistics; dropout off.
    """
    runner = TrialRunner(
        model,
        loss_fn,
        pool,
        optimizer=optimizer,
        batch_size=batch_size,
        steps=steps,
        seed=seed,
        delta=delta,
        warmup_steps=warmup_steps,
        eval_every=eval_every,
        eval_size=eval_size,
        bn_mode=bn_mode,
        optimizer_kwargs=optimizer_kwargs,
        vectorise=vectorise,
    )
    return runner(lr)


# ----------------------------------------------------------------------------------------------------
# threshold search
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThresholdResult:
    """The largest stable learning rate found by :func:`find_max_lr`.

    ``lr_max`` is the largest lr verified stable (the lower end of ``bracket`` = (stable, unstable)), NaN if
    no stable lr was found; ``bracket_found`` is False when the bracket could not be closed (``bracket[1]`` is
    then inf: every lr tried was stable). ``monotone``: the two log-grid points below ``lr_max`` (spacing
    bracket[1]/bracket[0]) are stable too; ``unstable_below``: how many tried lrs below ``lr_max`` were
    unstable. ``trials``: every trial run, in order of lr."""

    lr_max: float
    bracket: tuple[float, float]
    criterion: str
    monotone: bool
    bracket_found: bool
    halvings: float
    unstable_below: int
    num_trials: int
    trials: tuple[TrialResult, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bracket"] = list(self.bracket)
        return d


def find_max_lr(
    trial: Callable[[float], TrialResult],
    *,
    lr_low: float,
    lr_high: float,
    halvings: int = 8,
    criterion: str = "strict",
    resolution: float = 1.05,
    points_per_round: int | None = None,
    expansion_factor: float = 10.0,
    max_expansions: int = 4,
) -> ThresholdResult:
    """Bisection on log η for the largest stable lr, then the monotonicity check.

    1. Bracket: ``lr_low`` must be stable and ``lr_high`` unstable; otherwise the bracket is moved down / up
       by ``expansion_factor`` at most ``max_expansions`` times.
    2. Refine: each round tries ``points_per_round`` = k log-equispaced points inside (lo, hi) and keeps the
       interval around the first unstable one (k = 1 is plain bisection; k points = log2(k + 1) halvings in
       one vectorised pass when ``trial`` has ``run_many``, default k = its ``max_parallel`` − 2), until at
       least ``halvings`` halvings are done and hi/lo ≤ ``resolution``.
    3. Monotonicity: lo/ρ and lo/ρ² (ρ = hi/lo) must be stable as well.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    lr_low = _check_positive_float("lr_low", lr_low)
    lr_high = _check_positive_float("lr_high", lr_high)
    if lr_high <= lr_low:
        raise ValueError(f"lr_high must exceed lr_low = {lr_low}, got {lr_high}")
    halvings = _check_positive_int("halvings", halvings)
    resolution = _check_positive_float("resolution", resolution)
    if resolution <= 1.0:
        raise ValueError(f"resolution must be > 1 (a ratio hi/lo), got {resolution}")
    expansion_factor = _check_positive_float("expansion_factor", expansion_factor)
    if expansion_factor <= 1.0:
        raise ValueError(f"expansion_factor must be > 1, got {expansion_factor}")
    max_expansions = _check_positive_int("max_expansions", max_expansions, allow_zero=True)

    many: Callable[[Sequence[float]], list[TrialResult]] | None = getattr(trial, "run_many", None)
    if points_per_round is None:
        points_per_round = max(1, getattr(trial, "max_parallel", 1) - 2) if many is not None else 1
    k = _check_positive_int("points_per_round", points_per_round)
    seen: dict[float, TrialResult] = {}

    def run(lrs: Sequence[float]) -> list[bool]:
        todo = [lr for lr in lrs if lr not in seen]
        if todo:
            results = many(todo) if many is not None else [trial(lr) for lr in todo]
            seen.update(zip(todo, results, strict=True))
        return [seen[lr].stable(criterion) for lr in lrs]

    def result(
        lr_max: float, lo: float, hi: float, found: bool, done: float, monotone: bool
    ) -> ThresholdResult:
        trials = tuple(seen[lr] for lr in sorted(seen))
        below = sum(1 for r in trials if r.lr < lr_max and not r.stable(criterion))
        return ThresholdResult(lr_max, (lo, hi), criterion, monotone, found, done, below, len(trials), trials)

    lo, hi = lr_low, lr_high
    lo_ok, hi_ok = run([lo, hi])
    for _ in range(max_expansions):
        if lo_ok:
            break
        hi, hi_ok = lo, False
        lo = lo / expansion_factor
        (lo_ok,) = run([lo])
    if not lo_ok:
        return result(math.nan, 0.0, lo, False, 0.0, False)
    for _ in range(max_expansions):
        if not hi_ok:
            break
        lo = hi
        hi = hi * expansion_factor
        (hi_ok,) = run([hi])
    if hi_ok:
        return result(hi, hi, math.inf, False, 0.0, False)

    done = 0.0
    while done < halvings or hi / lo > resolution:
        ratio = hi / lo
        points = [lo * ratio ** (j / (k + 1)) for j in range(1, k + 1)]
        ok = run(points)
        first_bad = next((j for j, s in enumerate(ok) if not s), None)
        if first_bad is None:
            lo = points[-1]
        else:
            hi = points[first_bad]
            lo = points[first_bad - 1] if first_bad > 0 else lo
        done += math.log2(k + 1)
    rho = hi / lo
    monotone = all(run([lo / rho, lo / rho**2]))
    return result(lo, lo, hi, True, done, monotone)
