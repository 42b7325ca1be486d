"""Tests for networks.training: schedule, optimizers, evaluation, the training loop, divergence trials."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from networks.training import (
    TrialResult,
    TrialRunner,
    divergence_trial,
    evaluate,
    find_max_lr,
    lineage_schedule,
    make_optimizer,
    train,
)


@dataclass
class _Data:
    """Minimal ArrayDataset stand-in (the contract needs only .x, .y, .num_classes and __len__)."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int = 3

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _blobs(n: int = 240, d: int = 5, classes: int = 3, seed: int = 0) -> _Data:
    g = torch.Generator().manual_seed(seed)
    centers = 3.0 * torch.randn(classes, d, generator=g)
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, d, generator=g)
    return _Data(x.float(), y.long(), classes)


def _mlp(seed: int = 0, d: int = 5, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, classes))


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


# ---------------------------------------------------------------- evaluate
def test_evaluate_matches_full_batch_loss_and_restores_mode() -> None:
    data = _blobs()
    model = _mlp()
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
    data = _blobs()
    model = _mlp()
    loss, _ = evaluate(model, nn.MSELoss(), data)
    with torch.no_grad():
        out = model(data.x)
        expected = float(((out - nn.functional.one_hot(data.y, 3).float()) ** 2).mean())
    assert loss == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- train
def test_train_decreases_loss_and_records() -> None:
    data = _blobs()
    model = _mlp()
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
    data = _blobs()
    finals = []
    for seed in (3, 3, 4):
        model = _mlp()
        opt = make_optimizer("sgd", model.parameters(), 0.1)
        train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=8, seed=seed, steps=40)
        finals.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach())
    assert torch.equal(finals[0], finals[1])
    assert not torch.equal(finals[0], finals[2])


def test_train_records_divergence_instead_of_raising() -> None:
    data = _blobs()
    model = _mlp()
    opt = make_optimizer("sgd", model.parameters(), 1e4)
    hist = train(model, nn.MSELoss(), data, optimizer=opt, batch_size=16, seed=0, steps=200)
    assert hist.diverged
    assert hist.final.step < 200
    assert not math.isfinite(hist.final.train_loss) or hist.final.train_loss > 1e3


def test_train_loss_cap_stops_run() -> None:
    data = _blobs()
    model = _mlp()
    opt = make_optimizer("sgd", model.parameters(), 0.05)
    hist = train(
        model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=16, seed=0, steps=20, loss_cap=1e-3
    )
    assert hist.diverged and hist.final.step == 0


def test_train_lr_schedule_sets_lr_and_none_leaves_it() -> None:
    data = _blobs()
    model = _mlp()
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

    model = _mlp()
    opt2 = SelfTuning(model.parameters(), lr=0.5)
    hist2 = train(model, nn.CrossEntropyLoss(), data, optimizer=opt2, batch_size=16, seed=0, steps=5)
    assert hist2.final.lr == 0.01234


def test_train_with_closure_optimizer() -> None:
    data = _blobs()
    model = _mlp()
    loss_fn = nn.CrossEntropyLoss()
    initial, _ = evaluate(model, loss_fn, data)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    hist = train(model, loss_fn, data, optimizer=opt, batch_size=80, seed=0, steps=6, use_closure=True)
    assert not hist.diverged
    assert evaluate(model, loss_fn, data)[0] < initial


def test_train_rejects_bad_arguments() -> None:
    data = _blobs()
    model = _mlp()
    opt = make_optimizer("sgd", model.parameters(), 0.05)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=10_000, seed=0, steps=1)
    with pytest.raises(ValueError, match="epochs or steps"):
        train(model, nn.CrossEntropyLoss(), data, optimizer=opt, batch_size=8, seed=0)
    with pytest.raises(TypeError, match="optimizer"):
        train(model, nn.CrossEntropyLoss(), data, optimizer="sgd", batch_size=8, seed=0, steps=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- divergence trials and threshold search
def _quadratic(n: int = 64, d: int = 4) -> tuple[nn.Module, _Data, float]:
    """Least squares with zero residual at w*: L(w) = mean((X(w − w*))²), Hessian H = (2/N) XᵀX.
    The model starts at w* + v_top + 0.5·v_bottom, so the top eigendirection carries much of L(w_c)."""
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([3.0, 1.0, 0.7, 0.3], dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scales
    w_star = torch.randn(d, 1, generator=g, dtype=torch.float64)
    hessian = 2.0 / n * x.T @ x
    evals, evecs = torch.linalg.eigh(hessian)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + evecs[:, -1:] + 0.5 * evecs[:, :1]).T)
    return model, _Data(x, x @ w_star, 0), float(evals[-1])


@pytest.mark.parametrize("vectorise", [True, False])
def test_full_batch_gd_threshold_is_two_over_lambda(vectorise: bool) -> None:
    model, pool, lam = _quadratic()
    k = 60
    runner = TrialRunner(
        model, nn.MSELoss(), pool, optimizer="sgd", batch_size=len(pool), steps=k, vectorise=vectorise
    )
    res = find_max_lr(runner, lr_low=0.01, lr_high=10.0, criterion="strict")
    lo, hi = res.bracket
    assert res.bracket_found and res.monotone and res.halvings >= 8 and hi / lo <= 1.05
    # Every lr below 2/λ is stable (GD on a quadratic: each mode contracts), so hi ≥ 2/λ; above 2/λ the top
    # mode grows like |1 − ηλ|^(2K), so any lr with (ηλ − 1)^(2K)·L_top/L ≥ 1.5 is unstable: lo < that bound.
    assert hi >= 2.0 / lam
    assert lo >= 2.0 / lam / 1.05
    assert lo <= (1.0 + (1.5 / 0.5) ** (1 / (2 * k))) / lam  # L_top / L(w_c) > 0.5 for this start


def test_heavy_ball_threshold_lenient() -> None:
    """Heavy ball's asymptotic threshold is 2(1+β)/λ; the lenient criterion (final loss ≤ 2·L(w_c))
    recovers it within the bisection resolution plus the O(1/K) transient; strict (δ = 0.5) is far lower
    because one heavy-ball step near the threshold overshoots the top mode by (1 + 2β)."""
    model, pool, lam = _quadratic()
    beta = 0.9
    runner = TrialRunner(
        model,
        nn.MSELoss(),
        pool,
        optimizer="momentum",
        batch_size=len(pool),
        steps=100,
        optimizer_kwargs={"momentum": beta},
    )
    lenient = find_max_lr(runner, lr_low=0.01, lr_high=10.0, criterion="lenient")
    target = 2 * (1 + beta) / lam
    assert lenient.bracket[1] >= target * 0.97  # transient: the slow mode |r| ≈ 1 − O(1/K) not yet decayed
    assert lenient.lr_max <= target * 1.03
    strict = find_max_lr(runner, lr_low=0.01, lr_high=10.0, criterion="strict")
    assert strict.lr_max < 0.8 * target
    assert runner.num_trials < strict.num_trials + lenient.num_trials  # the runner's cache is shared


def test_vectorised_trials_match_torch_optimizers() -> None:
    data = _blobs(n=96)
    model = _mlp()
    for name, kwargs in (("sgd", {}), ("momentum", {"momentum": 0.8}), ("adam", {"betas": (0.9, 0.99)})):
        common: dict[str, Any] = dict(
            optimizer=name, batch_size=8, steps=6, seed=5, warmup_steps=2, optimizer_kwargs=kwargs
        )
        fast_runner = TrialRunner(model, nn.CrossEntropyLoss(), data, vectorise=True, **common)
        assert fast_runner.vectorised
        fast = fast_runner.run_many([0.01, 0.3])
        slow = TrialRunner(model, nn.CrossEntropyLoss(), data, vectorise=False, **common).run_many(
            [0.01, 0.3]
        )
        for a, b in zip(fast, slow, strict=True):
            assert a.final_loss == pytest.approx(b.final_loss, rel=1e-4)
            assert a.max_loss == pytest.approx(b.max_loss, rel=1e-4)
            assert a.initial_loss == pytest.approx(b.initial_loss, rel=1e-6)


def test_warmup_moves_nothing_and_adam_state_matters() -> None:
    data = _blobs(n=96)
    model = _mlp()
    base: dict[str, Any] = dict(optimizer="adam", lr=0.05, batch_size=4, steps=3, seed=0)
    cold = divergence_trial(model, nn.CrossEntropyLoss(), data, **base)
    warm = divergence_trial(model, nn.CrossEntropyLoss(), data, warmup_steps=20, **base)
    assert cold.initial_loss == warm.initial_loss
    assert cold.final_loss != warm.final_loss


def test_divergence_trial_never_modifies_caller_model() -> None:
    data = _blobs(n=96)
    model = _mlp()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for vectorise in (True, False):
        res = divergence_trial(
            model,
            nn.CrossEntropyLoss(),
            data,
            optimizer="momentum",
            lr=1e3,
            batch_size=8,
            steps=5,
            vectorise=vectorise,
        )
        assert res.diverged or not res.stable_lenient
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training


def test_divergence_trial_seed_controls_batches() -> None:
    data = _blobs(n=96)
    model = _mlp()
    kw: dict[str, Any] = dict(optimizer="sgd", lr=0.5, batch_size=4, steps=5)
    a = divergence_trial(model, nn.CrossEntropyLoss(), data, seed=1, **kw)
    b = divergence_trial(model, nn.CrossEntropyLoss(), data, seed=1, **kw)
    c = divergence_trial(model, nn.CrossEntropyLoss(), data, seed=2, **kw)
    assert a == b and a.final_loss != c.final_loss


def test_find_max_lr_expands_the_bracket_and_rejects_bad_input() -> None:
    threshold = 0.37

    def step_trial(lr: float) -> TrialResult:
        ok = lr < threshold
        return TrialResult(lr, ok, ok, not ok, 1.0, 1.0 if ok else math.inf, 1.0 if ok else math.inf, 10)

    res = find_max_lr(step_trial, lr_low=1.0, lr_high=2.0)  # both unstable: expand down
    assert res.bracket_found and res.bracket[0] < threshold <= res.bracket[1]
    assert res.bracket[1] / res.bracket[0] <= 1.05 and res.monotone
    res_up = find_max_lr(step_trial, lr_low=1e-4, lr_high=1e-3)  # both stable: expand up
    assert res_up.bracket[0] < threshold <= res_up.bracket[1]
    never = find_max_lr(step_trial, lr_low=1e3, lr_high=1e4, max_expansions=1)
    assert not never.bracket_found and math.isnan(never.lr_max)
    with pytest.raises(ValueError, match="criterion"):
        find_max_lr(step_trial, lr_low=0.1, lr_high=1.0, criterion="loose")
    with pytest.raises(ValueError, match="lr_high"):
        find_max_lr(step_trial, lr_low=1.0, lr_high=0.5)


def test_find_max_lr_flags_non_monotone_stability() -> None:
    def islands(lr: float) -> TrialResult:  # stable below 0.2 and in [0.3, 0.5): the grid below 0.5 is not
        ok = lr < 0.2 or 0.3 <= lr < 0.5
        return TrialResult(lr, ok, ok, False, 1.0, 1.0, 1.0, 10)

    res = find_max_lr(islands, lr_low=0.01, lr_high=0.25, halvings=8)
    assert 0.2 / 1.05 <= res.lr_max < 0.2 and res.monotone
    res2 = find_max_lr(islands, lr_low=0.305, lr_high=1.0, halvings=8)
    assert 0.5 / 1.05 <= res2.lr_max < 0.5 and res2.monotone  # the two points just below are in the island

    def hole(lr: float) -> TrialResult:  # stable below 0.3 and in [0.49, 0.5)
        ok = lr < 0.3 or 0.49 <= lr < 0.5
        return TrialResult(lr, ok, ok, False, 1.0, 1.0, 1.0, 10)

    # ρ ends near 1.045 after 4 halvings of [0.495, 1], so lo/ρ < 0.49 falls in the unstable band
    res3 = find_max_lr(hole, lr_low=0.495, lr_high=1.0, halvings=1)
    assert 0.495 <= res3.lr_max < 0.5 and not res3.monotone and res3.unstable_below >= 1
