"""Deterministic annealing: the DeAn batch sampler (paper Algorithm 1, eq. 3 and 4).

Chapter "Deterministic annealing" of the book. One acquisition step, given the mean
predictive distributions ``mean_probs`` (N, K) of the pool and an importance score per point
(BALD, eq. 2):

1. distances, clusters and median-score centroids under ``d = sqrt(JS)``: in
   :mod:`dean_nb.strategies.clustering` (:func:`js_distance`, :func:`minimum_spanning_tree`,
   :func:`single_linkage`, :func:`cluster_points`, :func:`median_centroids`), whose public
   names this module re-exports, so ``js_distance`` and the like keep working; for pools
   above 100,000 points, single linkage on the kNN graph (:mod:`dean_nb.strategies.knn_linkage`);
2. the inverse temperature ``beta = f(sigma)`` from the model uncertainty ``sigma``
   (:func:`beta_from_uncertainty`, one of :data:`BETA_KINDS`);
3. for each of the ``budget`` picks: a centroid ``c`` drawn with ``p(c) ∝ score_c`` (with
   replacement), then ``zeta`` drawn from the whole remaining pool with
   ``p(zeta = s) ∝ exp(-beta d(c, s))`` (eq. 3) and removed; marginally over ``c`` this is
   eq. 4 (:func:`sample_annealed`, :func:`pick_distribution`);
4. the whole step: :func:`annealed_selection` (with its clusters and centroids) and
   :func:`annealed_batch` (the indices alone), ``n_clusters`` defaulting to
   :func:`default_n_clusters` (``5 b``) where a caller leaves it open.

Everything is a pure function over tensors: inputs are never modified, every draw goes through
a ``torch.Generator``, sampling happens in log space (``beta`` reaches 1e9 and more in
practice, and ``beta = inf`` is handled exactly). Public functions validate their arguments
once; the private helpers they call trust them. Shapes are in the names: ``N`` pool points,
``K`` classes, ``C`` centroids, ``B`` picks (the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from dean_nb.runtime import GeneratorLike, make_generator
from dean_nb.strategies import scoring
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    check_context,
    compute_device,
    context_generator,
    pool_mc_probs,
)
from dean_nb.strategies.clustering import (
    DistanceRows,
    check_linkage,
    check_n_clusters,
    check_pool,
    js_distance,
    median_centroids,
)
from dean_nb.strategies.knn_linkage import (
    DEFAULT_N_NEIGHBORS,
    check_clustering,
    check_n_neighbors,
    cluster_pool,
)
from dean_nb.validation import check_budget, check_float_range, check_int_range, check_ndim

__all__ = [
    "BETA_KINDS",
    "CLUSTERS_PER_PICK",
    "PAPER_COLD_START_BETA",
    "AnnealedSelection",
    "annealed_batch",
    "annealed_selection",
    "beta_from_uncertainty",
    "beta_scale_for",
    "check_beta_kind",
    "check_beta_scale",
    "default_n_clusters",
    "pick_distribution",
    "sample_annealed",
]

#: The functions ``f`` of ``beta = f(sigma)`` (:func:`beta_from_uncertainty`).
BETA_KINDS: tuple[str, ...] = ("exp", "pow4", "log")
#: Clusters per batch pick when ``n_clusters`` is left open: ``N = floor(5 b)`` (paper text).
CLUSTERS_PER_PICK = 5
#: Most distance values the sampler keeps cached (rows d(c, .) of drawn centroids).
_ROW_CACHE_ELEMENTS = 1 << 24

# exp(x) overflows a float64 just above this.
_MAX_EXP_ARG = math.log(np.finfo(np.float64).max)


# --------------------------------------------------------------------------------------------
# Checks and defaults (one definition each; the config and the strategy use them too)
# --------------------------------------------------------------------------------------------


def check_beta_kind(kind: str, name: str = "beta_kind") -> str:
    """``kind`` must be one of :data:`BETA_KINDS`."""
    if kind not in BETA_KINDS:
        raise ValueError(f"{name} must be one of {', '.join(BETA_KINDS)}; got {kind!r}")
    return kind


def check_beta_scale(scale: float, name: str = "beta_scale") -> float:
    """The scale ``l`` of ``f`` must be a positive, finite real: ``(0, inf)``."""
    return check_float_range(name, scale, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


def _check_beta(beta: float) -> float:
    return check_float_range("beta", beta, 0.0, math.inf)


def _check_scores(scores: torch.Tensor, n: int, name: str = "scores") -> torch.Tensor:
    check_ndim(name, scores, 1, "(N,)")
    if scores.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError(f"{name} contains NaN or inf; scores must be finite and >= 0")
    if (scores < 0).any():
        raise ValueError(f"{name} contains negative entries; scores must be finite and >= 0")
    return scores


def default_n_clusters(budget: int, pool_size: int | None = None) -> int:
    """The number of clusters when none is given: ``CLUSTERS_PER_PICK * budget`` (paper
    text: ``N = floor(5 b)``), at most ``pool_size`` when that is given."""
    n_clusters = CLUSTERS_PER_PICK * budget
    return n_clusters if pool_size is None else min(n_clusters, pool_size)


# --------------------------------------------------------------------------------------------
# Inverse temperature (step 6)
# --------------------------------------------------------------------------------------------


def beta_from_uncertainty(sigma: float, kind: str = "exp", scale: float = 0.25) -> float:
    """The inverse temperature ``beta = f(sigma)`` of deterministic annealing (section 4.1).

    ``f`` maps the model uncertainty ``sigma`` in [0, 1] (mean variation ratio) to
    ``[0, inf]`` and grows without bound as ``sigma -> 0``:

    - ``"exp"``: ``scale * (e^(1/sigma) - 1)`` (MNIST, CIFAR10, SVHN in the authors' runs);
    - ``"pow4"``: ``scale * (4^(1/sigma) - 1)`` (EMNIST, CIFAR100);
    - ``"log"``: ``-scale * ln(sigma)`` (0 at ``sigma = 1``).

    ``sigma = 0`` gives ``inf`` (the sampler then returns the centroids themselves); a tiny
    ``sigma`` may overflow to ``inf`` as well, silently.

    Args:
        sigma: model uncertainty in [0, 1].
        kind: one of :data:`BETA_KINDS`.
        scale: positive finite multiplier (the authors use 1/4).

    Returns:
        ``beta`` as a Python float in ``[0, inf]``.
    """
    check_beta_kind(kind, "kind")
    sigma = check_float_range("sigma", sigma, 0.0, 1.0)
    scale = check_beta_scale(scale, "scale")
    if sigma == 0.0:
        return math.inf
    if kind == "log":
        return scale * -math.log(sigma) + 0.0  # + 0.0 turns -0.0 into 0.0 at sigma = 1
    exponent = (1.0 if kind == "exp" else math.log(4.0)) / sigma
    if exponent >= _MAX_EXP_ARG:
        return math.inf
    return scale * math.expm1(exponent)


#: The paper's cold-start inverse temperature on MNIST: ``sigma_0`` about 0.25 with the
#: ``exp`` map at scale 1/4 gives ``(e^4 - 1) / 4``, about 13.4 (chapter 6).
PAPER_COLD_START_BETA = 0.25 * math.expm1(4.0)


def beta_scale_for(
    sigma_0: float, beta_0: float = PAPER_COLD_START_BETA, kind: str = "exp"
) -> float:
    """The ``beta_scale`` that makes the first model's ``beta = f(sigma_0)`` equal ``beta_0``.

    The paper's scale 1/4 was set on image nets whose cold-start sigma is about 0.25 (the
    book's digits CNN with channel dropout: median 0.31 over 5 seeds at 4 labels per class).
    On other data the first model can be far surer: a two-layer dropout MLP at 4 labels per
    class gave median sigma_0 of 0.026-0.063 (dropout 0.25) and 0.063-0.122 (dropout 0.5) on
    scikit-learn's breast-cancer, wine and iris tables (``benchmarks/sigma_new_data.py``),
    where scale 1/4 gives ``beta_0`` from about 900 to 1e16: a sampler that returns the
    centroids from the first batch on. The rule: measure sigma_0 once, on the first model and
    a fixed validation set, then take ``beta_scale_for(sigma_0)``, so that DeAn starts at the
    paper's temperature (``beta_0`` about 13) and cools as sigma falls, through the same map.
    :class:`DeAnStrategy`'s option ``beta_0`` applies this rule to every run's own first model.

    Args:
        sigma_0: the first model's uncertainty, in (0, 1].
        beta_0: the inverse temperature wanted at ``sigma_0`` (default: the paper's).
        kind: the map ``f`` (:data:`BETA_KINDS`); ``"log"`` needs ``sigma_0 < 1``.
    """
    check_beta_kind(kind, "kind")
    sigma_0 = check_float_range("sigma_0", sigma_0, 0.0, 1.0, low_inclusive=False)
    beta_0 = check_float_range("beta_0", beta_0, 0.0, math.inf, low_inclusive=False)
    unit = beta_from_uncertainty(sigma_0, kind, 1.0)
    if not 0.0 < unit < math.inf:
        raise ValueError(f"sigma_0 = {sigma_0} gives f(sigma_0) = {unit} with kind={kind!r}")
    return beta_0 / unit


# --------------------------------------------------------------------------------------------
# The Gibbs sampler (step 7, eq. 3 and 4)
# --------------------------------------------------------------------------------------------


def _centroid_probabilities(weights_C: torch.Tensor) -> torch.Tensor:
    """``p(c) ∝ weight_c`` in float64; all-zero weights give the uniform distribution."""
    w_C = weights_C.detach().to(torch.float64)
    top = w_C.max()
    if top <= 0:
        return torch.full_like(w_C, 1.0 / w_C.numel())
    w_C = w_C / top  # avoids overflow of the sum for huge scores
    return w_C / w_C.sum()


def _pick(
    row_N: torch.Tensor,
    c: int,
    beta: float,
    taken_N: torch.Tensor,
    generator: torch.Generator,
) -> int:
    """One draw of eq. 3 given the centroid ``c``: ``p(s) ∝ exp(-beta d(c, s))`` over the
    points not yet taken (``taken_N``).

    Exact and in log space: the log-weights ``-beta d(c, s)`` (``-inf`` where taken) are
    normalised with a softmax (max subtracted first, so ``beta = 1e12`` is fine) and one index
    drawn with ``torch.multinomial``. ``beta = inf`` is not a limit of that computation
    (``inf * 0``): it takes the nearest available point, ``c`` itself when available, then the
    smallest index.
    """
    if math.isinf(beta):
        if not bool(taken_N[c]):
            return c
        return int(torch.argmin(row_N.masked_fill(taken_N, math.inf)))
    if beta == 0.0:
        weights_N = (~taken_N).to(torch.float64)
    else:
        weights_N = torch.softmax((row_N * -beta).masked_fill_(taken_N, -math.inf), dim=0)
    weights_N = weights_N.to(generator.device)
    return int(torch.multinomial(weights_N, 1, generator=generator))


def sample_annealed(
    mean_probs: torch.Tensor,
    centroids: torch.Tensor,
    centroid_weights: torch.Tensor,
    budget: int,
    beta: float,
    generator: GeneratorLike = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gibbs batch sampler of eq. 3, given the centroids (Algorithm 1, lines 5-8).

    For each of the ``budget`` picks: draw a centroid ``c`` with ``p(c) ∝ centroid_weights``
    (with replacement; all-zero weights mean uniform), then draw ``zeta`` from the whole
    remaining pool with ``p(zeta = s) ∝ exp(-beta d(c, s))`` and remove it. ``beta = 0`` is
    uniform sampling without replacement; ``beta = inf`` returns the nearest remaining point to
    ``c`` (``c`` itself while available). Only the rows ``d(c, .)`` of centroids actually drawn
    are computed, once each.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        centroids: (C,) int64 indices into the pool.
        centroid_weights: (C,) finite non-negative weights (the centroids' scores).
        budget: batch size b, in [1, N].
        beta: inverse temperature in [0, inf].
        generator: seed or ``torch.Generator``; same seed, same batch.

    Returns:
        ``(indices, drawn)``: (budget,) int64 distinct pool indices in pick order, and the
        (budget,) int64 pool index of the centroid drawn for each pick, on ``mean_probs``'
        device.
    """
    check_pool(mean_probs)
    n_points = mean_probs.shape[0]
    check_ndim("centroids", centroids, 1, "(C,)")
    if centroids.numel() == 0:
        raise ValueError("centroids must hold at least one index")
    if centroids.dtype.is_floating_point or centroids.dtype == torch.bool:
        raise TypeError(f"centroids must be an integer tensor, got dtype {centroids.dtype}")
    if bool((centroids < 0).any()) or bool((centroids >= n_points).any()):
        raise ValueError(f"centroids must be indices in [0, {n_points - 1}]")
    _check_scores(centroid_weights, centroids.numel(), "centroid_weights")
    budget = check_budget(budget, n_points)
    beta = _check_beta(beta)
    return _sample_annealed(mean_probs, centroids, centroid_weights, budget, beta, generator)


def _sample_annealed(
    mean_probs_N_K: torch.Tensor,
    centroids_C: torch.Tensor,
    weights_C: torch.Tensor,
    budget: int,
    beta: float,
    generator: GeneratorLike,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_annealed` of checked arguments: ``(indices_B, drawn_B)``."""
    n_points = mean_probs_N_K.shape[0]
    device = mean_probs_N_K.device
    gen = make_generator(generator, device)

    p_centroid_C = _centroid_probabilities(weights_C).to(gen.device)
    which_B = torch.multinomial(p_centroid_C, budget, replacement=True, generator=gen)
    drawn_B = centroids_C.detach().cpu()[which_B.cpu()].to(torch.int64)

    drawn = drawn_B.tolist()
    rows = DistanceRows(mean_probs_N_K, [] if beta == 0.0 else drawn, _ROW_CACHE_ELEMENTS)
    taken_N = torch.zeros(n_points, dtype=torch.bool, device=device)
    picks: list[int] = []
    zeros_N = torch.zeros(n_points, dtype=torch.float64, device=device)
    for c in drawn:
        row_N = zeros_N if beta == 0.0 else rows(c)
        s = _pick(row_N, c, beta, taken_N, gen)
        taken_N[s] = True
        picks.append(s)
    indices_B = torch.tensor(picks, dtype=torch.int64, device=device)
    return indices_B, drawn_B.to(device)


def pick_distribution(
    mean_probs: torch.Tensor,
    centroids: torch.Tensor,
    centroid_weights: torch.Tensor,
    beta: float,
    taken: torch.Tensor | None = None,
) -> torch.Tensor:
    """The exact distribution of the next pick, eq. 4.

    ``p(zeta = s) = sum_c p(c) exp(-beta d(c, s)) / sum_{s' in P'} exp(-beta d(c, s'))`` over
    the points ``P'`` not yet taken, with ``p(c) ∝ centroid_weights`` (uniform when they are
    all zero); ``beta = inf`` puts each centroid's mass on its nearest available point
    (itself when available, then the smallest index), as the sampler does. Dense in
    (C, N): meant for figures and checks on small pools.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        centroids: (C,) int64 pool indices.
        centroid_weights: (C,) finite non-negative weights.
        beta: inverse temperature in [0, inf].
        taken: optional (N,) bool mask of points already picked (not all of them).

    Returns:
        (N,) float64 probabilities summing to 1, zero on taken points.
    """
    check_pool(mean_probs)
    n_points = mean_probs.shape[0]
    check_ndim("centroids", centroids, 1, "(C,)")
    _check_scores(centroid_weights, centroids.numel(), "centroid_weights")
    beta = _check_beta(beta)
    device = mean_probs.device
    if taken is None:
        taken = torch.zeros(n_points, dtype=torch.bool, device=device)
    check_ndim("taken", taken, 1, "(N,)")
    if taken.shape[0] != n_points or taken.dtype != torch.bool or bool(taken.all()):
        raise ValueError(f"taken must be an (N,) = ({n_points},) bool mask leaving some point free")
    taken_N = taken.to(device)
    centroids_C = centroids.to(device)
    n_centroids = centroids_C.numel()
    mean_probs_N_K = mean_probs.detach()
    distances_C_N = js_distance(mean_probs_N_K[centroids_C], mean_probs_N_K).to(torch.float64)
    distances_C_N[torch.arange(n_centroids, device=device), centroids_C] = 0.0
    if math.isinf(beta):
        nearest_C = torch.argmin(distances_C_N.masked_fill(taken_N, math.inf), dim=1)
        nearest_C = torch.where(taken_N[centroids_C], nearest_C, centroids_C)
        per_centroid_C_N = torch.zeros_like(distances_C_N)
        per_centroid_C_N[torch.arange(n_centroids, device=device), nearest_C] = 1.0
    else:
        logits_C_N = (distances_C_N * -beta).masked_fill_(taken_N, -math.inf)
        per_centroid_C_N = torch.softmax(logits_C_N, dim=1)
    p_centroid_C = _centroid_probabilities(centroid_weights).to(device)
    return p_centroid_C @ per_centroid_C_N


# --------------------------------------------------------------------------------------------
# One DeAn acquisition (Algorithm 1, lines 3-8)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnealedSelection:
    """One DeAn acquisition (Algorithm 1, lines 3-8), with what the book's figures show.

    Attributes:
        indices: (budget,) int64 distinct pool indices, in pick order.
        centroids: (C,) int64 pool index of each cluster's median-score centroid.
        labels: (N,) int64 cluster label of every pool point.
        drawn_centroids: (budget,) int64 pool index of the centroid drawn for each pick.
        beta: the inverse temperature used.
    """

    indices: torch.Tensor
    centroids: torch.Tensor
    labels: torch.Tensor
    drawn_centroids: torch.Tensor
    beta: float


def annealed_selection(
    mean_probs: torch.Tensor,
    scores: torch.Tensor,
    budget: int,
    beta: float,
    n_clusters: int,
    generator: GeneratorLike = None,
    linkage: str = "single",
    clustering: str = "auto",
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
) -> AnnealedSelection:
    """One DeAn batch (Algorithm 1, lines 3-8; eq. 3 and 4) with its clusters and centroids.

    Clusters the pool under ``d = sqrt(JS)`` (:func:`cluster_pool`), takes each cluster's
    median-score member as its centroid (:func:`median_centroids`) and runs the Gibbs sampler
    (:func:`sample_annealed`) with ``p(c) ∝ score_c``. The arguments are checked once, here.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool (rows on the simplex).
        scores: (N,) finite importance scores >= 0 (BALD, eq. 2).
        budget: batch size b, in [1, N].
        beta: inverse temperature in [0, inf] (see :func:`beta_from_uncertainty`).
        n_clusters: number of clusters, in [1, N] (:func:`default_n_clusters` gives the
            paper's ``5 b``).
        generator: seed or ``torch.Generator``; same seed, same batch.
        linkage: one of :data:`LINKAGES` (the authors use ``"single"``).
        clustering: ``"exact"``, ``"knn"`` (single linkage on the kNN graph) or ``"auto"``
            (exact up to ``knn_linkage.MAX_EXACT_POOL`` points); see :func:`cluster_pool`.
        n_neighbors: neighbours per point of the kNN graph, >= 1 (capped at N - 1).

    Returns:
        An :class:`AnnealedSelection` (tensors on ``mean_probs``' device).
    """
    check_pool(mean_probs)
    n_points = mean_probs.shape[0]
    _check_scores(scores, n_points)
    budget = check_budget(budget, n_points)
    n_clusters = check_n_clusters(n_clusters, n_points)
    beta = _check_beta(beta)
    check_linkage(linkage)
    check_clustering(clustering, linkage)
    n_neighbors = check_n_neighbors(n_neighbors)
    labels_N = cluster_pool(mean_probs, n_clusters, linkage, clustering, n_neighbors)
    centroids_C = median_centroids(labels_N, scores.to(labels_N.device))
    weights_C = scores.detach().to(centroids_C.device)[centroids_C]
    indices_B, drawn_B = _sample_annealed(
        mean_probs, centroids_C, weights_C, budget, beta, generator
    )
    return AnnealedSelection(
        indices=indices_B,
        centroids=centroids_C,
        labels=labels_N,
        drawn_centroids=drawn_B,
        beta=beta,
    )


def annealed_batch(
    mean_probs: torch.Tensor,
    scores: torch.Tensor,
    budget: int,
    beta: float,
    n_clusters: int,
    generator: GeneratorLike = None,
    linkage: str = "single",
    clustering: str = "auto",
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
) -> torch.Tensor:
    """The DeAn batch: ``budget`` distinct pool indices (Algorithm 1, lines 3-8; eq. 3/4).

    Same arguments as :func:`annealed_selection`; returns only its ``indices``, a (budget,)
    int64 tensor on ``mean_probs``' device.
    """
    return annealed_selection(
        mean_probs, scores, budget, beta, n_clusters, generator, linkage, clustering, n_neighbors
    ).indices


@dataclass(frozen=True)
class DeAnStrategy:
    """DeAn (Algorithm 1; eq. 2-4): BALD importance, sqrt-JS clustering, annealed Gibbs draws.

    Steps: ``T = ctx.n_mc_samples`` MC-dropout passes on the pool give BALD scores ``rho`` and
    mean probabilities; ``sigma`` (``ctx.sigma``, or the mean variation ratio of ``T`` passes
    on ``ctx.x_validation``) gives ``beta = f(sigma)``; the pool is clustered into
    ``n_clusters`` groups and the batch drawn by :func:`dean_nb.strategies.annealing.annealed_batch`.

    Options:
        beta_kind: ``f`` in ``beta = f(sigma)``: ``"exp"`` (MNIST, CIFAR10, SVHN), ``"pow4"``
            (EMNIST, CIFAR100) or ``"log"``.
        beta_scale: the scale ``l > 0`` of ``f`` (paper: 1/4).
        n_clusters: number of clusters; ``None`` gives ``min(5 b, P)`` (paper text; the rule
            is :func:`dean_nb.strategies.annealing.default_n_clusters`).
        linkage: agglomerative linkage (the authors' code: ``"single"``).
        clustering: ``"auto"`` (exact single linkage up to 100,000 pool points, the kNN graph
            above), ``"exact"`` or ``"knn"`` (:func:`dean_nb.strategies.knn_linkage.cluster_pool`).
        n_neighbors: neighbours per point of the kNN graph, >= 1.
        beta: ``None`` (the paper): ``beta = f(sigma)`` at each step. A number in ``[0, inf]``:
            that inverse temperature at every step (annealing off; ``beta_kind`` and
            ``beta_scale`` unused, ``sigma`` not computed for the draw). ``0`` draws uniformly,
            ``inf`` takes the drawn centroids; JSON configs write ``inf`` as ``"inf"``.
        beta_0: ``None`` (the paper): the scale is ``beta_scale``. A number ``> 0``: the scale
            is set so that the run's first model gets this ``beta``
            (:func:`beta_scale_for` of ``ctx.sigma_0``, or of this step's sigma when it is
            ``None``), and later steps cool from there through the same map: the rule for
            data unlike the paper's (``PAPER_COLD_START_BETA`` is the paper's start).
            ``beta_scale`` is then unused; excludes a fixed ``beta``.
    """

    name: ClassVar[str] = "dean"
    beta_kind: str = "exp"
    beta_scale: float = 0.25
    n_clusters: int | None = None
    linkage: str = "single"
    beta: float | None = None
    beta_0: float | None = None
    clustering: str = "auto"
    n_neighbors: int = DEFAULT_N_NEIGHBORS

    def __post_init__(self) -> None:
        check_beta_kind(self.beta_kind)
        check_beta_scale(self.beta_scale)
        check_linkage(self.linkage)
        check_clustering(self.clustering, self.linkage)
        object.__setattr__(self, "n_neighbors", check_n_neighbors(self.n_neighbors))
        if self.n_clusters is not None:
            check_int_range("n_clusters", self.n_clusters, 1)
        if self.beta is not None:
            object.__setattr__(self, "beta", check_float_range("beta", self.beta, 0.0, math.inf))
        if self.beta_0 is not None:
            if self.beta is not None:
                raise ValueError("beta_0 (the start of the annealing) excludes a fixed beta")
            finite = dict(low_inclusive=False, high_inclusive=False)
            object.__setattr__(
                self, "beta_0", check_float_range("beta_0", self.beta_0, 0.0, math.inf, **finite)
            )

    def select(self, ctx: AcquisitionContext) -> Selection:
        pool_size, budget = check_context(ctx)
        gen = context_generator(ctx)
        device = compute_device(ctx)
        probs_T_N_K = pool_mc_probs(ctx, gen).to(device)
        scores_N = scoring.bald(probs_T_N_K)
        mean_probs_N_K = probs_T_N_K.mean(dim=0)
        if self.beta is None:
            sigma = self._sigma(ctx, gen)
            beta = float(beta_from_uncertainty(sigma, self.beta_kind, self._scale(ctx, sigma)))
        else:  # annealing off: sigma is reported when given, never computed
            sigma = None if ctx.sigma is None else check_float_range("sigma", ctx.sigma, 0.0, 1.0)
            beta = self.beta
        n_clusters = self.n_clusters
        if n_clusters is None:
            n_clusters = default_n_clusters(budget, pool_size)
        clusters = {"linkage": self.linkage, "clustering": self.clustering}
        clusters["n_neighbors"] = self.n_neighbors
        indices = annealed_batch(
            mean_probs_N_K, scores_N, budget, beta, n_clusters, generator=gen, **clusters
        )
        return Selection(
            indices=indices.detach().to(device="cpu", dtype=torch.long),
            scores=scores_N.detach().cpu(),
            sigma=sigma,
            beta=beta,
        )

    def _scale(self, ctx: AcquisitionContext, sigma: float) -> float:
        """``beta_scale``, or the scale that gives the first model ``beta_0``."""
        if self.beta_0 is None:
            return self.beta_scale
        sigma_0 = sigma if ctx.sigma_0 is None else ctx.sigma_0
        if sigma_0 == 0.0:  # beta_scale_for checks the range; this says why 0 cannot work
            raise ValueError(
                "beta_0 needs the first model's sigma_0 > 0; it is 0 (its MC passes vote alike "
                "on every validation input): give beta_scale or a fixed beta instead"
            )
        return beta_scale_for(sigma_0, self.beta_0, self.beta_kind)

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
