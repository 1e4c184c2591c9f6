"""Input checks shared by every module: each error names the parameter and the allowed range."""

from __future__ import annotations

import math

import numpy as np
import torch


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
