"""How well a learned noisy channel ``W`` matches the oracle's true channel ``T``.

Chapter "DeAn and the stochastic baselines" (class-dependent noise). Both matrices are K x K
and column-stochastic with the orientation of :mod:`dean_nb.problem.oracle`: ``M[i, j] = p(answer i |
true class j)``. The denoising layer (:class:`dean_nb.learner.denoise.NoisyChannel`) learns ``W`` only
from noisy answers, so the question is whether its mistakes land where the oracle's do: under
pair-flip noise every flip of class ``j`` goes to ``j + 1 mod K``, and a ``W`` that found the
structure puts its off-diagonal mass there, not spread over the other ``K - 2`` classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from dean_nb.experiment.records import RunResult
from dean_nb.problem.noise import noise_label
from dean_nb.problem.oracle import check_channel

__all__ = ["ChannelFit", "channel_fit", "fit_table"]


@dataclass(frozen=True)
class ChannelFit:
    """What :func:`channel_fit` measures (every value in [0, 1]).

    Attributes:
        tv_distance: mean over true classes ``j`` of the total-variation distance between the
            columns ``W[:, j]`` and ``T[:, j]``.
        tv_identity: the same for ``W`` = identity, i.e. the flip rate of ``T`` (a ``W`` that
            learned nothing scores this).
        flip_share: of ``W``'s off-diagonal mass, the share on the entries where ``T`` has
            off-diagonal mass; ``(K - 1)^-1``-ish for mass spread evenly over the other classes
            under pair-flip noise, 1 for a ``W`` whose every mistake is one of ``T``'s.
        flip_share_uniform: ``flip_share`` of a ``W`` with its off-diagonal mass spread evenly
            (the chance level to beat).
        columns_matched: share of classes ``j`` whose largest off-diagonal entry of ``W[:, j]``
            is also the largest of ``T[:, j]`` (only columns where ``T`` has one largest
            off-diagonal entry count; ``nan`` if none does).
    """

    tv_distance: float
    tv_identity: float
    flip_share: float
    flip_share_uniform: float
    columns_matched: float


def channel_fit(learned: torch.Tensor, true: torch.Tensor, *, atol: float = 1e-6) -> ChannelFit:
    """Compare a learned channel ``learned`` (``W``, K x K) with the true one ``true`` (``T``).

    Both must be K x K, finite, non-negative and column-stochastic within ``atol``
    (``ValueError`` naming the argument otherwise). Where ``T`` flips no label (the identity:
    a noise-free run) there is no structure to find: ``flip_share``, ``flip_share_uniform``
    and ``columns_matched`` are NaN, and ``tv_distance`` is how far ``W`` strayed from it.
    Where ``T`` has off-diagonal mass on every entry (the symmetric channel of eq. 1) every
    ``W`` scores ``flip_share`` 1 at a chance level of 1: no information, so both are NaN.
    """
    w_K_K = _checked("learned", learned, atol)
    t_K_K = _checked("true", true, atol)
    if w_K_K.shape != t_K_K.shape:
        raise ValueError(
            f"learned and true must have one shape, got {tuple(w_K_K.shape)} and "
            f"{tuple(t_K_K.shape)}"
        )
    k = w_K_K.shape[0]
    off = ~torch.eye(k, dtype=torch.bool)
    t_off = t_K_K * off
    support = t_off > 0
    w_off = w_K_K * off
    eye = torch.eye(k, dtype=torch.float64)
    off_mass = float(w_off.sum())
    nan = float("nan")
    flips = bool(support.any())
    # where T flips to every other class (the symmetric channel), any W scores flip_share 1:
    # the measure carries no information there
    telling = flips and bool(support.sum() < off.sum())
    return ChannelFit(
        tv_distance=_mean_tv(w_K_K, t_K_K),
        tv_identity=_mean_tv(eye, t_K_K),
        flip_share=float(w_off[support].sum()) / off_mass if telling and off_mass > 0 else nan,
        flip_share_uniform=float(support.sum()) / float(off.sum()) if telling else nan,
        columns_matched=_columns_matched(w_off, t_off) if flips else nan,
    )


def _checked(name: str, matrix: torch.Tensor, atol: float) -> torch.Tensor:
    try:
        return check_channel(torch.as_tensor(matrix, dtype=torch.float64), atol=atol)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def _mean_tv(a_K_K: torch.Tensor, b_K_K: torch.Tensor) -> float:
    return float(0.5 * (a_K_K - b_K_K).abs().sum(dim=0).mean())


def _columns_matched(w_off: torch.Tensor, t_off: torch.Tensor) -> float:
    top_t = t_off.max(dim=0).values
    single = (t_off == top_t).sum(dim=0) == 1  # columns with one largest flip
    if not bool(single.any()):
        return float("nan")
    same = w_off.argmax(dim=0) == t_off.argmax(dim=0)
    return float(same[single].double().mean())


def fit_table(runs: Iterable[RunResult], *, every_step: bool = False):
    """:func:`channel_fit` of the last learned ``W`` of every run that learned one.

    Args:
        runs: run records (:class:`~dean_nb.experiment.records.RunResult`); those without a learned
            channel at their last step (no denoising layer) are left out.
        every_step: one row per step that holds a channel instead (the layer's ``W`` or forward
            correction's estimate), with its ``step`` and ``n_acquired`` (answers beyond the
            initial set): how the fit moves as the labels grow.

    Returns:
        A DataFrame, one row per such run (or step): ``method, noise, epsilon, seed`` (``noise``
        as :func:`dean_nb.problem.noise.noise_label` names it), with ``every_step`` then
        ``step, n_acquired``, and the fields of :class:`ChannelFit`.
    """
    import pandas as pd

    if not isinstance(every_step, bool):
        raise TypeError(f"every_step must be True or False, got {every_step!r}")
    rows = []
    for run in runs:
        if not run.steps or run.steps[-1].channel is None:
            continue
        head = {
            "method": run.config.method,
            "noise": noise_label(run.config.noise),
            "epsilon": run.config.epsilon,
            "seed": run.config.seed,
        }
        true = torch.tensor(run.true_channel)
        n0 = run.steps[0].n_labels
        for record in run.steps if every_step else run.steps[-1:]:
            if record.channel is None:
                continue
            where = {"step": record.step, "n_acquired": record.n_labels - n0} if every_step else {}
            fit = channel_fit(torch.tensor(record.channel), true)
            rows.append(head | where | dataclasses.asdict(fit))
    columns = [
        *("method", "noise", "epsilon", "seed"),
        *(("step", "n_acquired") if every_step else ()),
        *(f.name for f in dataclasses.fields(ChannelFit)),
    ]
    return pd.DataFrame(rows, columns=columns)
