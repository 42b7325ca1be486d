"""The result store: atomic writes, round trips, resume, the folder lock."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from validation.store import (
    CHECKSUM_FIELD,
    CorruptRecordError,
    MixedSettingsError,
    ResultStore,
    StoreLockedError,
    cell_key,
    json_depth,
    permit_mixed_settings,
    record_checksum,
    strip_timing,
)

SETTINGS = {"torch_threads": 1, "cpu_capability": "AVX2", "batchrmt": "0.1.0", "torch": "2.13.0"}


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
    store = ResultStore(tmp_path)
    store.put("x", "a", {"v": 1})
    path = store.record_path("x", "a")

    def fail(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space") as info:
        store.put("x", "a", {"v": 2})
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)  # names the file
    assert store.get("x", "a")["v"] == 1
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


def test_keys_and_timing_fields() -> None:
    assert cell_key(model="wrn", ckpt=1, B=16) == "model=wrn_ckpt=1_B=16"
    with pytest.raises(ValueError, match="model"):
        cell_key(model="a b")
    with pytest.raises(ValueError, match="model"):
        cell_key(model="a_b")
    rec = {"B": 2, "wall_time": 1.0, "inner": {"pid": 3, "x": 1}, "hostname": "h"}
    assert strip_timing(rec) == {"B": 2, "inner": {"x": 1}}


# -- integrity: every record and array is checked on read --------------------------------------------------


def _write_raw(path: Path, text: str | bytes) -> None:
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def _valid_record(store: ResultStore) -> Path:
    store.put("sweep", "k", {"B": 8, "lam": 2.5, "trials": [{"lr": 0.1, "loss": [1.0, 0.5]}]})
    return store.record_path("sweep", "k")


def _nan_in_field(path: Path) -> str:
    return path.read_text().replace('"lam": 2.5', '"lam": NaN')


def _edit_value(path: Path) -> str:
    return path.read_text().replace('"lam": 2.5', '"lam": 2.6')


def _strip_checksum(path: Path) -> str:
    raw = json.loads(path.read_text())
    raw.pop(CHECKSUM_FIELD)
    return json.dumps(raw)


def _wrong_cell(path: Path) -> str:
    raw = json.loads(path.read_text())
    raw.pop(CHECKSUM_FIELD)
    raw["key"] = "other"
    raw[CHECKSUM_FIELD] = record_checksum(raw)  # a valid record, but of another cell
    return json.dumps(raw)


CORRUPTIONS = {
    "syntax error": (lambda p: p.read_text()[:-3] + "}}", "not valid JSON"),
    "empty object": (lambda p: "{}", "no record_sha256"),
    "deep nesting": (lambda p: "[" * 200_000 + "]" * 200_000, "nests 200000 levels"),
    "NaN in a field": (_nan_in_field, "bare NaN"),
    "edited value": (_edit_value, "does not match its checksum"),
    "truncated": (lambda p: p.read_bytes()[: len(p.read_bytes()) // 2], "not valid JSON"),
    "no checksum": (_strip_checksum, "no record_sha256"),
    "another cell": (_wrong_cell, "is the record of sweep/other"),
    "not an object": (lambda p: "[1, 2]", "holds a JSON list"),
    "not UTF-8": (lambda p: b'{"a": "\xff\xfe"}', "not UTF-8"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_record_is_named_or_recomputed_under_the_lock(tmp_path: Path, kind: str) -> None:
    corrupt, reason = CORRUPTIONS[kind]
    store = ResultStore(tmp_path, settings=SETTINGS)
    path = _valid_record(store)
    _write_raw(path, corrupt(path))
    (tmp_path / "config.json").write_text("{}")
    t0 = time.perf_counter()
    for read in (
        lambda: store.get("sweep", "k"),
        lambda: store.has("sweep", "k"),
        lambda: store.records("sweep"),
    ):
        with pytest.raises(CorruptRecordError, match=reason) as info:
            read()
        message = str(info.value)
        assert str(path) in message and f"--out {tmp_path} --resume" in message  # file and what to do
    assert time.perf_counter() - t0 < 2.0
    with store.locked():  # a resuming run: the bad record is moved aside and the cell recomputed
        rec = store.get_or_compute("sweep", "k", lambda: {"B": 8, "lam": 2.5})
    assert rec["lam"] == 2.5 and store.get("sweep", "k") == rec
    assert store.repaired == [path] and path.with_name("k.json.corrupt").is_file()


def test_oversized_record_is_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    import validation.store_integrity as integrity_module  # where read_json_file reads its limit

    store = ResultStore(tmp_path)
    _valid_record(store)
    monkeypatch.setattr(integrity_module, "MAX_RECORD_BYTES", 64)
    with pytest.raises(CorruptRecordError, match="over the 64-byte limit"):
        store.get("sweep", "k")


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": [1, [2, {"b": "[[[[{{"}]]}') == 4
    assert json_depth(b'"[\\\\"') == 0 and json_depth(b"3") == 0
    assert json_depth(b'{"k": "a \\"[[ quoted", "v": [[]]}') == 3


def test_array_checksums_catch_truncation_and_overwrites(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, settings=SETTINGS)
    values = np.arange(12.0).reshape(3, 4)
    rel = store.save_array("vec", values)
    np.testing.assert_array_equal(store.load_array(rel), values)
    path = tmp_path / rel
    good = path.read_bytes()
    store.put("spectra", "k", {"vectors": rel})
    for bad, reason in ((good[:-8], "truncated"), (good[:-8] + b"\0" * 8, "does not match its checksum")):
        path.write_bytes(bad)
        with pytest.raises(CorruptRecordError, match=reason) as info:
            store.load_array(rel)
        assert str(path) in str(info.value)
        with pytest.raises(CorruptRecordError, match=reason):
            store.has("spectra", "k")  # the record is fine, the array it references is not
        with store.locked():
            assert not store.has("spectra", "k")  # → recomputed by a resuming run
        store.put("spectra", "k", {"vectors": rel})
    path.with_name("vec.npy.sha256").unlink()
    with pytest.raises(CorruptRecordError, match="no checksum file"):
        store.load_array(rel)
    with pytest.raises(CorruptRecordError, match="outside the run folder"):
        store.load_array("../escape.npy")


def test_checkpoint_file_referenced_by_a_record_is_verified(tmp_path: Path) -> None:
    from validation.provenance import file_hash

    store = ResultStore(tmp_path, settings=SETTINGS)
    ckpt = store.checkpoint_path("model=m_ckpt=0")
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    store.put(
        "checkpoints", "model=m_ckpt=0", {"path": "checkpoints/model=m_ckpt=0.pt", "sha256": file_hash(ckpt)}
    )
    assert store.has("checkpoints", "model=m_ckpt=0")
    ckpt.write_bytes(b"weightz")
    with pytest.raises(CorruptRecordError, match="does not match the sha256"):
        store.has("checkpoints", "model=m_ckpt=0")
    with store.locked():
        assert not store.has("checkpoints", "model=m_ckpt=0")


# -- file modes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_are_world_readable_under_the_usual_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        store = ResultStore(tmp_path, settings=SETTINGS)
        store.put("s", "k", {"v": 1})
        paths = [store.record_path("s", "k"), tmp_path / store.save_array("a", np.zeros(2))]
        paths.append(store.write_csv("s"))  # type: ignore[arg-type]
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# -- settings fingerprint ----------------------------------------------------------------------------------


def test_resume_refuses_records_made_under_other_settings(tmp_path: Path) -> None:
    with ResultStore(tmp_path, settings=SETTINGS).locked() as store:
        store.put("sweep", "k", {"v": 1})
    with ResultStore(tmp_path, settings=SETTINGS).locked():  # same settings: fine
        pass
    other = {**SETTINGS, "torch_threads": 2}
    with pytest.raises(MixedSettingsError) as info:
        ResultStore(tmp_path, settings=other).acquire_lock()
    message = str(info.value)
    assert "torch_threads 1 (records) vs 2 (now)" in message and "--allow-mixed-settings" in message
    assert "cpu_capability" not in message and "\n" not in message
    assert not ResultStore(tmp_path, settings=SETTINGS).is_locked  # the refused store released the lock
    with ResultStore(tmp_path, settings=other, allow_mixed_settings=True).locked():
        pass
    with permit_mixed_settings(), ResultStore(tmp_path, settings={**other, "torch": "9"}).locked():
        pass
    stored = ResultStore(tmp_path).stored_settings()
    assert stored == [SETTINGS, other, {**other, "torch": "9"}]  # the folder says which settings it mixes


def test_settings_of_a_folder_without_records_are_replaced(tmp_path: Path) -> None:
    with ResultStore(tmp_path, settings=SETTINGS).locked():
        pass
    other = {**SETTINGS, "cpu_capability": "AVX512"}
    with ResultStore(tmp_path, settings=other).locked():
        pass
    assert ResultStore(tmp_path).stored_settings() == [other]


def test_settings_fingerprint_and_environment_name_threads_and_cpu_capability() -> None:
    import torch

    from validation.provenance import environment, settings_fingerprint

    fp = settings_fingerprint()
    assert fp["torch_threads"] == torch.get_num_threads()
    assert fp["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert fp["torch"] == torch.__version__.split("+")[0] or fp["torch"] == torch.__version__
    env = environment()
    for name in ("torch_threads", "torch_interop_threads", "cpu_capability", "aten_cpu_capability",
                 "omp_num_threads", "platform"):  # fmt: skip
        assert name in env
    assert {"batchrmt", "torch", "numpy", "scipy"} <= set(env["versions"])


def test_a_second_store_in_the_same_process_is_locked_out(tmp_path: Path) -> None:
    with ResultStore(tmp_path, settings=SETTINGS).locked():
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(StoreLockedError, match=f"in use by process {os.getpid()}"):
            ResultStore(tmp_path, settings=SETTINGS).acquire_lock()
    assert (tmp_path / ".lock").read_text() == ""  # released (the file stays: see the module docstring)
    with ResultStore(tmp_path, settings=SETTINGS).locked():
        pass


def test_out_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        ResultStore(tmp_path / "f")


def test_a_forged_array_header_with_a_matching_checksum_is_refused_without_allocating(tmp_path: Path) -> None:
    """A .npy whose header declares 8 GB (its checksum file forged to match) is refused from the header,
    before numpy allocates the declared size."""
    import hashlib
    import json as _json
    import tracemalloc

    from validation.store import CorruptRecordError, ResultStore

    store = ResultStore(tmp_path)
    rel = store.save_array("v", np.arange(4.0))
    path = tmp_path / rel
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    forged = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 32
    path.write_bytes(forged)
    side = {"sha256": hashlib.sha256(forged).hexdigest(), "bytes": len(forged)}
    path.with_name(path.name + ".sha256").write_text(_json.dumps(side))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptRecordError, match="declares 8000000000 bytes"):
            store.load_array(rel)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000
