"""How far two models agree on their acquisition scores (chapters 1 and 2, the cold start).

Scores are ``(N,)`` tensors over the same pool. Two summaries: the Spearman rank correlation of
the whole ranking, and the overlap of the two top-``b`` batches (what a top-``b`` rule would
ask for); :func:`mean_pairwise_agreement` averages both over every pair of several models.
:func:`top_class_shares` measures how the top picks concentrate on a few classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scipy import stats

from dean_nb.validation import check_int_range

__all__ = ["mean_pairwise_agreement", "score_agreement", "top_class_shares", "top_overlap"]


def _check_scores(name: str, scores: torch.Tensor) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor) or scores.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor (N,)")
    return scores.detach().cpu()


def top_overlap(scores_a: torch.Tensor, scores_b: torch.Tensor, b: int) -> float:
    """Share of the top-``b`` indices of ``scores_a (N,)`` also in the top-``b`` of ``scores_b``.

    Symmetric, in ``[0, 1]``; 1 when the two batches are the same set.
    """
    a, other = _check_scores("scores_a", scores_a), _check_scores("scores_b", scores_b)
    if a.shape != other.shape:
        raise ValueError(f"scores of different lengths: {a.numel()} and {other.numel()}")
    b = check_int_range("b", b, 1, a.numel())
    top_a = set(torch.topk(a, b).indices.tolist())
    return len(top_a & set(torch.topk(other, b).indices.tolist())) / b


def score_agreement(scores_a: torch.Tensor, scores_b: torch.Tensor, b: int) -> dict[str, float]:
    """``{"spearman": rho, "top-b overlap": share}`` of two scores ``(N,)`` over one pool."""
    rho = stats.spearmanr(
        _check_scores("scores_a", scores_a).numpy(), _check_scores("scores_b", scores_b).numpy()
    ).statistic
    return {"spearman": float(rho), "top-b overlap": top_overlap(scores_a, scores_b, b)}


def mean_pairwise_agreement(scores: Sequence[torch.Tensor], b: int) -> dict[str, float]:
    """:func:`score_agreement` averaged over the ``M (M - 1) / 2`` pairs of ``M >= 2`` scores."""
    if len(scores) < 2:
        raise ValueError(f"scores must hold at least two score tensors, got {len(scores)}")
    pairs = [
        score_agreement(first, second, b)
        for i, first in enumerate(scores)
        for second in scores[i + 1 :]
    ]
    return {key: sum(pair[key] for pair in pairs) / len(pairs) for key in pairs[0]}


def top_class_shares(
    scores_N: torch.Tensor, labels_N: torch.Tensor, num_classes: int, b: int
) -> torch.Tensor:
    """Class shares ``(K,)`` (summing to 1) of the ``b`` highest-scoring images.

    ``labels_N`` are the true classes of the scored images, in ``[0, K)``.
    """
    scores = _check_scores("scores_N", scores_N)
    labels = labels_N.detach().cpu()
    if labels.shape != scores.shape:
        raise ValueError("scores_N and labels_N must have the same shape (N,)")
    b = check_int_range("b", b, 1, scores.numel())
    picked = labels[torch.topk(scores, b).indices]
    return torch.bincount(picked, minlength=num_classes).double() / b
