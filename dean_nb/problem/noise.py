"""The oracle's channel of a run: a name or a matrix, read, checked, turned into ``T``, named.

Chapter "Experiments". The ``noise`` field of
:class:`~dean_nb.experiment.config.ExperimentConfig` says which channel the oracle answers
through (``T[i, j] = p(y' = i | y = j)``, each column on the simplex;
:mod:`dean_nb.problem.oracle`):

* ``"symmetric"`` (the default): the K-ary symmetric channel of eq. 1, flip probability
  ``epsilon``, a wrong answer uniform over the other ``K - 1`` classes;
* ``"pairflip"``: class ``j`` is answered ``j + 1 mod K`` with probability ``epsilon``, a
  labeller who confuses each class with one neighbour
  (:func:`dean_nb.problem.oracle.pairflip_channel`);
* any K x K column-stochastic matrix, as a list of lists or as the path of a JSON file holding
  one (``*.json``), read and checked when the configuration is built (:func:`read_channel_file`).

A matrix is kept by value, never by path: a record re-makes its run without the file, and the
run key hashes the entries, so two files holding the same matrix name the same run and an
edited file names a new one. The flip probability of a matrix for a uniformly drawn true class,
``1 - trace(T) / K`` (:func:`flip_rate`), is its run's ``epsilon``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dean_nb.problem.oracle import (
    COLUMN_SUM_ATOL,
    columns_off_one,
    pairflip_channel,
    symmetric_channel,
)

__all__ = [
    "CHANNEL_NAMES",
    "DEFAULT_NOISE",
    "check_channel_matrix",
    "flip_rate",
    "matrix_digest",
    "noise_channel",
    "noise_label",
    "read_channel_file",
    "resolve_noise",
]

#: The channels named by a word; any other channel is given as a matrix.
CHANNEL_NAMES: tuple[str, ...] = ("symmetric", "pairflip")

#: The channel of every run made before ``noise`` existed (eq. 1).
DEFAULT_NOISE = "symmetric"

Noise = str | list[list[float]]


def resolve_noise(noise: Any, num_classes: int) -> Noise:
    """The canonical form of a ``noise`` value for a task of ``num_classes`` classes.

    Args:
        noise: ``"symmetric"``, ``"pairflip"``, the path of a JSON file (``*.json``, a str or
            a path object) holding a ``num_classes x num_classes`` list of lists, or such a
            matrix itself (a list of lists, a NumPy array or a tensor).
        num_classes: K, the task's number of classes.

    Returns:
        The name, or the checked matrix as a list of lists of floats.

    Raises:
        ValueError: an unknown name, or a file or matrix that is not a K x K column-stochastic
            matrix (the message names the file and what is wrong).
        TypeError: a value of another type.
    """
    if isinstance(noise, os.PathLike):
        noise = os.fspath(noise)
    if isinstance(noise, str):
        if noise in CHANNEL_NAMES:
            return noise
        if noise.lower().endswith(".json"):
            return read_channel_file(noise, num_classes)
        raise ValueError(
            f"noise must be one of {', '.join(CHANNEL_NAMES)}, or the path of a JSON file "
            f"(*.json) holding a K x K column-stochastic matrix; got {noise!r}"
        )
    if isinstance(noise, (list, tuple, np.ndarray, torch.Tensor)):
        return check_channel_matrix(noise, num_classes)
    raise TypeError(
        f"noise must be a channel name, a *.json path or a K x K matrix, got {type(noise).__name__}"
    )


def read_channel_file(path: str | os.PathLike[str], num_classes: int) -> list[list[float]]:
    """The channel matrix held by a JSON file, checked by :func:`check_channel_matrix`.

    The file holds a list of K lists of K numbers, ``T[i][j] = p(y' = i | y = j)``. Every
    error is a ``ValueError`` naming the file and what is wrong with it.
    """
    where = f"noise file {os.fspath(path)}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise ValueError(f"{where} cannot be read ({reason})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{where} is not valid JSON ({err})") from None
    return check_channel_matrix(data, num_classes, where=where)


def check_channel_matrix(
    data: Any, num_classes: int, *, where: str = "noise matrix"
) -> list[list[float]]:
    """``data`` as a checked K x K column-stochastic list of lists of floats.

    Checks, in order: a list of ``num_classes`` lists of ``num_classes`` entries; every entry
    a real number (not a boolean), finite and non-negative; every column summing to 1 within
    :data:`~dean_nb.problem.oracle.COLUMN_SUM_ATOL`, by the rule
    :func:`~dean_nb.problem.oracle.check_channel` applies
    (:func:`~dean_nb.problem.oracle.columns_off_one`). Each ``ValueError`` starts with
    ``where`` and says what is wrong (the entry or column, and the value found).
    """
    k = int(num_classes)
    if isinstance(data, (np.ndarray, torch.Tensor)):
        data = data.tolist()
    expect = f"a {k} x {k} list of lists (T[i][j] = p(answer i | true class j), K = {k})"
    if not isinstance(data, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in data):
        raise ValueError(f"{where} must hold {expect}; got {_describe(data)}")
    if len(data) != k or any(len(row) != k for row in data):
        lengths = sorted({len(row) for row in data})
        raise ValueError(
            f"{where} holds {len(data)} rows of length {', '.join(map(str, lengths)) or '0'}; "
            f"it must hold {expect}"
        )
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ValueError(f"{where}: entry [{i}][{j}] is {value!r}, not a number")
            if not math.isfinite(value):
                raise ValueError(f"{where}: entry [{i}][{j}] is {value}; entries must be finite")
            if value < 0:
                raise ValueError(
                    f"{where}: entry [{i}][{j}] is {value}; probabilities must be >= 0"
                )
    matrix = [[float(v) + 0.0 for v in row] for row in data]
    tensor = torch.tensor(matrix, dtype=torch.float64)
    bad = columns_off_one(tensor)
    if bad:
        j, total = bad[0]
        rows_ok = not columns_off_one(tensor.T)
        hint = " (its rows do: write the transpose, columns are true classes)" if rows_ok else ""
        raise ValueError(
            f"{where}: column {j} sums to {total:.6g}, not 1 ({len(bad)} of {k} columns "
            f"off by more than {COLUMN_SUM_ATOL:g}); column j is the answer's distribution "
            f"p(y' | y = j) and must sum to 1{hint}"
        )
    return matrix


def flip_rate(matrix: list[list[float]]) -> float:
    """The probability of a wrong answer for a uniformly drawn true class, ``1 - trace(T)/K``.

    The ``epsilon`` of a run whose channel is ``matrix``; for the symmetric and pair-flip
    channels it is their ``epsilon``.
    """
    k = len(matrix)
    rate = 1.0 - math.fsum(matrix[j][j] for j in range(k)) / k
    return min(max(rate, 0.0), 1.0) + 0.0  # a diagonal within COLUMN_SUM_ATOL above 1


def matrix_digest(matrix: list[list[float]]) -> str:
    """8 hex digits of a hash of a matrix's entries (not of any file that held them)."""
    return hashlib.sha256(json.dumps(matrix).encode()).hexdigest()[:8]


def noise_label(noise: Noise) -> str:
    """How labels and run keys name a channel: ``symmetric``, ``pairflip``, ``matrix-1a2b3c4d``."""
    return noise if isinstance(noise, str) else f"matrix-{matrix_digest(noise)}"


def noise_channel(noise: Noise, num_classes: int, epsilon: float) -> torch.Tensor:
    """The channel ``T`` of a resolved ``noise`` value, float64 ``(K, K)``.

    ``epsilon`` is the flip probability of the named channels; a matrix is returned as given.
    """
    if noise == "symmetric":
        return symmetric_channel(num_classes, epsilon)
    if noise == "pairflip":
        return pairflip_channel(num_classes, epsilon)
    return torch.tensor(noise, dtype=torch.float64)


def _describe(data: Any) -> str:
    """What a JSON value is, as an error message names it."""
    if isinstance(data, (list, tuple)):
        return f"a list whose items are not all lists ({len(data)} items)"
    kinds = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(data), "a number" if isinstance(data, Real) else type(data).__name__)
