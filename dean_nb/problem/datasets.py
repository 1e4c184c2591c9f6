"""Datasets as normalised tensors: the built-in loaders.

Chapter "Data and protocol". The paper (section 4 and appendix B) runs on MNIST, EMNIST
(balanced, 47 classes), SVHN, CIFAR10 and CIFAR100; this module loads each of them, plus
Fashion-MNIST and scikit-learn's embedded 8x8 ``digits`` (the CPU-sized stand-in the book's
``quick`` preset uses), into one shape: a :class:`Dataset` of float32 images ``(N, C, H, W)``
and int64 labels ``(N,)``.

Normalisation. Pixels are first scaled to ``[0, 1]`` (``/ 255``; ``/ 16`` for ``digits``) and
then standardised per channel, ``x = (pixel - mean_c) / std_c``:

- ``digits``: mean and std of all pixels of the fixed *training* split (computed at load time;
  the test images use the training statistics).
- the torchvision datasets: the standard per-channel constants of :data:`NORMALISATION`, which
  are the mean/std over every pixel of the official training set (the values the literature
  and torchvision examples use; EMNIST-balanced's are the commonly used approximate ones).

Your own data. ``load_dataset("package.module:function")`` imports the module and calls the
function (no arguments): it returns a :class:`Dataset`, or a tuple ``(x_train, y_train, x_test,
y_test)`` of torch tensors or NumPy arrays with any per-item shape (feature vectors ``(N, D)``,
images ``(N, C, H, W)``), taken as they are (no normalisation), as float32 inputs and int64
labels with ``K = max label + 1`` classes (:func:`dataset_from_path`, cached per process).

Files. The torchvision datasets are read by torchvision's own dataset classes from a ``root``
folder in torchvision's layout (``root/MNIST/raw/...``, ``root/FashionMNIST/raw/...``,
``root/EMNIST/raw/...``, ``root/cifar-10-batches-py/``, ``root/cifar-100-python/``,
``root/train_32x32.mat`` and ``root/test_32x32.mat`` for SVHN). ``download=False`` is the
default: missing files raise :class:`FileNotFoundError` naming the folder. The IDX datasets
(MNIST, Fashion-MNIST, EMNIST) are also found as a *flat* folder holding the four IDX files,
raw or gzipped (the Debian package ``dataset-fashion-mnist`` installs such a folder, see
:data:`DEBIAN_FASHION_MNIST`); those files are staged (decompressed) into a temporary
torchvision layout and still read by torchvision's IDX reader.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dean_nb.validation import (
    check_int_range,
    check_label_range,
    check_ndim,
    import_callable,
    is_import_path,
)

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "DIGITS_TEST_SIZE",
    "NORMALISATION",
    "NUM_CLASSES",
    "ROOT_ENV_VAR",
    "Dataset",
    "as_dataset",
    "dataset_from_path",
    "default_root",
    "fixed_stratified_split",
    "load_dataset",
    "resolve_root",
]


DATASETS: tuple[str, ...] = (
    "digits",
    "mnist",
    "fashion-mnist",
    "emnist",
    "svhn",
    "cifar10",
    "cifar100",
)


#: Where the Debian package ``dataset-fashion-mnist`` puts the four gzipped IDX files
#: (``apt-get install dataset-fashion-mnist``). ``load_dataset("fashion-mnist")`` with
#: ``root=None`` reads from here when the folder exists.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


#: Number of test images of the fixed ``digits`` split (the rest, 1297, is the training set).
DIGITS_TEST_SIZE = 500


#: Environment variable that overrides :func:`default_root`.
ROOT_ENV_VAR = "DEAN_NB_DATA"


NUM_CLASSES: dict[str, int] = {
    "digits": 10,
    "mnist": 10,
    "fashion-mnist": 10,
    "emnist": 47,
    "svhn": 10,
    "cifar10": 10,
    "cifar100": 100,
}


#: Per-channel ``(mean, std)`` of pixels scaled to [0, 1], over each official training set.
#: ``digits`` is absent: its statistics are computed from its fixed training split.
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "emnist": ((0.1751,), (0.3332,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


# Fibonacci-hashing multiplier (odd, so i -> i * M mod 2^32 is a bijection): orders the
# members of each class for the fixed digits split without any random generator.
_HASH_MULTIPLIER = 2654435761


_HASH_MODULUS = 2**32


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset as tensors on the CPU.

    Attributes:
        name: one of :data:`DATASETS`, or the import path it was loaded from.
        x_train: ``(N, C, H, W)`` float32, normalised (see the module docstring); a data set of
            one's own may have any per-item shape, ``(N, ...)``.
        y_train: ``(N,)`` int64 labels in ``[0, num_classes)``.
        x_test: ``(M, C, H, W)`` float32, normalised with the training statistics.
        y_test: ``(M,)`` int64.
        num_classes: ``K``, the number of classes of the task (not inferred from the labels).
    """

    name: str
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    num_classes: int

    def __post_init__(self) -> None:
        check_int_range("num_classes", self.num_classes, 1)
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            if not isinstance(x, torch.Tensor) or x.ndim < 2:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else None
                raise ValueError(
                    f"x_{split} must be a tensor (N, ...) of one item per row, such as images "
                    f"(N, C, H, W) or features (N, D); got shape {shape}"
                )
            y = check_ndim(f"y_{split}", getattr(self, f"y_{split}"), 1, "(N,)")
            if x.dtype != torch.float32:
                raise TypeError(f"x_{split} must be float32, got {x.dtype}")
            if y.dtype != torch.int64:
                raise TypeError(f"y_{split} must be int64, got {y.dtype}")
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"x_{split} has {x.shape[0]} images but y_{split} has {y.shape[0]} labels"
                )
            check_label_range(f"y_{split}", y, self.num_classes)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"x_train images {tuple(self.x_train.shape[1:])} and x_test images "
                f"{tuple(self.x_test.shape[1:])} differ in shape"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image (a ``ValueError`` for items of another rank)."""
        if self.x_train.ndim != 4:
            raise ValueError(f"{self.name} holds items of shape {self.input_shape}, not images")
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one item: ``(C, H, W)`` for images, ``(D,)`` for feature vectors."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    def __repr__(self) -> str:
        shape = "image_shape" if self.x_train.ndim == 4 else "input_shape"
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape[0]}, "
            f"test={self.x_test.shape[0]}, {shape}={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )


def default_root() -> Path:
    """The data folder used when ``root=None``: ``$DEAN_NB_DATA``, else ``~/.cache/dean_nb/data``."""
    env = os.environ.get(ROOT_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "dean_nb" / "data"


def resolve_root(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder :func:`load_dataset` reads ``name`` from.

    An explicit ``root`` wins. With ``root=None``, Fashion-MNIST uses
    :data:`DEBIAN_FASHION_MNIST` when that folder exists; everything else uses
    :func:`default_root`.
    """
    name = _canonical_name(name)
    if root is not None:
        return Path(root).expanduser()
    if name == "fashion-mnist" and DEBIAN_FASHION_MNIST.is_dir():
        return DEBIAN_FASHION_MNIST
    return default_root()


def _canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {DATASETS}, got {name!r}")
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(
        key, key
    )
    if key not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    return key


def _normalise(x_uint8_n_c_h_w: torch.Tensor, scale: float, mean, std) -> torch.Tensor:
    """uint8/float ``(N, C, H, W)`` -> float32 ``((x / scale) - mean_c) / std_c``."""
    x = x_uint8_n_c_h_w.to(torch.float32, memory_format=torch.contiguous_format)
    channels = x.shape[1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    if mean_t.shape[1] != channels or std_t.shape[1] != channels:
        raise ValueError(f"normalisation has {mean_t.shape[1]} channels, images have {channels}")
    return x.div_(scale).sub_(mean_t).div_(std_t)


def _as_labels(targets) -> torch.Tensor:
    return torch.as_tensor(np.asarray(targets), dtype=torch.int64).reshape(-1)


def fixed_stratified_split(
    labels: torch.Tensor, test_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A stratified train/test split that uses no random generator (always the same).

    Each class ``c`` with ``n_c`` members gets ``test_size * n_c / N`` test slots, rounded by
    largest remainder (ties to the lower class) so the slots add up to ``test_size``. Within a
    class the members are ordered by the Fibonacci hash ``(i * 2654435761) mod 2^32`` of their
    index ``i`` (a fixed, well-spread permutation) and the first slots go to the test set.
    Depends only on ``labels``, so it is the same for every seed and library version.

    Args:
        labels: ``(N,)`` integer labels.
        test_size: number of test indices, in ``[0, N]``.

    Returns:
        ``(train_idx, test_idx)``: sorted int64 index tensors that partition ``range(N)``.
    """
    labels = check_ndim("labels", torch.as_tensor(labels), 1, "(N,)").to(torch.int64)
    n = labels.numel()
    test_size = check_int_range("test_size", test_size, 0, n)
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.to(torch.float64) * test_size / n
    slots = torch.floor(quota).to(torch.int64)
    remainder = test_size - int(slots.sum())
    if remainder > 0:
        # largest fractional part first; stable sort keeps the lower class first on ties
        order = torch.sort(quota - slots, descending=True, stable=True).indices
        slots[order[:remainder]] += 1
    index = torch.arange(n, dtype=torch.int64)
    key = (index * _HASH_MULTIPLIER) % _HASH_MODULUS
    test_parts = []
    for cls, n_test in zip(classes.tolist(), slots.tolist(), strict=True):
        members = index[labels == cls]
        ordered = members[torch.argsort(key[members])]
        test_parts.append(ordered[:n_test])
    is_test = torch.zeros(n, dtype=torch.bool)
    is_test[torch.cat(test_parts)] = True
    return index[~is_test], index[is_test]


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = fixed_stratified_split(labels, DIGITS_TEST_SIZE)
    x_train, x_test = images[train_idx], images[test_idx]
    mean, std = float(x_train.mean()), float(x_train.std())
    return Dataset(
        name="digits",
        x_train=(x_train - mean) / std,
        y_train=labels[train_idx],
        x_test=(x_test - mean) / std,
        y_test=labels[test_idx],
        num_classes=NUM_CLASSES["digits"],
    )


def _idx_files(name: str) -> tuple[str, str, str, str]:
    """Uncompressed IDX file names: train images, train labels, test images, test labels."""
    prefix = {"emnist": "emnist-balanced-"}.get(name, "")
    train, test = ("train", "test") if name == "emnist" else ("train", "t10k")
    return (
        f"{prefix}{train}-images-idx3-ubyte",
        f"{prefix}{train}-labels-idx1-ubyte",
        f"{prefix}{test}-images-idx3-ubyte",
        f"{prefix}{test}-labels-idx1-ubyte",
    )


def _idx_class(name: str) -> tuple[Callable[..., object], dict[str, str], str]:
    from torchvision import datasets

    cls, kwargs = {
        "mnist": (datasets.MNIST, {}),
        "fashion-mnist": (datasets.FashionMNIST, {}),
        "emnist": (datasets.EMNIST, {"split": "balanced"}),
    }[name]
    return cls, kwargs, cls.__name__


def _find_idx(folder: Path, files: tuple[str, ...]) -> dict[str, Path] | None:
    """Each file in ``folder``, raw preferred over ``.gz``; ``None`` if any is missing."""
    found: dict[str, Path] = {}
    for filename in files:
        raw, packed = folder / filename, folder / f"{filename}.gz"
        if raw.is_file():
            found[filename] = raw
        elif packed.is_file():
            found[filename] = packed
        else:
            return None
    return found


def _stage(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` uncompressed: gunzip a ``.gz``, link (or copy) a raw file."""
    if src.suffix == ".gz":
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
        return
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def _read_idx(name: str, root: Path, download: bool):
    """``(train_images (N,H,W) uint8, train_labels, test_images, test_labels)`` via torchvision."""
    cls, kwargs, folder_name = _idx_class(name)
    files = _idx_files(name)
    raw_folder = root / folder_name / "raw"

    def read(tv_root: Path, download_now: bool = False):
        train = cls(str(tv_root), train=True, download=download_now, **kwargs)
        test = cls(str(tv_root), train=False, download=False, **kwargs)
        return train.data, train.targets, test.data, test.targets

    for folder in (raw_folder, root):
        found = _find_idx(folder, files)
        if found is None:
            continue
        if folder == raw_folder and all(p.suffix != ".gz" for p in found.values()):
            return read(root)  # already torchvision's layout: read in place
        # flat folder and/or gzipped files: stage into a throwaway torchvision layout
        with tempfile.TemporaryDirectory(prefix="dean_nb_idx_") as tmp:
            staged = Path(tmp) / folder_name / "raw"
            staged.mkdir(parents=True)
            for filename, src in found.items():
                _stage(src, staged / filename)
            return read(Path(tmp))
    if download:
        return read(root, download_now=True)
    listed = ", ".join(f"{f}[.gz]" for f in files)
    raise FileNotFoundError(
        f"{name}: dataset files not found. Looked for {listed} in {raw_folder} "
        f"(torchvision layout) and in {root} (a flat folder). Pass download=True to fetch "
        f"them into {raw_folder}, or place the files there."
    )


def _load_idx(name: str, root: Path, download: bool) -> Dataset:
    x_train, y_train, x_test, y_test = _read_idx(name, root, download)
    if name == "emnist":
        # EMNIST's raw files store every image transposed (column-major); torchvision keeps
        # that orientation, so swap H and W to make the characters upright.
        x_train, x_test = x_train.transpose(1, 2), x_test.transpose(1, 2)
    mean, std = NORMALISATION[name]
    return Dataset(
        name=name,
        x_train=_normalise(x_train.unsqueeze(1), 255.0, mean, std),
        y_train=_as_labels(y_train),
        x_test=_normalise(x_test.unsqueeze(1), 255.0, mean, std),
        y_test=_as_labels(y_test),
        num_classes=NUM_CLASSES[name],
    )


def _require(folder: Path, files: list[str], name: str, download: bool) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"{name}: dataset files not found in {folder} (missing: {', '.join(missing)}). "
            "Pass download=True to fetch them, or place the files there."
        )


def _integrity_error(name: str, folder: Path, err: RuntimeError) -> RuntimeError:
    return RuntimeError(
        f"{name}: the files in {folder} are present but torchvision rejected them ({err}). "
        "torchvision checks each file's md5 against the official release: delete the "
        "corrupted files and pass download=True, or replace them with the official ones."
    )


def _load_cifar(name: str, root: Path, download: bool) -> Dataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = root / cls.base_folder
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    _require(folder, files, name, download)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=False)
    except RuntimeError as err:
        raise _integrity_error(name, folder, err) from err
    mean, std = NORMALISATION[name]

    def images(data: np.ndarray) -> torch.Tensor:  # (N, H, W, C) uint8 -> (N, C, H, W)
        return torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))

    return Dataset(
        name=name,
        x_train=_normalise(images(train.data), 255.0, mean, std),
        y_train=_as_labels(train.targets),
        x_test=_normalise(images(test.data), 255.0, mean, std),
        y_test=_as_labels(test.targets),
        num_classes=NUM_CLASSES[name],
    )


def _load_svhn(root: Path, download: bool) -> Dataset:
    from torchvision import datasets

    files = [datasets.SVHN.split_list[s][1] for s in ("train", "test")]
    _require(root, files, "svhn", download)
    try:
        train = datasets.SVHN(str(root), split="train", download=download)
        test = datasets.SVHN(str(root), split="test", download=download)
    except RuntimeError as err:
        raise _integrity_error("svhn", root, err) from err
    mean, std = NORMALISATION["svhn"]
    # torchvision already maps label 10 to digit 0 and transposes .data to (N, C, H, W)
    return Dataset(
        name="svhn",
        x_train=_normalise(torch.from_numpy(np.ascontiguousarray(train.data)), 255.0, mean, std),
        y_train=_as_labels(train.labels),
        x_test=_normalise(torch.from_numpy(np.ascontiguousarray(test.data)), 255.0, mean, std),
        y_test=_as_labels(test.labels),
        num_classes=NUM_CLASSES["svhn"],
    )


def load_dataset(
    name: str, root: str | os.PathLike[str] | None = None, download: bool = False
) -> Dataset:
    """Load one of :data:`DATASETS` as normalised ``(N, C, H, W)`` float32 tensors.

    Args:
        name: ``digits``, ``mnist``, ``fashion-mnist``, ``emnist`` (balanced split, 47
            classes), ``svhn`` (train and test; the ``extra`` set is not used), ``cifar10`` or
            ``cifar100`` (fine labels).
            Or an import path ``package.module:function`` of one's own data
            (:func:`dataset_from_path`).
        root: data folder in torchvision's layout (see the module docstring); IDX datasets may
            also sit flat in it, raw or gzipped. ``None``: :func:`resolve_root`. Ignored for
            ``digits``, which ships with scikit-learn, and for an import path.
        download: let torchvision fetch missing files into ``root``.

    Returns:
        A :class:`Dataset`. ``digits``: 1297 train / 500 test images ``(1, 8, 8)``, a fixed
        stratified split (:func:`fixed_stratified_split`), the same for every seed.

    Raises:
        ValueError: unknown ``name``, or an import path that does not import or whose function
            returns something else (the message names the path and the cause).
        FileNotFoundError: the files are missing and ``download`` is false; the message names
            the folder(s) searched.
        RuntimeError: the files exist but fail torchvision's md5 integrity check.
    """
    if is_import_path(name):
        return dataset_from_path(name)
    key = _canonical_name(name)
    if key == "digits":
        return _load_digits()
    folder = resolve_root(key, root)
    if key in ("mnist", "fashion-mnist", "emnist"):
        return _load_idx(key, folder, download)
    if key in ("cifar10", "cifar100"):
        return _load_cifar(key, folder, download)
    return _load_svhn(folder, download)


@functools.lru_cache(maxsize=8)
def dataset_from_path(path: str, parameter: str = "dataset") -> Dataset:
    """The data set that the function at the import path ``package.module:function`` returns.

    The function takes no arguments and returns a :class:`Dataset` or a tuple ``(x_train,
    y_train, x_test, y_test)`` (:func:`as_dataset`). Cached per process and path: a run, its
    steps and its oracle read one copy.

    Raises:
        ValueError: naming ``parameter``, the path and the cause: not an import path, a module
            that does not import, a missing function, one that raises, or one that returns
            something else.
    """
    function = import_callable(parameter, path)
    try:
        value = function()
    except Exception as err:
        raise ValueError(
            f"{parameter} {path!r}: calling it raised {type(err).__name__}: {err}"
        ) from err
    return as_dataset(value, path, parameter)


def as_dataset(value: object, name: str, parameter: str = "dataset") -> Dataset:
    """``value`` as a :class:`Dataset` named ``name``: a :class:`Dataset` as it is, or a tuple
    ``(x_train, y_train, x_test, y_test)`` of tensors or arrays, converted to float32 inputs
    ``(N, ...)`` and int64 labels ``(N,)`` with ``K = max label + 1`` (labels must be whole
    numbers >= 0, and ``K >= 2``). Errors are ``ValueError`` naming ``parameter`` and ``name``."""
    if isinstance(value, Dataset):
        return value
    where = f"{parameter} {name!r}"
    if not isinstance(value, tuple | list) or len(value) != 4:
        raise ValueError(
            f"{where} must return a Dataset or a tuple (x_train, y_train, x_test, y_test); "
            f"it returned {_describe(value)}"
        )
    names = ("x_train", "y_train", "x_test", "y_test")
    x_train, y_train, x_test, y_test = (
        _as_tensor(f"{where}: {n}", v) for n, v in zip(names, value, strict=True)
    )
    ys = [_whole_labels(f"{where}: {n}", y) for n, y in (("y_train", y_train), ("y_test", y_test))]
    both = torch.cat(ys)
    if both.numel() == 0 or int(both.min()) < 0 or int(both.max()) < 1:
        raise ValueError(f"{where}: labels must be class numbers 0, 1, ..., K - 1 with K >= 2")
    try:
        return Dataset(
            name=name,
            x_train=x_train.to(torch.float32).contiguous(),
            y_train=ys[0],
            x_test=x_test.to(torch.float32).contiguous(),
            y_test=ys[1],
            num_classes=int(both.max()) + 1,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def _describe(value: object) -> str:
    size = f" of {len(value)} items" if isinstance(value, tuple | list) else ""
    return f"a {type(value).__name__}{size}"


def _as_tensor(where: str, value: object) -> torch.Tensor:
    """A CPU tensor of a tensor or a numeric array (a ``ValueError`` naming ``where`` otherwise)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    array = np.asarray(value) if isinstance(value, np.ndarray | list | tuple) else None
    if array is None or array.dtype.kind not in "biuf":
        raise ValueError(
            f"{where} must be a tensor or a numeric NumPy array, got {_describe(value)}"
        )
    return torch.as_tensor(array)


def _whole_labels(where: str, y: torch.Tensor) -> torch.Tensor:
    """``y`` as int64 ``(N,)``; float labels must be whole numbers."""
    if y.ndim != 1:
        raise ValueError(f"{where} must hold one label per item, shape (N,); got {tuple(y.shape)}")
    if y.dtype == torch.bool or (y.is_floating_point() and not bool(torch.all(y == y.round()))):
        raise ValueError(f"{where} must hold whole class numbers, got {y.dtype} labels")
    return y.to(torch.int64)
