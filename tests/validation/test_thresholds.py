"""Tests for validation.experiments.thresholds: one cell on a quadratic with a known answer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from validation.experiments.thresholds import measure_threshold_cell


@dataclass
class _Data:
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int = 0

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _quadratic() -> tuple[nn.Linear, _Data, float]:
    """Zero-residual least squares L(w) = mean((X(w − w*))²), H = (2/N)XᵀX, started off w* along the top
    and bottom eigenvectors."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 3, generator=g, dtype=torch.float64) * torch.tensor(
        [2.0, 1.0, 0.5], dtype=torch.float64
    )
    w_star = torch.randn(3, 1, generator=g, dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(2.0 / 48 * x.T @ x)
    model = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + evecs[:, -1:] + 0.5 * evecs[:, :1]).T)
    return model, _Data(x, x @ w_star), float(evals[-1])


def test_cell_record_full_batch_gd() -> None:
    model, pool, lam = _quadratic()
    before = model.weight.detach().clone()
    record = measure_threshold_cell(
        model,
        nn.MSELoss(),
        pool,
        optimizer="sgd",
        batch_size=len(pool),
        seed=3,
        steps=60,
        lr_low=0.01,
        lr_high=1e3,  # overflows to a non-finite loss: stored as None
        eval_size=None,
        extra={"model": "quadratic", "checkpoint": 0},
    )
    json.dumps(record, allow_nan=False)  # strictly JSON-able: non-finite values became None
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
    assert any(t["final_loss"] is None for t in record["trials"])  # diverged trials stored as None


def test_cell_rejects_bad_criteria() -> None:
    model, pool, _ = _quadratic()
    with pytest.raises(ValueError, match="criteria"):
        measure_threshold_cell(
            model, nn.MSELoss(), pool, optimizer="sgd", batch_size=4, seed=0, criteria="strict"
        )
