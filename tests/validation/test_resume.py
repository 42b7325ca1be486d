"""A run killed (SIGKILL) mid-sweep and resumed produces the records of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from validation.config import load_config
from validation.store import ResultStore, strip_timing

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(tmp_path: Path) -> Path:
    """A seconds-long config: 64-sample Gaussian-mixture pool, one small MLP, 4 batch sizes × 3 batches."""
    raw = json.loads((ROOT / "validation/configs/smoke.json").read_text())
    raw.update(name="tiny", pool_size=64, data_kwargs={"n_samples": 256, "num_classes": 3, "dim": 8})
    raw["models"] = [{"name": "mlp", "spec": "mlp-8x1", "kwargs": {}}]
    raw["checkpoint"].update(loss_fractions=[0.9], max_steps=40, batch_size=16)
    raw["curvature"].update(top_k=3, max_products=30, slq_steps=10, sweep_max_products=20)
    raw["noise"].update(num_samples=8, num_probes=1)
    raw["sweep"].update(batch_sizes=[2, 4, 8, 32], batches_per_size=3, noise_spectrum_sizes=1)
    raw["thresholds"].update(optimizers=["sgd"], batch_sizes=[4], seeds=1, steps=4, halvings=2)
    raw["bootstrap_samples"] = 50
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(raw))
    return path


def run_cli(config: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "validation.cli",
        "run",
        "--config",
        str(config),
        "--out",
        str(out),
        "--quiet",
        "--no-figures",
    ]
    return subprocess.Popen(
        [*cmd, *extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def comparable(out: Path) -> dict[str, dict]:
    """Every record, minus timing and host fields (and the provenance block, identical by construction)."""
    store = ResultStore(out)
    recs = {}
    for step in store.steps():
        for rec in store.records(step):
            rec = strip_timing(rec)
            rec.pop("provenance", None)
            recs[f"{step}/{rec['key']}"] = rec
    return recs


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    n_sweep = 4 * 3
    killed = tmp_path / "killed"
    proc = run_cli(config, killed)
    sweep_dir = killed / "records" / "sweep"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if sweep_dir.is_dir() and len(list(sweep_dir.glob("*.json"))) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed mid-sweep"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(sweep_dir.glob("*.json")))
    assert 3 <= done_before < n_sweep
    assert not (killed / "records" / "thresholds").exists()

    # without --resume the half-written folder is refused; with it, the run completes
    refused = run_cli(config, killed)
    assert refused.wait(60) != 0 and b"--resume" in refused.stderr.read()  # type: ignore[union-attr]
    resumed = run_cli(config, killed, "--resume")
    assert resumed.wait(120) == 0, resumed.stderr.read()  # type: ignore[union-attr]
    clean = tmp_path / "clean"
    uninterrupted = run_cli(config, clean)
    assert uninterrupted.wait(120) == 0, uninterrupted.stderr.read()  # type: ignore[union-attr]

    a, b = comparable(killed), comparable(clean)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.startswith("sweep/")]) == n_sweep
    for key in a:
        assert a[key] == b[key], key
    assert load_config(config).name == "tiny"
