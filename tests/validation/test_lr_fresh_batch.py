"""Step 6b (Adam's warm-up preconditioner) and the fresh-batch learning-rate predictors of step 6: the cell
rebuilds the trial's own batches, the predictors equal the rmt formulas they name, the champion rule is the
pre-registered one (docs/theory.md §3b, §3c)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from networks.stability import _batch_sequence
from rmt.learning_rates import max_lr
from rmt.mean_square import mean_square_max_lr, single_sample_moments
from validation.config import load_config
from validation.experiments.lr_analysis import (
    CHAMPION,
    CHAMPIONS,
    LR_PREDICTORS,
    LRInputs,
    MeanSquareInputs,
    PreconditionedInputs,
    applies,
    champion_for,
    expected_maximum,
)
from validation.experiments.preconditioned import measure_preconditioned_cell, threshold_batch_seed

B = np.array([2.0, 8.0, 32.0])


def _inputs(opt: str, ms: MeanSquareInputs | None, pre: PreconditionedInputs | None = None) -> LRInputs:
    nan = np.full(3, np.nan)
    return LRInputs(opt, B, 2.0, 1.0, 0.1, 100, 128, nan, nan, nan, nan, ms, pre)


def test_expected_maximum_exact_small_cases() -> None:
    assert expected_maximum(np.array([1.0, 2.0]), 1) == pytest.approx(1.5)
    assert expected_maximum(np.array([1.0, 2.0]), 2) == pytest.approx(1 * 0.25 + 2 * 0.75)
    assert expected_maximum(np.array([3.0, 1.0, 2.0]), 400) == pytest.approx(3.0)
    assert math.isnan(expected_maximum(np.array([np.nan]), 3))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0.1, 10.0), min_size=2, max_size=12), st.integers(1, 6))
def test_expected_maximum_matches_monte_carlo(values: list[float], count: int) -> None:
    """Monte Carlo of max of ``count`` draws: 20 000 replicates, the values lie in [0.1, 10], so the
    standard error is ≤ 10/√20000 = 0.07 and 6 SE = 0.43 bounds the failure probability by ~1e-9."""
    rng = np.random.default_rng(0)
    draws = rng.choice(np.asarray(values), size=(20_000, count)).max(axis=1)
    tol = 6 * draws.std() / math.sqrt(draws.size) + 1e-12
    assert expected_maximum(np.asarray(values), count) == pytest.approx(draws.mean(), abs=tol)


def test_mean_square_predictor_is_min_of_directions_and_spike() -> None:
    ms = MeanSquareInputs(128, np.array([3.0, 1.0]), np.array([4.0, 0.5]), np.array([1.0, 1.0]), 40.0)
    for opt, method, beta in (("sgd", "sgd", 0.0), ("momentum", "heavy_ball", 0.9)):
        got = LR_PREDICTORS["mean_square"].function(_inputs(opt, ms))
        kw = {"method": method, "momentum": beta}
        direc = [mean_square_max_lr(m, s, B, 128, **kw) for m, s in ((3.0, 4.0), (1.0, 0.5))]
        spike = mean_square_max_lr(*single_sample_moments(40.0, 128), B, 128, **kw)
        np.testing.assert_allclose(got, np.minimum(np.minimum(*direc), spike), rtol=1e-12)
        leak = LR_PREDICTORS["mean_square_leakage"].function(_inputs(opt, ms))
        assert np.all(leak <= got + 1e-15)  # leakage only adds second moment
    assert np.all(np.isnan(LR_PREDICTORS["mean_square"].function(_inputs("sgd", None))))


def test_adam_predictors_use_the_preconditioned_matrix() -> None:
    lam = np.array([100.0, 10.0, np.nan])
    pre = PreconditionedInputs(lam, lam / 2, lam / 3, lam, np.array([1.0, 2.0, 3.0]), 0.9, 128)
    frozen = LR_PREDICTORS["adam_frozen_p"].function(_inputs("adam", None, pre))
    np.testing.assert_allclose(frozen[:2], max_lr(lam[:2], method="adam", beta1=0.9))
    assert math.isnan(frozen[2])
    ms = LR_PREDICTORS["mean_square"].function(_inputs("adam", None, pre))
    np.testing.assert_allclose(ms[:2], mean_square_max_lr(lam[:2], [1.0, 2.0], B[:2], 128, method="adam"))
    assert all(not applies(k, "sgd") for k in ("adam_frozen_p", "adam_frozen_p_pool", "adam_frozen_p_step"))
    assert applies("mean_square", "adam") and not applies("mean_square_leakage", "adam")


def test_champion_rule_is_fixed_and_falls_back_on_missing_cells() -> None:
    assert CHAMPIONS == {"sgd": "mean_square", "momentum": "mean_square", "adam": "adam_frozen_p"}
    good, missing = np.ones(6), np.full(6, np.nan)
    # the rule never looks at the values: a worse champion stays champion
    assert champion_for("sgd", {"mean_square": 10 * good, CHAMPION: 0 * good}) == "mean_square"
    assert champion_for("adam", {"adam_frozen_p": missing, CHAMPION: good}) == CHAMPION
    assert all(LR_PREDICTORS[k].kind == "theory" for k in (*CHAMPIONS.values(), CHAMPION))


def test_preconditioned_cell_rebuilds_the_trials_warmup() -> None:
    """The cell's warm-up batches are the Adam threshold trial's (same batch seed and sequence), and
    λ_max(P⁻¹H_B) agrees with a dense generalized eigenproblem on that batch."""
    import scipy.linalg

    from networks.curvature.hessian import HessianOperator
    from networks.curvature.preconditioned import adam_preconditioner_diagonal, adam_second_moment

    config = load_config(
        "smoke", ["thresholds.warmup_steps=3", "thresholds.preconditioned_batches=2", "thresholds.seeds=2"]
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    loss_fn = nn.CrossEntropyLoss()
    rec = measure_preconditioned_cell(config, model, loss_fn, x, y, model_name="m", ckpt=0, batch_size=4)
    assert len(rec["seeds"]) == 2 and rec["warmup_steps"] == 3 and rec["pool_size"] == 20
    assert sorted(rec["seeds"]) == ["0", "1"]
    for s, entry in ((int(k), v) for k, v in rec["seeds"].items()):
        seed = threshold_batch_seed(config, "m", 0, 4, s)
        seq = _batch_sequence(20, 4, seed, 4)
        assert entry["batch_seed"] == seed
        assert entry["warmup_batches"] == [b.tolist() for b in seq[:3]] and entry["batch"] == seq[3].tolist()
        v_hat = adam_second_moment(model, loss_fn, [(x[b], y[b]) for b in seq[:3]], beta2=0.999)
        diag = adam_preconditioner_diagonal(v_hat, 1e-8).numpy()
        dense = HessianOperator(model, loss_fn, (x[seq[3]], y[seq[3]])).to_dense().numpy()
        ref = scipy.linalg.eigh(dense, np.diag(diag), eigvals_only=True)[-1]
        assert entry["lambda_batch"] == pytest.approx(ref, rel=1e-2)  # Lanczos to the run's tol (1e-3)
        assert entry["per_sample_mean"] == pytest.approx(entry["lambda_pool"], rel=1e-6)


def test_scaling_rules_are_not_scored_on_the_cells_they_are_tuned_on() -> None:
    """The linear and √ rules are anchored at the measured η_max of the smallest B: NaN there (those cells
    would score 0 by construction), the rule elsewhere."""
    from dataclasses import replace

    from validation.experiments.lr_analysis import LR_PREDICTORS

    inputs = replace(_inputs("sgd", None), median_strict=np.array([0.02, 0.05, 0.09]))
    for key, power in (("linear_rule", 1.0), ("sqrt_rule", 0.5)):
        curve = LR_PREDICTORS[key].function(inputs)
        b = inputs.batch_sizes
        assert math.isnan(curve[0])
        np.testing.assert_allclose(curve[1:], 0.02 * (b[1:] / b[0]) ** power)
