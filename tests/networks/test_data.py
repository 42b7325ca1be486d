"""Data layer: loaders on tiny format-exact files written at test time, refusal of malicious / malformed
files, the real Fashion-MNIST, real CIFAR-100 images from the foolbox wheel, fixed batches, the Gaussian
mixture and the augmentation."""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from networks.data import (
    CHANNEL_STATS,
    ArrayDataset,
    DatasetFormatError,
    DatasetNotFoundError,
    batch_indices,
    class_means,
    decode_png,
    gaussian_mixture,
    load_cifar,
    load_dataset,
    load_fashion_mnist,
    load_imagenet32,
    load_imagenet_folder,
    random_crop_flip,
    read_idx,
    read_png,
)
from networks.models import build_model
from tests.networks.fixtures.formats import (
    dumps_py2,
    encode_png,
    write_cifar,
    write_idx,
    write_imagenet32,
    write_mnist_folder,
)

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


def unnormalised_bytes(x: torch.Tensor) -> np.ndarray:
    """float32 x/255 back to the uint8 values (exact: k/255 in float32 rounds back to k)."""
    return np.rint(x.numpy() * 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------ IDX
def test_idx_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", a)), a)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", a, gz=False)), a)


def test_idx_loader_reads_fixture_folder(tmp_path: Path) -> None:
    written = write_mnist_folder(tmp_path)
    for train, prefix in ((True, "train"), (False, "t10k")):
        raw = load_dataset("mnist", root=tmp_path, train=train, normalize=False)
        assert raw.x.shape == (len(written[f"{prefix}_labels"]), 1, 28, 28) and raw.x.dtype == torch.float32
        assert np.array_equal(unnormalised_bytes(raw.x[:, 0]), written[f"{prefix}_images"])
        assert np.array_equal(raw.y.numpy(), written[f"{prefix}_labels"]) and raw.y.dtype == torch.int64
    norm = load_fashion_mnist(root=tmp_path, train=False)
    (mean,), (std,) = CHANNEL_STATS["fashion-mnist"]
    expected = (written["t10k_images"] / 255.0 - mean) / std
    assert np.allclose(norm.x[:, 0].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda raw: b"\x01\x02" + raw[2:], "magic"),
        (lambda raw: raw[:2] + b"\x07" + raw[3:], "magic"),  # unknown type byte
        (lambda raw: raw[:-5], "truncated"),
        (lambda raw: raw + b"\x00", "over-long"),
        (lambda raw: raw[:6], "truncated IDX header"),
    ],
)
def test_idx_malformed_files_raise_value_error_naming_the_file(
    tmp_path: Path, corrupt: Callable[[bytes], bytes], message: str
) -> None:
    raw = gzip.decompress(write_idx(tmp_path / "x.gz", np.zeros((3, 4, 4), np.uint8)).read_bytes())
    bad = tmp_path / "bad-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(corrupt(raw)))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(bad)
    assert str(bad) in str(info.value)


def test_idx_truncated_gzip_stream_and_wrong_magic_for_role(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatasetFormatError, match="truncated or corrupt") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    write_mnist_folder(tmp_path)
    labels = np.zeros(12, np.uint8)  # a label file where the images file should be: magic 0x801, not 0x803
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", labels)
    with pytest.raises(DatasetFormatError, match="0x00000801, expected 0x00000803"):
        load_dataset("mnist", root=tmp_path)


def test_missing_fashion_mnist_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "absent")
    assert "apt-get install -y dataset-fashion-mnist" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.skipif(
    not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed: apt-get install -y dataset-fashion-mnist",
)
def test_real_fashion_mnist_loads_and_is_standardised() -> None:
    data = load_dataset("fashion-mnist")
    assert data.x.shape == (60000, 1, 28, 28) and data.x.dtype == torch.float32
    assert data.num_classes == 10
    assert torch.equal(torch.bincount(data.y), torch.full((10,), 6000))  # the set is balanced
    # constants are the training-set moments rounded to 4 decimals: |error| <= 5e-5/0.353 ≈ 1.4e-4
    assert abs(data.x.mean().item()) < 1e-3
    assert abs(data.x.std().item() - 1) < 1e-3
    test = load_fashion_mnist(train=False, normalize=False)
    assert test.x.shape == (10000, 1, 28, 28) and 0.0 <= test.x.min() and test.x.max() <= 1.0


# ---------------------------------------------------------------------------------------------------- CIFAR
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("form", ["folder", "parent", "tar.gz"])
def test_cifar_loads_folder_parent_and_archive(tmp_path: Path, name: str, form: str) -> None:
    root, expected = write_cifar(tmp_path, name, form=form)
    for split, train in (("train", True), ("test", False)):
        data = load_cifar(name, root=root, train=train, normalize=False)
        images, labels = expected[split]
        assert data.x.shape == (len(labels), 3, 32, 32) and data.x.dtype == torch.float32
        assert np.array_equal(unnormalised_bytes(data.x).reshape(len(labels), -1), images)
        assert np.array_equal(data.y.numpy(), labels)
    assert len(load_dataset(name, root=root)) == (20 if name == "cifar10" else 4)


def test_cifar_normalisation_and_coarse_labels(tmp_path: Path) -> None:
    root, expected = write_cifar(tmp_path, "cifar100", form="folder")
    images, fine = expected["test"]
    data = load_dataset("cifar100", root=root, train=False)
    mean, std = (np.array(v).reshape(1, 3, 1, 1) for v in CHANNEL_STATS["cifar100"])
    assert np.allclose(data.x.numpy(), (images.reshape(-1, 3, 32, 32) / 255.0 - mean) / std, atol=1e-5)
    coarse = load_cifar("cifar100", root=root, train=False, label="coarse")
    assert coarse.num_classes == 20 and np.array_equal(coarse.y.numpy(), fine // 5)
    with pytest.raises(ValueError, match="label must be one of"):
        load_cifar("cifar10", root=root, label="coarse")


def test_cifar_missing_says_where_to_put_the_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar100", root=tmp_path)
    message = str(info.value)
    assert "cifar-100-python.tar.gz" in message and "cifar-100-python/" in message and "root=" in message


class _CallsOsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("make", ["os.system", "eval", "numpy.load"])
def test_malicious_cifar_pickle_raises_and_never_runs(tmp_path: Path, make: str) -> None:
    marker = tmp_path / "pwned"
    payload_object = {
        "os.system": lambda: _CallsOsSystem(marker),
        "eval": lambda: _CallsEval(),
        "numpy.load": lambda: np.load,  # an allowed module, a disallowed name
    }[make]()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": payload_object, b"labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="not allowed") as info:
        load_cifar("cifar10", root=folder, train=False)
    assert str(folder / "test_batch") in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_truncated_and_wrong_shape_cifar_files(tmp_path: Path) -> None:
    folder, _ = write_cifar(tmp_path, "cifar10", form="folder")
    batch = folder / "test_batch"
    raw = batch.read_bytes()
    batch.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetFormatError, match="not a readable CIFAR pickle") as info:
        load_cifar("cifar10", root=folder, train=False)
    assert str(batch) in str(info.value) and not isinstance(info.value, pickle.UnpicklingError)

    batch.write_bytes(dumps_py2({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DatasetFormatError, match=r"shape \(N, 3072\), got \(2, 3000\)"):
        load_cifar("cifar10", root=folder, train=False)
    batch.write_bytes(dumps_py2({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(DatasetFormatError, match="must hold 2 integer labels"):
        load_cifar("cifar10", root=folder, train=False)
    batch.write_bytes(dumps_py2({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    with pytest.raises(DatasetFormatError, match=r"labels must lie in \[0, 10\)"):
        load_cifar("cifar10", root=folder, train=False)

    (tmp_path / "t").mkdir()
    archive, _ = write_cifar(tmp_path / "t", "cifar100", form="tar.gz")
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DatasetFormatError, match="truncated or corrupt") as info:
        load_cifar("cifar100", root=archive)
    assert str(archive) in str(info.value)


# ------------------------------------------------------------------------------------------------- ImageNet
def test_imagenet32_npz_with_one_based_labels(tmp_path: Path) -> None:
    folder = tmp_path / "Imagenet32_train_npz"
    folder.mkdir()
    parts = [write_imagenet32(folder / f"train_data_batch_{i}.npz", n=3, seed=i) for i in (1, 2, 10)]
    data = load_dataset("imagenet32", root=tmp_path, normalize=False)  # the subfolder; numeric order 1, 2, 10
    assert data.num_classes == 1000 and data.x.shape == (9, 3, 32, 32)
    assert np.array_equal(unnormalised_bytes(data.x).reshape(9, -1), np.concatenate([p[0] for p in parts]))
    assert np.array_equal(data.y.numpy(), np.concatenate([p[1] for p in parts]) - 1)
    assert data.y.min() == 0 and data.y.max() == 999
    assert len(load_imagenet32(tmp_path, max_samples=4)) == 4
    val_x, val_y = write_imagenet32(tmp_path / "val_data.npz", n=5, seed=7)
    val = load_imagenet32(tmp_path / "val_data.npz", train=False, normalize=False)
    assert np.array_equal(val.y.numpy(), val_y - 1)


def test_imagenet32_malformed_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "zero_based.npz"
    np.savez(bad, data=np.zeros((2, 3072), np.uint8), labels=np.array([0, 5]))
    with pytest.raises(DatasetFormatError, match="1-based") as info:
        load_imagenet32(bad)
    assert str(bad) in str(info.value)
    np.savez(bad, data=np.zeros((2, 1024), np.uint8), labels=np.array([1, 5]))
    with pytest.raises(DatasetFormatError, match="3072"):
        load_imagenet32(bad)
    good = tmp_path / "good.npz"
    write_imagenet32(good)
    good.write_bytes(good.read_bytes()[:-60])
    with pytest.raises(DatasetFormatError, match="truncated or corrupt"):
        load_imagenet32(good)
    with pytest.raises(DatasetNotFoundError, match="Imagenet32_train_npz"):
        load_imagenet32(tmp_path / "nothing-here")


def _image_folder(root: Path) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    written: dict[str, list[np.ndarray]] = {}
    for name, channels in (("ant", 3), ("bee", 1), ("cat", 4)):
        (root / name).mkdir(parents=True)
        written[name] = []
        for i in range(2):
            pixels = rng.integers(0, 256, size=(32, 32, channels), dtype=np.uint8)
            (root / name / f"{i}.png").write_bytes(encode_png(pixels, [0, 1, 2, 3, 4]))
            written[name].append(pixels)
    return written


def test_imagenet_folder_loader(tmp_path: Path) -> None:
    written = _image_folder(tmp_path / "train")
    data = load_imagenet_folder(tmp_path, train=True, normalize=False)
    assert data.num_classes == 3 and data.x.shape == (6, 3, 32, 32)
    assert data.y.tolist() == [0, 0, 1, 1, 2, 2]
    got = unnormalised_bytes(data.x)
    assert np.array_equal(got[0], written["ant"][0].transpose(2, 0, 1))
    assert np.array_equal(got[2], np.repeat(written["bee"][0].transpose(2, 0, 1), 3, axis=0))  # grey → RGB
    assert np.array_equal(got[5], written["cat"][1][:, :, :3].transpose(2, 0, 1))  # alpha dropped


def test_imagenet_folder_resizes_and_refuses_unreadable_images(tmp_path: Path) -> None:
    (tmp_path / "dog").mkdir()
    flat = np.full((8, 16, 3), 77, np.uint8)  # constant image: bilinear resize keeps the value exactly
    (tmp_path / "dog" / "b.png").write_bytes(encode_png(flat, [0]))
    data = load_imagenet_folder(tmp_path, normalize=False, image_size=4)
    assert data.x.shape == (1, 3, 4, 4) and np.all(unnormalised_bytes(data.x) == 77)
    (tmp_path / "dog" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(DatasetFormatError, match="not a readable") as info:
        load_imagenet_folder(tmp_path)
    assert str(tmp_path / "dog" / "a.jpg") in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="class subfolders"):
        load_imagenet_folder(tmp_path / "dog")


# ------------------------------------------------------------------------------------------------------ PNG
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_decoder_inverts_every_filter_type(channels: int) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, size=(11, 7, channels), dtype=np.uint8)
    pixels[3:6] = 250  # saturating rows exercise the modulo-256 arithmetic of every predictor
    for filters in ([0], [1], [2], [3], [4], [4, 3, 2, 1, 0]):
        assert np.array_equal(decode_png(encode_png(pixels, filters)), pixels)


def test_png_reader_reads_pillow_written_files(tmp_path: Path) -> None:
    from PIL import Image as image_module

    rng = np.random.default_rng(5)
    ramp = np.add.outer(np.arange(20), np.arange(30))[:, :, None] * [3, 5, 7]
    pixels = ((ramp + rng.integers(0, 9, (20, 30, 3))) % 256).astype(np.uint8)
    path = tmp_path / "pillow.png"
    image_module.fromarray(pixels).save(path, optimize=True)  # Pillow chooses its own (adaptive) filters
    assert np.array_equal(read_png(path), pixels)


def test_png_decoder_rejects_corruption() -> None:
    good = encode_png(np.zeros((4, 4, 3), np.uint8), [1])
    with pytest.raises(ValueError, match="bad signature"):
        decode_png(b"GIF89a" + good[6:], "x.png")
    broken = bytearray(good)
    broken[20] ^= 0xFF  # inside IHDR: the chunk CRC no longer matches
    with pytest.raises(ValueError, match="not a readable PNG image") as info:
        decode_png(bytes(broken), "x.png")
    assert "x.png" in str(info.value)
    with pytest.raises(DatasetFormatError, match="corrupt or truncated PNG"):
        decode_png(good[:-20], "x.png")  # IDAT cut short


# ------------------------------------------------------------------ real images shipped in the foolbox wheel
def _foolbox_data() -> Path | None:
    spec = importlib.util.find_spec("foolbox")  # locates the wheel without importing foolbox (or eagerpy)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


FOOLBOX_DATA = _foolbox_data()
needs_foolbox = pytest.mark.skipif(
    FOOLBOX_DATA is None, reason="foolbox wheel not installed: pip install --no-deps foolbox"
)


def _foolbox_images(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    assert FOOLBOX_DATA is not None
    files = sorted(FOOLBOX_DATA.glob(f"{prefix}_*.png"))
    names = [re.fullmatch(rf"{prefix}_(\d+)_(\d+)\.png", f.name) for f in files]
    labels = np.array([int(m.group(2)) for m in names if m is not None])
    return np.stack([read_png(f) for f in files]), labels


@needs_foolbox
def test_real_cifar100_images_through_the_loader_and_a_model(tmp_path: Path) -> None:
    images, labels = _foolbox_images("cifar100")
    assert images.shape == (20, 32, 32, 3) and labels.min() >= 0 and labels.max() <= 99
    data_rows = images.transpose(0, 3, 1, 2).reshape(20, 3072)  # official layout: R plane, G plane, B plane
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batch = {b"data": data_rows, b"fine_labels": labels.tolist(), b"coarse_labels": [0] * 20}
    (folder / "test").write_bytes(dumps_py2(batch))
    data = load_cifar("cifar100", root=tmp_path, train=False)
    raw = load_cifar("cifar100", root=tmp_path, train=False, normalize=False)
    assert np.array_equal(unnormalised_bytes(raw.x), images.transpose(0, 3, 1, 2))
    assert data.y.tolist() == labels.tolist()
    # natural images: normalised channel means within ~1 std of 0 even for 20 images, spread of order 1
    assert data.x.mean(dim=(0, 2, 3)).abs().max() < 1.0
    assert 0.5 < data.x.std().item() < 2.0
    torch.manual_seed(0)
    model = build_model("vgg11", num_classes=100, in_channels=3, width=0.125).eval()
    with torch.no_grad():
        assert model(random_crop_flip(data.x, torch.Generator().manual_seed(0))).shape == (20, 100)


@needs_foolbox
@pytest.mark.skipif(
    not (FASHION_ROOT / "t10k-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST not installed"
)
def test_foolbox_fashion_mnist_pngs_are_the_first_test_images() -> None:
    """Two independent decoders (IDX and PNG) on two independent copies of the same real images must agree."""
    images, labels = _foolbox_images("fashionMNIST")
    test = load_fashion_mnist(train=False, normalize=False)
    assert np.array_equal(unnormalised_bytes(test.x[:20, 0]), images[..., 0])
    assert test.y[:20].tolist() == labels.tolist()


# ----------------------------------------------------------------------------------------- batches, synthetic
def test_batch_indices_are_deterministic_unique_sorted_and_nested() -> None:
    a = batch_indices(1000, 64, seed=3, index=5)
    assert a.dtype == np.int64 and len(np.unique(a)) == 64 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 1000
    assert np.array_equal(a, batch_indices(1000, 64, seed=3, index=5))
    assert not np.array_equal(a, batch_indices(1000, 64, seed=3, index=6))
    assert not np.array_equal(a, batch_indices(1000, 64, seed=4, index=5))
    assert set(batch_indices(1000, 16, 3, 5)) <= set(a) <= set(batch_indices(1000, 256, 3, 5))
    assert np.array_equal(batch_indices(10, 10, 0, 0), np.arange(10))


def test_batch_indices_are_uniform_subsets() -> None:
    """Each element is in a batch with probability B/n: counts over S batches ~ Binomial(S, B/n)."""
    n, b, s = 20, 5, 2000
    counts = np.bincount(np.concatenate([batch_indices(n, b, 0, i) for i in range(s)]), minlength=n)
    p = b / n
    assert np.all(np.abs(counts - s * p) < 5 * math.sqrt(s * p * (1 - p)))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n": 0}, "n"),
        ({"batch_size": 11}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_batch_indices_validation(kwargs: dict[str, int], word: str) -> None:
    args = {"n": 10, "batch_size": 4, "seed": 0, "index": 0} | kwargs
    with pytest.raises(ValueError, match=word):
        batch_indices(**args)


def test_gaussian_mixture_is_seeded_and_balanced() -> None:
    a = gaussian_mixture(1000, num_classes=4, dim=8, seed=1)
    b = load_dataset("gaussian-mixture", n_samples=1000, num_classes=4, dim=8, seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.x.dtype == torch.float32 and a.x.shape == (1000, 8) and a.num_classes == 4
    assert torch.equal(torch.bincount(a.y), torch.full((4,), 250))
    assert not torch.equal(a.x, gaussian_mixture(1000, num_classes=4, dim=8, seed=2).x)
    test = gaussian_mixture(1000, num_classes=4, dim=8, seed=1, train=False)
    assert not torch.equal(a.x, test.x)


def test_gaussian_mixture_moments_match_construction() -> None:
    """Class-conditional sample means estimate μ_c to noise_std/sqrt(n_c) per coordinate; the train and test
    splits share μ; noise variance per coordinate is noise_std²."""
    c, d, n, sd, sep = 3, 5, 6000, 0.7, 4.0
    mu = class_means(c, d, sep, "simplex", np.random.default_rng(np.random.SeedSequence([9, 0])))
    assert np.allclose(np.linalg.norm(mu, axis=1), sep)
    pairwise = np.linalg.norm(mu[:, None] - mu[None], axis=2)[~np.eye(c, dtype=bool)]
    assert np.allclose(pairwise, sep * math.sqrt(2 * c / (c - 1)))
    for train in (True, False):
        data = gaussian_mixture(n, num_classes=c, dim=d, separation=sep, noise_std=sd, seed=9, train=train)
        x, y = data.x.double().numpy(), data.y.numpy()
        for k in range(c):
            xk = x[y == k]
            assert np.all(np.abs(xk.mean(0) - mu[k]) < 5 * sd / math.sqrt(len(xk)))
            # sample variance of n Gaussians has relative sd sqrt(2/(n-1))
            assert np.all(np.abs(xk.var(0, ddof=1) / sd**2 - 1) < 5 * math.sqrt(2 / (len(xk) - 1)))


def test_gaussian_mixture_label_noise_rate() -> None:
    n, p = 20000, 0.2
    clean = gaussian_mixture(n, num_classes=5, dim=6, seed=4, noise_std=0.0)
    noisy = gaussian_mixture(n, num_classes=5, dim=6, seed=4, noise_std=0.0, label_noise=p)
    assert torch.equal(clean.x, noisy.x)  # inputs keep their class; x = μ_true exactly at noise_std 0
    flipped = (clean.y != noisy.y).double().mean().item()
    assert abs(flipped - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_gaussian_mixture_random_means_and_validation() -> None:
    mu = class_means(4, 50, 2.0, "random", np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(mu, axis=1), 2.0)
    with pytest.raises(ValueError, match="dim must be >= num_classes - 1"):
        gaussian_mixture(10, num_classes=10, dim=5)
    with pytest.raises(ValueError, match="means must be one of"):
        gaussian_mixture(10, means="cube")
    with pytest.raises(ValueError, match="label_noise"):
        gaussian_mixture(10, label_noise=1.5)
    with pytest.raises(ValueError, match="root must be None"):
        load_dataset("gaussian-mixture", root="/tmp")
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("svhn")


# ------------------------------------------------------------------------------------------- augmentation
def test_random_crop_flip_shapes_reproducibility_and_content() -> None:
    x = torch.randn(64, 3, 10, 12)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, random_crop_flip(x, torch.Generator().manual_seed(0), padding=2))
    assert not torch.equal(out, random_crop_flip(x, torch.Generator().manual_seed(1), padding=2))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(len(x)):
        matches = []
        for dy in range(5):
            for dx in range(5):
                crop = padded[i, :, dy : dy + 10, dx : dx + 12]
                for flip in (False, True):
                    if torch.equal(out[i], crop.flip(-1) if flip else crop):
                        matches.append(flip)
        assert matches, f"sample {i} is not a crop (+flip) of its padded input"
        flips += matches[0]
    assert 0 < flips < len(x)  # both branches happen (probability of failure 2·2^-64)


def test_random_crop_flip_without_padding_is_identity_or_mirror() -> None:
    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)
    out = random_crop_flip(x, torch.Generator().manual_seed(3), padding=0)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(x, torch.Generator(), padding=-1)


# --------------------------------------------------------------------------------------------- ArrayDataset
def test_array_dataset_subset_and_validation() -> None:
    data = ArrayDataset(torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]), 3, "toy")
    sub = data.subset(np.array([4, 0]))
    assert len(sub) == 2 and sub.y.tolist() == [1, 0] and torch.equal(sub.x[1], data.x[0])
    with pytest.raises(ValueError, match="labels must lie"):
        ArrayDataset(torch.randn(2, 2), torch.tensor([0, 3]), 3, "toy")
    with pytest.raises(TypeError, match="float32"):
        ArrayDataset(torch.randn(2, 2, dtype=torch.float64), torch.tensor([0, 1]), 3, "toy")
    with pytest.raises(IndexError):
        data.subset([6])
