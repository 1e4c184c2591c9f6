"""Forward loss correction with an estimated channel (Patrini et al. 2017, "Making deep neural
networks robust to label noise: a loss correction approach", CVPR).

Forward correction trains the base model ``M`` through a *fixed* channel ``C``: the loss is the
negative log-likelihood of the noisy label under ``C p(x)``, ``p = softmax(M(x))``, exactly the
composite model of :mod:`dean_nb.learner.denoise` with ``W`` frozen at ``C`` instead of learned.
``C`` comes from the anchor-point estimator of Patrini's section 3 (eq. 12-13):

1. train a plain model on the noisy labels, whose outputs estimate ``p(y' | x)``;
2. for each class ``j``, find an *anchor* ``x_j``, a point that surely belongs to class ``j``
   (``p(y = j | x_j) = 1``), so that ``p(y' = i | x_j) = C[i, j]``: column ``j`` of ``C`` is
   the plain model's whole prediction vector at ``x_j`` (:func:`anchor_channel`);
3. retrain a fresh model through :func:`fixed_channel` ``(C)``
   (:func:`dean_nb.learner.training.train_model` with ``channel=fixed_channel(C)``).

The anchor of class ``j`` is the point with the largest ``p(y' = j | x)`` (eq. 12) when the
estimate of ``p(y' | x)`` is exact; in practice Patrini et al. take the point at the 97th
percentile of that column instead, which skips the few over-confident outliers a network
trained on noisy labels produces. :func:`anchor_channel` does the same (``percentile=97.0``).

Conventions: the package's channel is column-stochastic, ``C[i, j] = p(y' = i | y = j)``
(:func:`dean_nb.problem.oracle.check_channel`), and with row-vector probabilities
``probs (N, K)`` the noisy-label probabilities are ``probs @ C.T``. Patrini's ``T`` is
row-stochastic, ``T[j, i] = p(y' = i | y = j)``, so ``T = C.T``: their row ``j`` of ``T`` is our
column ``j`` of ``C``.
"""

from __future__ import annotations

import torch

from dean_nb.learner.denoise import NoisyChannel
from dean_nb.problem.oracle import check_channel
from dean_nb.validation import (
    check_float_range,
    check_floating,
    check_int_range,
    check_ndim,
    check_probabilities,
)

__all__ = [
    "DEFAULT_ANCHOR_PERCENTILE",
    "PROBS_ATOL",
    "anchor_channel",
    "anchor_indices",
    "fixed_channel",
]

#: Patrini et al.'s percentile of ``p(y' = j | x)`` at which the anchor of class ``j`` sits
#: (their outlier filter; 100 is the plain argmax of eq. 12).
DEFAULT_ANCHOR_PERCENTILE = 97.0

#: How far a row of ``noisy_probs_N_K`` may sum from 1 (:func:`anchor_channel`); rows are then
#: renormalised in float64.
PROBS_ATOL = 1e-4


def anchor_channel(
    noisy_probs_N_K: torch.Tensor, *, percentile: float = DEFAULT_ANCHOR_PERCENTILE
) -> torch.Tensor:
    """Estimate the channel ``C`` from a classifier trained on noisy labels (Patrini eq. 12-13).

    Args:
        noisy_probs_N_K: ``(N, K)`` floating-point predictions ``p(y' | x)`` of a model trained
            on the noisy labels (any device), ``N >= 1``, ``K >= 2``; every row a distribution
            (finite, non-negative, summing to 1 within :data:`PROBS_ATOL`; renormalised in
            float64 after the check).
        percentile: in ``[0, 100]``; the anchor of class ``j`` is the point at this percentile
            of column ``j`` (default :data:`DEFAULT_ANCHOR_PERCENTILE`, Patrini's 97; 100 is
            the plain argmax of their eq. 12).

    Returns:
        ``(K, K)`` float64 on the CPU, column-stochastic: column ``j`` is the (float64,
        renormalised) prediction vector of the anchor of class ``j``,
        ``C_hat[i, j] = p_hat(y' = i | x_j)``. Patrini's row-stochastic estimate is its
        transpose, ``T_hat[j, i] = C_hat[i, j]``.

    The anchor rule, deterministic: with ``r = round(percentile / 100 * (N - 1))`` (Python's
    ``round`` in float64, half to even, as ``torch.quantile(..., interpolation="nearest")``),
    the anchor's value is the ``r``-th smallest entry of column ``j`` (0-based; of the float64,
    renormalised rows), i.e. exactly
    ``torch.quantile(column, percentile / 100, interpolation="nearest")``; among the points
    holding that value, the anchor is the one of lowest index. So ``percentile=100`` gives
    ``argmax(dim=0)`` (first maximum) and ``percentile=0`` the first minimum.

    Raises:
        TypeError: ``noisy_probs_N_K`` is not a floating-point tensor.
        ValueError: a wrong shape, a non-finite or negative entry, a row not summing to 1,
            or ``percentile`` outside ``[0, 100]``; the message names the parameter.
    """
    q = check_float_range("percentile", percentile, 0.0, 100.0)
    probs_N_K = _checked_probs(noisy_probs_N_K)
    anchors_K = _nearest_rank_anchors(probs_N_K, q)
    estimate_K_K = probs_N_K[anchors_K].T  # column j: the anchor of class j's prediction
    estimate_K_K = estimate_K_K / estimate_K_K.sum(dim=0, keepdim=True)
    return check_channel(estimate_K_K.contiguous())


def anchor_indices(
    noisy_probs_N_K: torch.Tensor, *, percentile: float = DEFAULT_ANCHOR_PERCENTILE
) -> torch.Tensor:
    """The anchor of every class, ``(K,)`` int64 indices into the ``N`` rows of
    ``noisy_probs_N_K (N, K)``: the points whose predictions :func:`anchor_channel` takes as
    the columns of its estimate (same arguments, checks and rule)."""
    q = check_float_range("percentile", percentile, 0.0, 100.0)
    return _nearest_rank_anchors(_checked_probs(noisy_probs_N_K), q)


def _checked_probs(noisy_probs_N_K: torch.Tensor) -> torch.Tensor:
    """``noisy_probs_N_K (N, K)`` checked as :func:`anchor_channel` states, as float64 on the
    CPU with its rows renormalised to sum to 1; a ``ValueError`` naming it otherwise."""
    check_floating("noisy_probs_N_K", noisy_probs_N_K)
    check_ndim("noisy_probs_N_K", noisy_probs_N_K, 2, "(N, K)")
    n, k = noisy_probs_N_K.shape
    check_int_range("noisy_probs_N_K.shape[0] (N, the number of points)", n, 1)
    check_int_range("noisy_probs_N_K.shape[1] (K, the number of classes)", k, 2)
    probs_N_K = noisy_probs_N_K.detach().to("cpu", torch.float64)
    check_probabilities("noisy_probs_N_K", probs_N_K, atol=PROBS_ATOL)
    return probs_N_K / probs_N_K.sum(dim=1, keepdim=True)


def _nearest_rank_anchors(probs_N_K: torch.Tensor, percentile: float) -> torch.Tensor:
    """:func:`anchor_channel`'s rule on trusted inputs (``probs_N_K (N, K)``, N >= 1, no NaN;
    ``percentile`` in ``[0, 100]``): ``(K,)`` int64, for column ``j`` the lowest index holding
    its ``round(percentile / 100 * (N - 1))``-th smallest value."""
    n = probs_N_K.shape[0]
    rank = round(percentile / 100.0 * (n - 1))  # 0-based, ascending; half to even
    values_K = torch.kthvalue(probs_N_K, rank + 1, dim=0).values
    at_value_N_K = probs_N_K == values_K
    return at_value_N_K.to(torch.uint8).argmax(dim=0)  # the first point holding the value


def fixed_channel(matrix: torch.Tensor) -> NoisyChannel:
    """A frozen channel at ``matrix``: forward correction's ``p' = C p`` with ``C`` fixed.

    Args:
        matrix: ``(K, K)`` column-stochastic, ``matrix[i, j] = p(y' = i | y = j)`` (checked by
            :func:`dean_nb.problem.oracle.check_channel`), e.g. :func:`anchor_channel`'s
            estimate or an oracle's true channel.

    Returns:
        A ``"projected"`` :class:`~dean_nb.learner.denoise.NoisyChannel` (float32 weight)
        initialised at ``matrix``, its parameter's ``requires_grad`` off:
        :func:`dean_nb.learner.training.train_model` gives it to no optimiser step (its
        gradient stays ``None``), and the projection it runs after every step leaves a
        column-stochastic matrix where it is up to float32 rounding.
    """
    start = check_channel(matrix)
    channel = NoisyChannel(int(start.shape[0]), "projected", init=start)
    return channel.requires_grad_(False)
