"""Tests for validation.experiments.thresholds: one cell on a quadratic with a known answer."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from networks.stability import TrialSettings
from tests.networks.fixtures.trials import blobs, mlp, quadratic
from validation.experiments.thresholds import measure_threshold_cell
from validation.store import _jsonable


def test_cell_record_full_batch_gd() -> None:
    """Zero-residual least squares L(w) = mean((X(w − w*))²), H = (2/N)XᵀX, started off w* along the top and
    bottom eigenvectors: GD is stable iff ηλ < 2."""
    model, pool, lam = quadratic(n=48, scales=(2.0, 1.0, 0.5), seed=1)
    before = model.weight.detach().clone()
    settings = TrialSettings(
        steps=60,
        warmup_steps=0,
        lr_low=0.01,
        lr_high=1e3,  # overflows to a non-finite loss: stored as "nan"/"inf"
        eval_size=None,
    )
    record = measure_threshold_cell(
        model,
        nn.MSELoss(),
        pool,
        optimizer="sgd",
        batch_size=len(pool),
        seed=3,
        settings=settings,
        extra={"model": "quadratic", "checkpoint": 0},
    )
    json.dumps(_jsonable(record), allow_nan=False)  # JSON-able as the store writes it (non-finite: "nan")
    assert torch.equal(model.weight, before)
    for criterion in ("strict", "lenient"):
        lo, hi = record["thresholds"][criterion]["bracket"]
        assert lo == record[f"lr_max_{criterion}"]
        # GD on a quadratic: stable iff ηλ < 2 (each mode contracts, loss non-increasing below 2/λ)
        assert hi >= 2.0 / lam and lo >= 2.0 / lam / 1.05
        assert record[f"monotone_{criterion}"] is True
    assert record["lr_max_strict"] == pytest.approx(record["lr_max_lenient"], rel=0.06)
    assert record["num_trials"] == len(record["trials"])
    assert record["num_trials"] < sum(t["num_trials"] for t in record["thresholds"].values())  # shared cache
    assert record["initial_loss"] > 0 and record["batch_size"] == 48 and record["seed"] == 3
    assert record["steps"] == 60 and record["delta"] == 0.5 and record["dtype"] == "float64"
    assert record["model"] == "quadratic" and record["torch_version"] == torch.__version__
    assert record["optimizer_kwargs"] == {} and record["bn_mode"] == "eval" and record["eval_size"] == 48
    assert any(not math.isfinite(t["final_loss"]) for t in record["trials"])  # diverged: a non-finite loss


def test_cell_records_only_the_changed_optimizer_hyperparameters() -> None:
    model, pool, _ = quadratic(n=48, scales=(2.0, 1.0, 0.5), seed=1)
    settings = TrialSettings(steps=3, warmup_steps=0, halvings=1, momentum=0.5, criteria=("lenient",))
    common = dict(batch_size=8, seed=0, settings=settings)
    heavy = measure_threshold_cell(model, nn.MSELoss(), pool, optimizer="momentum", **common)  # type: ignore[arg-type]
    adam = measure_threshold_cell(model, nn.MSELoss(), pool, optimizer="adam", **common)  # type: ignore[arg-type]
    assert heavy["optimizer_kwargs"] == {"momentum": 0.5} and adam["optimizer_kwargs"] == {}
    assert set(heavy["thresholds"]) == {"lenient"} and "lr_max_strict" not in heavy


def test_float32_sequential_cell_up_to_lr_1e300_records_divergence() -> None:
    """lr = 1e300 does not fit in float32: the trial there is a diverged record, not an exception."""
    settings = TrialSettings(steps=4, warmup_steps=1, lr_low=1e-3, lr_high=1e300, halvings=3, vectorise=False)
    record = measure_threshold_cell(
        mlp(), nn.CrossEntropyLoss(), blobs(n=64), optimizer="adam", batch_size=8, seed=0, settings=settings
    )
    json.dumps(_jsonable(record), allow_nan=False)
    assert record["dtype"] == "float32" and record["vectorised"] is False
    top = max(record["trials"], key=lambda t: t["lr"])
    assert top["lr"] == 1e300 and top["diverged"] and not math.isfinite(top["final_loss"])
    assert all(math.isfinite(record[f"lr_max_{c}"]) for c in ("strict", "lenient"))


def test_cell_rejects_bad_criteria() -> None:
    with pytest.raises(ValueError, match="criteria"):
        TrialSettings(criteria="strict")  # type: ignore[arg-type]
