"""Tests for networks.stability: TrialSettings, the sequential and vectorised divergence trials, and
divergence recorded as data (non-finite losses, overflowing updates)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

from networks.options import DEFAULT_ADAM_BETAS, DEFAULT_ADAM_EPS, DEFAULT_MOMENTUM
from networks.stability import TrialRunner, TrialSettings, divergence_trial
from tests.networks.fixtures.trials import blobs, mlp, quadratic


# ---------------------------------------------------------------- settings
def test_settings_defaults_are_the_shared_ones_and_round_trip() -> None:
    s = TrialSettings()
    assert (s.momentum, s.adam_betas, s.adam_eps) == (DEFAULT_MOMENTUM, DEFAULT_ADAM_BETAS, DEFAULT_ADAM_EPS)
    assert s.optimizer_kwargs("sgd") == {}
    assert s.optimizer_kwargs("momentum") == {"momentum": DEFAULT_MOMENTUM}
    assert s.optimizer_kwargs("adam") == {"betas": DEFAULT_ADAM_BETAS, "eps": DEFAULT_ADAM_EPS}
    custom = TrialSettings(steps=7, criteria=["lenient"], adam_betas=[0.8, 0.9], eval_size=16)  # type: ignore[arg-type]
    assert custom.criteria == ("lenient",) and custom.adam_betas == (0.8, 0.9)
    assert TrialSettings(**custom.to_dict()) == custom
    runner = TrialRunner(mlp(), nn.CrossEntropyLoss(), blobs(n=32), optimizer="sgd", batch_size=4, seed=0)
    assert runner.settings == TrialSettings() and runner.max_parallel == TrialSettings().max_parallel


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"steps": 0}, "steps"),
        ({"delta": -1.0}, "delta"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"eval_size": 0}, "eval_size"),
        ({"bn_mode": "running"}, "bn_mode"),
        ({"momentum": 1.0}, "momentum"),
        ({"adam_betas": (0.9,)}, "adam_betas"),
        ({"adam_eps": 0.0}, "adam_eps"),
        ({"lr_low": math.nan}, "lr_low"),
        ({"lr_low": 1.0, "lr_high": 0.5}, "lr_high"),
        ({"halvings": 0}, "halvings"),
        ({"resolution": 1.0}, "resolution"),
        ({"criteria": ()}, "criteria"),
        ({"criteria": ("loose",)}, "criteria"),
        ({"expansion_factor": 1.0}, "expansion_factor"),
        ({"max_expansions": -1}, "max_expansions"),
        ({"points_per_round": 0}, "points_per_round"),
        ({"vectorise": "yes"}, "vectorise"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"steps": 2.5}, "steps"),
    ],
)
def test_settings_reject_bad_values_naming_the_field(changes: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TrialSettings(**changes)


def test_runner_rejects_bad_arguments() -> None:
    data = blobs(n=32)
    with pytest.raises(ValueError, match="batch_size"):
        TrialRunner(mlp(), nn.CrossEntropyLoss(), data, optimizer="sgd", batch_size=64, seed=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrialRunner(mlp(), nn.CrossEntropyLoss(), data, optimizer="rmsprop", batch_size=4, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="settings"):
        TrialRunner(mlp(), nn.CrossEntropyLoss(), data, optimizer="sgd", batch_size=4, seed=0, settings={})  # type: ignore[arg-type]
    runner = TrialRunner(mlp(), nn.CrossEntropyLoss(), data, optimizer="sgd", batch_size=4, seed=0)
    with pytest.raises(ValueError, match="lr"):
        runner(-0.1)


# ---------------------------------------------------------------- the two implementations agree
def test_vectorised_trials_match_torch_optimizers() -> None:
    data = blobs(n=96)
    model = mlp()
    for name, changes in (
        ("sgd", {}),
        ("momentum", {"momentum": 0.8}),
        ("adam", {"adam_betas": (0.9, 0.99)}),
    ):
        base = TrialSettings(steps=6, warmup_steps=2, **changes)  # type: ignore[arg-type]
        common: dict[str, Any] = dict(optimizer=name, batch_size=8, seed=5)
        fast_runner = TrialRunner(
            model, nn.CrossEntropyLoss(), data, settings=dataclasses.replace(base, vectorise=True), **common
        )
        assert fast_runner.vectorised
        fast = fast_runner.run_many([0.01, 0.3])
        slow_runner = TrialRunner(
            model, nn.CrossEntropyLoss(), data, settings=dataclasses.replace(base, vectorise=False), **common
        )
        assert not slow_runner.vectorised
        slow = slow_runner.run_many([0.01, 0.3])
        for a, b in zip(fast, slow, strict=True):
            assert a.final_loss == pytest.approx(b.final_loss, rel=1e-4)
            assert a.max_loss == pytest.approx(b.max_loss, rel=1e-4)
            assert a.initial_loss == pytest.approx(b.initial_loss, rel=1e-6)


def test_optimizer_factory_runs_sequentially_like_the_named_optimizer() -> None:
    data = blobs(n=96)
    model = mlp()
    settings = TrialSettings(steps=5, warmup_steps=0, vectorise=False)
    named = divergence_trial(
        model, nn.CrossEntropyLoss(), data, optimizer="sgd", lr=0.2, batch_size=8, seed=1, settings=settings
    )
    runner = TrialRunner(
        model,
        nn.CrossEntropyLoss(),
        data,
        optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr),
        batch_size=8,
        seed=1,
        settings=dataclasses.replace(settings, vectorise=True),
    )
    assert not runner.vectorised  # a factory is never vectorised
    assert runner(0.2) == named


def test_warmup_moves_nothing_and_adam_state_matters() -> None:
    data = blobs(n=96)
    model = mlp()
    base: dict[str, Any] = dict(optimizer="adam", lr=0.05, batch_size=4, seed=0)
    cold = divergence_trial(
        model, nn.CrossEntropyLoss(), data, settings=TrialSettings(steps=3, warmup_steps=0), **base
    )
    warm = divergence_trial(
        model, nn.CrossEntropyLoss(), data, settings=TrialSettings(steps=3, warmup_steps=20), **base
    )
    assert cold.initial_loss == warm.initial_loss
    assert cold.final_loss != warm.final_loss


def test_gd_on_a_quadratic_contracts_below_two_over_lambda() -> None:
    """Full-batch GD on a quadratic: the loss is non-increasing for η < 2/λ (every mode contracts), and the
    top mode grows like |1 − ηλ|^(2K) above it."""
    model, pool, lam = quadratic()
    settings = TrialSettings(steps=40, warmup_steps=0)
    runner = TrialRunner(
        model, nn.MSELoss(), pool, optimizer="sgd", batch_size=len(pool), seed=0, settings=settings
    )
    below, above = runner.run_many([1.9 / lam, 2.2 / lam])
    assert below.stable_strict and below.final_loss < below.initial_loss and below.steps == 40
    assert not above.stable_strict and above.max_loss > 1.5 * above.initial_loss


def test_divergence_trial_never_modifies_caller_model() -> None:
    data = blobs(n=96)
    model = mlp()
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
            seed=0,
            settings=TrialSettings(steps=5, vectorise=vectorise),
        )
        assert res.diverged or not res.stable_lenient
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training


def test_divergence_trial_seed_controls_batches() -> None:
    data = blobs(n=96)
    model = mlp()
    kw: dict[str, Any] = dict(optimizer="sgd", lr=0.5, batch_size=4, settings=TrialSettings(steps=5))
    a = divergence_trial(model, nn.CrossEntropyLoss(), data, seed=1, **kw)
    b = divergence_trial(model, nn.CrossEntropyLoss(), data, seed=1, **kw)
    c = divergence_trial(model, nn.CrossEntropyLoss(), data, seed=2, **kw)
    assert a == b and a.final_loss != c.final_loss


# ---------------------------------------------------------------- divergence is data
@pytest.mark.parametrize("vectorise", [False, True])
@pytest.mark.parametrize(
    ("name", "lr"), [("sgd", 1e300), ("momentum", 1e300), ("adam", 1e300), ("adam", 1e38)]
)
def test_float32_trial_whose_update_overflows_records_divergence(
    name: str, lr: float, vectorise: bool
) -> None:
    """lr = 1e300 does not fit in float32 (max 3.4e38), nor does Adam's first step size lr/(1 − β1) at
    lr = 1e38: torch refuses the scalar (sequential) or the copy's weights become inf/NaN (vectorised); either
    way the trial is recorded as diverged after its first step."""
    data = blobs(n=64)
    runner = TrialRunner(
        mlp(),
        nn.CrossEntropyLoss(),
        data,
        optimizer=name,  # type: ignore[arg-type]
        batch_size=8,
        seed=0,
        settings=TrialSettings(steps=10, warmup_steps=2, vectorise=vectorise),
    )
    assert runner.vectorised == vectorise
    stable_lr = 1e-3
    huge, small = runner.run_many([lr, stable_lr])
    assert huge.diverged and not huge.stable_strict and not huge.stable_lenient
    assert huge.final_loss == math.inf and huge.max_loss == math.inf
    # sequential: the trial stops at its first step; vectorised: ``steps`` counts the shared pass's steps
    assert huge.steps == (10 if vectorise else 1)
    assert math.isfinite(huge.initial_loss)
    assert small.stable_strict and not small.diverged and small.steps == 10  # the other lr is unaffected


@pytest.mark.parametrize("vectorise", [False, True])
def test_non_finite_losses_are_recorded_not_raised(vectorise: bool) -> None:
    data = blobs(n=64)
    settings = TrialSettings(steps=10, vectorise=vectorise)
    # a finite lr whose MSE loss overflows float32 within a few steps
    exploding = divergence_trial(
        mlp(), nn.MSELoss(), data, optimizer="sgd", lr=1e6, batch_size=8, seed=0, settings=settings
    )
    assert exploding.diverged and exploding.final_loss == math.inf and exploding.steps < 10
    # a checkpoint that is already broken: L(w_c) is NaN, so no lr is stable
    broken = mlp()
    with torch.no_grad():
        broken[0].weight[0, 0] = math.nan
    res = divergence_trial(
        broken,
        nn.CrossEntropyLoss(),
        data,
        optimizer="adam",
        lr=1e-3,
        batch_size=8,
        seed=0,
        settings=settings,
    )
    assert res.diverged and not res.stable_strict and not res.stable_lenient and math.isnan(res.initial_loss)
