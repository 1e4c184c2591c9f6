"""Statistics of the annealed sampler's picks (chapter 3): how spread the pick distribution is,
whether drawn picks follow it, and how diverse a batch is.

* :func:`perplexity` and :func:`pick_summary`: the effective number of images the pick
  distribution of eq. 4 (:func:`dean_nb.strategies.annealing.pick_distribution`) chooses among, and its
  mass on the centroids, at one inverse temperature;
* :func:`first_picks` and :func:`chi_square_gof`: the first pick of many independent batches
  and a chi-square goodness-of-fit test of picks against a distribution;
* :func:`batch_diversity`: clusters, classes, nearest-pick distance and mean score of a batch.
"""

from __future__ import annotations

import itertools
import math

import torch
from scipy import stats

from dean_nb.runtime import make_generator
from dean_nb.strategies.annealing import pick_distribution, sample_annealed
from dean_nb.validation import check_ndim

__all__ = [
    "batch_diversity",
    "chi_square_gof",
    "first_picks",
    "perplexity",
    "pick_summary",
]


def perplexity(p: torch.Tensor) -> float:
    """``exp(entropy)`` of a distribution ``p (N,)``: between 1 (one point) and ``N`` (uniform)."""
    check_ndim("p", p, 1, "(N,)")
    return math.exp(stats.entropy(p.detach().cpu().double().numpy()))


def pick_summary(
    mean_probs_N_K: torch.Tensor, centroids_C: torch.Tensor, weights_C: torch.Tensor, beta: float
) -> tuple[float, float]:
    """``(perplexity, centroid mass)`` of the first pick's distribution (the paper's eq. 4).

    ``mean_probs_N_K`` are the pool's mean predictions, ``centroids_C`` the centroid indices
    and ``weights_C`` their importance; the centroid mass is the probability that the pick is
    one of the centroids.
    """
    p = pick_distribution(mean_probs_N_K, centroids_C, weights_C, float(beta))
    return perplexity(p), float(p[centroids_C].sum())


def first_picks(
    mean_probs_N_K: torch.Tensor,
    centroids_C: torch.Tensor,
    weights_C: torch.Tensor,
    beta: float,
    n_draws: int,
    seed: int,
) -> torch.Tensor:
    """``(n_draws,)`` first picks of independent one-image batches, drawn in turn from one
    generator seeded with ``seed`` (:func:`dean_nb.strategies.annealing.sample_annealed`)."""
    gen = make_generator(seed)
    return torch.cat(
        [
            sample_annealed(mean_probs_N_K, centroids_C, weights_C, 1, beta, gen)[0]
            for _ in range(n_draws)
        ]
    )


def chi_square_gof(
    picks: torch.Tensor, probs_N: torch.Tensor, min_expected: float = 5.0
) -> tuple[float, int]:
    """Chi-square goodness of fit of ``picks (M,)`` (indices) against ``probs_N (N,)``.

    Cells of positive probability are merged in order of increasing probability until each
    expects at least ``min_expected`` picks (a short last group joins the one before).
    Returns ``(p-value, number of cells)``. Raises if a pick falls where ``probs_N`` is zero.
    """
    check_ndim("picks", picks, 1, "(M,)")
    check_ndim("probs_N", probs_N, 1, "(N,)")
    probs_N = probs_N.detach().cpu().double()
    observed = torch.bincount(picks.cpu(), minlength=probs_N.numel()).double()
    expected = probs_N * picks.numel()
    support = probs_N > 0
    if observed[~support].sum() > 0:
        raise ValueError("a pick fell where the pick distribution is zero")
    order = expected[support].argsort()
    obs, exp = observed[support][order].numpy(), expected[support][order].numpy()
    groups, acc = [], 0.0
    for n, e in enumerate(exp):
        acc += e
        if acc >= min_expected:
            groups.append(n + 1)
            acc = 0.0
    if not groups:
        raise ValueError(f"too few picks: no cell expects {min_expected} of them")
    groups[-1] = len(exp)
    edges = [0, *groups]
    obs_g = [obs[a:z].sum() for a, z in itertools.pairwise(edges)]
    exp_g = [exp[a:z].sum() for a, z in itertools.pairwise(edges)]
    return float(stats.chisquare(obs_g, exp_g).pvalue), len(obs_g)


def batch_diversity(
    picks_B: torch.Tensor,
    distances_N_N: torch.Tensor,
    clusters_N: torch.Tensor,
    classes_N: torch.Tensor,
    scores_N: torch.Tensor,
) -> dict[str, float]:
    """How diverse a batch ``picks_B (B,)`` of pool indices is (``B >= 2``).

    Returns ``clusters`` and ``classes`` (distinct values of ``clusters_N`` and ``classes_N``
    among the picks), ``nearest pick`` (mean distance, in ``distances_N_N``, from each pick to
    the closest other pick) and ``BALD`` (mean of ``scores_N`` over the picks).
    """
    check_ndim("picks_B", picks_B, 1, "(B,)")
    if picks_B.numel() < 2:
        raise ValueError("a batch needs at least two picks to have a nearest other pick")
    within = distances_N_N[picks_B][:, picks_B].masked_fill(
        torch.eye(len(picks_B), dtype=torch.bool), math.inf
    )
    return {
        "clusters": clusters_N[picks_B].unique().numel(),
        "classes": classes_N[picks_B].unique().numel(),
        "nearest pick": within.min(1).values.mean().item(),
        "BALD": scores_N[picks_B].mean().item(),
    }
