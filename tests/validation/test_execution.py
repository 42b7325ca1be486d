"""Cells computed by worker processes equal cells computed in-process (any worker count, same records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from validation.config import config_from_dict
from validation.execution import Cell, CellExecutor, available_cpus, resolve_workers
from validation.pipeline import run_pipeline

from .test_resume import comparable

ROOT = Path(__file__).resolve().parents[2]


def _square(x: int) -> dict[str, int]:
    return {"x": x, "y": x * x}


def test_executor_in_process_and_pool_return_the_same_records() -> None:
    cells = [Cell("demo", f"x={i}", _square, (i,), cost=float(i)) for i in range(6)]
    with CellExecutor(1) as serial:
        a = {c.key: r for c, r in serial.run(cells)}
    with CellExecutor(2) as pool:
        b = {c.key: r for c, r in pool.run(cells)}
    assert a == b == {f"x={i}": {"x": i, "y": i * i} for i in range(6)}


def test_resolve_workers_defaults_and_errors() -> None:
    assert resolve_workers(None, "cpu") == available_cpus()
    assert resolve_workers(None, "cuda") == 1
    assert resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(0)
    with pytest.raises(TypeError, match="workers"):
        resolve_workers("2")  # type: ignore[arg-type]


def _tiny() -> dict:
    raw = json.loads((ROOT / "validation/configs/smoke.json").read_text())
    raw.update(name="tiny", pool_size=48, data_kwargs={"n_samples": 128, "num_classes": 3, "dim": 6})
    raw["models"] = [{"name": "mlp", "spec": "mlp-6x1", "kwargs": {}}]
    raw["checkpoint"].update(loss_fractions=[0.9], max_steps=30, batch_size=16)
    raw["curvature"].update(top_k=2, max_products=20, slq_steps=8, sweep_max_products=12)
    raw["noise"].update(num_samples=6, num_probes=1)
    raw["sweep"].update(batch_sizes=[2, 8], batches_per_size=2, noise_spectrum_sizes=1)
    raw["thresholds"].update(optimizers=["sgd", "adam"], batch_sizes=[4], seeds=2, steps=3, halvings=2)
    raw["bootstrap_samples"] = 20
    return raw


@pytest.mark.slow
def test_pipeline_records_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    config = config_from_dict(_tiny())
    run_pipeline(config, tmp_path / "one", quiet=True, draw=False, workers=1)
    run_pipeline(config, tmp_path / "two", quiet=True, draw=False, workers=2)
    a, b = comparable(tmp_path / "one"), comparable(tmp_path / "two")
    assert sorted(a) == sorted(b)
    assert any(k.startswith("thresholds/") for k in a) and any(k.startswith("sweep/") for k in a)
    for key in a:
        assert a[key] == b[key], key
