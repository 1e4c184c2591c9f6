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
  temperature ``beta = f(sigma)`` set by the model uncertainty ``sigma`` (or, with the option
  ``beta``, one fixed inverse temperature: annealing off).

And the stochastic batch baselines of Kirsch et al. 2023, a batch drawn without replacement in
proportion to a power or softmax of scores from MC-dropout passes (:mod:`dean_nb.stochastic`):

- ``power-bald``: ``p(i) ∝ BALD_i^beta``; ``softmax-bald``: ``p(i) ∝ exp(beta BALD_i)``;
- ``power-entropy``: ``p(i) ∝ H_i^beta`` with ``H_i`` the MC-dropout predictive entropy.

Beyond the paper's baselines:

- ``badge``: k-means++ seeding on last-layer gradient embeddings at the model's own labels
  (Ash et al. 2020), uncertain and diverse in one draw.

Returned indices are int64 tensors on the CPU (they index host-side pool bookkeeping); scores
are float tensors of shape ``(P,)`` on the CPU, or ``None`` where a strategy has none.

Layout: this module holds the interface (:class:`AcquisitionContext`, :class:`Selection`,
:class:`Strategy`), the registry (:func:`register`, :func:`get`, :func:`available`), the small
strategies (``random``, ``entropy``, ``bald``), pool subsetting (:func:`select_from_pool`) and
one thin registered class per larger algorithm; the algorithms themselves live in their own
modules: :mod:`dean_nb.coreset` (k-center greedy), :mod:`dean_nb.batchbald` (greedy joint
mutual information), :mod:`dean_nb.badge` (gradient embeddings, k-means++ seeding),
:mod:`dean_nb.annealing` with :mod:`dean_nb.clustering` (DeAn), and :mod:`dean_nb.stochastic`
(the stochastic baselines, registered there and imported at the end of this module).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from . import annealing, badge, batchbald, coreset, scoring
from .runtime import make_generator
from .validation import check_budget, check_float_range, check_int_range, check_ndim

__all__ = [
    "AcquisitionContext",
    "BALDStrategy",
    "BadgeStrategy",
    "BatchBALDStrategy",
    "CoresetStrategy",
    "DeAnStrategy",
    "EntropyStrategy",
    "RandomStrategy",
    "Selection",
    "Strategy",
    "available",
    "get",
    "pool_subset_indices",
    "random_indices",
    "register",
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
        sigma: the model uncertainty used (``dean`` only; ``None`` with a fixed ``beta`` and
            no ``ctx.sigma``, where none is needed).
        beta: the inverse temperature used (``dean`` only: ``f(sigma)`` or the fixed one).
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


def _compute_device(ctx: AcquisitionContext) -> torch.device:
    return torch.device(ctx.device) if ctx.device is not None else scoring.model_device(ctx.model)


def _mc_probs(
    ctx: AcquisitionContext,
    x: torch.Tensor,
    generator: torch.Generator,
    masks: str = "independent",
) -> torch.Tensor:
    """``(T, N, K)`` MC-dropout probabilities with ``T = ctx.n_mc_samples`` (see
    :func:`dean_nb.mc_dropout.mc_dropout_probs` for ``masks``)."""
    n_samples = check_int_range("n_mc_samples", ctx.n_mc_samples, 1)
    return scoring.mc_dropout_probs(
        ctx.model, x, n_samples, batch_size=ctx.batch_size, generator=generator, masks=masks
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
# coreset, batchbald, badge: the algorithms live in dean_nb.coreset, .batchbald, .badge
# --------------------------------------------------------------------------------------------


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
        pool_N_F = coreset.penultimate_features(ctx.model, ctx.x_pool, ctx.batch_size)
        pool_N_F = pool_N_F.to(device=device, dtype=torch.float64)
        centres_M_F = None
        scores_N = None
        if ctx.x_labelled is not None and ctx.x_labelled.shape[0] > 0:
            centres_M_F = coreset.penultimate_features(ctx.model, ctx.x_labelled, ctx.batch_size)
            centres_M_F = centres_M_F.to(device=device, dtype=torch.float64)
            scores_N = coreset.min_squared_distances(pool_N_F, centres_M_F, self.chunk_size)
            scores_N = scores_N.sqrt().float().cpu()
        indices = coreset.k_center_greedy(pool_N_F, budget, centres_M_F, self.chunk_size)
        return Selection(indices=indices, scores=scores_N)


@register
@dataclass(frozen=True)
class BatchBALDStrategy:
    """BatchBALD (Kirsch et al. 2019): greedy joint mutual information over MC-dropout passes.

    The passes use consistent masks (one sampled network per pass, shared by the whole pool,
    as batchbald_redux's ``ConsistentMCDropout``): with a fresh mask per image, two copies of
    an image would look like independent evidence and the joint information of a batch would
    collapse towards the sum of its BALD scores.

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
        # Consistent masks: pass t is one sampled network for the whole pool, which the joint
        # entropy of a batch assumes (Kirsch et al. 2019).
        probs_T_N_K = _mc_probs(ctx, ctx.x_pool, gen, masks="consistent").to(device)
        scores_N = scoring.bald(probs_T_N_K).detach().cpu()
        if self.candidates_per_pick is None:
            candidates = torch.arange(pool_size)
        else:
            n_cand = min(pool_size, self.candidates_per_pick * budget)
            candidates = top_k_indices(scores_N, n_cand)
        picks, _ = batchbald.batchbald_indices(
            probs_T_N_K[:, candidates.to(device)],
            budget,
            max_exact_configurations=self.max_exact_configurations,
            n_joint_samples=self.n_joint_samples,
            generator=gen,
        )
        return Selection(indices=candidates[picks], scores=scores_N)


@register
@dataclass(frozen=True)
class BadgeStrategy:
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

    Each pool point's embedding is the cross-entropy gradient w.r.t. the last layer's weights
    at its predicted label, from penultimate features and probabilities with dropout off
    (:func:`dean_nb.badge.gradient_embeddings`); the batch is k-means++ seeding on them
    (:func:`dean_nb.badge.kmeans_pp_indices`), drawn from ``ctx.generator``.

    Options:
        chunk_size: rows per block in the distance computation (memory knob only).

    ``Selection.scores`` are the embedding norms (the first pick is their maximum).
    """

    name: ClassVar[str] = "badge"
    chunk_size: int = 2048

    def __post_init__(self) -> None:
        check_int_range("chunk_size", self.chunk_size, 1)

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = _check_context(ctx)
        device = _compute_device(ctx)
        features_N_F = coreset.penultimate_features(ctx.model, ctx.x_pool, ctx.batch_size)
        probs_N_K = scoring.predict_probs(ctx.model, ctx.x_pool, batch_size=ctx.batch_size)
        embeddings_N_D = badge.gradient_embeddings(features_N_F.to(device), probs_N_K.to(device))
        indices = badge.kmeans_pp_indices(embeddings_N_D, budget, _generator(ctx), self.chunk_size)
        scores_N = embeddings_N_D.norm(dim=1).float().cpu()
        return Selection(indices=indices, scores=scores_N)


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
        n_clusters: number of clusters; ``None`` gives ``min(5 b, P)`` (paper text; the rule
            is :func:`dean_nb.annealing.default_n_clusters`).
        linkage: agglomerative linkage (the authors' code: ``"single"``).
        beta: ``None`` (the paper): ``beta = f(sigma)`` at each step. A number in ``[0, inf]``:
            that inverse temperature at every step (annealing off; ``beta_kind`` and
            ``beta_scale`` unused, ``sigma`` not computed for the draw). ``0`` draws uniformly,
            ``inf`` takes the drawn centroids; JSON configs write ``inf`` as ``"inf"``.
    """

    name: ClassVar[str] = "dean"
    beta_kind: str = "exp"
    beta_scale: float = 0.25
    n_clusters: int | None = None
    linkage: str = "single"
    beta: float | None = None

    def __post_init__(self) -> None:
        annealing.check_beta_kind(self.beta_kind)
        annealing.check_beta_scale(self.beta_scale)
        annealing.check_linkage(self.linkage)
        if self.n_clusters is not None:
            check_int_range("n_clusters", self.n_clusters, 1)
        if self.beta is not None:
            object.__setattr__(self, "beta", check_float_range("beta", self.beta, 0.0, math.inf))

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = _check_context(ctx)
        gen = _generator(ctx)
        device = _compute_device(ctx)
        probs_T_N_K = _mc_probs(ctx, ctx.x_pool, gen).to(device)
        scores_N = scoring.bald(probs_T_N_K)
        mean_probs_N_K = probs_T_N_K.mean(dim=0)
        if self.beta is None:
            sigma = self._sigma(ctx, gen)
            beta = float(annealing.beta_from_uncertainty(sigma, self.beta_kind, self.beta_scale))
        else:  # annealing off: sigma is reported when given, never computed
            sigma = None if ctx.sigma is None else check_float_range("sigma", ctx.sigma, 0.0, 1.0)
            beta = self.beta
        n_clusters = self.n_clusters
        if n_clusters is None:
            n_clusters = annealing.default_n_clusters(budget, pool_size)
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


def pool_subset_indices(
    pool_size: int, pool_subset: int | None, generator: torch.Generator
) -> torch.Tensor:
    """The uniform random pool subset of Algorithm 1, step 1: ``(S,)`` int64 CPU indices.

    ``S = min(pool_subset, pool_size)`` distinct indices into ``range(pool_size)``, in
    increasing order, drawn with one ``randperm`` from ``generator`` (the draw
    :func:`select_from_pool` makes). ``pool_subset = None`` or ``>= pool_size`` returns
    ``arange(pool_size)`` and draws nothing.
    """
    pool_size = check_int_range("pool_size", pool_size, 1)
    if pool_subset is None or pool_subset >= pool_size:
        return torch.arange(pool_size)
    pool_subset = check_int_range("pool_subset", pool_subset, 1)
    subset_S = torch.randperm(pool_size, generator=generator, device=generator.device)
    return subset_S[:pool_subset].cpu().sort().values


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
    subset_S = pool_subset_indices(pool_size, pool_subset, gen)
    sub_ctx = dataclasses.replace(
        ctx, x_pool=ctx.x_pool[subset_S.to(ctx.x_pool.device)], generator=gen
    )
    selection = strategy.select(sub_ctx)
    scores = None
    if selection.scores is not None:
        scores = torch.full((pool_size,), math.nan, dtype=selection.scores.dtype)
        scores[subset_S] = selection.scores.cpu()
    return dataclasses.replace(selection, indices=subset_S[selection.indices.cpu()], scores=scores)


# The stochastic baselines register themselves; imported last, once the interface exists.
from . import stochastic  # noqa: E402, F401
