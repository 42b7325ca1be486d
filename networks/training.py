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

import importlib
import math
import time
from collections.abc import Callable, Iterator
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
    "TrainHistory",
    "TrainRecord",
    "evaluate",
    "lineage_schedule",
    "loss_targets",
    "make_optimizer",
    "train",
]

OPTIMIZER_NAMES = ("sgd", "momentum", "adam")


# ----------------------------------------------------------------------------------------------------
# argument checks (torch layer; same wording as rmt._checks)
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
