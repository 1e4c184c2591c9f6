"""Strategies that may ask about a labelled image again: ``relabel-majority`` and ``activelab``.

Chapter "The paper's premises". The paper answers label noise with a layer, not with more
labels: its crowd experiment finds errors that a majority of five annotators keeps, so it
takes the noise to be *resolute*. Whether asking again pays depends on how often the oracle
repeats itself (``ExperimentConfig.oracle_memory``,
:class:`dean_nb.problem.oracle.RelabellingOracle`). These strategies spend a step's budget of
answers on new images or on more answers for acquired ones; the loop trains on the majority of
an image's answers. The loop offers them the acquired images (``ctx.x_relabel``), their
answers (``ctx.answers_R_A``) and their training labels (``ctx.labels_R``); the clean initial
set is never asked about again.

- ``relabel-majority``: ask again about the acquired images whose training label the model
  doubts most (the MC-dropout mean gives it less than ``1 - min_doubt``), at most ``share`` of
  the budget; the rest by BALD.
- ``activelab``: ActiveLab (Goh and Mueller 2023) through cleanlab itself
  (:func:`cleanlab.multiannotator.get_active_learning_scores`): one score for every acquired
  image (from its answers and the model's prediction) and every pool image (from the
  prediction alone), on one scale; the ``budget`` lowest are asked, new or again. The ``r``-th
  answer to an image is cleanlab's annotator column ``r`` (one oracle asked repeatedly).

Both score the acquired images' MC-dropout passes first and then the pool's, from
``ctx.generator``; the model's prediction is the mean of ``ctx.n_mc_samples`` passes. A model
that trained on an image has mostly learned its label, wrong or not, and ActiveLab assumes
out-of-sample predictions: ``ctx.probs_relabel_R_K`` gives those instead (the loop computes
them by cross-validation with ``ExperimentConfig.relabel_folds``).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from dean_nb.strategies import scoring
from dean_nb.strategies.base import (
    AcquisitionContext,
    Selection,
    check_context,
    context_generator,
    mc_probs,
    pool_mc_probs,
    top_k_indices,
)
from dean_nb.validation import check_float_range, check_probabilities

__all__ = [
    "ActiveLabStrategy",
    "RelabelMajorityStrategy",
    "check_relabel_context",
]


def check_relabel_context(ctx: AcquisitionContext) -> int:
    """``R``, the number of images ``ctx`` offers to ask about again (0 without
    ``x_relabel``), after checking ``answers_R_A (R, A)`` and ``labels_R (R,)`` against it.

    Raises ``ValueError`` naming the field, before any forward pass.
    """
    if ctx.x_relabel is None or ctx.x_relabel.shape[0] == 0:
        return 0
    n = int(ctx.x_relabel.shape[0])
    answers, labels = ctx.answers_R_A, ctx.labels_R
    if not isinstance(answers, torch.Tensor) or answers.ndim != 2 or answers.shape[0] != n:
        shape = tuple(answers.shape) if isinstance(answers, torch.Tensor) else None
        raise ValueError(f"answers_R_A must have shape ({n}, A) for {n} x_relabel, got {shape}")
    if answers.shape[1] < 1 or bool((answers[:, 0] < 0).any()):
        raise ValueError("answers_R_A must hold at least one answer (>= 0) per image")
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else None
        raise ValueError(f"labels_R must have shape ({n},), got {shape}")
    given = ctx.probs_relabel_R_K
    if given is not None:
        if not isinstance(given, torch.Tensor) or given.ndim != 2 or given.shape[0] != n:
            shape = tuple(given.shape) if isinstance(given, torch.Tensor) else None
            raise ValueError(f"probs_relabel_R_K must have shape ({n}, K), got {shape}")
        check_probabilities("probs_relabel_R_K", given)
    elif ctx.model is None:
        raise ValueError(
            "x_relabel needs ctx.model: the images offered for re-labelling are scored by "
            "MC-dropout passes of the model"
        )
    return n


def _relabel_mean_probs(ctx: AcquisitionContext, gen: torch.Generator) -> torch.Tensor:
    """``(R, K)`` float64 predictions of ``ctx.x_relabel``: ``ctx.probs_relabel_R_K`` when
    given (nothing is drawn), else the mean of the model's MC-dropout passes."""
    if ctx.probs_relabel_R_K is not None:
        return ctx.probs_relabel_R_K.to("cpu", torch.float64)
    return mc_probs(ctx, ctx.x_relabel, gen).mean(0).to("cpu", torch.float64)


@dataclass(frozen=True)
class RelabelMajorityStrategy:
    """Ask again about the acquired images whose training label the model doubts most; the
    rest of the budget by BALD (top-``budget - r`` of MC-dropout passes).

    Args:
        share: at most this share of the budget goes to re-labels (``floor(share * b)``
            images), in ``[0, 1]``.
        min_doubt: an image is re-labelled only when its doubt ``1 - p(label)`` (the
            MC-dropout mean's probability of its training label) exceeds this, in ``[0, 1)``:
            at 0.5, only images whose label the model gives less than one half.
    """

    name: ClassVar[str] = "relabel-majority"
    relabels: ClassVar[bool] = True
    share: float = 0.5
    min_doubt: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "share", check_float_range("share", self.share, 0.0, 1.0))
        doubt = check_float_range("min_doubt", self.min_doubt, 0.0, 1.0, high_inclusive=False)
        object.__setattr__(self, "min_doubt", doubt)

    def select(self, ctx: AcquisitionContext) -> Selection:
        _, budget = check_context(ctx)
        n_relabel = check_relabel_context(ctx)
        gen = context_generator(ctx)
        relabel = torch.empty(0, dtype=torch.int64)
        cap = math.floor(self.share * budget)
        if n_relabel and cap:
            probs_R_K = _relabel_mean_probs(ctx, gen)
            labels_R = ctx.labels_R.to("cpu", torch.int64)
            doubt_R = 1.0 - probs_R_K[torch.arange(n_relabel), labels_R]
            doubtful = int((doubt_R > self.min_doubt).sum())
            if doubtful:
                relabel = top_k_indices(doubt_R, min(cap, doubtful))
        rest = budget - relabel.numel()
        if not rest:
            return Selection(indices=torch.empty(0, dtype=torch.int64), relabel=relabel)
        scores_N = scoring.bald(pool_mc_probs(ctx, gen)).detach().cpu()
        return Selection(indices=top_k_indices(scores_N, rest), scores=scores_N, relabel=relabel)


@dataclass(frozen=True)
class ActiveLabStrategy:
    """ActiveLab (Goh and Mueller 2023) through cleanlab: the ``budget`` lowest active
    learning scores among the acquired images (asked again) and the pool (asked first).

    ``Selection.scores`` holds the pool's scores (lower: more informative); ties go to the
    lower index, acquired images before pool images.
    """

    name: ClassVar[str] = "activelab"
    relabels: ClassVar[bool] = True

    def select(self, ctx: AcquisitionContext) -> Selection:
        from cleanlab.multiannotator import get_active_learning_scores

        _, budget = check_context(ctx)
        n_relabel = check_relabel_context(ctx)
        gen = context_generator(ctx)
        labelled: dict[str, np.ndarray] = {}
        if n_relabel:
            answers = ctx.answers_R_A.to("cpu", torch.float64).numpy().copy()
            answers[answers < 0] = np.nan
            labelled = {
                "labels_multiannotator": answers,
                "pred_probs": _rows_on_simplex(_relabel_mean_probs(ctx, gen)),
            }
        pool_probs_N_K = pool_mc_probs(ctx, gen).mean(0).to("cpu", torch.float64)
        # cleanlab prints notes on its consensus (a class no acquired image was given, say)
        # with a verbosity this function does not expose; they would flood a grid's log
        with contextlib.redirect_stdout(io.StringIO()):
            scores_R, scores_N = get_active_learning_scores(
                **labelled, pred_probs_unlabeled=_rows_on_simplex(pool_probs_N_K)
            )
        scores_R = np.asarray(scores_R if n_relabel else [], dtype=np.float64)
        both = torch.from_numpy(np.concatenate([scores_R, np.asarray(scores_N, np.float64)]))
        if not torch.isfinite(both).all():
            raise ValueError("cleanlab returned a non-finite ActiveLab score")
        chosen = top_k_indices(-both, budget)  # the lowest; ties to the lower index
        return Selection(
            indices=chosen[chosen >= n_relabel] - n_relabel,
            scores=both[n_relabel:].to(torch.float32),
            relabel=chosen[chosen < n_relabel],
        )


def _rows_on_simplex(probs_N_K: torch.Tensor) -> np.ndarray:
    """float64 rows renormalised to sum to 1 (cleanlab checks its inputs to about 1e-5)."""
    probs = probs_N_K.clamp_min(0.0)
    return (probs / probs.sum(1, keepdim=True)).numpy()
