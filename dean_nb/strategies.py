"""Acquisition strategies behind one interface, plus a name registry (chapter "Baselines").

Every strategy is a small frozen dataclass that holds only its options and implements
``select(ctx) -> Selection``; the work happens in small pure functions over tensors whose
names carry their axes (``probs_T_N_K``: T stochastic passes, N points, K classes), in the
style of batchbald_redux and baal. Strategies are looked up by name::

    from dean_nb import strategies
    strategy = strategies.get("dean", beta_kind="exp", beta_scale=0.25)
    selection = strategy.select(ctx)        # ctx: AcquisitionContext
    selection.indices                       # (budget,) int64 indices into ctx.x_pool

The six strategies of the paper's experiments (section 5):

- ``random``: ``budget`` points uniformly without replacement.
- ``entropy``: top-``budget`` predictive entropy of one deterministic pass (Wang & Shang 2014).
- ``bald``: top-``budget`` BALD (eq. 2) from MC-dropout passes (Gal et al. 2017).
- ``coreset``: k-center greedy on penultimate features with the labelled set as the initial
  centres (Sener & Savarese 2018; the 2-OPT greedy the paper uses).
- ``batchbald``: greedy maximisation of the joint mutual information between the batch's labels
  and the weights (Kirsch et al. 2019), exact over label configurations while they are few,
  estimated from sampled configurations beyond.
- ``dean``: the paper's method (Algorithm 1): BALD importance scores, clustering under the
  square-root Jensen-Shannon distance, and the annealed Gibbs sampler of eq. 3/4 with inverse
  temperature ``beta = f(sigma)`` set by the model uncertainty ``sigma``.

Returned indices are int64 tensors on the CPU (they index host-side pool bookkeeping); scores
are float tensors of shape ``(P,)`` on the CPU, or ``None`` where a strategy has none.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from . import annealing, scoring
from .runtime import make_generator
from .validation import check_float_range, check_int_range, check_ndim

__all__ = [
    "AcquisitionContext",
    "BALDStrategy",
    "BatchBALDStrategy",
    "CoresetStrategy",
    "DeAnStrategy",
    "EntropyStrategy",
    "RandomStrategy",
    "Selection",
    "Strategy",
    "available",
    "batchbald_indices",
    "exact_log_config_probs",
    "get",
    "joint_entropies_with_candidates",
    "joint_entropy_exact",
    "joint_entropy_sampled",
    "k_center_greedy",
    "min_squared_distances",
    "random_indices",
    "register",
    "sample_configurations",
    "sampled_log_config_probs",
    "select_from_pool",
    "top_k_indices",
]


# --------------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------------


@dataclass
class AcquisitionContext:
    """Everything a strategy may look at in one acquisition step.

    Attributes:
        model: the current classifier (a :class:`dean_nb.models.MCDropoutNet` or any module
            with ``forward`` giving logits and, for ``coreset``, ``features``).
        x_pool: ``(P, C, H, W)`` unlabelled pool inputs the batch is chosen from.
        budget: batch size ``b``, an integer in ``[1, P]``.
        generator: source of every random draw (``None``: a fresh, non-deterministic one).
        device: where the strategy does its own tensor arithmetic (``None``: the model's
            device). Forward passes always run on the model's device.
        x_labelled: ``(L, C, H, W)`` inputs of the labelled training set (``coreset``'s initial
            centres); ``None`` or empty means no labelled points yet.
        x_validation: ``(V, C, H, W)`` fixed validation inputs for the model uncertainty
            ``sigma`` (``dean`` needs it unless ``sigma`` is given).
        n_mc_samples: number ``T`` of MC-dropout passes (paper: 100).
        batch_size: forward-pass batch size (``None``: the scoring module's default).
        sigma: a precomputed model uncertainty in ``[0, 1]``; ``dean`` computes it when ``None``.
    """

    model: nn.Module
    x_pool: torch.Tensor
    budget: int
    generator: torch.Generator | None = None
    device: torch.device | str | None = None
    x_labelled: torch.Tensor | None = None
    x_validation: torch.Tensor | None = None
    n_mc_samples: int = 100
    batch_size: int | None = None
    sigma: float | None = None


@dataclass
class Selection:
    """What a strategy chose.

    Attributes:
        indices: ``(budget,)`` int64 distinct indices into ``ctx.x_pool``, on the CPU, in the
            order the strategy picked them.
        scores: ``(P,)`` per-point scores the strategy ranked or weighted by (entropy, BALD,
            distance to the labelled set), on the CPU; ``NaN`` for points that were not scored
            (outside a pool subset, see :func:`select_from_pool`); ``None`` if there are none.
        sigma: the model uncertainty used (``dean`` only).
        beta: the inverse temperature used (``dean`` only).
    """

    indices: torch.Tensor
    scores: torch.Tensor | None = None
    sigma: float | None = None
    beta: float | None = None


@runtime_checkable
class Strategy(Protocol):
    """An acquisition strategy: a ``name`` and ``select(ctx) -> Selection``."""

    name: str

    def select(self, ctx: AcquisitionContext) -> Selection:
        """Choose ``ctx.budget`` distinct pool points."""
        ...


_REGISTRY: dict[str, type] = {}
_StrategyClass = TypeVar("_StrategyClass", bound=type)


def register(cls: _StrategyClass) -> _StrategyClass:
    """Class decorator adding a strategy class to the registry under its ``name`` attribute.

    The class is instantiated by :func:`get` with the keyword options it was asked for.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute `name: str` to register")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a strategy named {name!r} is already registered ({_REGISTRY[name]})")
    _REGISTRY[name] = cls
    return cls


def available() -> tuple[str, ...]:
    """Names of the registered strategies, in registration order."""
    return tuple(_REGISTRY)


def get(name: str, **options: Any) -> Strategy:
    """The strategy registered as ``name``, built with ``options`` (see each class for them).

    Raises:
        ValueError: unknown ``name`` (the message lists the available names).
        TypeError: an option the strategy does not take (the message lists the ones it does).
    """
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(available())}")
    cls = _REGISTRY[key]
    if dataclasses.is_dataclass(cls):
        allowed = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(
                f"strategy {key!r} got unknown option(s) {', '.join(unknown)}; "
                f"its options are: {', '.join(allowed) or '(none)'}"
            )
    return cls(**options)


# --------------------------------------------------------------------------------------------
# Shared checks and helpers
# --------------------------------------------------------------------------------------------


def check_budget(budget: int, pool_size: int) -> int:
    """``budget`` must be an integer in ``[1, pool_size]``; the error names both."""
    if isinstance(budget, bool) or not isinstance(budget, int):
        budget = check_int_range("budget", budget, 1)
    if budget < 1 or budget > pool_size:
        raise ValueError(
            f"budget must lie in [1, pool size = {pool_size}], got budget = {budget} "
            f"for a pool of {pool_size} points"
        )
    return budget


def _check_context(ctx: AcquisitionContext) -> tuple[int, int]:
    """Validate the fields every strategy uses; returns ``(pool_size, budget)``."""
    if not isinstance(ctx.x_pool, torch.Tensor) or ctx.x_pool.ndim < 2:
        shape = tuple(ctx.x_pool.shape) if isinstance(ctx.x_pool, torch.Tensor) else None
        raise ValueError(f"x_pool must be a tensor of shape (P, C, H, W), got shape {shape}")
    pool_size = int(ctx.x_pool.shape[0])
    budget = check_budget(ctx.budget, pool_size)
    return pool_size, budget


def _generator(ctx: AcquisitionContext) -> torch.Generator:
    return ctx.generator if ctx.generator is not None else make_generator(None)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _compute_device(ctx: AcquisitionContext) -> torch.device:
    return torch.device(ctx.device) if ctx.device is not None else _model_device(ctx.model)


def _mc_probs(ctx: AcquisitionContext, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``(T, N, K)`` MC-dropout probabilities with ``T = ctx.n_mc_samples``."""
    n_samples = check_int_range("n_mc_samples", ctx.n_mc_samples, 1)
    return scoring.mc_dropout_probs(
        ctx.model, x, n_samples, batch_size=ctx.batch_size, generator=generator
    )


def random_indices(pool_size: int, budget: int, generator: torch.Generator) -> torch.Tensor:
    """``(budget,)`` indices drawn uniformly without replacement from ``range(pool_size)``."""
    budget = check_budget(budget, pool_size)
    perm = torch.randperm(pool_size, generator=generator, device=generator.device)
    return perm[:budget].cpu()


def top_k_indices(scores_N: torch.Tensor, budget: int) -> torch.Tensor:
    """``(budget,)`` indices of the largest scores, highest first; ties go to the lower index.

    A stable descending sort makes the result independent of the backend's ``topk`` tie order.
    """
    check_ndim("scores_N", scores_N, 1, "(N,)")
    budget = check_budget(budget, int(scores_N.shape[0]))
    if not torch.isfinite(scores_N).all():
        raise ValueError("scores_N contains NaN or inf; scores must be finite")
    order = torch.sort(scores_N.detach().cpu(), descending=True, stable=True).indices
    return order[:budget]


# --------------------------------------------------------------------------------------------
# random, entropy, bald
# --------------------------------------------------------------------------------------------


@register
@dataclass(frozen=True)
class RandomStrategy:
    """Uniform sampling without replacement from the pool (the paper's "Random")."""

    name: ClassVar[str] = "random"

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = _check_context(ctx)
        return Selection(indices=random_indices(pool_size, budget, _generator(ctx)))


@register
@dataclass(frozen=True)
class EntropyStrategy:
    """Top-``budget`` Shannon entropy ``H(p(y|x))`` of one deterministic (eval-mode) pass."""

    name: ClassVar[str] = "entropy"

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = _check_context(ctx)
        probs_N_K = scoring.predict_probs(ctx.model, ctx.x_pool, batch_size=ctx.batch_size)
        scores_N = scoring.predictive_entropy(probs_N_K).detach().cpu()
        return Selection(indices=top_k_indices(scores_N, budget), scores=scores_N)


@register
@dataclass(frozen=True)
class BALDStrategy:
    """Top-``budget`` BALD (eq. 2) from ``ctx.n_mc_samples`` MC-dropout passes."""

    name: ClassVar[str] = "bald"

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = _check_context(ctx)
        probs_T_N_K = _mc_probs(ctx, ctx.x_pool, _generator(ctx))
        scores_N = scoring.bald(probs_T_N_K).detach().cpu()
        return Selection(indices=top_k_indices(scores_N, budget), scores=scores_N)


# --------------------------------------------------------------------------------------------
# coreset: k-center greedy (Sener & Savarese 2018)
# --------------------------------------------------------------------------------------------


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
    """``(N, F)`` ``model.features(x)`` in eval mode (dropout off), on the model's device.

    The model's train/eval mode is restored afterwards.
    """
    if not hasattr(model, "features"):
        raise TypeError(f"coreset needs model.features(x); {type(model).__name__} has none")
    device = _model_device(model)
    size = int(x.shape[0])
    step = size if batch_size is None else check_int_range("batch_size", batch_size, 1)
    step = max(step, 1)
    was_training = model.training
    model.eval()
    try:
        parts = [model.features(x[i : i + step].to(device)) for i in range(0, size, step)]
    finally:
        model.train(was_training)
    if not parts:
        return torch.empty(0, 0, device=device)
    return torch.cat(parts).flatten(start_dim=1)


@register
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
        _, budget = _check_context(ctx)
        device = _compute_device(ctx)
        pool_N_F = penultimate_features(ctx.model, ctx.x_pool, ctx.batch_size)
        pool_N_F = pool_N_F.to(device=device, dtype=torch.float64)
        centres_M_F = None
        scores_N = None
        if ctx.x_labelled is not None and ctx.x_labelled.shape[0] > 0:
            centres_M_F = penultimate_features(ctx.model, ctx.x_labelled, ctx.batch_size)
            centres_M_F = centres_M_F.to(device=device, dtype=torch.float64)
            scores_N = min_squared_distances(pool_N_F, centres_M_F, self.chunk_size)
            scores_N = scores_N.sqrt().float().cpu()
        indices = k_center_greedy(pool_N_F, budget, centres_M_F, self.chunk_size)
        return Selection(indices=indices, scores=scores_N)


# --------------------------------------------------------------------------------------------
# batchbald (Kirsch, van Amersfoort & Gal 2019)
# --------------------------------------------------------------------------------------------
#
# For a batch y_1..y_n of labels and T weight samples w_t (MC-dropout passes),
#   a_BatchBALD = H(y_1..y_n) - sum_i E_w H(y_i | w).
# The second (conditional) term is a sum of per-point terms and is exact. The joint entropy
# needs p(y_1..y_n) = mean_t prod_i p_t(y_i) for every configuration: K^n of them. We keep the
# per-pass log-probabilities of the configurations of the current batch, ``log_config_T_C``,
# and score every candidate j by enumerating its K labels on top:
#   p(c, k) = mean_t exp(log_config_T_C[t, c]) p_t(j, k).
# Exact: H = -sum_c sum_k p(c, k) log p(c, k) over all K^(n-1) configurations c.
# Sampled: configurations c_1..c_M are drawn from the batch's joint q(c) = mean_t prod p_t, and
#   H ~= -(1/M) sum_m sum_k p(c_m, k) / q(c_m) log p(c_m, k)   (importance weights p/q).
# To avoid underflow of long products, every configuration is rescaled by its largest
# per-pass probability, s_c = max_t, which cancels in p/q and is added back inside the log.


def exact_log_config_probs(probs_T_B_K: torch.Tensor) -> torch.Tensor:
    """``(T, K^B)`` log ``prod_i p_t(y_i)`` for every configuration ``(y_1..y_B)``.

    Configurations are ordered lexicographically (the first point varies slowest). ``B = 0``
    gives the single empty configuration, ``(T, 1)`` zeros. Float64.
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    log_p_T_B_K = probs_T_B_K.to(torch.float64).log()
    n_passes = probs_T_B_K.shape[0]
    log_config_T_C = torch.zeros(n_passes, 1, dtype=torch.float64, device=probs_T_B_K.device)
    for i in range(probs_T_B_K.shape[1]):
        log_config_T_C = (log_config_T_C[:, :, None] + log_p_T_B_K[:, i, None, :]).reshape(
            n_passes, -1
        )
    return log_config_T_C


def sample_configurations(
    probs_T_B_K: torch.Tensor, n_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """``(M, B)`` label configurations drawn from the joint ``mean_t prod_i p_t(y_i)``.

    For each sample a pass ``t`` is drawn uniformly, then every ``y_i ~ p_t(y_i)``
    independently (the joint is a uniform mixture over passes of product distributions).
    Uniforms come from ``generator`` on its own device, so a CPU generator serves CUDA inputs.
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    n_samples = check_int_range("n_samples", n_samples, 1)
    n_passes, n_points, n_classes = probs_T_B_K.shape
    device = probs_T_B_K.device
    t_M = torch.randint(n_passes, (n_samples,), generator=generator, device=generator.device)
    u_M_B = torch.rand(
        n_samples, n_points, generator=generator, device=generator.device, dtype=torch.float64
    )
    cdf_M_B_K = probs_T_B_K.to(torch.float64)[t_M.to(device)].cumsum(dim=-1)
    # inverse-CDF draw; the clamp guards against cumulative sums a hair below 1
    configs_M_B = torch.searchsorted(cdf_M_B_K, u_M_B.to(device)[..., None], right=True)
    return configs_M_B.squeeze(-1).clamp_max(n_classes - 1)


def sampled_log_config_probs(probs_T_B_K: torch.Tensor, configs_M_B: torch.Tensor) -> torch.Tensor:
    """``(T, M)`` log ``prod_i p_t(y_i)`` for the given configurations ``(M, B)``. Float64."""
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    check_ndim("configs_M_B", configs_M_B, 2, "(M, B)")
    log_p_T_B_K = probs_T_B_K.to(torch.float64).log()
    n_passes = probs_T_B_K.shape[0]
    index_T_B_M = configs_M_B.T.to(probs_T_B_K.device)[None].expand(n_passes, -1, -1)
    return torch.gather(log_p_T_B_K, 2, index_T_B_M).sum(dim=1)


def joint_entropies_with_candidates(
    log_config_T_C: torch.Tensor,
    probs_T_N_K: torch.Tensor,
    *,
    sampled: bool,
    max_elements: int = 2**24,
) -> torch.Tensor:
    """``(N,)`` joint entropy ``H(y_batch, y_j)`` for every candidate ``j``, in nats, float64.

    Args:
        log_config_T_C: per-pass log-probabilities of the batch's configurations, from
            :func:`exact_log_config_probs` (``sampled=False``: all ``K^B`` configurations) or
            :func:`sampled_log_config_probs` (``sampled=True``: ``M`` configurations drawn
            from the batch's joint by :func:`sample_configurations`).
        probs_T_N_K: candidates' per-pass class probabilities.
        max_elements: bound on the ``(n, C, K)`` block held at once (candidates are chunked).
    """
    check_ndim("log_config_T_C", log_config_T_C, 2, "(T, C)")
    check_ndim("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)")
    if log_config_T_C.shape[0] != probs_T_N_K.shape[0]:
        raise ValueError(
            f"log_config_T_C and probs_T_N_K must share the pass axis T, got "
            f"{log_config_T_C.shape[0]} and {probs_T_N_K.shape[0]}"
        )
    n_passes, n_configs = log_config_T_C.shape
    _, n_cand, n_classes = probs_T_N_K.shape
    log_config_T_C = log_config_T_C.to(torch.float64)
    probs_T_N_K = probs_T_N_K.to(device=log_config_T_C.device, dtype=torch.float64)

    # rescale each configuration by its largest per-pass probability (s_c); impossible
    # configurations (all passes -inf) get weight 0 and never produce inf - inf
    s_C = log_config_T_C.max(dim=0).values
    possible_C = torch.isfinite(s_C)
    s_C = torch.where(possible_C, s_C, torch.zeros_like(s_C))
    w_T_C = torch.exp(log_config_T_C - s_C)
    w_T_C = torch.where(possible_C, w_T_C, torch.zeros_like(w_T_C))
    if sampled:
        q_C = w_T_C.mean(dim=0)  # q(c) / exp(s_c), >= 1/T for sampled configurations
        weight_C = torch.where(possible_C, 1.0 / (n_configs * q_C.clamp_min(1e-300)), 0.0)
    else:
        weight_C = torch.where(possible_C, torch.exp(s_C), torch.zeros_like(s_C))

    chunk = max(1, max_elements // max(1, n_configs * n_classes))
    out_N = torch.empty(n_cand, dtype=torch.float64, device=log_config_T_C.device)
    for start in range(0, n_cand, chunk):
        block_T_n_K = probs_T_N_K[:, start : start + chunk]
        # a_n_C_K = p(c, k) / exp(s_c) for every candidate n in the block
        a_n_C_K = torch.einsum("tc,tnk->nck", w_T_C, block_T_n_K) / n_passes
        # p log p = exp(s) * (a * s + a log a)
        plogp_n_C = (a_n_C_K * s_C[None, :, None] + torch.xlogy(a_n_C_K, a_n_C_K)).sum(dim=2)
        out_N[start : start + chunk] = -(plogp_n_C * weight_C).sum(dim=1)
    return out_N


def joint_entropy_exact(probs_T_B_K: torch.Tensor) -> torch.Tensor:
    """Exact joint entropy ``H(y_1..y_B)`` (nats, float64 scalar) of ``B >= 1`` points whose
    joint is ``mean_t prod_i p_t(y_i)``, by enumerating all ``K^B`` configurations.
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    if probs_T_B_K.shape[1] < 1:
        raise ValueError("probs_T_B_K must hold at least one point (B >= 1)")
    log_config_T_C = exact_log_config_probs(probs_T_B_K[:, :-1])
    return joint_entropies_with_candidates(log_config_T_C, probs_T_B_K[:, -1:], sampled=False)[0]


def joint_entropy_sampled(
    probs_T_B_K: torch.Tensor, n_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Monte-Carlo joint entropy ``H(y_1..y_B)`` (nats, float64 scalar): ``n_samples``
    configurations of the first ``B - 1`` points drawn from their joint, the last point's
    ``K`` labels enumerated (the estimator BatchBALD uses once ``K^B`` is too large).
    """
    check_ndim("probs_T_B_K", probs_T_B_K, 3, "(T, B, K)")
    if probs_T_B_K.shape[1] < 1:
        raise ValueError("probs_T_B_K must hold at least one point (B >= 1)")
    gen = make_generator(generator)
    batch_T_B_K = probs_T_B_K[:, :-1]
    configs_M_B = sample_configurations(batch_T_B_K, n_samples, gen)
    log_config_T_M = sampled_log_config_probs(batch_T_B_K, configs_M_B)
    return joint_entropies_with_candidates(log_config_T_M, probs_T_B_K[:, -1:], sampled=True)[0]


def conditional_entropies(probs_T_N_K: torch.Tensor) -> torch.Tensor:
    """``(N,)`` expected per-pass entropy ``E_w H(y | w) = mean_t H(p_t)`` in nats, float64."""
    check_ndim("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)")
    p = probs_T_N_K.to(torch.float64)
    return -torch.xlogy(p, p).sum(dim=2).mean(dim=0)


def batchbald_indices(
    probs_T_N_K: torch.Tensor,
    budget: int,
    *,
    max_exact_configurations: int = 1000,
    n_joint_samples: int = 1000,
    generator: torch.Generator | None = None,
    max_elements: int = 2**24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy BatchBALD (Kirsch et al. 2019, Alg. 1) over the ``N`` points of ``probs_T_N_K``.

    Step ``n`` adds the candidate maximising ``H(y_1..y_n) - sum_i E_w H(y_i | w)``. The joint
    entropy is exact while ``K^n <= max_exact_configurations``; beyond that ``n_joint_samples``
    configurations of the current batch are drawn (from ``generator``) at every step.

    Returns:
        ``(indices (budget,), gains (budget,))``: the picks in order, and each pick's BatchBALD
        value of the batch up to and including it (float64, nats).
    """
    check_ndim("probs_T_N_K", probs_T_N_K, 3, "(T, N, K)")
    n_points, n_classes = int(probs_T_N_K.shape[1]), int(probs_T_N_K.shape[2])
    budget = check_budget(budget, n_points)
    max_exact_configurations = check_int_range(
        "max_exact_configurations", max_exact_configurations, 1
    )
    n_joint_samples = check_int_range("n_joint_samples", n_joint_samples, 1)
    gen = make_generator(generator)
    device = probs_T_N_K.device

    cond_N = conditional_entropies(probs_T_N_K)
    taken_N = torch.zeros(n_points, dtype=torch.bool, device=device)
    chosen = torch.empty(budget, dtype=torch.long)
    values = torch.empty(budget, dtype=torch.float64)
    cond_batch = 0.0
    log_config_T_C: torch.Tensor | None = exact_log_config_probs(probs_T_N_K[:, :0])
    for step in range(budget):
        batch_T_B_K = probs_T_N_K[:, chosen[:step].to(device)]
        exact = log_config_T_C is not None and log_config_T_C.shape[1] * n_classes <= (
            max_exact_configurations
        )
        if exact:
            assert log_config_T_C is not None
            joint_N = joint_entropies_with_candidates(
                log_config_T_C, probs_T_N_K, sampled=False, max_elements=max_elements
            )
        else:
            log_config_T_C = None  # once sampled, stay sampled
            configs_M_B = sample_configurations(batch_T_B_K, n_joint_samples, gen)
            log_config_T_M = sampled_log_config_probs(batch_T_B_K, configs_M_B)
            joint_N = joint_entropies_with_candidates(
                log_config_T_M, probs_T_N_K, sampled=True, max_elements=max_elements
            )
        gain_N = (joint_N - cond_batch - cond_N).masked_fill(taken_N, -math.inf)
        pick = int(torch.argmax(gain_N))
        chosen[step] = pick
        values[step] = gain_N[pick].item()
        taken_N[pick] = True
        cond_batch += float(cond_N[pick])
        if log_config_T_C is not None:
            log_p_T_K = probs_T_N_K[:, pick].to(torch.float64).log()
            log_config_T_C = (log_config_T_C[:, :, None] + log_p_T_K[:, None, :]).reshape(
                probs_T_N_K.shape[0], -1
            )
    return chosen, values


@register
@dataclass(frozen=True)
class BatchBALDStrategy:
    """BatchBALD (Kirsch et al. 2019): greedy joint mutual information over MC-dropout passes.

    Options:
        max_exact_configurations: exact joint entropy while ``K^n`` stays at or below this.
        n_joint_samples: sampled configurations ``M`` once it does not.
        candidates_per_pick: only the top ``candidates_per_pick * budget`` BALD points are
            candidates (at most the pool); ``None`` makes the whole pool a candidate.

    ``Selection.scores`` are the BALD scores of the whole pool.
    """

    name: ClassVar[str] = "batchbald"
    max_exact_configurations: int = 1000
    n_joint_samples: int = 1000
    candidates_per_pick: int | None = 10

    def __post_init__(self) -> None:
        check_int_range("max_exact_configurations", self.max_exact_configurations, 1)
        check_int_range("n_joint_samples", self.n_joint_samples, 1)
        if self.candidates_per_pick is not None:
            check_int_range("candidates_per_pick", self.candidates_per_pick, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = _check_context(ctx)
        gen = _generator(ctx)
        device = _compute_device(ctx)
        probs_T_N_K = _mc_probs(ctx, ctx.x_pool, gen).to(device)
        scores_N = scoring.bald(probs_T_N_K).detach().cpu()
        if self.candidates_per_pick is None:
            candidates = torch.arange(pool_size)
        else:
            n_cand = min(pool_size, self.candidates_per_pick * budget)
            candidates = top_k_indices(scores_N, n_cand)
        picks, _ = batchbald_indices(
            probs_T_N_K[:, candidates.to(device)],
            budget,
            max_exact_configurations=self.max_exact_configurations,
            n_joint_samples=self.n_joint_samples,
            generator=gen,
        )
        return Selection(indices=candidates[picks], scores=scores_N)


# --------------------------------------------------------------------------------------------
# dean (the paper's Algorithm 1)
# --------------------------------------------------------------------------------------------


@register
@dataclass(frozen=True)
class DeAnStrategy:
    """DeAn (Algorithm 1; eq. 2-4): BALD importance, sqrt-JS clustering, annealed Gibbs draws.

    Steps: ``T = ctx.n_mc_samples`` MC-dropout passes on the pool give BALD scores ``rho`` and
    mean probabilities; ``sigma`` (``ctx.sigma``, or the mean variation ratio of ``T`` passes
    on ``ctx.x_validation``) gives ``beta = f(sigma)``; the pool is clustered into
    ``n_clusters`` groups and the batch drawn by :func:`dean_nb.annealing.annealed_batch`.

    Options:
        beta_kind: ``f`` in ``beta = f(sigma)``: ``"exp"`` (MNIST, CIFAR10, SVHN), ``"pow4"``
            (EMNIST, CIFAR100) or ``"log"``.
        beta_scale: the scale ``l > 0`` of ``f`` (paper: 1/4).
        n_clusters: number of clusters ``N``; ``None`` gives ``min(floor(5 b), P)`` (paper text).
        linkage: agglomerative linkage (the authors' code: ``"single"``).
    """

    name: ClassVar[str] = "dean"
    beta_kind: str = "exp"
    beta_scale: float = 0.25
    n_clusters: int | None = None
    linkage: str = "single"

    def __post_init__(self) -> None:
        if self.beta_kind not in annealing.BETA_KINDS:
            raise ValueError(
                f"beta_kind must be one of {', '.join(annealing.BETA_KINDS)}; "
                f"got {self.beta_kind!r}"
            )
        check_float_range(
            "beta_scale", self.beta_scale, 0.0, math.inf, low_inclusive=False, high_inclusive=False
        )
        if self.linkage not in annealing.LINKAGES:
            raise ValueError(
                f"linkage must be one of {', '.join(annealing.LINKAGES)}; got {self.linkage!r}"
            )
        if self.n_clusters is not None:
            check_int_range("n_clusters", self.n_clusters, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = _check_context(ctx)
        gen = _generator(ctx)
        device = _compute_device(ctx)
        probs_T_N_K = _mc_probs(ctx, ctx.x_pool, gen).to(device)
        scores_N = scoring.bald(probs_T_N_K)
        mean_probs_N_K = probs_T_N_K.mean(dim=0)
        sigma = self._sigma(ctx, gen)
        beta = float(annealing.beta_from_uncertainty(sigma, self.beta_kind, self.beta_scale))
        n_clusters = self.n_clusters if self.n_clusters is not None else min(5 * budget, pool_size)
        if n_clusters > pool_size:
            raise ValueError(
                f"n_clusters must lie in [1, pool size = {pool_size}], got {n_clusters}"
            )
        indices = annealing.annealed_batch(
            mean_probs_N_K, scores_N, budget, beta, n_clusters, generator=gen, linkage=self.linkage
        )
        return Selection(
            indices=indices.detach().to(device="cpu", dtype=torch.long),
            scores=scores_N.detach().cpu(),
            sigma=sigma,
            beta=beta,
        )

    @staticmethod
    def _sigma(ctx: AcquisitionContext, generator: torch.Generator) -> float:
        if ctx.sigma is not None:
            return check_float_range("sigma", ctx.sigma, 0.0, 1.0)
        if ctx.x_validation is None or ctx.x_validation.shape[0] == 0:
            raise ValueError(
                "dean needs ctx.x_validation (a non-empty validation set) to compute the model "
                "uncertainty sigma, or a precomputed ctx.sigma in [0, 1]"
            )
        n_samples = check_int_range("n_mc_samples", ctx.n_mc_samples, 1)
        return float(
            scoring.model_uncertainty(
                ctx.model,
                ctx.x_validation,
                n_samples,
                batch_size=ctx.batch_size,
                generator=generator,
            )
        )


# --------------------------------------------------------------------------------------------
# Optional pool subsetting (Algorithm 1, step 1)
# --------------------------------------------------------------------------------------------


def select_from_pool(
    strategy: Strategy | str,
    ctx: AcquisitionContext,
    pool_subset: int | None = None,
) -> Selection:
    """Run ``strategy`` on the pool, optionally on a uniform random subset of it.

    Subsetting is optional (the paper scores random subsets of 10k-30k points for speed; this
    package aims to need none). With ``pool_subset = S < P``, ``S`` pool points are drawn
    uniformly without replacement from ``ctx.generator`` (kept in increasing pool order), the
    strategy runs on them alone, and its indices are mapped back to indices into the full
    ``ctx.x_pool``. ``Selection.scores`` is then ``(P,)`` with ``NaN`` for the points outside
    the subset. ``pool_subset = None`` or ``S >= P`` runs on the whole pool.

    ``strategy`` may be a name (looked up with default options).
    """
    if isinstance(strategy, str):
        strategy = get(strategy)
    pool_size, budget = _check_context(ctx)
    if pool_subset is not None and (
        isinstance(pool_subset, bool) or not isinstance(pool_subset, int)
    ):
        pool_subset = check_int_range("pool_subset", pool_subset, budget)  # refuses bools
    if pool_subset is None or pool_subset >= pool_size:
        return strategy.select(ctx)
    if pool_subset < budget:
        raise ValueError(
            f"pool_subset must lie in [budget = {budget}, pool size = {pool_size}] "
            f"(or be None), got {pool_subset}"
        )
    gen = _generator(ctx)
    subset_S = torch.randperm(pool_size, generator=gen, device=gen.device)[:pool_subset]
    subset_S = subset_S.cpu().sort().values
    sub_ctx = dataclasses.replace(
        ctx, x_pool=ctx.x_pool[subset_S.to(ctx.x_pool.device)], generator=gen
    )
    selection = strategy.select(sub_ctx)
    scores = None
    if selection.scores is not None:
        scores = torch.full((pool_size,), math.nan, dtype=selection.scores.dtype)
        scores[subset_S] = selection.scores.cpu()
    return dataclasses.replace(selection, indices=subset_S[selection.indices.cpu()], scores=scores)
