"""The ``smoke`` config end to end through the command line: records, CSVs, figures and report exist and
agree."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from validation.cli import main
from validation.config import load_config
from validation.experiments.sweep import batch_size_grid
from validation.records import decode_float
from validation.store import ResultStore, cell_key


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", "--config", "smoke", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "best_H" in printed and "report.md" in printed
    cfg = load_config("smoke")
    store = ResultStore(out)
    model = cfg.models[0].name  # the first training-seed replica (docs/validation.md §4b)
    n_ckpt = len(cfg.checkpoint.loss_fractions)
    assert len(store.records("checkpoints")) == n_ckpt * cfg.training_seeds == n_ckpt * len(cfg.models)
    pred = store.get("predictions", cell_key(model=model, ckpt=0))
    grid = batch_size_grid(cfg, pred["critical_batch"], cfg.pool_size)
    assert pred["grid"] == grid
    sweep = store.records("sweep", model=model, ckpt=0)
    assert len(sweep) == len(grid) * cfg.sweep.batches_per_size
    assert len({r["indices_hash"] for r in sweep}) == len(sweep)  # independent batches
    for r in sweep:  # a batch's top eigenvalue bounds its Rayleigh quotient along its gradient
        assert r["lam_min_H"] <= r["batch_sharpness"] <= r["lam_max_H"] * (1 + 1e-3) + 1e-6
        assert 0.0 <= r["overlap_top1"] <= r["overlap_topk"] <= 1.0 + 1e-4
    n_thr = len(cfg.thresholds.optimizers) * len(cfg.thresholds.batch_sizes) * cfg.thresholds.seeds
    n_thr *= cfg.training_seeds
    assert len(store.records("thresholds")) == n_thr
    for r in store.records("thresholds"):
        strict, lenient = decode_float(r["lr_max_strict"]), decode_float(r["lr_max_lenient"])
        assert math.isnan(lenient) or strict <= lenient * (1 + 1e-9)
        assert r["provenance"]["versions"]["torch"]
    for name in ("densities", "lambda_vs_batch", "noise_spectrum", "lr_vs_batch"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").is_file()
    assert (out / "summary_sweep.csv").read_text().count("\n") == len(store.records("sweep")) + 1
    assert len(store.records("seed_aggregate")) == n_ckpt and (out / "summary_seed_aggregate.csv").is_file()
    report = (out / "report.md").read_text()
    best = pred["targets"]["H"]["best_model"]
    assert f"best model by leave-one-B-out error: **{best}**" in report
    an = store.get("lr_analysis", cell_key(model=model, ckpt=0))
    exp = an["optimizers"]["sgd"]["exponent_strict"]["exponent"]
    assert re.search(rf"\*\*sgd\*\*: exponent .* = {float(exp):.3g} ", report)
    # step 6c (docs/theory.md §3d): one gradient/curvature record per threshold checkpoint feeds the
    # finite-horizon predictor, which is defined at every threshold B of SGD
    assert store.has("finite_horizon", cell_key(model=model, ckpt=0))
    horizon = [decode_float(v) for v in an["optimizers"]["sgd"]["predictors"]["finite_horizon"]]
    assert len(horizon) == len(cfg.thresholds.batch_sizes) and all(v > 0 for v in horizon)
    assert json.loads((out / "config.json").read_text())["name"] == "smoke"
