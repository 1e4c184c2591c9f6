"""Noisy labellers (paper section 3, eq. 1; chapter "Problem formulation").

A channel matrix ``T`` of shape ``(K, K)`` holds ``T[i, j] = p(y' = i | y = j)``: column ``j``
is the distribution of the label the oracle returns when the true class is ``j``, so every
column lies on the simplex (columns sum to 1).
"""

from __future__ import annotations

import torch

from .runtime import GeneratorLike, make_generator
from .validation import check_float_range, check_int_range, check_label_range

__all__ = ["NoisyOracle", "check_channel", "symmetric_channel"]


def symmetric_channel(num_classes: int, epsilon: float) -> torch.Tensor:
    """The K-ary symmetric channel (eq. 1): keep the label with probability ``1 - epsilon``,
    otherwise flip it to one of the other ``K - 1`` classes uniformly.

    Returns a float64 ``(K, K)`` column-stochastic matrix. ``epsilon`` must lie in ``[0, 1)``.
    """
    k = check_int_range("num_classes", num_classes, 2)
    eps = check_float_range("epsilon", epsilon, 0.0, 1.0, high_inclusive=False)
    matrix = torch.full((k, k), eps / (k - 1), dtype=torch.float64)
    matrix.fill_diagonal_(1.0 - eps)
    return matrix


def check_channel(matrix: torch.Tensor, *, atol: float = 1e-6) -> torch.Tensor:
    """Validate a channel matrix: square, finite, non-negative, every column summing to 1."""
    if not isinstance(matrix, torch.Tensor):
        matrix = torch.as_tensor(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(
            f"matrix must be square (K, K) with K >= 2, got shape {tuple(matrix.shape)}"
        )
    matrix = matrix.to(torch.float64)
    if not torch.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("matrix entries must be finite and lie in [0, 1]")
    col_sums = matrix.sum(dim=0)
    if not torch.allclose(col_sums, torch.ones_like(col_sums), atol=atol):
        raise ValueError(
            "matrix must be column-stochastic (T[i, j] = p(y'=i | y=j), each column summing to 1); "
            f"column sums are {[round(v, 4) for v in col_sums.tolist()]}"
        )
    return matrix


class NoisyOracle:
    """An oracle that returns labels passed through a noisy channel.

    Args:
        matrix: ``(K, K)`` column-stochastic channel, ``matrix[i, j] = p(y'=i | y=j)``.
        seed: seed or ``torch.Generator`` fixing every draw.
    """

    def __init__(self, matrix: torch.Tensor, seed: GeneratorLike = None) -> None:
        self.matrix = check_channel(matrix)
        self.num_classes = int(self.matrix.shape[0])
        self.generator = make_generator(seed)

    def label(self, y_true: torch.Tensor) -> torch.Tensor:
        """Noisy labels for true labels ``y_true`` of shape ``(N,)``; returns ``(N,)`` int64."""
        y = torch.as_tensor(y_true)
        if y.ndim != 1:
            raise ValueError(f"y_true must have shape (N,), got {tuple(y.shape)}")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TypeError(f"y_true must hold integer class labels, got dtype {y.dtype}")
        if y.numel() == 0:
            return y.to(torch.int64).clone()
        check_label_range("y_true", y, self.num_classes)
        columns = self.matrix.T[y.cpu().long()]  # (N, K): p(y' | y) for each item
        noisy = torch.multinomial(columns, 1, generator=self.generator).squeeze(1)
        return noisy.to(y.device)
