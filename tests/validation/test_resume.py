"""A run killed (SIGKILL) mid-sweep and resumed at once (the killed process still a zombie) produces the
records of an uninterrupted run; so does a resume that finds a corrupt record and a truncated array."""

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
    raw["training_seeds"] = 1  # one replica per model (the smoke config has two; docs/validation.md §4b)
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


def _state(pid: int) -> str:
    """The process state letter from /proc (``Z``: a zombie, killed but not reaped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


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
    # not reaped yet: the killed run is a zombie while the next one starts (its lock is already released)
    deadline = time.monotonic() + 10
    while _state(proc.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.005)
    done_before = len(list(sweep_dir.glob("*.json")))
    assert 3 <= done_before < n_sweep
    assert not (killed / "records" / "thresholds").exists()

    resumed = run_cli(config, killed, "--resume")
    assert resumed.wait(120) == 0, resumed.stderr.read()  # type: ignore[union-attr]
    proc.wait()
    # without --resume the folder is refused, in one line that says what to do
    refused = run_cli(config, killed)
    assert refused.wait(60) != 0
    err = refused.stderr.read().decode()  # type: ignore[union-attr]
    assert "--resume" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err

    # a corrupt record and a truncated array: named on stderr, recomputed by --resume
    bad_record = sorted(sweep_dir.glob("*.json"))[0]
    bad_record.write_text(bad_record.read_text().replace('"B": ', '"B": NaN, "x": ', 1))
    bad_array = sorted((killed / "arrays").glob("*.npy"))[0]
    bad_array.write_bytes(bad_array.read_bytes()[:-16])
    repaired = run_cli(config, killed, "--resume")
    assert repaired.wait(120) == 0
    err = repaired.stderr.read().decode()  # type: ignore[union-attr]
    assert f"{bad_record}: " in err and "recomputing the cell" in err and "Traceback" not in err
    assert f"references {bad_array}, which is " in err
    assert bad_record.is_file() and bad_record.with_name(bad_record.name + ".corrupt").is_file()
    clean = tmp_path / "clean"
    uninterrupted = run_cli(config, clean)
    assert uninterrupted.wait(120) == 0, uninterrupted.stderr.read()  # type: ignore[union-attr]

    a, b = comparable(killed), comparable(clean)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.startswith("sweep/")]) == n_sweep
    for key in a:
        assert a[key] == b[key], key
    assert load_config(config).name == "tiny"
