"""The small strategies of the paper's experiments: ``random``, ``entropy`` and ``bald``.

Chapter "Baselines". ``random`` draws ``budget`` pool points uniformly without replacement;
``entropy`` takes the top-``budget`` predictive entropy of one deterministic pass (Wang and
Shang 2014; the paper and the authors' code score one pass); ``bald`` the top-``budget`` BALD
(eq. 2) of MC-dropout passes (Gal et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from dean_nb.strategies import scoring
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    check_context,
    context_generator,
    pool_mc_probs,
    pool_probs,
    top_k_indices,
)
from dean_nb.validation import check_budget

__all__ = [
    "BALDStrategy",
    "EntropyStrategy",
    "RandomStrategy",
    "random_indices",
]


def random_indices(pool_size: int, budget: int, generator: torch.Generator) -> torch.Tensor:
    """``(budget,)`` indices drawn uniformly without replacement from ``range(pool_size)``."""
    budget = check_budget(budget, pool_size)
    perm = torch.randperm(pool_size, generator=generator, device=generator.device)
    return perm[:budget].cpu()


@dataclass(frozen=True)
class RandomStrategy:
    """Uniform sampling without replacement from the pool (the paper's "Random")."""

    name: ClassVar[str] = "random"

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = check_context(ctx)
        return Selection(indices=random_indices(pool_size, budget, context_generator(ctx)))


@dataclass(frozen=True)
class EntropyStrategy:
    """Top-``budget`` Shannon entropy ``H(p(y|x))`` of one deterministic (eval-mode) pass."""

    name: ClassVar[str] = "entropy"

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = check_context(ctx)
        probs_N_K = pool_probs(ctx)
        scores_N = scoring.predictive_entropy(probs_N_K).detach().cpu()
        return Selection(indices=top_k_indices(scores_N, budget), scores=scores_N)


@dataclass(frozen=True)
class BALDStrategy:
    """Top-``budget`` BALD (eq. 2) from ``ctx.n_mc_samples`` MC-dropout passes."""

    name: ClassVar[str] = "bald"

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = check_context(ctx)
        probs_T_N_K = pool_mc_probs(ctx, context_generator(ctx))
        scores_N = scoring.bald(probs_T_N_K).detach().cpu()
        return Selection(indices=top_k_indices(scores_N, budget), scores=scores_N)
