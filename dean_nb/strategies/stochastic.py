"""Stochastic batch acquisition: a batch sampled in proportion to a power or softmax of scores.

Kirsch et al. 2023 (*Stochastic Batch Acquisition: A Simple Baseline for Deep Active
Learning*, TMLR) replace top-``b`` acquisition by a draw of ``b`` points without replacement
from

- power: ``p(i) ∝ s_i^beta`` (scores ``s_i >= 0``; a point of score 0 is never drawn while a
  point of positive score is left),
- softmax: ``p(i) ∝ exp(beta s_i)``,

with a "coldness" ``beta > 0`` (default ``beta = 1``, the 2023 paper's and baal's
``temperature = 1``; ``beta -> inf`` is top-``b``, ``beta -> 0`` uniform over the points of
positive weight). The draw is the Gumbel-top-k trick (Vieira 2014; Kool et al. 2019): the
top-``b`` of ``log w_i + G_i`` with ``G_i`` i.i.d. standard Gumbel is, in order, a sequential
draw without replacement with ``p(i) ∝ w_i`` renormalised after each pick. Everything stays in
log space, so a huge ``beta`` neither overflows nor yields NaN.

Pure functions: :func:`gumbel_top_k`, :func:`power_log_weights`, :func:`softmax_log_weights`.
Registered strategies (:mod:`dean_nb.strategies`): ``power-bald`` and ``softmax-bald`` on BALD
scores, ``power-entropy`` on predictive entropy, all three from ``ctx.n_mc_samples``
MC-dropout passes (as in the 2023 paper and baal's ``PowerBALD``/``PowerEntropy``; the
``entropy`` baseline's one deterministic pass is the DeAn paper's protocol, not this one's).
Unlike baal (``numpy.random.choice`` on global state; a uniform draw over the whole pool when
fewer than ``b`` scores are positive), draws come from ``ctx.generator``, and zero-score points
fill a batch only after every positive-score point, in uniformly random order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
)
from dean_nb.validation import check_budget, check_float_range, check_floating, check_ndim

__all__ = [
    "DEFAULT_BETA",
    "PowerBALDStrategy",
    "PowerEntropyStrategy",
    "SoftmaxBALDStrategy",
    "check_coldness",
    "gumbel_top_k",
    "power_log_weights",
    "softmax_log_weights",
]

#: The coldness of the 2023 paper's experiments and of baal's ``temperature = 1``.
DEFAULT_BETA = 1.0


def check_coldness(beta: float, name: str = "beta") -> float:
    """The coldness ``beta`` must be a positive, finite real: ``(0, inf)``."""
    return check_float_range(name, beta, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


def _check_scores(scores_N: torch.Tensor) -> torch.Tensor:
    check_ndim("scores_N", scores_N, 1, "(N,)")
    check_floating("scores_N", scores_N)
    if scores_N.shape[0] == 0:
        raise ValueError("scores_N must hold at least one score, got shape (0,)")
    if not torch.isfinite(scores_N).all():
        raise ValueError("scores_N contains NaN or inf; scores must be finite")
    return scores_N.detach().to(device="cpu", dtype=torch.float64)


def power_log_weights(scores_N: torch.Tensor, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """``(N,)`` float64 ``log p(i)`` with ``p(i) = s_i^beta / sum_j s_j^beta`` (power sampling).

    Scores must be finite and ``>= 0``; a zero score has log-weight ``-inf``. All scores zero
    give the uniform distribution (the limit of equal scores). Computed as
    ``log_softmax(beta (log s - max log s))``: finite or ``-inf``, never NaN or ``+inf``.
    """
    scores_N = _check_scores(scores_N)
    beta = check_coldness(beta)
    if (scores_N < 0).any():
        raise ValueError("scores_N contains negative entries; power sampling needs scores >= 0")
    log_s_N = torch.log(scores_N)
    if not (scores_N > 0).any():
        return torch.full_like(log_s_N, -math.log(scores_N.shape[0]))
    shifted_N = log_s_N - log_s_N.max()  # <= 0, so beta * shifted never overflows to +inf
    return torch.log_softmax(beta * shifted_N, dim=0)


def softmax_log_weights(scores_N: torch.Tensor, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """``(N,)`` float64 ``log p(i)`` with ``p(i) = exp(beta s_i) / sum_j exp(beta s_j)``.

    Scores must be finite (any sign). Computed as ``log_softmax(beta (s - max s))``: finite,
    or ``-inf`` where ``beta (s_i - max s)`` underflows; never NaN.
    """
    scores_N = _check_scores(scores_N)
    beta = check_coldness(beta)
    return torch.log_softmax(beta * (scores_N - scores_N.max()), dim=0)


def gumbel_top_k(
    log_weights_N: torch.Tensor, budget: int, generator: torch.Generator
) -> torch.Tensor:
    """``(budget,)`` int64 CPU indices drawn without replacement with ``p(i) ∝ exp(log w_i)``.

    The top-``budget`` of ``log w_i + G_i``, ``G_i`` i.i.d. standard Gumbel from
    ``generator``, in decreasing order of key: the first index is drawn with probability
    ``w_i / W``, the second with ``w_j / (W - w_i)`` and so on. Weights need not be normalised.
    Points of weight zero (``log w = -inf``) come after every point of positive weight, in a
    uniformly random order (their own Gumbel noise): the limit of equal tiny weights.

    Raises:
        ValueError: ``log_weights_N`` is not ``(N,)``, holds NaN or ``+inf``, or
            ``budget`` is not in ``[1, N]``.
    """
    check_ndim("log_weights_N", log_weights_N, 1, "(N,)")
    check_floating("log_weights_N", log_weights_N)
    n_points = int(log_weights_N.shape[0])
    budget = check_budget(budget, n_points)
    log_w_N = log_weights_N.detach().to(device="cpu", dtype=torch.float64)
    if torch.isnan(log_w_N).any() or (log_w_N == math.inf).any():
        raise ValueError("log_weights_N contains NaN or +inf; log-weights must be < inf")
    uniform_N = torch.rand(
        n_points, generator=generator, device=generator.device, dtype=torch.float64
    )
    # rand lies in [0, 1): clamping away 0 keeps -log(-log u) finite
    uniform_N = uniform_N.cpu().clamp_min(1e-300)
    gumbel_N = -torch.log(-torch.log(uniform_N))
    positive_N = log_w_N > -math.inf
    keys_N = torch.where(positive_N, log_w_N + gumbel_N, gumbel_N)
    # positive weights first (their keys), then zero weights (by their noise alone)
    order_pos = torch.sort(keys_N[positive_N], descending=True, stable=True).indices
    order_zero = torch.sort(keys_N[~positive_N], descending=True, stable=True).indices
    ranked_N = torch.cat(
        [positive_N.nonzero().squeeze(1)[order_pos], (~positive_N).nonzero().squeeze(1)[order_zero]]
    )
    return ranked_N[:budget]


# --------------------------------------------------------------------------------------------
# Registered strategies
# --------------------------------------------------------------------------------------------


def _sampled_batch(
    ctx: AcquisitionContext,
    score: Callable[[torch.Tensor], torch.Tensor],
    log_weights: Callable[[torch.Tensor, float], torch.Tensor],
    beta: float,
) -> Selection:
    """``score`` (``probs_T_N_K -> (N,)``) of ``ctx.n_mc_samples`` MC-dropout passes, then a
    :func:`gumbel_top_k` batch of ``log_weights(scores, beta)``, both from ``ctx.generator``."""
    _, budget = check_context(ctx)
    gen = context_generator(ctx)
    scores_N = score(pool_mc_probs(ctx, gen)).detach().cpu()
    return Selection(
        indices=gumbel_top_k(log_weights(scores_N, beta), budget, gen), scores=scores_N
    )


@dataclass(frozen=True)
class PowerBALDStrategy:
    """PowerBALD (Kirsch et al. 2023): ``budget`` points drawn with ``p(i) ∝ BALD_i^beta``.

    BALD from ``ctx.n_mc_samples`` MC-dropout passes (independent masks, as ``bald``), then
    :func:`gumbel_top_k` of :func:`power_log_weights`, both from ``ctx.generator``.

    Options:
        beta: the coldness (exponent) ``beta`` in ``(0, inf)``; baal's ``1 / temperature``.

    ``Selection.scores`` are the BALD scores.
    """

    name: ClassVar[str] = "power-bald"
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_coldness(self.beta))

    def select(self, ctx: AcquisitionContext) -> Selection:
        return _sampled_batch(ctx, scoring.bald, power_log_weights, self.beta)


@dataclass(frozen=True)
class SoftmaxBALDStrategy:
    """SoftmaxBALD (Kirsch et al. 2023): ``budget`` points drawn with ``p(i) ∝ exp(beta BALD_i)``.

    BALD from ``ctx.n_mc_samples`` MC-dropout passes, then :func:`gumbel_top_k` of
    :func:`softmax_log_weights`, both from ``ctx.generator``.

    Options:
        beta: the inverse temperature ``beta`` in ``(0, inf)`` (scores are in nats).

    ``Selection.scores`` are the BALD scores.
    """

    name: ClassVar[str] = "softmax-bald"
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_coldness(self.beta))

    def select(self, ctx: AcquisitionContext) -> Selection:
        return _sampled_batch(ctx, scoring.bald, softmax_log_weights, self.beta)


@dataclass(frozen=True)
class PowerEntropyStrategy:
    """PowerEntropy (Kirsch et al. 2023): ``budget`` points drawn with ``p(i) ∝ H_i^beta``.

    ``H_i`` is the predictive entropy ``H(mean_t p_t)`` of ``ctx.n_mc_samples`` MC-dropout
    passes (the 2023 paper's and baal's score; the ``entropy`` strategy uses one
    deterministic pass instead), then :func:`gumbel_top_k` of :func:`power_log_weights`.

    Options:
        beta: the coldness (exponent) ``beta`` in ``(0, inf)``.

    ``Selection.scores`` are the predictive entropies.
    """

    name: ClassVar[str] = "power-entropy"
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_coldness(self.beta))

    def select(self, ctx: AcquisitionContext) -> Selection:
        return _sampled_batch(ctx, scoring.predictive_entropy, power_log_weights, self.beta)
