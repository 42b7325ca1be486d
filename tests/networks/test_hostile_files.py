"""Hostile data files (issue 11): code-execution pickles, tar tricks, memory bombs and truncated or corrupt
files are each refused quickly (< 1 s), with little memory (< 50 MB above the level before), by a ValueError
(``DatasetFormatError``) whose message names the file; no payload ever runs (its marker file never appears).
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from networks.data import (
    DatasetFormatError,
    UnsafePickleError,
    decode_png,
    load_cifar,
    read_idx,
    read_png,
)
from tests.networks.fixtures.formats import dumps_py2, encode_png, write_cifar, write_idx
from tests.networks.fixtures.hostile import (
    MiB,
    code_execution_payloads,
    measure_refusal,
    member,
    tar_bytes,
    tar_header,
    write_memory_bombs,
)

SECONDS = 1.0  # a refusal reads headers only
PEAK_MB = 50.0  # memory above the level just before the refusal (traced and, on Linux, resident)
PAYLOAD_NAMES = sorted(code_execution_payloads(Path("marker")))
# payloads that do run code when loaded with plain pickle.loads (controls: the attacks are real)
LIVE_PAYLOADS = [
    "GLOBAL os.system",
    "GLOBAL posix.system",
    "GLOBAL builtins.eval",
    "GLOBAL __builtin__.exec (py2 name)",
    "GLOBAL builtins.open",
    "STACK_GLOBAL os.system",
    "INST os.system",
    "OBJ os.system",
    "importlib chain getattr(import_module('os'), 'system')",
    "numpy module, disallowed name (numpy.savetxt)",
    "functools.partial(os.system)",
]


def refused(call: Callable[[], object], path: Path | str) -> DatasetFormatError:
    """The DatasetFormatError ``call`` raises within SECONDS; its message names ``path``."""
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        call()
    elapsed = time.perf_counter() - start
    assert isinstance(info.value, DatasetFormatError), repr(info.value)
    assert str(path) in str(info.value), str(info.value)
    assert elapsed < SECONDS, f"refusal took {elapsed:.2f} s"
    return info.value


# ---------------------------------------------------------------------------------------- pickles
@pytest.mark.parametrize("name", LIVE_PAYLOADS)
def test_payload_runs_under_plain_pickle(tmp_path: Path, name: str) -> None:
    """Control: with the standard unpickler the payload creates its marker, so the refusals below matter."""
    marker = tmp_path / "pwned"
    try:
        pickle.loads(code_execution_payloads(marker)[name], encoding="bytes")
    except Exception:  # noqa: BLE001 - some payloads fail after their side effect
        pass
    assert marker.exists()


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_code_execution_pickle_is_refused_and_never_runs(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(code_execution_payloads(marker)[name])
    error = refused(lambda: load_cifar("cifar10", root=folder, train=False), folder / "test_batch")
    assert isinstance(error, UnsafePickleError) and isinstance(error, pickle.UnpicklingError)
    assert not marker.exists()


def test_payload_inside_the_official_archive_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = code_execution_payloads(marker)["GLOBAL os.system"]
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(
        tar_bytes([member("cifar-10-batches-py/test_batch")], {"cifar-10-batches-py/test_batch": payload})
    )
    error = refused(lambda: load_cifar("cifar10", root=archive, train=False), archive)
    assert isinstance(error, UnsafePickleError) and "test_batch" in str(error)
    assert not marker.exists()


def test_genuine_pickles_still_load_through_the_guards(tmp_path: Path) -> None:
    """The guards accept what numpy writes: every numeric dtype, C and Fortran order, Python-2 opcodes."""
    from networks.data import restricted_loads

    for dtype in ("u1", "i2", "<u4", "i8", "f4", "f8", "b1"):
        array = np.arange(12).reshape(3, 4).astype(dtype)
        for order in ("C", "F"):
            obj = np.asarray(array, order=order)
            back = restricted_loads(dumps_py2({b"x": obj}))[b"x"]
            assert type(back) is np.ndarray and back.dtype == obj.dtype and np.array_equal(back, obj)


def test_truncated_and_bit_flipped_pickles_are_named_value_errors(tmp_path: Path) -> None:
    folder, _ = write_cifar(tmp_path, "cifar10", form="folder", n_per_file=1)
    path = folder / "test_batch"
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    cuts = list(range(0, len(good), 37)) + [len(good) - 1]
    flips = [(int(rng.integers(len(good))), int(rng.integers(1, 256))) for _ in range(150)]
    for n in cuts:
        path.write_bytes(good[:n])
        refused(lambda: load_cifar("cifar10", root=folder, train=False), path)
    for position, xor in flips:
        broken = bytearray(good)
        broken[position] ^= xor
        path.write_bytes(bytes(broken))
        try:
            data = load_cifar("cifar10", root=folder, train=False)
        except ValueError as exc:  # refused: must name the file
            assert str(path) in str(exc), str(exc)
        else:  # a flip inside the pixel bytes leaves a valid file
            assert data.x.shape == (1, 3, 32, 32)


# -------------------------------------------------------------------------------------------- tar
TAR_TRICKS: dict[str, tarfile.TarInfo] = {
    "traversal ../": member("../../escaped"),
    "absolute path": member("/tmp/batchrmt-escaped"),
    "traversal inside the release folder": member("cifar-10-batches-py/../../escaped"),
    "symlink to /etc/passwd": member("cifar-10-batches-py/test_batch", tarfile.SYMTYPE, "/etc/passwd"),
    "hard link to /etc/passwd": member("cifar-10-batches-py/test_batch", tarfile.LNKTYPE, "/etc/passwd"),
    "character device": member("cifar-10-batches-py/tty", tarfile.CHRTYPE),
    "block device": member("cifar-10-batches-py/sda", tarfile.BLKTYPE),
    "FIFO": member("cifar-10-batches-py/fifo", tarfile.FIFOTYPE),
    "GNU sparse member": member("cifar-10-batches-py/test_batch", tarfile.GNUTYPE_SPARSE),
}


@pytest.mark.parametrize("trick", sorted(TAR_TRICKS))
def test_tar_tricks_refuse_the_archive(tmp_path: Path, trick: str) -> None:
    good = dumps_py2({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    members = [member("cifar-10-batches-py/test_batch"), TAR_TRICKS[trick]]
    if TAR_TRICKS[trick].name == "cifar-10-batches-py/test_batch":
        members = members[1:]
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(tar_bytes(members, {"cifar-10-batches-py/test_batch": good}))
    error = refused(lambda: load_cifar("cifar10", root=archive, train=False), archive)
    assert repr(TAR_TRICKS[trick].name) in str(error)
    assert not (tmp_path.parent / "escaped").exists() and not Path("/tmp/batchrmt-escaped").exists()


def test_tar_with_too_many_members_is_refused(tmp_path: Path) -> None:
    from networks.data.limits import MAX_ARCHIVE_MEMBERS

    headers = b"".join(tar_header(f"d{i}", 0, tarfile.DIRTYPE) for i in range(MAX_ARCHIVE_MEMBERS + 1))
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(gzip.compress(headers + bytes(1024), 1))
    error = refused(lambda: load_cifar("cifar10", root=archive, train=False), archive)
    assert "members" in str(error)


def test_truncated_and_corrupt_archives(tmp_path: Path) -> None:
    archive, _ = write_cifar(tmp_path, "cifar10", form="tar.gz", n_per_file=1)
    good = archive.read_bytes()
    for n in [0, 1, 10, 100, len(good) // 2, len(good) - 9, len(good) - 1]:
        archive.write_bytes(good[:n])
        refused(lambda: load_cifar("cifar10", root=archive, train=False), archive)
    broken = bytearray(good)
    broken[len(good) // 2] ^= 0xFF
    archive.write_bytes(bytes(broken))
    refused(lambda: load_cifar("cifar10", root=archive, train=False), archive)


# ---------------------------------------------------------------------------------------- memory bombs
@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Callable[[], object]]]:
    return write_memory_bombs(tmp_path_factory.mktemp("bombs"))


def _bomb_names() -> list[str]:
    """Names of the bombs (writing them takes ~0.1 s; the files hold no data blocks worth mentioning)."""
    with tempfile.TemporaryDirectory() as folder:
        return sorted(write_memory_bombs(Path(folder)))


BOMB_NAMES = _bomb_names()


def test_bomb_files_are_small_but_expand_or_declare_gigabytes(
    bombs: dict[str, tuple[Path, Callable[[], object]]],
) -> None:
    """Controls: the bombs are real. The gzip bomb expands to 256 MiB with a plain reader; every file uses
    less than 300 KB of disk."""
    path, _ = bombs["idx gzip bomb: 28x28 declared, 256 MB of zeros"]
    with gzip.open(path, "rb") as handle:
        total = sum(len(chunk) for chunk in iter(lambda: handle.read(8 * MiB), b""))
    assert total == 256 * MiB + 16
    for path, _ in bombs.values():
        assert path.stat().st_blocks * 512 < 300_000, path


def test_memory_meter_sees_a_100_mb_allocation() -> None:
    """Control for the measurements below: a 100 MB allocation shows as ≥ 95 MB traced (and resident)."""
    error, _, traced, resident = measure_refusal(lambda: np.ones(100 * MiB, np.uint8).sum())
    assert error is None and traced >= 95
    assert resident is None or resident >= 95


@pytest.mark.parametrize("name", BOMB_NAMES)
def test_memory_bomb_is_refused_quickly_with_little_memory(
    bombs: dict[str, tuple[Path, Callable[[], object]]], name: str
) -> None:
    path, call = bombs[name]
    refused(call, path)
    error, _, traced, resident = measure_refusal(call)
    assert isinstance(error, DatasetFormatError) and str(path) in str(error)
    assert traced < PEAK_MB, f"{name}: {traced:.1f} MB traced"
    assert resident is None or resident < PEAK_MB, f"{name}: {resident:.1f} MB resident"


# ------------------------------------------------------------------------------ truncated / corrupt files
def test_every_truncation_of_an_idx_file_is_refused_naming_it(tmp_path: Path) -> None:
    images = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)
    for gz in (True, False):
        path = write_idx(tmp_path / ("x-idx3-ubyte" + (".gz" if gz else "")), images, gz=gz)
        good = path.read_bytes()
        for n in range(len(good)):
            path.write_bytes(good[:n])
            refused(lambda p=path: read_idx(p), path)  # type: ignore[misc]
        path.write_bytes(good)
        assert np.array_equal(read_idx(path), images)


def test_corrupt_gzip_streams_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.arange(300, dtype=np.uint8).reshape(3, 10, 10))
    good = path.read_bytes()
    cases = {
        "crc": good[:-8] + bytes([good[-8] ^ 1]) + good[-7:],
        "size trailer": good[:-4] + bytes([good[-4] ^ 1]) + good[-3:],
        "deflate data": good[:12] + bytes([good[12] ^ 0xFF]) + good[13:],
        "not gzip": b"plain bytes, not a gzip stream",
        "gzip magic only": b"\x1f\x8b",
        "empty": b"",
        "trailing garbage member": good + b"\x1f\x8b garbage",
    }
    for broken in cases.values():
        path.write_bytes(broken)
        refused(lambda: read_idx(path), path)


def test_every_truncation_and_header_flip_of_a_png_is_refused_naming_it(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    good = encode_png(pixels, [0, 1, 2, 3, 4])
    path = tmp_path / "x.png"
    for n in range(len(good) - 12):  # the last 12 bytes are IEND, which decoders may do without
        path.write_bytes(good[:n])
        refused(lambda: read_png(path), path)
        refused(lambda n=n: decode_png(good[:n], "mem.png"), "mem.png")  # type: ignore[misc]
    for position in range(8, 33):  # signature end, IHDR length, type, body and CRC
        broken = bytearray(good)
        broken[position] ^= 0x5A
        path.write_bytes(bytes(broken))
        refused(lambda: read_png(path), path)
    path.write_bytes(good)
    assert np.array_equal(read_png(path), pixels)


def test_png_refusals_cover_bit_depth_and_other_formats(tmp_path: Path) -> None:
    from PIL import Image

    deep = tmp_path / "deep.png"
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(deep)
    refused(lambda: read_png(deep), deep)
    gif = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(gif, format="GIF")
    refused(lambda: read_png(gif), gif)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, format="BMP")
    refused(lambda: decode_png(buffer.getvalue(), "bmp-bytes"), "bmp-bytes")


# -------------------------------------------------------------------------------------------------- npz
def test_npz_object_arrays_are_refused_and_fortran_order_is_read(tmp_path: Path) -> None:
    from networks.data import load_imagenet32, read_npz_arrays

    marker = tmp_path / "pwned"
    path = tmp_path / "val_data.npz"
    hostile = np.array([code_execution_payloads(marker)["GLOBAL os.system"]], dtype=object)
    np.savez(path, data=hostile, labels=np.array([1]))  # an object array is stored as a pickle
    error = refused(lambda: load_imagenet32(path), path)
    assert "object arrays" in str(error) and not marker.exists()
    fortran = np.asfortranarray(np.arange(24, dtype=np.int32).reshape(4, 6))
    np.savez(path, data=fortran, labels=np.arange(4))
    arrays = read_npz_arrays(path, ["data", "labels"])
    assert np.array_equal(arrays["data"], fortran) and np.array_equal(arrays["labels"], np.arange(4))
    error = refused(lambda: read_npz_arrays(path, ["mean"]), path)
    assert "has no array 'mean'" in str(error)
