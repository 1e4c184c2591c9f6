"""Tests of dean_nb.problem.datasets: digits, the torchvision loaders on tiny real-format files, make_split.

The torchvision datasets are exercised end to end through ``load_dataset`` with TINY files
written in each dataset's real on-disk format (IDX, CIFAR python pickles, SVHN .mat), so the
folder names, readers, label mappings and axis orders under test are torchvision's own.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.cifar
import torchvision.datasets.svhn

from dean_nb.problem import datasets
from dean_nb.problem.datasets import (
    DATASETS,
    DEBIAN_FASHION_MNIST,
    DIGITS_TEST_SIZE,
    NORMALISATION,
    Dataset,
    fixed_stratified_split,
    load_dataset,
    resolve_root,
)
from dean_nb.problem.split import Split, make_split

# --------------------------------------------------------------------------- file writers


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> None:
    """IDX ("SN3 Pascal Vincent") file: magic 0x0000 08 <ndim> (uint8), big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    path = path.with_name(path.name + ".gz") if gz else path
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def idx_arrays(rng: np.random.Generator, n_train: int, n_test: int, num_classes: int):
    x_train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    y_train = (np.arange(n_train) % num_classes).astype(np.uint8)
    y_test = (np.arange(n_test)[::-1] % num_classes).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def write_idx_set(folder: Path, name: str, arrays, *, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for filename, array in zip(datasets._idx_files(name), arrays, strict=True):
        write_idx(folder / filename, array, gz=gz)


def expected(pixels_uint8: np.ndarray, name: str) -> torch.Tensor:
    """(N, C, H, W) uint8 -> the normalisation the module documents."""
    mean, std = NORMALISATION[name]
    x = torch.as_tensor(pixels_uint8, dtype=torch.float32) / 255.0
    m = torch.tensor(mean).reshape(1, -1, 1, 1)
    s = torch.tensor(std).reshape(1, -1, 1, 1)
    return (x - m) / s


def _exists_only(fpath, md5=None) -> bool:
    return os.path.isfile(fpath)


@pytest.fixture
def skip_md5(monkeypatch):
    """Accept tiny CIFAR/SVHN files: replace only torchvision's md5 integrity check.

    torchvision's CIFAR10/CIFAR100/SVHN classes compare every file's md5 with the digest of
    the official release, which a tiny file in the same format can never match. Patching the
    ``check_integrity`` name those two modules imported (to "the file exists") keeps the rest
    of the real loaders (folder names, pickle and .mat readers, label mapping, axis order).
    """
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", _exists_only)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", _exists_only)


def write_cifar(root: Path, name: str, rng: np.random.Generator, n_per_file: int = 6):
    """Pickled batches as in the official python tarballs; returns (x_train, y_train, x_test, y_test)."""
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    num_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    parts = {}
    for filename, _ in cls.train_list + cls.test_list:
        rows = rng.integers(0, 256, size=(n_per_file, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, num_classes, size=n_per_file)]
        entry = {"data": rows, label_key: labels, "batch_label": filename}
        if name == "cifar100":
            entry["coarse_labels"] = [v // 5 for v in labels]
        with open(folder / filename, "wb") as f:
            pickle.dump(entry, f)
        parts[filename] = (rows.reshape(-1, 3, 32, 32), np.array(labels))
    meta = {cls.meta["key"]: [f"class{i}" for i in range(num_classes)]}
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump(meta, f)
    train = [parts[f] for f, _ in cls.train_list]
    test = [parts[f] for f, _ in cls.test_list]
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        np.concatenate([x for x, _ in test]),
        np.concatenate([y for _, y in test]),
    )


def write_svhn(root: Path, rng: np.random.Generator, n_train: int = 7, n_test: int = 5):
    """.mat files as in the official release: X (32, 32, 3, N) uint8, y (N, 1) with 10 for 0."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for filename, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x_hwcn = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
        scipy.io.savemat(root / filename, {"X": x_hwcn, "y": y})
        out += [x_hwcn.transpose(3, 2, 0, 1), digits]
    return tuple(out)


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_shapes_labels_and_normalisation(digits):
    assert digits.name == "digits"
    assert digits.num_classes == 10
    assert digits.image_shape == (1, 8, 8)
    assert digits.x_train.shape == (1797 - DIGITS_TEST_SIZE, 1, 8, 8)
    assert digits.x_test.shape == (DIGITS_TEST_SIZE, 1, 8, 8)
    assert digits.x_train.dtype == digits.x_test.dtype == torch.float32
    assert digits.y_train.dtype == digits.y_test.dtype == torch.int64
    assert set(digits.y_train.tolist()) == set(digits.y_test.tolist()) == set(range(10))
    # standardised with the training statistics
    assert abs(float(digits.x_train.mean())) < 1e-5
    assert float(digits.x_train.std()) == pytest.approx(1.0, abs=1e-5)
    # and it is an affine map of pixels in [0, 1] = raw/16: both splits share it, so the
    # smallest value (pixel 0) and largest (pixel 16) are the same in train and test
    assert float(digits.x_test.min()) == pytest.approx(float(digits.x_train.min()), abs=1e-6)
    assert float(digits.x_test.max()) == pytest.approx(float(digits.x_train.max()), abs=1e-6)
    levels = torch.unique(torch.cat([digits.x_train.flatten(), digits.x_test.flatten()]))
    assert levels.numel() == 17  # the 17 grey levels 0..16 of the 8x8 digits


def test_digits_split_is_fixed_stratified_and_seed_independent(digits):
    from sklearn.datasets import load_digits

    state = torch.get_rng_state()
    again = load_dataset("digits")
    assert torch.equal(state, torch.get_rng_state())  # no global RNG involved
    assert torch.equal(again.x_test, digits.x_test)
    assert torch.equal(again.y_train, digits.y_train)
    y_all = torch.as_tensor(load_digits().target)
    train_idx, test_idx = fixed_stratified_split(y_all, DIGITS_TEST_SIZE)
    # the golden split: it must never change between versions
    assert test_idx[:8].tolist() == [0, 2, 5, 10, 13, 15, 18, 23]
    assert int(test_idx.sum()) == 450834
    assert torch.equal(digits.y_test, y_all[test_idx])
    assert torch.equal(digits.y_train, y_all[train_idx])
    # stratified: every class within one image of its proportional share
    share = torch.bincount(y_all).double() * DIGITS_TEST_SIZE / y_all.numel()
    assert (torch.bincount(y_all[test_idx]).double() - share).abs().max() < 1.0


def test_fixed_stratified_split_partitions_and_rounds():
    labels = torch.tensor([0] * 7 + [1] * 2 + [2] * 1)
    train_idx, test_idx = fixed_stratified_split(labels, 5)
    both = torch.cat([train_idx, test_idx])
    assert torch.equal(torch.sort(both).values, torch.arange(10))
    assert test_idx.numel() == 5
    # quotas 3.5, 1.0, 0.5 -> 3 + 1 + 0, remainder 1 goes to class 0 (tie 0.5/0.5, lower class)
    assert torch.bincount(labels[test_idx], minlength=3).tolist() == [4, 1, 0]
    with pytest.raises(ValueError, match="test_size"):
        fixed_stratified_split(labels, 11)


# --------------------------------------------------------------------------- make_split


def test_make_split_disjoint_counts_and_union():
    y = torch.arange(503) % 7
    split = make_split(y, 7, initial_per_class=3, validation_size=100, seed=0)
    assert isinstance(split, Split)
    assert split.initial.numel() == 21 and split.validation.numel() == 100
    assert torch.bincount(y[split.initial], minlength=7).tolist() == [3] * 7
    together = torch.cat([split.initial, split.validation, split.pool])
    assert torch.equal(torch.sort(together).values, torch.arange(503))  # disjoint, covering
    for part in (split.initial, split.validation, split.pool):
        assert part.dtype == torch.int64
        assert torch.equal(part, torch.sort(part).values)


def test_make_split_is_deterministic_per_seed_and_ignores_global_rng():
    y = torch.arange(400) % 4
    torch.manual_seed(0)
    a = make_split(y, 4, 2, 50, seed=11)
    torch.manual_seed(999)
    state = torch.get_rng_state()
    b = make_split(y, 4, 2, 50, seed=11)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    c = make_split(y, 4, 2, 50, seed=12)
    for name in ("initial", "validation", "pool"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.initial, c.initial) or not torch.equal(a.validation, c.validation)


def test_make_split_draws_are_uniform():
    """Initial picks are uniform within a class; validation picks are uniform over the rest."""
    y = torch.tensor([0] * 6 + [1] * 4)
    initial_hits = torch.zeros(10)
    validation_hits = torch.zeros(10)
    trials = 3000
    gen = torch.Generator().manual_seed(5)
    for _ in range(trials):
        s = make_split(y, 2, 1, 4, seed=gen)
        initial_hits[s.initial] += 1
        validation_hits[s.validation] += 1
    # each class-0 image is the initial pick with prob 1/6, class 1 with prob 1/4
    p_init = torch.tensor([1 / 6] * 6 + [1 / 4] * 4)
    assert torch.allclose(initial_hits / trials, p_init, atol=0.03)
    # P(validation) = P(not initial) * 4/8
    assert torch.allclose(validation_hits / trials, (1 - p_init) * 0.5, atol=0.035)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"initial_per_class": 0}, ValueError, "initial_per_class"),
        ({"initial_per_class": 6}, ValueError, "class 1 has only 5"),
        ({"validation_size": -1}, ValueError, "validation_size"),
        ({"validation_size": 22}, ValueError, r"validation_size must lie in \[0, 21\]"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 3}, ValueError, "class 2 has only 0"),
        ({"y_train": torch.tensor([0, 1, 5])}, ValueError, r"y_train must lie in \[0, 1\]"),
        ({"y_train": torch.zeros(4, 2, dtype=torch.int64)}, ValueError, "y_train"),
        ({"y_train": torch.zeros(4)}, TypeError, "integer labels"),
        ({"y_train": [0, 1]}, TypeError, "torch.Tensor"),
        ({"initial_per_class": 1.5}, TypeError, "initial_per_class"),
    ],
)
def test_make_split_rejects_bad_input(kwargs, error, match):
    args = {
        "y_train": torch.tensor([0] * 20 + [1] * 5),
        "num_classes": 2,
        "initial_per_class": 2,
        "validation_size": 3,
        "seed": 0,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        make_split(**args)


def test_make_split_validation_can_take_everything_left():
    y = torch.arange(20) % 2
    s = make_split(y, 2, 3, 14, seed=1)
    assert s.pool.numel() == 0 and s.validation.numel() == 14


def test_split_rejects_overlap():
    with pytest.raises(ValueError, match="disjoint"):
        Split(torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([2]))


# --------------------------------------------------------------------------- names, roots


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="cifar100"):
        load_dataset("imagenet")
    assert len(DATASETS) == 7


def test_resolve_root(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.ROOT_ENV_VAR, str(tmp_path / "env"))
    assert resolve_root("mnist") == tmp_path / "env"
    assert resolve_root("cifar10", tmp_path) == tmp_path
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    assert resolve_root("fashion-mnist") == tmp_path / "env"  # Debian folder absent
    (tmp_path / "debian").mkdir()
    assert resolve_root("Fashion_MNIST") == tmp_path / "debian"
    assert resolve_root("fashion-mnist", tmp_path / "x") == tmp_path / "x"


# --------------------------------------------------------------------------- IDX datasets


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("layout", ["torchvision-raw", "torchvision-gz", "flat-gz", "flat-raw"])
def test_idx_datasets_load_from_real_format(tmp_path, name, layout):
    rng = np.random.default_rng(0)
    arrays = idx_arrays(rng, n_train=12, n_test=5, num_classes=10)
    folder_name = "MNIST" if name == "mnist" else "FashionMNIST"
    folder = tmp_path / folder_name / "raw" if layout.startswith("torchvision") else tmp_path
    write_idx_set(folder, name, arrays, gz=layout.endswith("gz"))
    ds = load_dataset(name, root=tmp_path)
    x_train, y_train, x_test, y_test = arrays
    assert ds.num_classes == 10 and ds.image_shape == (1, 28, 28)
    assert torch.allclose(ds.x_train, expected(x_train[:, None], name), atol=1e-6)
    assert torch.allclose(ds.x_test, expected(x_test[:, None], name), atol=1e-6)
    assert ds.y_train.tolist() == y_train.tolist()
    assert ds.y_test.tolist() == y_test.tolist()
    assert ds.x_train.is_contiguous()
    if layout != "torchvision-raw":  # staging left nothing behind in the user's folder
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f + (".gz" if layout.endswith("gz") else "") for f in datasets._idx_files(name)
        )


def test_emnist_balanced_is_transposed_upright(tmp_path):
    rng = np.random.default_rng(1)
    x_train, y_train, x_test, y_test = idx_arrays(rng, 47, 3, 47)
    upright = np.zeros((28, 28), dtype=np.uint8)
    upright[2, 5:20] = 255  # a horizontal bar near the top of the image
    x_train[0] = upright.T  # EMNIST stores every image transposed
    arrays = (x_train, y_train, x_test, y_test)
    write_idx_set(tmp_path / "EMNIST" / "raw", "emnist", arrays)
    ds = load_dataset("emnist", root=tmp_path)
    assert ds.num_classes == 47
    assert ds.y_train.tolist() == list(range(47))
    bar = ds.x_train[0, 0] > 0
    assert bar[2, 5:20].all() and bar.sum() == 15  # upright: the bar is a row, not a column
    swapped = np.ascontiguousarray(x_train.transpose(0, 2, 1))
    assert torch.allclose(ds.x_train, expected(swapped[:, None], "emnist"), atol=1e-6)
    assert torch.allclose(
        ds.x_test, expected(x_test.transpose(0, 2, 1)[:, None].copy(), "emnist"), atol=1e-6
    )


def test_emnist_flat_gz_folder(tmp_path):
    arrays = idx_arrays(np.random.default_rng(2), 5, 4, 47)
    write_idx_set(tmp_path, "emnist", arrays, gz=True)
    ds = load_dataset("emnist", root=tmp_path)
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.y_test.tolist() == arrays[3].tolist()


# --------------------------------------------------------------------------- CIFAR, SVHN


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loads_from_real_format(tmp_path, skip_md5, name):
    x_train, y_train, x_test, y_test = write_cifar(tmp_path, name, np.random.default_rng(3))
    ds = load_dataset(name, root=tmp_path)
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    assert ds.image_shape == (3, 32, 32)
    n_train = 6 * (5 if name == "cifar10" else 1)
    assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    # a row of the batch is R plane, G plane, B plane, each row-major 32x32
    assert torch.allclose(ds.x_train, expected(x_train, name), atol=1e-5)
    assert torch.allclose(ds.x_test, expected(x_test, name), atol=1e-5)
    assert ds.y_train.tolist() == y_train.tolist() and ds.y_test.tolist() == y_test.tolist()
    assert ds.x_train.is_contiguous()


def test_cifar_with_md5_check_reports_corruption(tmp_path):
    write_cifar(tmp_path, "cifar10", np.random.default_rng(4))
    with pytest.raises(RuntimeError, match="md5") as info:
        load_dataset("cifar10", root=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)


def test_svhn_loads_from_real_format(tmp_path, skip_md5):
    x_train, y_train, x_test, y_test = write_svhn(tmp_path, np.random.default_rng(5))
    ds = load_dataset("svhn", root=tmp_path)
    assert ds.num_classes == 10 and ds.image_shape == (3, 32, 32)
    assert torch.allclose(ds.x_train, expected(x_train, "svhn"), atol=1e-5)
    assert torch.allclose(ds.x_test, expected(x_test, "svhn"), atol=1e-5)
    assert ds.y_train.tolist() == y_train.tolist()  # label 10 became digit 0
    assert ds.y_test.tolist() == y_test.tolist()
    assert 0 in ds.y_train.tolist() and ds.y_train.max() <= 9


# --------------------------------------------------------------------------- missing files


@pytest.mark.parametrize("name", [n for n in DATASETS if n != "digits"])
def test_missing_files_raise_file_not_found_naming_folder(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        load_dataset(name, root=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_idx_file_is_reported_not_half_loaded(tmp_path):
    arrays = idx_arrays(np.random.default_rng(6), 4, 2, 10)
    write_idx_set(tmp_path / "MNIST" / "raw", "mnist", arrays)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", root=tmp_path)


# --------------------------------------------------------------------------- Debian Fashion-MNIST


def test_debian_fashion_mnist_real_files():
    files = [DEBIAN_FASHION_MNIST / f"{f}.gz" for f in datasets._idx_files("fashion-mnist")]
    if not all(f.is_file() for f in files):
        pytest.skip(
            f"Debian package dataset-fashion-mnist is not installed (no IDX files in "
            f"{DEBIAN_FASHION_MNIST}); `apt-get install -y dataset-fashion-mnist` enables this test"
        )
    ds = load_dataset("fashion-mnist")  # root=None defaults to the Debian folder
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.num_classes == 10
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    (mean,), (std,) = NORMALISATION["fashion-mnist"]
    pixels = ds.x_train * std + mean
    assert float(pixels.min()) == pytest.approx(0.0, abs=1e-5)
    assert float(pixels.max()) == pytest.approx(1.0, abs=1e-5)
    # the documented constants are the training set's statistics
    assert float(ds.x_train.mean()) == pytest.approx(0.0, abs=2e-3)
    assert float(ds.x_train.std()) == pytest.approx(1.0, abs=2e-3)
