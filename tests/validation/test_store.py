"""The result store: atomic writes, round trips, resume, the folder lock."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from validation.store import ResultStore, StoreLockedError, atomic_write_json, cell_key, strip_timing


def test_round_trip_with_non_finite_numbers(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    rec = store.put(
        "sweep",
        cell_key(model="vgg", B=8, s=0),
        {"B": np.int64(8), "lam": np.float32(2.5), "bad": math.inf, "vec": np.arange(3), "ok": True},
    )
    back = store.get("sweep", "model=vgg_B=8_s=0")
    assert back == rec
    assert (
        back["B"] == 8
        and back["vec"] == [0, 1, 2]
        and back["bad"] == "inf"
        and float(back["bad"]) == math.inf
    )
    assert store.records("sweep", B=8) == [back] and store.records("sweep", B=9) == []
    path = store.write_csv("sweep")
    assert path is not None and "lam" in path.read_text().splitlines()[0]


def test_interrupted_write_leaves_old_file_and_no_temporaries(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "records" / "x" / "a.json"
    atomic_write_json(path, {"v": 1})

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(path, {"v": 2})
    monkeypatch.undo()
    assert ResultStore(tmp_path).get("x", "a")["v"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_get_or_compute_skips_stored_cells_only_when_resuming(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"n": len(calls)}

    assert store.get_or_compute("s", "k", compute)["n"] == 1
    assert store.get_or_compute("s", "k", compute, resume=True)["n"] == 1
    assert store.get_or_compute("s", "k", compute, resume=False)["n"] == 2
    assert len(calls) == 2


def test_lock_excludes_live_processes_and_breaks_stale_locks(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(str(holder.pid))
        with pytest.raises(StoreLockedError, match=str(holder.pid)):
            ResultStore(tmp_path).acquire_lock()
    finally:
        holder.kill()
        holder.wait()
    store = ResultStore(tmp_path)  # the holder is dead: its lock is stale
    with store.locked():
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


def test_keys_and_timing_fields() -> None:
    assert cell_key(model="wrn", ckpt=1, B=16) == "model=wrn_ckpt=1_B=16"
    with pytest.raises(ValueError, match="model"):
        cell_key(model="a b")
    with pytest.raises(ValueError, match="model"):
        cell_key(model="a_b")
    rec = {"B": 2, "wall_time": 1.0, "inner": {"pid": 3, "x": 1}, "hostname": "h"}
    assert strip_timing(rec) == {"B": 2, "inner": {"x": 1}}
