"""BADGE: k-means++ seeding on last-layer gradient embeddings (Ash et al. 2020; chapter
"Baselines").

BADGE ("Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds") represents
each pool point by the gradient its cross-entropy loss would give the last layer's weights if
its label were the model's own guess ``y_hat = argmax p``, and picks the batch by k-means++
seeding on these embeddings: the norm of a gradient measures uncertainty (a confident point has
``p ~ onehot(y_hat)`` and a small gradient), and D^2 sampling spreads the batch out. Pure
functions over tensors whose names carry their axes (``N`` points, ``K`` classes, ``F``
penultimate features, ``D = K * F`` embedding dimensions):

- :func:`gradient_embeddings`: ``(p - onehot(y_hat)) outer h``, flattened K-major;
- :func:`kmeans_pp_indices`: k-means++ seeding (D^2 sampling), in pick order.

:class:`dean_nb.strategies.badge.BadgeStrategy` wraps them behind the strategy interface (penultimate
features from :func:`dean_nb.strategies.coreset.penultimate_features`, probabilities from
:func:`dean_nb.learner.mc_dropout.predict_probs`, both with dropout off) and registers them as ``"badge"``.

Following the reference implementation (github.com/JordanAsh/badge, ``get_grad_embedding``
and ``init_centers``): only the weight gradient is embedded, not the bias's (which would add
``K`` entries ``p - onehot(y_hat)``); the first centre is the point of largest embedding norm.
The reference stores the negative gradient ``(onehot - p) outer h``; a global sign changes no
distance or norm, so the picks are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from dean_nb.runtime import GeneratorLike, make_generator
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    check_context,
    compute_device,
    context_generator,
    pool_probs,
)
from dean_nb.strategies.coreset import pool_features
from dean_nb.validation import check_budget, check_int_range, check_ndim, check_probabilities

__all__ = ["gradient_embeddings", "kmeans_pp_indices"]


def gradient_embeddings(features_N_F: torch.Tensor, probs_N_K: torch.Tensor) -> torch.Tensor:
    """``(N, K * F)`` gradients of the cross-entropy at ``y_hat = argmax p`` w.r.t. the last
    ``nn.Linear``'s weight ``W (K, F)``, one row per point.

    For ``logits = W h + b``, ``d CE(logits, y_hat) / d W = (p - onehot(y_hat)) outer h``; row
    ``n`` is that ``(K, F)`` matrix flattened K-major (entry ``k * F + f`` is
    ``(p_k - [k = y_hat]) h_f``), the layout of ``W.flatten()``. Ties in ``argmax`` go to the
    lower class. The bias gradient is left out, as in the reference implementation.

    Args:
        features_N_F: penultimate activations ``h`` (the last layer's input), dropout off.
        probs_N_K: softmax probabilities ``p`` of the same points, dropout off.

    Returns:
        The embeddings in the promoted dtype of the inputs, on their device. Memory is the
        output alone, ``N * K * F`` elements (the outer products are written into it in place):
        4 bytes each in float32, so 60 000 points with ``K = 10``, ``F = 128`` take 307 MB.
    """
    check_ndim("features_N_F", features_N_F, 2, "(N, F)")
    check_ndim("probs_N_K", probs_N_K, 2, "(N, K)")
    if probs_N_K.shape[0] != features_N_F.shape[0]:
        raise ValueError(
            f"probs_N_K must have one row per point of features_N_F (N = "
            f"{features_N_F.shape[0]}), got shape {tuple(probs_N_K.shape)}"
        )
    if not features_N_F.is_floating_point() or not torch.isfinite(features_N_F).all():
        raise ValueError("features_N_F must be finite floating-point values")
    check_probabilities("probs_N_K", probs_N_K)
    n_points, n_features = features_N_F.shape
    n_classes = probs_N_K.shape[1]
    dtype = torch.promote_types(features_N_F.dtype, probs_N_K.dtype)
    probs_N_K = probs_N_K.to(device=features_N_F.device, dtype=dtype)
    residual_N_K = probs_N_K.clone()
    y_hat_N = probs_N_K.argmax(dim=1)
    residual_N_K[torch.arange(n_points, device=probs_N_K.device), y_hat_N] -= 1.0
    out_N_K_F = torch.empty(n_points, n_classes, n_features, dtype=dtype, device=probs_N_K.device)
    torch.mul(residual_N_K[:, :, None], features_N_F.to(dtype)[:, None, :], out=out_N_K_F)
    return out_N_K_F.reshape(n_points, n_classes * n_features)


def _squared_distances_to(
    points_N_D: torch.Tensor, centre_D: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """``(N,)`` float64 squared distances to one centre, by direct differences (exactly 0 for
    a copy of the centre), ``chunk_size`` rows at a time."""
    out_N = torch.empty(points_N_D.shape[0], dtype=torch.float64, device=points_N_D.device)
    centre_D = centre_D.to(torch.float64)
    for start in range(0, points_N_D.shape[0], chunk_size):
        block_n_D = points_N_D[start : start + chunk_size].to(torch.float64)
        out_N[start : start + chunk_size] = (block_n_D - centre_D).pow(2).sum(dim=1)
    return out_N


def kmeans_pp_indices(
    embeddings_N_D: torch.Tensor,
    budget: int,
    generator: GeneratorLike = None,
    chunk_size: int = 2048,
) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) as BADGE uses it: ``(budget,)`` distinct
    int64 CPU indices into the rows of ``embeddings_N_D``, in pick order.

    The first centre is the point of largest norm (ties: the lowest index), as in the
    reference's ``init_centers``. Each next centre is drawn with probability proportional to
    ``d^2``, the squared Euclidean distance to the nearest centre chosen so far, so a point at
    distance 0 (a chosen point or an exact copy of one) is never drawn while some point lies
    farther away. If every unchosen point is at distance 0 (the reference divides 0 by 0
    there), the next centre is drawn uniformly among the unchosen points.

    Distances are float64 (the embeddings are converted ``chunk_size`` rows at a time); each
    draw is Gumbel-max on ``log d^2`` (``log 0 = -inf``), which needs no normalisation and
    gives no NaN. One step draws ``N`` uniforms from ``generator`` (an int seeds a fresh one;
    ``None`` is non-deterministic). Memory ``O(N)`` beyond the embeddings; time
    ``O(budget * N * D)``.
    """
    check_ndim("embeddings_N_D", embeddings_N_D, 2, "(N, D)")
    n_points = int(embeddings_N_D.shape[0])
    budget = check_budget(budget, n_points)
    chunk_size = check_int_range("chunk_size", chunk_size, 1)
    if not embeddings_N_D.is_floating_point() or not torch.isfinite(embeddings_N_D).all():
        raise ValueError("embeddings_N_D must be finite floating-point values")
    gen = make_generator(generator)
    device = embeddings_N_D.device

    norms_sq_N = _squared_distances_to(embeddings_N_D, embeddings_N_D.new_zeros(()), chunk_size)
    chosen = torch.empty(budget, dtype=torch.long)
    chosen[0] = int(torch.argmax(norms_sq_N))  # first maximum on ties
    taken_N = torch.zeros(n_points, dtype=torch.bool, device=device)
    taken_N[chosen[0]] = True
    min_d2_N = torch.full((n_points,), math.inf, dtype=torch.float64, device=device)
    tiny = torch.finfo(torch.float64).tiny
    for step in range(1, budget):
        centre_D = embeddings_N_D[chosen[step - 1]]
        d2_N = _squared_distances_to(embeddings_N_D, centre_D, chunk_size)
        min_d2_N = torch.minimum(min_d2_N, d2_N)
        min_d2_N[taken_N] = 0.0
        if bool((min_d2_N > 0).any()):
            log_weights_N = torch.log(min_d2_N)  # -inf where d^2 = 0
        else:
            log_weights_N = torch.zeros_like(min_d2_N).masked_fill(taken_N, -math.inf)
        uniform_N = torch.rand(n_points, generator=gen, dtype=torch.float64, device=gen.device)
        gumbel_N = -torch.log(-torch.log(uniform_N.clamp_min(tiny))).to(device)
        pick = int(torch.argmax(log_weights_N + gumbel_N))
        chosen[step] = pick
        taken_N[pick] = True
    return chosen


@dataclass(frozen=True)
class BadgeStrategy:
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

    Each pool point's embedding is the cross-entropy gradient w.r.t. the last layer's weights
    at its predicted label, from penultimate features and probabilities with dropout off
    (:func:`dean_nb.strategies.badge.gradient_embeddings`); the batch is k-means++ seeding on them
    (:func:`dean_nb.strategies.badge.kmeans_pp_indices`), drawn from ``ctx.generator``.

    Options:
        chunk_size: rows per block in the distance computation (memory knob only).

    ``Selection.scores`` are the embedding norms (the first pick is their maximum).
    """

    name: ClassVar[str] = "badge"
    chunk_size: int = 2048

    def __post_init__(self) -> None:
        check_int_range("chunk_size", self.chunk_size, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = check_context(ctx)
        device = compute_device(ctx)
        features_N_F = pool_features(ctx)
        probs_N_K = pool_probs(ctx)
        embeddings_N_D = gradient_embeddings(features_N_F.to(device), probs_N_K.to(device))
        indices = kmeans_pp_indices(embeddings_N_D, budget, context_generator(ctx), self.chunk_size)
        scores_N = embeddings_N_D.norm(dim=1).float().cpu()
        return Selection(indices=indices, scores=scores_N)
