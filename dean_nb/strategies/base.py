"""The strategy interface and registry: what every acquisition rule takes and returns.

Chapter "Baselines". :class:`AcquisitionContext` holds what a strategy may look at,
:class:`Selection` what it returns, :class:`Strategy` the protocol; :func:`register`,
:func:`get` and :func:`available` are the name registry (the rules are registered in
:mod:`dean_nb.strategies`); :func:`select_from_pool` restricts a step to a random pool subset
(the paper's step 1). Helpers shared by the rules: :func:`check_context`,
:func:`context_generator`, :func:`compute_device`, :func:`mc_probs`, :func:`top_k_indices`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from dean_nb.learner import mc_dropout
from dean_nb.learner.masks import dropout_modules
from dean_nb.runtime import make_generator
from dean_nb.validation import check_budget, check_int_range, check_ndim

__all__ = [
    "AcquisitionContext",
    "Selection",
    "Strategy",
    "available",
    "get",
    "pool_mc_probs",
    "pool_probs",
    "pool_subset_indices",
    "register",
    "select_from_pool",
    "top_k_indices",
]


@dataclass
class AcquisitionContext:
    """Everything a strategy may look at in one acquisition step.

    Attributes:
        model: the current classifier (a :class:`dean_nb.learner.models.MCDropoutNet` or any module
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
        sigma_0: the uncertainty of the run's first model (``dean``'s ``beta_0`` option sets
            its temperature scale from it); ``None``: this step's ``sigma``.
        probs_T_N_K: precomputed MC-dropout samples of the pool (consistent masks for
            ``batchbald``); strategies use them instead of running ``model``.
        probs_N_K: precomputed deterministic predictions of the pool (``entropy``, ``badge``).
        features_N_F, features_labelled_M_F: precomputed penultimate features of the pool and
            of the labelled set (``coreset``, ``badge``).
        x_relabel: ``(R, C, H, W)`` labelled images the oracle may be asked about again (the
            loop offers every acquired image; the clean initial set is not offered);
            ``None`` or empty: nothing may be re-labelled.
        answers_R_A: ``(R, A)`` int64 answers given so far to ``x_relabel``, ``-1`` where an
            image has fewer than ``A`` (every image has at least one).
        labels_R: ``(R,)`` int64 labels the model trained on for ``x_relabel`` (the majority
            of each image's answers).
        probs_relabel_R_K: ``(R, K)`` predictions of ``x_relabel`` to use instead of the
            model's own (out-of-sample ones, by cross-validation); ``None``: the mean of the
            model's MC-dropout passes.

    With predictions given, ``model`` and ``x_pool`` may be ``None``
    (:func:`dean_nb.strategies.select.select_from_predictions`).
    """

    model: nn.Module | None
    x_pool: torch.Tensor | None
    budget: int
    generator: torch.Generator | None = None
    device: torch.device | str | None = None
    x_labelled: torch.Tensor | None = None
    x_validation: torch.Tensor | None = None
    n_mc_samples: int = 100
    batch_size: int | None = None
    sigma: float | None = None
    sigma_0: float | None = None
    probs_T_N_K: torch.Tensor | None = None
    probs_N_K: torch.Tensor | None = None
    features_N_F: torch.Tensor | None = None
    features_labelled_M_F: torch.Tensor | None = None
    x_relabel: torch.Tensor | None = None
    answers_R_A: torch.Tensor | None = None
    labels_R: torch.Tensor | None = None
    probs_relabel_R_K: torch.Tensor | None = None


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
        relabel: ``(r,)`` int64 distinct indices into ``ctx.x_relabel``: the labelled images
            to ask about again (re-labelling strategies only; ``None``: none). A step's
            budget counts answers, so ``indices`` then holds ``budget - r`` pool points.
    """

    indices: torch.Tensor
    scores: torch.Tensor | None = None
    sigma: float | None = None
    beta: float | None = None
    relabel: torch.Tensor | None = None


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


def check_context(ctx: AcquisitionContext) -> tuple[int, int]:
    """Validate the fields every strategy uses; returns ``(pool_size, budget)``.

    The pool size is ``x_pool``'s, or, without ``x_pool``, that of the predictions given.
    """
    if ctx.x_pool is None:
        given = [
            (t.shape[1] if name == "probs_T_N_K" else t.shape[0])
            for name in ("probs_T_N_K", "probs_N_K", "features_N_F")
            if isinstance(t := getattr(ctx, name), torch.Tensor) and t.ndim >= 2
        ]
        if not given:
            raise ValueError("x_pool is None and no predictions of the pool were given")
        return int(given[0]), check_budget(ctx.budget, int(given[0]))
    if not isinstance(ctx.x_pool, torch.Tensor) or ctx.x_pool.ndim < 2:
        shape = tuple(ctx.x_pool.shape) if isinstance(ctx.x_pool, torch.Tensor) else None
        raise ValueError(f"x_pool must be a tensor of shape (P, ...), got shape {shape}")
    pool_size = int(ctx.x_pool.shape[0])
    budget = check_budget(ctx.budget, pool_size)
    return pool_size, budget


def context_generator(ctx: AcquisitionContext) -> torch.Generator:
    return ctx.generator if ctx.generator is not None else make_generator(None)


def compute_device(ctx: AcquisitionContext) -> torch.device:
    if ctx.device is not None:
        return torch.device(ctx.device)
    if ctx.model is None:
        return torch.device("cpu")
    return mc_dropout.model_device(ctx.model)


def mc_probs(
    ctx: AcquisitionContext,
    x: torch.Tensor,
    generator: torch.Generator,
    masks: str = "independent",
) -> torch.Tensor:
    """``(T, N, K)`` MC-dropout probabilities with ``T = ctx.n_mc_samples`` (see
    :func:`dean_nb.learner.mc_dropout.mc_dropout_probs` for ``masks``).

    Refuses a model that cannot give MC-dropout samples: before any pass when it has no torch
    dropout module, after them when its passes are identical (dropout written as
    ``F.dropout(x, training=self.training)`` is off in the evaluation mode MC dropout runs
    the rest of the model in).
    """
    n_samples = check_int_range("n_mc_samples", ctx.n_mc_samples, 1)
    if not dropout_modules(ctx.model):
        raise ValueError(
            f"model ({type(ctx.model).__name__}) has no torch dropout module (nn.Dropout, "
            "nn.Dropout1d/2d/3d, nn.AlphaDropout): MC dropout switches those on, and functional "
            "F.dropout is not one; add nn.Dropout layers, or use a strategy without MC dropout "
            "(random, entropy, coreset, badge)"
        )
    probs_T_N_K = mc_dropout.mc_dropout_probs(
        ctx.model, x, n_samples, batch_size=ctx.batch_size, generator=generator, masks=masks
    )
    if (
        n_samples > 1
        and probs_T_N_K.numel()
        and torch.equal(probs_T_N_K.amax(0), probs_T_N_K.amin(0))
    ):
        raise ValueError(
            f"model ({type(ctx.model).__name__}) gave {n_samples} identical MC-dropout passes: "
            "its dropout does not act when dean_nb switches its dropout modules on (functional "
            "dropout, F.dropout(x, training=self.training), is off in eval mode); use "
            "nn.Dropout modules instead"
        )
    return probs_T_N_K


def pool_mc_probs(
    ctx: AcquisitionContext, generator: torch.Generator, masks: str = "independent"
) -> torch.Tensor:
    """The pool's ``(T, N, K)`` MC-dropout samples: ``ctx.probs_T_N_K`` when given (nothing
    is drawn), else :func:`mc_probs` of ``ctx.x_pool``."""
    if ctx.probs_T_N_K is not None:
        return ctx.probs_T_N_K
    return mc_probs(ctx, ctx.x_pool, generator, masks)


def pool_probs(ctx: AcquisitionContext) -> torch.Tensor:
    """The pool's deterministic ``(N, K)`` predictions: ``ctx.probs_N_K`` or one eval pass."""
    if ctx.probs_N_K is not None:
        return ctx.probs_N_K
    return mc_dropout.predict_probs(ctx.model, ctx.x_pool, batch_size=ctx.batch_size)


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
    pool_size, budget = check_context(ctx)
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
    gen = context_generator(ctx)
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
