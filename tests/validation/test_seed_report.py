"""A run with two training seeds (the ``tiny`` config of the resume tests with ``training_seeds = 2``): the
seed-aggregate records, their CSV and the report's claims built from them (docs/validation.md §4b); one seed
keeps the per-seed claims plus a caveat."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from validation.config import config_from_dict
from validation.experiments.seed_aggregate import STEP, SeedAggregateRecord, aggregate_checkpoint
from validation.pipeline import run_pipeline
from validation.report import ONE_SEED, _claims_section, write_report
from validation.store import ResultStore, cell_key

from .test_resume import tiny_config


@pytest.mark.slow
def test_two_seed_run_states_claims_over_seeds(tmp_path: Path) -> None:
    raw = json.loads(tiny_config(tmp_path).read_text())
    raw["thresholds"]["batch_sizes"] = [2, 8]
    raw["training_seeds"] = 2
    config = config_from_dict(raw)
    assert config.training_seeds == 2 and [m.name for m in config.models] == ["mlp.s0", "mlp.s1"]
    out = tmp_path / "run"
    run_pipeline(config, out, quiet=True, draw=False)
    store = ResultStore(out)
    assert {r["model"] for r in store.records("checkpoints")} == {"mlp.s0", "mlp.s1"}
    stored = store.records(STEP)
    assert [r["key"] for r in stored] == [cell_key(model="mlp", ckpt=0)]
    rec = SeedAggregateRecord.from_dict(stored[0])
    again = aggregate_checkpoint(store, config, model="mlp", ckpt=0)
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(rec.to_dict(), sort_keys=True)
    lam = rec.targets["H"].lambda_1
    assert rec.n_seeds == 2 and lam.n == 2 and lam.lo <= lam.mean <= lam.hi
    per_seed = [store.get("predictions", cell_key(model=m, ckpt=0)) for m in ("mlp.s0", "mlp.s1")]
    assert lam.values == tuple(p["targets"]["H"]["lambda_1"] for p in per_seed)
    assert set(rec.optimizers) == {"sgd"} and rec.optimizers["sgd"].exponent.n == 2
    rows = list(csv.DictReader((out / "summary_seed_aggregate.csv").open()))
    assert {r["quantity"] for r in rows} >= {"lambda_1_H", "best_theory_G", "exponent_strict:sgd"}
    report = write_report(out).read_text()
    claims = report.split("## Claims")[1].split("## Summary")[0]
    aggregated, detail = claims.split("### Per-seed claims (detail)")
    assert "mlp ckpt 0, 2 training seeds" in aggregated and "over 2 seeds: strict exponent" in aggregated
    assert "mlp.s0" not in aggregated and "mlp.s0 ckpt 0" in detail and "mlp.s1 ckpt 0" in detail
    assert "nan" not in aggregated
    # the target statistic (docs/validation.md §4d) of the claimed model, its verdict and the seeds meeting it
    assert "Target statistic (median over B of |log(pred / measured median)|" in aggregated
    assert "met in " in aggregated and "/2 seeds" in aggregated


def test_one_seed_keeps_the_per_seed_claims_and_adds_a_caveat(tmp_path: Path) -> None:
    lines = _claims_section(ResultStore(tmp_path / "empty"), {"training_seeds": 1})
    assert lines[:3] == ["## Claims", "", "- no analysis records"]
    assert sum(ONE_SEED in line for line in lines) == 1 and "Per-seed claims" not in "\n".join(lines)
