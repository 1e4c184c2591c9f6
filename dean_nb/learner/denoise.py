"""The denoising layer: a learned noisy channel appended to the classifier (paper section 4.2,
Algorithm 2; chapter "Noisy oracles").

With a noisy oracle, the labels we train on are draws of ``y'`` rather than the true class
``y``. The paper appends a ``K x K`` layer ``W`` to the softmax output ``p = softmax(M(x))``:

    p'(x) = W p(x),        W[i, j] = p(y' = i | y = j),

and trains the composite model ``M*`` by the negative log-likelihood of the noisy labels under
``p'``. Every column of ``W`` must lie on the simplex (``W >= 0``, columns summing to 1), and
``W`` starts at the identity ("assume no noise", section 5.1). Scoring, batch selection and
evaluation use the detached base model ``M`` alone (Algorithm 2, steps 4-6).

With row vectors (``probs`` of shape ``(N, K)``), ``p' = W p`` reads ``probs @ W.T``; every
row of the result is a distribution when every row of ``probs`` is one and ``W`` is
column-stochastic.

Two parameterisations of ``W``:

* ``"projected"`` (the authors' variant, and the default): ``W`` is a free ``(K, K)``
  parameter initialised to the identity, trained by Adam with the model's learning rate and
  projected back onto the column-stochastic matrices after every step
  (:meth:`NoisyChannel.project_`: clamp at 0, renormalise columns).
* ``"softmax"``: ``W = softmax(A, dim=0)`` over free logits ``A``, so ``W`` can never leave
  the simplex; an exact identity would need infinite logits, so ``"identity"`` starts at a
  diagonal of ``init_diagonal`` (default 0.99) with the rest of each column spread evenly.
  Adam moves a logit by about ``lr`` per step, hence the larger default learning rate
  (:data:`DEFAULT_SOFTMAX_LR`). An optional trace penalty (:meth:`NoisyChannel.penalty`,
  Tanno et al. 2019) pushes ``W`` towards noisier channels.

What the two do differently (``benchmarks/denoise_study.py``: the book's digits network on
200 to 1297 digits, K-SC noise with epsilon in {0, 0.3}, 50 to 200 epochs, 2-3 seeds; and
Gaussian blobs with K = 20 and an MLP):

* Before the projection, the noisy-label likelihood grows with *every* entry of ``W``, so
  every entry's gradient is <= 0. Adam moves each entry by about ``lr`` per step whatever
  the gradient's size, and the projection turns that common growth into a drift away from
  the identity: the projected ``W`` settles much noisier than the true channel (mean
  diagonal 0.2-0.4 for epsilon = 0.3, whose true diagonal is 0.7; 0.6-0.8 on digits and
  0.3-0.4 with K = 20 even without noise). It is therefore no estimate of the oracle's
  channel. It is, however, a strong regulariser: a noisy ``W`` makes a wrong label cheap
  for ``p'`` without moving ``p``, so the base model stops memorising the flipped labels
  (the share of flipped training labels it predicts falls from ~100% to 10-40% after 150-200
  epochs). For epsilon = 0.3 its clean test accuracy gains +3.5 to +4.2 points after 50
  epochs and +7 to +10 after 150-200 epochs on digits (+10 to +12 on the K = 20 blobs);
  without noise it moves by at most 0.5 points (batch 32, as in training; with batch 64 and
  200 labels it lagged by 2.4 points after 50 epochs and caught up by 200). A warm-up of the base network (channel
  frozen for 10 epochs), a smaller channel learning rate (3e-4, 1e-4) or SGD for the channel
  all gained less, so the default is the authors' recipe as it stands: identity start, Adam
  at the model's learning rate, projection after every step.
* The softmax ``W`` trained by plain maximum likelihood tracks the noise the base model does
  not explain. A network that memorises its noisy labels explains them all, so ``W``
  returns to the identity and the layer changes little (within about 2 points). Fixing ``W``
  at the *true* channel helps less (+1.3 to +3.5) than fixing it at a noisier one (diagonal
  0.4: +2.8 to +7.4): what helps is the damping of wrong labels, not an accurate channel. A
  trace penalty of 0.1 helps on digits (K = 10: +0.4 to +8) but costs 19 to 23 points without
  noise on the K = 20 blobs (the penalty grows with K, the likelihood does not), so it is
  off by default.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from dean_nb.validation import check_float_range, check_int_range

Parameterisation = Literal["softmax", "projected"]
PARAMETERISATIONS: tuple[str, ...] = ("softmax", "projected")

#: Default diagonal of the softmax channel at ``init="identity"`` (``W ~ I``).
DEFAULT_INIT_DIAGONAL = 0.99

#: Default trace penalty (see :meth:`NoisyChannel.penalty`): off; see the module docstring.
DEFAULT_TRACE_WEIGHT = 0.0

#: Default Adam learning rate of the softmax channel's logits.
DEFAULT_SOFTMAX_LR = 1e-2

#: Smallest probability whose log enters the noisy-label likelihood (float32 ``tiny``): a
#: channel output of exactly 0 gives a large finite loss instead of ``inf``. The one
#: definition; :func:`dean_nb.learner.training.batch_loss` goes through :func:`noisy_log_probs`.
PROB_FLOOR = torch.finfo(torch.float32).tiny

#: Smallest entry of a starting channel turned into softmax logits: a zero entry starts at
#: logit ``log(1e-12)`` (about -27.6), negligible yet within reach of Adam's steps (a
#: different concept from :data:`PROB_FLOOR`, which only keeps a log finite).
INIT_ENTRY_FLOOR = 1e-12


def project_to_simplex_columns(matrix: torch.Tensor) -> torch.Tensor:
    """Project a ``(K, K)`` matrix onto column-stochastic matrices: clamp at 0, renormalise.

    This is the authors' projection (not the Euclidean one): negative entries become 0 and each
    column is divided by its sum. A column whose entries are all <= 0 (or non-finite) carries no
    information and becomes the matching identity column (``p(y' = j | y = j) = 1``).

    Returns a new tensor of the same shape and dtype.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must have shape (K, K), got {tuple(matrix.shape)}")
    k = matrix.shape[0]
    eye = torch.eye(k, dtype=matrix.dtype, device=matrix.device)
    clean = torch.where(torch.isfinite(matrix), matrix, torch.zeros_like(matrix)).clamp_min(0.0)
    sums = clean.sum(dim=0, keepdim=True)
    dead = sums <= 0
    clean = torch.where(dead, eye, clean)
    sums = torch.where(dead, torch.ones_like(sums), sums)
    return clean / sums


def _softmax_logits_for(matrix: torch.Tensor) -> torch.Tensor:
    """Logits ``A`` with ``softmax(A, dim=0) == matrix`` (zeros floored at ``INIT_ENTRY_FLOOR``)."""
    return torch.log(matrix.clamp_min(INIT_ENTRY_FLOOR))


def near_identity(num_classes: int, diagonal: float) -> torch.Tensor:
    """A ``(K, K)`` float64 column-stochastic matrix with ``diagonal`` on the diagonal and
    ``(1 - diagonal) / (K - 1)`` elsewhere (a K-ary symmetric channel with
    ``epsilon = 1 - diagonal``)."""
    k = check_int_range("num_classes", num_classes, 2)
    d = check_float_range("diagonal", diagonal, 0.0, 1.0)
    matrix = torch.full((k, k), (1.0 - d) / (k - 1), dtype=torch.float64)
    matrix.fill_diagonal_(d)
    return matrix


class NoisyChannel(nn.Module):
    """A learnable noisy channel ``W`` (``K x K``, column-stochastic): ``p' = W p``.

    Args:
        num_classes: K >= 2.
        parameterisation: ``"projected"`` (default: the authors' free matrix, kept on the
            simplex by :meth:`project_` after each optimiser step) or ``"softmax"``
            (``W = softmax(A, dim=0)``, always on the simplex). See the module docstring for
            how they behave and why the default is the authors'.
        init: ``"identity"`` (the paper's "no noise" start; for ``"softmax"`` a diagonal of
            ``init_diagonal``), or a ``(K, K)`` column-stochastic tensor to start from (e.g. an
            estimate of the channel).
        init_diagonal: diagonal of the softmax channel at ``init="identity"``, in ``(1/K, 1)``;
            ignored otherwise. Default :data:`DEFAULT_INIT_DIAGONAL`.
        trace_weight: weight of the trace penalty :meth:`penalty` (>= 0; ``None``:
            :data:`DEFAULT_TRACE_WEIGHT`, i.e. off).
        lr: the learning rate this channel asks :func:`dean_nb.learner.training.train_model` for
            (exposed as ``preferred_lr``; an explicit ``TrainConfig.channel_lr`` wins).
            ``None``: :data:`DEFAULT_SOFTMAX_LR` for ``"softmax"``; for ``"projected"`` no
            preference, so the model's learning rate (the authors' single Adam).

    Shapes: ``forward`` maps ``probs (N, K)`` to noisy-label probabilities ``(N, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        parameterisation: Parameterisation = "projected",
        init: str | torch.Tensor = "identity",
        *,
        init_diagonal: float = DEFAULT_INIT_DIAGONAL,
        trace_weight: float | None = None,
        lr: float | None = None,
    ) -> None:
        super().__init__()
        k = check_int_range("num_classes", num_classes, 2)
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(
                f"parameterisation must be one of {', '.join(PARAMETERISATIONS)}; "
                f"got {parameterisation!r}"
            )
        self.num_classes = k
        self.parameterisation: str = parameterisation
        softmax = parameterisation == "softmax"
        if trace_weight is None:
            trace_weight = DEFAULT_TRACE_WEIGHT
        self.trace_weight = check_float_range("trace_weight", trace_weight, 0.0, math.inf)
        if lr is None:
            lr = DEFAULT_SOFTMAX_LR if softmax else None
        elif not (isinstance(lr, int | float) and 0 < lr < math.inf):
            raise ValueError(f"lr must lie in (0, inf) or be None, got {lr!r}")
        self.preferred_lr: float | None = None if lr is None else float(lr)
        if isinstance(init, str):
            if init != "identity":
                raise ValueError(
                    f"init must be 'identity' or a (K, K) column-stochastic tensor; got {init!r}"
                )
            if parameterisation == "projected":
                start = torch.eye(k, dtype=torch.float64)
            else:
                d = check_float_range(
                    "init_diagonal",
                    init_diagonal,
                    1.0 / k,
                    1.0,
                    low_inclusive=False,
                    high_inclusive=False,
                )
                start = near_identity(k, d)
        else:
            from dean_nb.problem.oracle import check_channel

            start = check_channel(torch.as_tensor(init).detach().cpu())
            if start.shape != (k, k):
                raise ValueError(
                    f"init must have shape ({k}, {k}) for num_classes={k}, got {tuple(start.shape)}"
                )
        if parameterisation == "projected":
            self.weight = nn.Parameter(start.to(torch.float32).clone())
        else:
            self.logits = nn.Parameter(_softmax_logits_for(start).to(torch.float32))

    def transition(self) -> torch.Tensor:
        """The ``(K, K)`` channel used by :meth:`forward`, differentiable.

        For ``"projected"`` this is the raw parameter (on the simplex after :meth:`project_`).
        """
        if self.parameterisation == "projected":
            return self.weight
        return F.softmax(self.logits, dim=0)

    @property
    def matrix(self) -> torch.Tensor:
        """Detached ``(K, K)`` channel ``W[i, j] = p(y' = i | y = j)``; columns on the simplex."""
        with torch.no_grad():
            w = self.transition().detach()
            if self.parameterisation == "projected":
                w = project_to_simplex_columns(w)
            return w.clone()

    def penalty(self) -> torch.Tensor:
        """``trace_weight * trace(W)``, added to the training loss by
        :func:`dean_nb.learner.training.train_model` (a 0-dim tensor; exactly 0 when the weight is 0).

        Minimising the trace favours, among channels that explain the noisy labels equally
        well, the noisiest one, so the base model is pushed towards the clean labels (Tanno et
        al. 2019, "Learning from noisy labels by regularized estimation of annotator
        confusion").
        """
        if self.trace_weight == 0:
            return torch.zeros((), device=self.transition().device)
        return self.trace_weight * torch.diagonal(self.transition()).sum()

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Noisy-label probabilities ``probs @ W.T`` of shape ``(N, K)`` for ``probs (N, K)``."""
        if not isinstance(probs, torch.Tensor):
            raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
        if probs.ndim != 2 or probs.shape[1] != self.num_classes:
            raise ValueError(
                f"probs must have shape (N, {self.num_classes}), got {tuple(probs.shape)}"
            )
        w = self.transition()
        return probs @ w.to(probs.dtype).T

    @torch.no_grad()
    def project_(self) -> NoisyChannel:
        """Put ``W`` back on the simplex in place (``"projected"``); a no-op for ``"softmax"``.

        Called by :func:`dean_nb.learner.training.train_model` after every optimiser step.
        """
        if self.parameterisation == "projected":
            self.weight.copy_(project_to_simplex_columns(self.weight))
        return self

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, parameterisation={self.parameterisation!r}"


class ChannelModel(nn.Module):
    """``M*`` of Algorithm 2: the base model ``M`` followed by the noisy channel.

    ``forward(x)`` returns log noisy-label probabilities ``log(W softmax(M(x)))`` of shape
    ``(N, K)``, so ``F.nll_loss(M*(x), y_noisy)`` is the training loss of section 4.2.
    """

    def __init__(self, model: nn.Module, channel: NoisyChannel) -> None:
        super().__init__()
        self.model = model
        self.channel = channel
        self.num_classes = channel.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return noisy_log_probs(self.model(x), self.channel)


def noisy_log_probs(logits: torch.Tensor, channel: nn.Module) -> torch.Tensor:
    """``log(channel(softmax(logits)))`` for ``logits (N, K)``; finite everywhere.

    The channel's output is floored at :data:`PROB_FLOOR` before the log.
    """
    noisy = channel(F.softmax(logits, dim=-1))
    return torch.log(noisy.clamp_min(PROB_FLOOR))


def attach(model: nn.Module, channel: NoisyChannel | int | None = None) -> ChannelModel:
    """Append a noisy channel to ``model`` (Algorithm 2, step 4): returns ``M*``.

    ``channel``: a :class:`NoisyChannel`; or ``K``, the number of classes, for a fresh one
    with the default parameterisation (a model the package did not build has no
    ``num_classes``); or ``None`` for a fresh one with ``model.num_classes`` classes. The
    returned module shares ``model``'s parameters (no copy).
    """
    k = getattr(model, "num_classes", None)
    if channel is None:
        if k is None:
            raise ValueError(
                f"{type(model).__name__} has no num_classes attribute: pass the number of "
                "classes, attach(model, K), or a NoisyChannel"
            )
        channel = NoisyChannel(int(k))
    elif isinstance(channel, int) and not isinstance(channel, bool):
        channel = NoisyChannel(check_int_range("channel (the number of classes K)", channel, 2))
    if not isinstance(channel, NoisyChannel):
        raise TypeError(f"channel must be a NoisyChannel or K, got {type(channel).__name__}")
    if k is not None and int(k) != channel.num_classes:
        raise ValueError(
            f"channel.num_classes ({channel.num_classes}) must equal model.num_classes ({k})"
        )
    return ChannelModel(model, channel)


def detach(model_star: nn.Module, *, copy_model: bool = False) -> nn.Module:
    """The base model ``M`` of ``M* = attach(M, W)`` (Algorithm 2, step 6).

    Scoring, selection and evaluation use ``M`` alone. A model that has no channel attached
    passes through unchanged. ``copy_model=True`` returns a deep copy instead of the shared
    module.
    """
    base = model_star.model if isinstance(model_star, ChannelModel) else model_star
    return copy.deepcopy(base) if copy_model else base


def channel_distance(learned: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """How far a learned channel is from the true one (both ``(K, K)`` column-stochastic).

    Returns ``{"diag_gap": mean |diag(W) - diag(T)|, "frobenius": ||W - T||_F,
    "mean_diag": mean diag(W)}``.
    """
    w = torch.as_tensor(learned, dtype=torch.float64).cpu()
    t = torch.as_tensor(true, dtype=torch.float64).cpu()
    if w.shape != t.shape or w.ndim != 2:
        raise ValueError(
            f"learned and true must have the same (K, K) shape, got {tuple(w.shape)} "
            f"and {tuple(t.shape)}"
        )
    return {
        "diag_gap": float((w.diagonal() - t.diagonal()).abs().mean()),
        "frobenius": float(torch.linalg.matrix_norm(w - t)),
        "mean_diag": float(w.diagonal().mean()),
    }


def trust_weight(p_label, diagonal: float, num_classes: int):
    """How much of its cross-entropy gradient an example keeps behind a fixed symmetric channel.

    For ``W`` with diagonal ``d`` and off-diagonal ``o = (1 - d) / (K - 1)``, the gradient of
    ``-log (W p)_i`` with respect to the logits is that of ``-log p_i`` times
    ``r(p_i) = (d - o) p_i / (o + (d - o) p_i)``, in ``[0, 1)`` for ``d < 1`` (one for
    ``W = I``). Elementwise on floats, arrays or tensors ``p_label`` (any shape); ``r`` is
    one half at ``p_i = o / (d - o)``.
    """
    off = (1 - diagonal) / (num_classes - 1)
    return (diagonal - off) * p_label / (off + (diagonal - off) * p_label)


__all__ = [
    "DEFAULT_INIT_DIAGONAL",
    "DEFAULT_SOFTMAX_LR",
    "DEFAULT_TRACE_WEIGHT",
    "INIT_ENTRY_FLOOR",
    "PARAMETERISATIONS",
    "PROB_FLOOR",
    "ChannelModel",
    "NoisyChannel",
    "attach",
    "channel_distance",
    "detach",
    "near_identity",
    "noisy_log_probs",
    "project_to_simplex_columns",
    "trust_weight",
]
