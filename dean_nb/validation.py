"""Input checks shared by every module: each error names the parameter and the allowed range.

Each rule has one definition here (integer and float ranges, probability rows, tensor ranks,
batch budgets, class-label ranges, the columns a results frame must have), applied once at a
module's public boundary; internal helpers trust what their public caller checked.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "check_budget",
    "check_columns",
    "check_float_range",
    "check_floating",
    "check_inputs",
    "check_int_range",
    "check_label_range",
    "check_ndim",
    "check_probabilities",
    "import_callable",
    "is_import_path",
    "writable_folder_problem",
]


#: ``package.module:function`` (dotted names on both sides of one colon).
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _is_bool(value: object) -> bool:
    """``True`` for Python and NumPy booleans (which ``int()`` and ``float()`` would accept)."""
    return isinstance(value, (bool, np.bool_))


def check_int_range(name: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` must be an integer in ``[low, high]`` (``high=None``: no upper bound).

    Integral values of other types (``3.0``, ``numpy.int64(3)``) are accepted and returned as
    an ``int``; booleans are refused (``True`` is not a count).
    """
    if _is_bool(value):
        raise TypeError(f"{name} must be an integer, got the boolean {value!r}")
    if not isinstance(value, int):
        try:
            as_int = int(value)
        except (TypeError, ValueError):
            as_int = None
        if as_int is None or as_int != value:
            raise TypeError(f"{name} must be an integer, got {value!r}")
        value = as_int
    if value < low or (high is not None and value > high):
        upper = "inf" if high is None else str(high)
        raise ValueError(f"{name} must lie in [{low}, {upper}], got {value}")
    return value


def check_float_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """``value`` must be a real number in the given interval (NaN is always rejected).

    Pass ``math.inf`` as ``high`` with ``high_inclusive=False`` for "finite". Booleans and
    values ``float()`` cannot convert are refused with a ``TypeError`` naming ``name``.
    """
    if _is_bool(value):
        raise TypeError(f"{name} must be a real number, got the boolean {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    ok_low = value >= low if low_inclusive else value > low
    ok_high = value <= high if high_inclusive else value < high
    if math.isnan(value) or not (ok_low and ok_high):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must lie in {left}{low}, {high}{right}, got {value}")
    return value


def check_probabilities(name: str, probs: torch.Tensor, *, atol: float = 1e-4) -> torch.Tensor:
    """The last axis of ``probs`` must be a distribution: finite, non-negative, summing to 1."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if probs.ndim < 1 or probs.shape[-1] == 0:
        raise ValueError(
            f"{name} must have a non-empty last (class) axis, got shape {tuple(probs.shape)}"
        )
    if not torch.isfinite(probs).all():
        raise ValueError(f"{name} contains NaN or inf; probabilities must be finite")
    if (probs < 0).any():
        raise ValueError(f"{name} contains negative entries; probabilities must lie in [0, 1]")
    sums = probs.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        worst = (sums - 1).abs().max().item()
        raise ValueError(
            f"{name} rows must sum to 1 over the last axis (worst deviation {worst:.3g})"
        )
    return probs


def check_ndim(name: str, tensor: torch.Tensor, ndim: int, axes: str) -> torch.Tensor:
    """``tensor`` must have ``ndim`` axes, described by ``axes`` (e.g. ``"(T, N, K)"``)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have shape {axes}, got shape {tuple(tensor.shape)}")
    return tensor


def check_floating(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` must be a floating-point ``torch.Tensor`` (probabilities, scores, inputs)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def check_budget(budget: int, pool_size: int) -> int:
    """``budget`` must be an integer in ``[1, pool_size]``; the error names both."""
    if _is_bool(budget) or not isinstance(budget, int):
        budget = check_int_range("budget", budget, 1)  # type errors, then a value below 1
    if budget < 1 or budget > pool_size:
        raise ValueError(
            f"budget must lie in [1, {pool_size}] (the pool holds {pool_size} points), got {budget}"
        )
    return budget


def check_label_range(name: str, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer class labels ``labels`` must lie in ``[0, num_classes - 1]`` (empty is fine)."""
    if labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name} must lie in [0, {num_classes - 1}] (class labels, "
                f"num_classes={num_classes}), got [{low}, {high}]"
            )
    return labels


def check_columns(df: object, columns: Iterable[str], source: str = "load_results") -> None:
    """The data frame ``df`` must have every one of ``columns``; the error lists the missing
    ones and names the function whose frame is expected (``source``)."""
    present = getattr(df, "columns", ())
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; pass the frame of {source}")


def check_inputs(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when it is a floating-point tensor ``(N, ...)`` with a batch axis; else a
    ``TypeError``/``ValueError`` naming ``name``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with a batch axis, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def is_import_path(value: object) -> bool:
    """``True`` for a string written ``package.module:function`` (checked by syntax only:
    nothing is imported)."""
    return isinstance(value, str) and _IMPORT_PATH.fullmatch(value) is not None


def import_callable(name: str, path: str) -> Callable:
    """The callable that the import path ``package.module:function`` names.

    The module is imported as ``importlib.import_module`` does (from ``sys.path``, i.e. the
    current folder and ``PYTHONPATH``). Every failure is a ``ValueError`` that names the
    parameter ``name``, the path and the cause: a path not written ``package.module:function``,
    a module that does not import (with its error), a missing attribute, or one that is not
    callable.
    """
    if not is_import_path(path):
        raise ValueError(f"{name} must be an import path 'package.module:function', got {path!r}")
    module_name, _, attribute = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or whatever the module raises as it loads
        raise ValueError(
            f"{name} {path!r}: module {module_name!r} does not import "
            f"({type(err).__name__}: {err}); put its folder on PYTHONPATH"
        ) from err
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{name} {path!r}: module {module_name!r} has no {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(
            f"{name} {path!r}: {attribute!r} is a {type(obj).__name__}, not a function"
        )
    return obj


def writable_folder_problem(path: Path, flag: str) -> str | None:
    """``None`` when ``path`` is, or can be made, a folder this process can write files in;
    otherwise a message naming ``flag`` and the problem. Creates the folder when missing.

    The command line checks its output folders with it before any run."""
    if path.exists() and not path.is_dir():
        return f"{flag} {path} is a file, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
        # the only sure test (os.access is wrong for root, ACLs, read-only mounts): write.
        # A dot-file: load_results ignores it should it ever be left behind.
        fd, probe = tempfile.mkstemp(prefix=".dean_nb_write_test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return f"{flag} {path} is not a writable folder ({err.strerror or err})"
    return None
