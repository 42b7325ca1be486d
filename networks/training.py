"""Training: the learning-rate schedule, optimizers, evaluation and the training loop.

Conventions shared by every function here (and by :mod:`networks.stability`, which builds on them):

* ``data`` is an :class:`networks.data.ArrayDataset` (anything with tensor attributes ``.x`` / ``.y`` and
  ``__len__`` works). Inputs are moved to the device of the model's first parameter.
* ``loss_fn`` is a mean-reduced loss such as ``nn.CrossEntropyLoss()`` or ``nn.MSELoss()``. For ``nn.MSELoss``
  with integer class labels and 2-D outputs, the labels are one-hot encoded (the usual "MSE on classification"
  convention); otherwise ``loss_fn(model(x), y)`` is called as is.
* Batches are drawn without replacement from a seeded ``torch.Generator`` permutation per epoch; an
  incomplete last batch is dropped, so every optimizer step sees exactly ``batch_size`` samples.
* Divergence is data, never an exception: a non-finite loss, and an update whose size overflows the
  parameters' dtype (e.g. lr = 1e300 in float32), end the run and are recorded as diverged.

Divergence trials live in :mod:`networks.stability`, the maximal-learning-rate search in
:mod:`networks.thresholds`.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from networks.options import DEFAULT_ADAM_BETAS, DEFAULT_ADAM_EPS, DEFAULT_MOMENTUM, OPTIMIZERS, Optimizer
from networks.trial_settings import check_adam_betas
from rmt.checks import check_choice, check_in_range, check_int, check_positive


class ArrayDataset(Protocol):
    """What this module needs of a :class:`networks.data.ArrayDataset` (structural type)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int: ...


__all__ = [
    "ArrayDataset",
    "TrainHistory",
    "TrainRecord",
    "batch_loss",
    "check_dataset",
    "evaluate",
    "lineage_schedule",
    "loss_targets",
    "make_optimizer",
    "model_device",
    "overflow_safe_step",
    "train",
]


def check_dataset(data: Any, name: str) -> None:
    """``TypeError`` unless ``data`` has ``.x``, ``.y`` and ``__len__``; ``ValueError`` if it is empty."""
    if not (hasattr(data, "x") and hasattr(data, "y") and hasattr(data, "__len__")):
        raise TypeError(
            f"{name} must be an ArrayDataset (with .x, .y and __len__), got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"{name} must contain at least one sample")


def _positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    return float(check_positive(value, name, allow_zero=allow_zero))


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------------
# schedule, optimizer, loss helpers
# ----------------------------------------------------------------------------------------------------
def lineage_schedule(base_lr: float, total_steps: int) -> Callable[[int], float]:
    """The training recipe's schedule: lr(t) = base_lr for t/T ≤ 0.5, linear from base_lr to 0.01·base_lr
    on 0.5 ≤ t/T ≤ 0.9, and 0.01·base_lr afterwards (T = ``total_steps``, t = the 0-based step)."""
    base_lr = _positive(base_lr, "base_lr")
    total_steps = check_int(total_steps, "total_steps", minimum=1)

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
    name: Optimizer,
    params: Any,
    lr: float,
    momentum: float = DEFAULT_MOMENTUM,
    betas: tuple[float, float] = DEFAULT_ADAM_BETAS,
    eps: float = DEFAULT_ADAM_EPS,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``"sgd"`` (plain SGD), ``"momentum"`` (heavy ball, PyTorch convention v ← βv + g, w ← w − ηv) or
    ``"adam"``. ``params`` is anything ``torch.optim`` accepts (an iterable of tensors or of param groups).
    ``momentum`` ∈ [0, 1) is used by ``"momentum"`` only, ``betas`` ∈ [0, 1)² and ``eps`` > 0 by ``"adam"``
    only."""
    name = check_choice(name, "name", OPTIMIZERS)  # type: ignore[assignment]
    lr = _positive(lr, "lr", allow_zero=True)
    weight_decay = _positive(weight_decay, "weight_decay", allow_zero=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        beta = float(check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True))
        return torch.optim.SGD(params, lr=lr, momentum=beta, weight_decay=weight_decay)
    beta1, beta2 = check_adam_betas(betas)
    eps = _positive(eps, "eps")
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)


def loss_targets(loss_fn: Callable[..., Tensor], outputs: Tensor, y: Tensor) -> Tensor:
    """The target tensor to pass to ``loss_fn``: one-hot labels for ``nn.MSELoss`` on integer labels with
    2-D outputs, ``y`` unchanged otherwise."""
    if isinstance(loss_fn, nn.MSELoss) and not y.is_floating_point() and outputs.ndim == 2:
        return nn.functional.one_hot(y, outputs.shape[1]).to(outputs.dtype)
    return y


def batch_loss(
    model: nn.Module, loss_fn: Callable[..., Tensor], x: Tensor, y: Tensor
) -> tuple[Tensor, Tensor]:
    """(``loss_fn(model(x), targets)``, the outputs), with the targets of :func:`loss_targets`."""
    outputs = model(x)
    return loss_fn(outputs, loss_targets(loss_fn, outputs, y)), outputs


def overflow_safe_step(
    optimizer: torch.optim.Optimizer, closure: Callable[[], Any] | None = None
) -> tuple[bool, Any]:
    """``optimizer.step(closure)`` → ``(True, its return value)``; ``(False, None)`` if the update overflowed.

    PyTorch converts a scalar step size to the parameters' dtype and raises ``RuntimeError("value cannot be
    converted to type float without overflow")`` when it does not fit (lr = 1e300 in float32; Adam's
    lr/(1 − β1ᵗ) above 3.4e38). Such an update would make the parameters ±inf/NaN, so it is reported as an
    overflow (the caller records divergence). Any other error propagates. The parameters may be partly
    updated when ``False`` is returned: the caller must stop using them.
    """
    try:
        return True, optimizer.step(closure) if closure is not None else optimizer.step()
    except OverflowError:
        return False, None
    except RuntimeError as exc:
        if "without overflow" in str(exc):
            return False, None
        raise


@torch.no_grad()
def evaluate(
    model: nn.Module, loss_fn: Callable[..., Tensor], data: ArrayDataset, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean loss and accuracy over ``data`` in eval mode under ``no_grad`` (model mode restored afterwards).

    The mean loss weights each chunk by its size, so it equals the mean-reduced loss over all of ``data``.
    Accuracy is the fraction of argmax predictions equal to integer labels; NaN when the labels are not
    integer class indices (regression)."""
    check_dataset(data, "data")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        total_loss, correct, n = 0.0, 0, len(data)
        classify = not data.y.is_floating_point()
        for start in range(0, n, batch_size):
            x = data.x[start : start + batch_size].to(device)
            y = data.y[start : start + batch_size].to(device)
            loss, outputs = batch_loss(model, loss_fn, x, y)
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


@dataclass(frozen=True)
class _TrainPlan:
    """The validated arguments of one :func:`train` call."""

    batch_size: int
    seed: int
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    loss_cap: float | None


def _plan(
    train_data: ArrayDataset,
    eval_data: ArrayDataset | None,
    optimizer: Any,
    batch_size: Any,
    seed: Any,
    epochs: Any,
    steps: Any,
    eval_every: Any,
    loss_cap: Any,
) -> _TrainPlan:
    check_dataset(train_data, "train_data")
    if eval_data is not None:
        check_dataset(eval_data, "eval_data")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n = len(train_data)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of training samples ({n}), got {batch_size}")
    if epochs is None and steps is None:
        raise ValueError("give epochs or steps (or both; training stops at the earlier)")
    steps_per_epoch = n // batch_size
    limits = []
    if epochs is not None:
        limits.append(check_int(epochs, "epochs", minimum=1) * steps_per_epoch)
    if steps is not None:
        limits.append(check_int(steps, "steps", minimum=1))
    return _TrainPlan(
        batch_size=batch_size,
        seed=check_int(seed, "seed", minimum=0),
        steps_per_epoch=steps_per_epoch,
        total_steps=min(limits),
        eval_every=steps_per_epoch if eval_every is None else check_int(eval_every, "eval_every", minimum=1),
        loss_cap=None if loss_cap is None else _positive(loss_cap, "loss_cap"),
    )


def _minibatches(
    data: ArrayDataset, plan: _TrainPlan, augment: bool, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """The (x, y) batch of every step: a fresh ``torch.Generator(seed)`` permutation per epoch; augmentation
    (``networks.data.random_crop_flip``) draws from its own generator, so it does not change the order."""
    augmenter: Callable[[Tensor, torch.Generator], Tensor] | None = None
    if augment:
        # lazy import: networks.data is a sibling package written independently of this module
        augmenter = importlib.import_module("networks.data").random_crop_flip
    n, b = len(data), plan.batch_size
    batch_gen = torch.Generator().manual_seed(plan.seed)
    aug_gen = torch.Generator().manual_seed(plan.seed + 1_000_003)
    perm = torch.randperm(n, generator=batch_gen)
    for step in range(plan.total_steps):
        pos = step % plan.steps_per_epoch
        if pos == 0 and step > 0:
            perm = torch.randperm(n, generator=batch_gen)
        idx = perm[pos * b : (pos + 1) * b]
        x = data.x[idx]
        if augmenter is not None:
            x = augmenter(x, aug_gen)
        yield x.to(device), data.y[idx].to(device)


def _take_step(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    *,
    use_closure: bool,
    loss_cap: float | None,
) -> tuple[float, bool]:
    """One optimizer step on (x, y) → (minibatch loss, whether a step was taken).

    Without a closure a divergent minibatch loss is returned before the step (nothing is updated); an update
    that overflows the parameters' dtype counts as a step with loss +inf."""
    if use_closure:

        def closure() -> float:
            optimizer.zero_grad(set_to_none=True)
            closure_loss, _ = batch_loss(model, loss_fn, x, y)
            closure_loss.backward()
            return closure_loss  # type: ignore[return-value]  # torch optimizers accept tensors

        ok, stepped = overflow_safe_step(optimizer, closure)
        if not ok:
            return math.inf, True
        return (float(stepped.detach()) if isinstance(stepped, Tensor) else float(stepped)), True
    optimizer.zero_grad(set_to_none=True)
    loss, _ = batch_loss(model, loss_fn, x, y)
    loss_value = float(loss.detach())
    if _is_divergent(loss_value, loss_cap):
        return loss_value, False
    loss.backward()
    ok, _ = overflow_safe_step(optimizer)
    return (loss_value if ok else math.inf), True


class _Recorder:
    """Accumulates minibatch losses and appends :class:`TrainRecord` rows to a history."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., Tensor],
        optimizer: torch.optim.Optimizer,
        eval_data: ArrayDataset | None,
        plan: _TrainPlan,
    ) -> None:
        self.model, self.loss_fn, self.optimizer, self.eval_data, self.plan = (
            model,
            loss_fn,
            optimizer,
            eval_data,
            plan,
        )
        self.history = TrainHistory()
        self.start = time.perf_counter()
        self.loss_sum, self.loss_count = 0.0, 0

    def add(self, loss_value: float) -> None:
        self.loss_sum, self.loss_count = self.loss_sum + loss_value, self.loss_count + 1

    def record(self, step: int, diverged: bool) -> bool:
        """Write a row (evaluating ``eval_data`` unless diverged); returns the row's ``diverged``."""
        eval_loss: float | None = None
        eval_acc: float | None = None
        if self.eval_data is not None and not diverged:
            eval_loss, eval_acc = evaluate(self.model, self.loss_fn, self.eval_data)
            diverged = _is_divergent(eval_loss, self.plan.loss_cap)
        train_loss = self.loss_sum / self.loss_count if self.loss_count else math.nan
        self.history.records.append(
            TrainRecord(
                step=step,
                epoch=step / self.plan.steps_per_epoch,
                train_loss=train_loss,
                eval_loss=eval_loss,
                eval_accuracy=eval_acc,
                lr=float(self.optimizer.param_groups[0]["lr"]),
                wall_time=time.perf_counter() - self.start,
                diverged=diverged,
            )
        )
        self.loss_sum, self.loss_count = 0.0, 0
        self.model.train()
        return diverged


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
    non-finite minibatch loss, one above ``loss_cap``, an update that overflows the parameters' dtype, or a
    non-finite final eval loss — stops the run and is recorded with ``diverged=True``; it never raises. The
    model's train/eval mode is restored on return.
    """
    plan = _plan(train_data, eval_data, optimizer, batch_size, seed, epochs, steps, eval_every, loss_cap)
    recorder = _Recorder(model, loss_fn, optimizer, eval_data, plan)
    was_training = model.training
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=plan.total_steps, desc="train")
    step = 0
    try:
        model.train()
        for x, y in _minibatches(train_data, plan, augment, model_device(model)):
            if lr_schedule is not None:
                lr = float(lr_schedule(step))
                for group in optimizer.param_groups:
                    group["lr"] = lr
            loss_value, stepped = _take_step(
                model, loss_fn, optimizer, x, y, use_closure=use_closure, loss_cap=plan.loss_cap
            )
            if stepped:
                step += 1
                if bar is not None:
                    bar.update(1)
            recorder.add(loss_value)
            if _is_divergent(loss_value, plan.loss_cap):
                recorder.record(step, diverged=True)
                break
            if (step % plan.eval_every == 0 or step == plan.total_steps) and recorder.record(step, False):
                break
        return recorder.history
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()


def __getattr__(name: str) -> Any:
    """The old import path ``networks.training.divergence_trial`` (used by tests/validation/
    test_figures_report.py), resolved lazily because :mod:`networks.stability` imports this module."""
    if name == "divergence_trial":
        from networks.stability import divergence_trial

        return divergence_trial
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
