"""The finite-horizon learning-rate predictor of step 6 (docs/theory.md §3d): its inputs are measured on the
trials' pool and evaluation subset exactly (against explicit per-sample autograd), the stored record reads
back, and the predictor equals the rmt formula it names; it is not a champion."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from networks.stability import evaluation_subset
from rmt.finite_horizon import finite_horizon_max_lr
from validation.config import load_config
from validation.experiments.finite_horizon_stats import finite_horizon_record
from validation.experiments.lr_analysis import (
    CHAMPIONS,
    FINITE_HORIZON_STEP,
    LR_PREDICTORS,
    FiniteHorizonInputs,
    LRInputs,
    applies,
    finite_horizon_inputs,
)
from validation.store import ResultStore, cell_key

B = np.array([2.0, 8.0, 32.0])


def _fh() -> FiniteHorizonInputs:
    return FiniteHorizonInputs(
        grad_mean=np.array([1.0, -0.3]), grad_variance=np.array([4.0, 1.0]),
        curvature_mean=np.array([10.0, 3.0]), curvature_variance=np.array([200.0, 20.0]),
        covariance=np.array([20.0, -1.0]), eval_grad=np.array([1.1, -0.2]),
        eval_curvature=np.array([11.0, 3.5]), initial_loss=2.0, steps=30, warmup_steps=5, delta=0.5,
        pool_size=16,
    )  # fmt: skip


def _inputs(opt: str, fh: FiniteHorizonInputs | None) -> LRInputs:
    nan = np.full(3, np.nan)
    return LRInputs(opt, B, 2.0, 1.0, 0.1, 100, 16, nan, nan, nan, nan, finite_horizon=fh)


def test_predictor_is_the_rmt_threshold_per_batch_size() -> None:
    fh = _fh()
    for opt, beta in (("sgd", 0.0), ("momentum", 0.9)):
        got = LR_PREDICTORS["finite_horizon"].function(_inputs(opt, fh))
        kw: dict[str, Any] = {**fh.statistics(), "n_data": 16, "steps": 30, "warmup_steps": 5}
        kw["momentum"] = beta
        want = [finite_horizon_max_lr(1.0, batch_size=min(b, 16), **kw) for b in B]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert np.all(np.isfinite(got))
    assert np.all(np.isnan(LR_PREDICTORS["finite_horizon"].function(_inputs("sgd", None))))
    assert applies("finite_horizon", "momentum") and not applies("finite_horizon", "adam")
    assert "finite_horizon" not in CHAMPIONS.values()  # exploratory: the pre-registration stays


def test_record_measures_the_pool_and_the_trials_eval_subset(tmp_path: Path) -> None:
    """Per-sample g_ij, h_ij by explicit autograd on each sample; the record's moments are theirs; the
    store round trip gives the same FiniteHorizonInputs."""
    config = load_config("smoke", ["thresholds.eval_size=8", "thresholds.warmup_steps=2"])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    loss_fn = nn.CrossEntropyLoss()
    params = list(model.parameters())
    size = sum(p.numel() for p in params)
    u = np.linalg.qr(np.random.default_rng(1).standard_normal((size, 2)))[0]
    rec = finite_horizon_record(config, model, loss_fn, x, y, u)

    ut = torch.as_tensor(u)
    g, h = np.zeros((20, 2)), np.zeros((20, 2))
    for i in range(20):
        loss = loss_fn(model(x[i : i + 1]), y[i : i + 1])
        grad = torch.cat([q.reshape(-1) for q in torch.autograd.grad(loss, params, create_graph=True)])
        g[i] = (grad @ ut).detach().numpy()
        for j in range(2):
            hv = torch.autograd.grad(grad @ ut[:, j], params, retain_graph=True)
            h[i, j] = float(torch.cat([q.reshape(-1) for q in hv]) @ ut[:, j])
    ev = evaluation_subset(20, 8).numpy()
    np.testing.assert_allclose(rec["grad_mean"], g.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec["grad_variance"], g.var(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec["curvature_mean"], h.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec["curvature_variance"], h.var(0), rtol=1e-9, atol=1e-12)
    cov = ((g - g.mean(0)) * (h - h.mean(0))).mean(0)
    np.testing.assert_allclose(rec["covariance"], cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec["eval_grad"], g[ev].mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec["eval_curvature"], h[ev].mean(0), rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        assert rec["initial_loss"] == pytest.approx(float(loss_fn(model(x[ev]), y[ev])), rel=1e-12)
    assert (rec["steps"], rec["warmup_steps"], rec["eval_size"], rec["pool_size"]) == (
        config.thresholds.steps, 2, 8, 20,
    )  # fmt: skip
    assert rec["remainder_norm"] > 0

    store = ResultStore(tmp_path / "run")
    assert finite_horizon_inputs(store, model="m", ckpt=0) is None
    store.put(FINITE_HORIZON_STEP, cell_key(model="m", ckpt=0), {**rec, "model": "m", "ckpt": 0})
    back = finite_horizon_inputs(store, model="m", ckpt=0)
    assert back is not None and back.pool_size == 20 and back.delta == config.thresholds.delta
    np.testing.assert_allclose(back.statistics()["covariance"], cov, rtol=1e-9, atol=1e-12)
    assert math.isclose(back.initial_loss, rec["initial_loss"])
