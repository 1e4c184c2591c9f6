"""k-center greedy, the coreset baseline (Sener & Savarese 2018; chapter "Baselines").

The paper's "Coreset" baseline picks the batch by the 2-OPT k-center greedy on the model's
penultimate features, with the labelled set as the initial centres: every step adds the pool
point farthest from its nearest centre. Pure functions over tensors whose names carry their
axes (``N`` points, ``M`` centres, ``F`` features):

- :func:`min_squared_distances`: each point's squared distance to its nearest centre, chunked;
- :func:`k_center_greedy`: the greedy picks, in order;
- :func:`penultimate_features`: ``model.features(x)`` with dropout off.

:class:`dean_nb.strategies.coreset.CoresetStrategy` wraps them behind the strategy interface and
registers them as ``"coreset"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from dean_nb.learner.mc_dropout import model_device
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    check_context,
    compute_device,
)
from dean_nb.validation import check_budget, check_int_range, check_ndim

__all__ = ["k_center_greedy", "min_squared_distances", "penultimate_features"]


def min_squared_distances(
    points_N_F: torch.Tensor, centres_M_F: torch.Tensor, chunk_size: int = 2048
) -> torch.Tensor:
    """``(N,)`` squared Euclidean distance from every point to its nearest centre.

    Works on ``chunk_size x chunk_size`` blocks, so memory stays ``O(N + chunk_size^2)``
    whatever ``M`` is. Computed as ``|p|^2 + |c|^2 - 2 p.c`` (clamped at 0) in the inputs'
    dtype; pass float64 for exact ties.
    """
    check_ndim("points_N_F", points_N_F, 2, "(N, F)")
    check_ndim("centres_M_F", centres_M_F, 2, "(M, F)")
    if centres_M_F.shape[0] == 0:
        raise ValueError("centres_M_F must hold at least one centre")
    if points_N_F.shape[1] != centres_M_F.shape[1]:
        raise ValueError(
            f"points_N_F and centres_M_F must share the feature axis, got "
            f"{tuple(points_N_F.shape)} and {tuple(centres_M_F.shape)}"
        )
    chunk_size = check_int_range("chunk_size", chunk_size, 1)
    out_N = torch.empty(points_N_F.shape[0], dtype=points_N_F.dtype, device=points_N_F.device)
    centre_sq_M = centres_M_F.pow(2).sum(dim=1)
    for start in range(0, points_N_F.shape[0], chunk_size):
        block_n_F = points_N_F[start : start + chunk_size]
        point_sq_n = block_n_F.pow(2).sum(dim=1)
        best_n = torch.full_like(point_sq_n, math.inf)
        for c_start in range(0, centres_M_F.shape[0], chunk_size):
            block_m_F = centres_M_F[c_start : c_start + chunk_size]
            d2_n_m = (
                point_sq_n[:, None]
                + centre_sq_M[None, c_start : c_start + chunk_size]
                - 2.0 * block_n_F @ block_m_F.T
            )
            best_n = torch.minimum(best_n, d2_n_m.clamp_min(0.0).min(dim=1).values)
        out_N[start : start + chunk_size] = best_n
    return out_N


def _squared_distances_to(
    points_N_F: torch.Tensor, centre_F: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """``(N,)`` squared Euclidean distance of every point to one centre (direct differences)."""
    out_N = torch.empty(points_N_F.shape[0], dtype=points_N_F.dtype, device=points_N_F.device)
    for start in range(0, points_N_F.shape[0], chunk_size):
        out_N[start : start + chunk_size] = (
            (points_N_F[start : start + chunk_size] - centre_F).pow(2).sum(dim=1)
        )
    return out_N


def k_center_greedy(
    features_N_F: torch.Tensor,
    budget: int,
    centres_M_F: torch.Tensor | None = None,
    chunk_size: int = 2048,
) -> torch.Tensor:
    """k-center greedy (Sener & Savarese 2018, Alg. 1): ``(budget,)`` indices, in pick order.

    Each step adds the point farthest (Euclidean) from its nearest centre, then makes it a
    centre. A running ``(N,)`` min-distance vector is updated with one chunked point-to-centre
    pass per step, so memory is ``O(N)`` per step and time ``O(budget * N * F)``.

    Initial centres are ``centres_M_F`` (the labelled set). With none, the first pick is the
    point nearest the feature mean. Deterministic: ties go to the lowest index.
    """
    check_ndim("features_N_F", features_N_F, 2, "(N, F)")
    n_points = int(features_N_F.shape[0])
    budget = check_budget(budget, n_points)
    chunk_size = check_int_range("chunk_size", chunk_size, 1)
    if not torch.isfinite(features_N_F).all():
        raise ValueError("features_N_F contains NaN or inf")

    chosen = torch.empty(budget, dtype=torch.long)
    taken_N = torch.zeros(n_points, dtype=torch.bool, device=features_N_F.device)
    if centres_M_F is not None and centres_M_F.shape[0] > 0:
        min_d2_N = min_squared_distances(features_N_F, centres_M_F.to(features_N_F), chunk_size)
    else:
        # no centres yet: any first centre keeps the 2-approximation; take the most central
        mean_F = features_N_F.mean(dim=0)
        min_d2_N = -_squared_distances_to(features_N_F, mean_F, chunk_size)
    for step in range(budget):
        pick = int(torch.argmax(min_d2_N.masked_fill(taken_N, -math.inf)))  # first max on ties
        chosen[step] = pick
        taken_N[pick] = True
        if step + 1 < budget:
            d2_N = _squared_distances_to(features_N_F, features_N_F[pick], chunk_size)
            has_centres = step > 0 or (centres_M_F is not None and centres_M_F.shape[0] > 0)
            min_d2_N = torch.minimum(min_d2_N, d2_N) if has_centres else d2_N
    return chosen


@torch.no_grad()
def penultimate_features(
    model: nn.Module, x: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """``(N, F)`` penultimate features in eval mode (dropout off), on the model's device.

    ``model.features(x)`` where the model has it (an
    :class:`~dean_nb.learner.models.MCDropoutNet`); else the input of the model's last
    registered ``nn.Linear``, caught by a forward hook (for a reader's model whose classifier
    ends with a linear layer). The model's train/eval mode is restored afterwards.
    """
    features = getattr(model, "features", None)
    if not callable(features):
        features = _last_linear_input(model)
    device = model_device(model)
    size = int(x.shape[0])
    step = size if batch_size is None else check_int_range("batch_size", batch_size, 1)
    step = max(step, 1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [features(x[i : i + step].to(device)) for i in range(0, size, step)]
    finally:
        model.train(was_training)
    if not parts:
        return torch.empty(0, 0, device=device)
    return torch.cat(parts).flatten(start_dim=1)


def pool_features(ctx: AcquisitionContext) -> torch.Tensor:
    """The pool's ``(N, F)`` penultimate features: ``ctx.features_N_F`` or the model's."""
    if ctx.features_N_F is not None:
        return ctx.features_N_F
    return penultimate_features(ctx.model, ctx.x_pool, ctx.batch_size)


def labelled_features(ctx: AcquisitionContext) -> torch.Tensor | None:
    """The labelled set's ``(M, F)`` features (given, or the model's), ``None`` without one."""
    if ctx.features_labelled_M_F is not None:
        return ctx.features_labelled_M_F
    if ctx.x_labelled is None or ctx.x_labelled.shape[0] == 0 or ctx.model is None:
        return None
    return penultimate_features(ctx.model, ctx.x_labelled, ctx.batch_size)


def _last_linear_input(model: nn.Module):
    """``x -> input of the last nn.Linear of model``, by running the model with a hook."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(
            f"coreset and badge need penultimate features: {type(model).__name__} has no "
            "features(x) method and no nn.Linear whose input could serve; add a "
            "features(x) method returning (N, F)"
        )

    def features(x: torch.Tensor) -> torch.Tensor:
        caught: list[torch.Tensor] = []
        handle = linears[-1].register_forward_hook(lambda m, inp, out: caught.append(inp[0]))
        try:
            model(x)
        finally:
            handle.remove()
        return caught[-1]

    return features


@dataclass(frozen=True)
class CoresetStrategy:
    """k-center greedy on penultimate features, labelled set as initial centres (Sener &
    Savarese 2018); the paper's "Coreset" baseline (2-OPT greedy).

    Options:
        chunk_size: rows per block in the distance computation (memory knob only).

    ``Selection.scores`` is each pool point's Euclidean feature distance to the nearest
    labelled point (``None`` without a labelled set).
    """

    name: ClassVar[str] = "coreset"
    chunk_size: int = 2048

    def __post_init__(self) -> None:
        check_int_range("chunk_size", self.chunk_size, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = check_context(ctx)
        device = compute_device(ctx)
        pool_N_F = pool_features(ctx).to(device=device, dtype=torch.float64)
        centres_M_F = labelled_features(ctx)
        scores_N = None
        if centres_M_F is not None and centres_M_F.shape[0] == 0:
            centres_M_F = None
        if centres_M_F is not None:
            centres_M_F = centres_M_F.to(device=device, dtype=torch.float64)
            scores_N = min_squared_distances(pool_N_F, centres_M_F, self.chunk_size)
            scores_N = scores_N.sqrt().float().cpu()
        indices = k_center_greedy(pool_N_F, budget, centres_M_F, self.chunk_size)
        return Selection(indices=indices, scores=scores_N)
