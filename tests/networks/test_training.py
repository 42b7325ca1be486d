"""Tests for networks.training: schedule, optimizers, evaluation, the training loop."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from networks.options import DEFAULT_ADAM_BETAS, DEFAULT_ADAM_EPS, DEFAULT_MOMENTUM
from networks.training import (
    evaluate,
    lineage_schedule,
    make_optimizer,
    overflow_safe_step,
    train,
)
from tests.networks.fixtures.trials import blobs, mlp


# ---------------------------------------------------------------- schedule and optimizers
def test_lineage_schedule_values() -> None:
    f = lineage_schedule(0.1, 1000)
    assert f(0) == pytest.approx(0.1)
    assert f(500) == pytest.approx(0.1)
    assert f(700) == pytest.approx(0.1 * (1 - 0.99 * 0.5))  # halfway down the linear ramp
    assert f(900) == pytest.approx(0.001)
    assert f(999) == pytest.approx(0.001)
    values = [f(t) for t in range(1000)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # non-increasing


def test_lineage_schedule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="base_lr"):
        lineage_schedule(-1.0, 10)
    with pytest.raises(ValueError, match="total_steps"):
        lineage_schedule(0.1, 0)


def test_make_optimizer_kinds() -> None:
    params = [nn.Parameter(torch.zeros(3))]
    assert isinstance(make_optimizer("sgd", params, 0.1), torch.optim.SGD)
    mom = make_optimizer("momentum", params, 0.1, momentum=0.8)
    assert mom.param_groups[0]["momentum"] == 0.8
    adam = make_optimizer("adam", params, 0.01, betas=(0.8, 0.99), eps=1e-6)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["eps"] == 1e-6
    with pytest.raises(ValueError, match="name"):
        make_optimizer("rmsprop", params, 0.1)
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer("momentum", params, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        make_optimizer("adam", params, 0.1, betas=(0.9,))
    with pytest.raises(TypeError, match="name"):
        make_optimizer(None, params, 0.1)  # type: ignore[arg-type]


def test_make_optimizer_defaults_are_the_shared_option_defaults() -> None:
    params = [nn.Parameter(torch.zeros(3))]
    assert make_optimizer("momentum", params, 0.1).param_groups[0]["momentum"] == DEFAULT_MOMENTUM
    adam = make_optimizer("adam", params, 0.1).param_groups[0]
    assert adam["betas"] == DEFAULT_ADAM_BETAS and adam["eps"] == DEFAULT_ADAM_EPS


# ---------------------------------------------------------------- evaluate
def test_evaluate_matches_full_batch_loss_and_restores_mode() -> None:
    data = blobs()
    model = mlp()
    model.train()
    loss, acc = evaluate(model, nn.CrossEntropyLoss(), data, batch_size=7)  # uneven chunks
    with torch.no_grad():
        out = model(data.x)
        expected = float(nn.CrossEntropyLoss()(out, data.y))
        expected_acc = float((out.argmax(1) == data.y).float().mean())
    assert loss == pytest.approx(expected, rel=1e-5)
    assert acc == pytest.approx(expected_acc)
    assert model.training


def test_evaluate_mse_on_labels_uses_one_hot() -> None:
    data = blobs()
    model = mlp()
    loss, _ = evaluate(model, nn.MSELoss(), data)
    with torch.no_grad():
        out = model(data.x)
        expected = float(((out - nn.functional.one_hot(data.y, 3).float()) ** 2).mean())
    assert loss == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- train
def test_train_decreases_loss_and_records() -> None:
    data = blobs()
    model = mlp()
    loss_fn = nn.CrossEntropyLoss()
    initial, _ = evaluate(model, loss_fn, data)
    opt = make_optimizer("momentum", model.parameters(), 0.05)
    hist = train(model, loss_fn, data, optimizer=opt, batch_size=16, seed=1, epochs=5, eval_data=data)
    assert len(hist) == 5  # one record per epoch
    assert [r.step for r in hist] == [15, 30, 45, 60, 75]
    assert hist.final.eval_loss is not None and hist.final.eval_loss < 0.5 * initial
    assert hist.final.eval_accuracy is not None and hist.final.eval_accuracy > 0.9
    assert not hist.diverged
    d = hist.to_dicts()[0]
    assert set(d) == {
        "step",
        "epoch",
        "train_loss",
        "eval_loss",
        "eval_accuracy",
        "lr",
        "wall_time",
        "diverged",
    }


def test_train_is_deterministic_under_seed() -> None:
    data = blobs()
    finals = []
    for seed in (3, 3, 4):
        model = mlp()
        opt = make_optimizer("sgd", model.parameters(), 0.1)
        train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=8, seed=seed, steps=40)
        finals.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach())
    assert torch.equal(finals[0], finals[1])
    assert not torch.equal(finals[0], finals[2])


def test_train_records_divergence_instead_of_raising() -> None:
    data = blobs()
    model = mlp()
    opt = make_optimizer("sgd", model.parameters(), 1e4)
    hist = train(model, nn.MSELoss(), data, optimizer=opt, batch_size=16, seed=0, steps=200)
    assert hist.diverged
    assert hist.final.step < 200
    assert not math.isfinite(hist.final.train_loss) or hist.final.train_loss > 1e3


def test_train_loss_cap_stops_run() -> None:
    data = blobs()
    model = mlp()
    opt = make_optimizer("sgd", model.parameters(), 0.05)
    hist = train(
        model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=16, seed=0, steps=20, loss_cap=1e-3
    )
    assert hist.diverged and hist.final.step == 0


def test_train_lr_schedule_sets_lr_and_none_leaves_it() -> None:
    data = blobs()
    model = mlp()
    opt = make_optimizer("sgd", model.parameters(), 0.05)
    hist = train(
        model,
        nn.CrossEntropyLoss(),
        data,
        optimizer=opt,
        batch_size=16,
        seed=0,
        steps=30,
        eval_every=10,
        lr_schedule=lineage_schedule(0.05, 30),
    )
    assert [r.lr for r in hist] == pytest.approx([0.05, 0.05 * (1 - 0.99 * (19 / 30 - 0.5) / 0.4), 0.0005])

    class SelfTuning(torch.optim.SGD):
        """An optimizer whose step() sets its own lr (like the SLQ learner)."""

        def step(self, closure: Any = None) -> Any:
            for g in self.param_groups:
                g["lr"] = 0.01234
            return super().step(closure)

    model = mlp()
    opt2 = SelfTuning(model.parameters(), lr=0.5)
    hist2 = train(model, nn.CrossEntropyLoss(), data, optimizer=opt2, batch_size=16, seed=0, steps=5)
    assert hist2.final.lr == 0.01234


def test_train_with_closure_optimizer() -> None:
    data = blobs()
    model = mlp()
    loss_fn = nn.CrossEntropyLoss()
    initial, _ = evaluate(model, loss_fn, data)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    hist = train(model, loss_fn, data, optimizer=opt, batch_size=80, seed=0, steps=6, use_closure=True)
    assert not hist.diverged
    assert evaluate(model, loss_fn, data)[0] < initial


def test_train_rejects_bad_arguments() -> None:
    data = blobs()
    model = mlp()
    opt = make_optimizer("sgd", model.parameters(), 0.05)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=10_000, seed=0, steps=1)
    with pytest.raises(ValueError, match="epochs or steps"):
        train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=8, seed=0)
    with pytest.raises(TypeError, match="optimizer"):
        train(model, nn.CrossEntropyLoss(), data, optimizer="sgd", batch_size=8, seed=0, steps=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_train_records_an_overflowing_update_as_divergence(name: str) -> None:
    """float32 cannot hold lr = 1e300: torch refuses the step size; the run records divergence instead."""
    data = blobs()
    model = mlp()
    opt = make_optimizer(name, model.parameters(), 1e300)  # type: ignore[arg-type]
    hist = train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=16, seed=0, steps=20)
    assert hist.diverged and hist.final.step == 1
    assert hist.final.train_loss == math.inf


def test_overflow_safe_step_reports_overflow_and_passes_other_errors() -> None:
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    ok, _ = overflow_safe_step(torch.optim.SGD([p], lr=1e300))
    assert not ok
    fine = nn.Parameter(torch.ones(2))
    fine.grad = torch.ones(2)
    ok, _ = overflow_safe_step(torch.optim.SGD([fine], lr=0.5))
    assert ok and torch.equal(fine.detach(), torch.full((2,), 0.5))

    class Broken(torch.optim.SGD):
        def step(self, closure: Any = None) -> Any:
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        overflow_safe_step(Broken([fine], lr=0.1))
