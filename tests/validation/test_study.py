"""Your own network, defined in a file outside the package, runs through the Python entry point and through a
TOML config on the command line, producing records, the report and the figures."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own_model.py"
TINY = [
    "pool_size=48",
    "curvature.top_k=2",
    "curvature.max_products=20",
    "curvature.slq_steps=8",
    "curvature.sweep_max_products=12",
    "noise.num_samples=6",
    "noise.num_probes=1",
    "sweep.batch_sizes=[2, 8]",
    "sweep.batches_per_size=2",
    'thresholds.optimizers=["sgd"]',
    "thresholds.batch_sizes=[4]",
    "thresholds.seeds=1",
    "thresholds.steps=3",
    "thresholds.halvings=2",
    "thresholds.warmup_steps=0",
    "bootstrap_samples=20",
]


def _example_module():
    spec = importlib.util.spec_from_file_location("own_model_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _synthetic_images(n: int = 64):
    import torch

    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 10
    x = torch.randn(n, 1, 28, 28, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.1
    return x, y


@pytest.mark.slow
def test_python_entry_point_on_a_module_defined_outside_the_package(tmp_path: Path) -> None:
    from validation.study import run_study

    example = _example_module()
    model = example.make_model(width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = run_study(model, _synthetic_images(), out=tmp_path / "study", overrides=TINY, name="smallcnn")
    assert result.report.is_file() and "smallcnn" in result.report.read_text()
    assert {p.name for p in result.figures} >= {"lambda_vs_batch.png"}
    assert [r["model"] for r in result.rows] == ["smallcnn"]
    ckpt = result.records("checkpoints")[0]
    assert ckpt["steps"] == 0 and ckpt["loss_fraction"] == 1.0  # the weights as given, no training
    assert len(result.records("sweep")) == 4 and len(result.records("thresholds")) == 1
    assert all(v.equal(before[k]) for k, v in model.state_dict().items())  # the user's model is untouched
    rows = json.loads(result.to_json(tmp_path / "rows.json").read_text())
    assert rows[0]["model"] == "smallcnn"
    assert result.to_csv(tmp_path / "rows.csv").read_text().startswith("model,")


@pytest.mark.slow
def test_toml_config_naming_a_factory_in_a_file_runs_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    sets = [arg for item in [*TINY, "data_kwargs.n_samples=48"] for arg in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-m", "validation.cli", "run", "--config", str(ROOT / "examples/own_model.toml"),
         "--out", str(out), "--quiet", "--workers", "1", *sets],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "report.md").is_file() and (out / "figures" / "lambda_vs_batch.png").is_file()
    stored = json.loads((out / "config.json").read_text())
    assert stored["models"][0]["spec"] == f"{EXAMPLE}:make_model"


def test_bad_study_inputs_are_named() -> None:
    from validation.study import run_study

    with pytest.raises(ValueError, match="loss"):
        run_study("mlp-4x1", "gaussian-mixture", out="unused", loss="mse")
    with pytest.raises(TypeError, match="model"):
        run_study(3, _synthetic_images(), out="unused")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="labels must be integers"):
        import torch

        run_study("mlp-4x1", (torch.zeros(8, 4), torch.zeros(8)), out="unused")
