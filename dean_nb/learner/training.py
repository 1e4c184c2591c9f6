"""Fit a model from scratch and measure its accuracy (chapter "Training and evaluation").

After every acquisition step the paper retrains the model from scratch on all labels acquired
so far (Algorithm 1, step 8): Adam with learning rate 1e-3 for 50 epochs (20 for the
"uncertain model" ablation, Fig. 1b), and an L2 penalty of ``3.5 / N`` on the first dense layer
only, N being the number of training labels (the authors' code, after Gal et al.'s Keras model).

Noisy labels (section 4.2, Algorithm 2): :func:`train_model` takes an optional ``channel``, an
``nn.Module`` mapping clean class probabilities ``p (B, K)`` to noisy ones ``W p (B, K)``. The
loss is then the negative log-likelihood of the noisy label under the channel's output,
``-log (channel(softmax(logits)))[y]``; the channel's parameters train alongside the model in
their own optimiser group, and ``channel.project_()`` (if it exists) runs after every step so
that the channel stays column-stochastic. Scoring and evaluation use the model alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dean_nb.learner.denoise import noisy_log_probs
from dean_nb.learner.mc_dropout import predict_probs
from dean_nb.runtime import (
    DeviceLike,
    GeneratorLike,
    derive_seed,
    make_generator,
    resolve_device,
    seeded_global_rng,
)
from dean_nb.validation import check_float_range, check_int_range, check_label_range

__all__ = [
    "CHANNEL_OPTIMIZERS",
    "TrainConfig",
    "batch_loss",
    "channel_learning_rate",
    "channel_optimizers",
    "evaluate_accuracy",
    "make_optimizer",
    "train_model",
]

#: How the channel's parameters are trained (:attr:`TrainConfig.channel_optimizer`).
CHANNEL_OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


@dataclass
class TrainConfig:
    """Optimiser settings for :func:`train_model` (defaults: the paper's, appendix B).

    Attributes:
        epochs: passes over the labelled set (paper: 50; 20 for the uncertain-model ablation).
        lr: Adam learning rate (paper: 1e-3).
        batch_size: minibatch size. Default 32, Keras' default ``fit`` batch size, which the
            authors' code relies on. It matters: with the paper's small labelled sets (40 to a
            few hundred images at the start) a batch of 128 would mean one or two optimiser
            steps per epoch, i.e. about 4x fewer steps in 50 epochs than the authors took.
        weight_decay: ``c`` in the L2 penalty ``c / N`` on ``model.first_dense.weight`` only
            (paper's code: c = 3.5; N = number of training labels). It is Adam's coupled
            ``weight_decay`` (gradient += ``c / N * w``); the bias and all other layers get
            none. Note that Keras' ``l2(c / N)`` regulariser adds ``c / N * ||w||^2`` to the
            loss, whose gradient is twice ours: ``weight_decay=7.0`` reproduces it exactly.
        channel_lr: learning rate of the channel's parameters. ``None`` (default): the
            channel's own ``preferred_lr`` attribute if it has one that is not ``None``, else
            ``lr``. :class:`dean_nb.learner.denoise.NoisyChannel` prefers 1e-2 for its softmax
            parameterisation (Adam moves a logit by about ``lr`` per step, so 1e-3 leaves
            ``W`` near its start within 50 epochs) and nothing (so ``lr``, the authors'
            single Adam) for the projected one; see ``benchmarks/denoise_study.py``.
        channel_weight_decay: weight decay of the channel's parameters (default 0).
        channel_optimizer: ``"adam"`` (default: the channel's parameters are a group of the
            model's Adam, the authors' single optimiser) or ``"sgd"`` (plain SGD, no momentum,
            in an optimiser of its own; ``benchmarks/denoise_study.py`` compares the two).
    """

    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 3.5
    channel_lr: float | None = None
    channel_weight_decay: float = 0.0
    channel_optimizer: str = "adam"

    def __post_init__(self) -> None:
        check_int_range("epochs", self.epochs, 0)
        check_float_range("lr", self.lr, 0.0, math.inf, low_inclusive=False)
        check_int_range("batch_size", self.batch_size, 1)
        check_float_range("weight_decay", self.weight_decay, 0.0, math.inf)
        if self.channel_lr is not None:
            check_float_range("channel_lr", self.channel_lr, 0.0, math.inf, low_inclusive=False)
        check_float_range("channel_weight_decay", self.channel_weight_decay, 0.0, math.inf)
        if self.channel_optimizer not in CHANNEL_OPTIMIZERS:
            raise ValueError(
                f"channel_optimizer must be one of {', '.join(CHANNEL_OPTIMIZERS)}; "
                f"got {self.channel_optimizer!r}"
            )


def _check_data(x: torch.Tensor, y: torch.Tensor, num_classes: int | None) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch.Tensor")
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating-point tensor (N, ...), got {x.dtype} {tuple(x.shape)}"
        )
    if y.ndim != 1 or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape (N,), got {y.dtype} {tuple(y.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x and y must have the same length N, got {x.shape[0]} and {y.shape[0]}")
    if num_classes is not None:
        check_label_range("y", y, num_classes)


def make_optimizer(
    model: nn.Module,
    n_train: int,
    config: TrainConfig,
    channel: nn.Module | None = None,
) -> torch.optim.Adam:
    """Adam with three parameter groups.

    1. ``model.first_dense.weight``: weight decay ``config.weight_decay / n_train`` (the
       authors' code: only the first dense layer is decayed). A model without a
       ``first_dense`` ``nn.Linear`` (one the package did not build) gets that decay on every
       weight matrix and kernel (each parameter of two or more dimensions; biases and norms
       are not decayed): plain L2 weight decay;
    2. every other model parameter: no weight decay;
    3. the channel's parameters (if any, and ``config.channel_optimizer`` is ``"adam"``):
       :func:`channel_learning_rate` and ``config.channel_weight_decay``.
    """
    n_train = check_int_range("n_train", n_train, 1)
    first_dense = getattr(model, "first_dense", None)
    if isinstance(first_dense, nn.Linear):
        decayed = [first_dense.weight]
    elif config.weight_decay > 0:
        decayed = [p for p in model.parameters() if p.ndim >= 2]
    else:
        decayed = []
    decayed_ids = {id(p) for p in decayed}
    rest = [p for p in model.parameters() if id(p) not in decayed_ids]
    groups: list[dict] = [
        {"params": decayed, "weight_decay": config.weight_decay / n_train},
        {"params": rest, "weight_decay": 0.0},
    ]
    if channel is not None and config.channel_optimizer == "adam":
        groups.append(
            {
                "params": _channel_parameters(model, channel),
                "lr": channel_learning_rate(config, channel),
                "weight_decay": config.channel_weight_decay,
            }
        )
    groups = [g for g in groups if g["params"]]
    try:  # one fused kernel per tensor and step instead of ~10 passes (same update, rounded apart)
        return torch.optim.Adam(groups, lr=config.lr, fused=True)
    except RuntimeError:  # no fused Adam for these parameters' device (CPU before torch 2.4)
        return torch.optim.Adam(groups, lr=config.lr)


def channel_optimizers(
    model: nn.Module, config: TrainConfig, channel: nn.Module | None = None
) -> list[torch.optim.Optimizer]:
    """The channel's own optimiser, ``[SGD]``, when ``config.channel_optimizer`` is ``"sgd"``
    (at :func:`channel_learning_rate`, weight decay ``config.channel_weight_decay``); else
    ``[]``, the channel (if any) being a group of :func:`make_optimizer`'s Adam."""
    if channel is None or config.channel_optimizer != "sgd":
        return []
    params = _channel_parameters(model, channel)
    if not params:
        return []
    lr = channel_learning_rate(config, channel)
    return [torch.optim.SGD(params, lr=lr, weight_decay=config.channel_weight_decay)]


def _channel_parameters(model: nn.Module, channel: nn.Module) -> list[nn.Parameter]:
    model_ids = {id(p) for p in model.parameters()}
    return [p for p in channel.parameters() if id(p) not in model_ids]


def channel_learning_rate(config: TrainConfig, channel: nn.Module) -> float:
    """``config.channel_lr``, else ``channel.preferred_lr`` (if set), else ``config.lr``."""
    if config.channel_lr is not None:
        return config.channel_lr
    preferred = getattr(channel, "preferred_lr", None)
    return config.lr if preferred is None else float(preferred)


def batch_loss(
    logits: torch.Tensor, y: torch.Tensor, channel: nn.Module | None = None
) -> torch.Tensor:
    """Mean training loss of a minibatch: ``logits (B, K)``, labels ``y (B,)``.

    Without a channel: cross-entropy. With one: NLL of ``log(channel(softmax(logits)))``,
    the noisy-label likelihood of section 4.2, through
    :func:`dean_nb.learner.denoise.noisy_log_probs` (probabilities floored at
    :data:`~dean_nb.learner.denoise.PROB_FLOOR` so the log stays finite).
    Computed in float32.
    """
    logits = logits.float()
    if channel is None:
        return F.cross_entropy(logits, y)
    return F.nll_loss(noisy_log_probs(logits, channel), y)


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig | None = None,
    *,
    channel: nn.Module | None = None,
    device: DeviceLike = None,
    generator: GeneratorLike = None,
    progress: bool = False,
    on_epoch_end: Callable[[int, nn.Module, nn.Module | None], None] | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``x (N, C, H, W)``, ``y (N,)`` and return it.

    Adam (see :func:`make_optimizer`; the channel's own SGD with ``channel_optimizer="sgd"``),
    ``config.epochs`` epochs of shuffled minibatches of ``config.batch_size`` (the last one may
    be smaller). Callers retrain from scratch by passing a freshly built model
    (:func:`dean_nb.learner.models.build_model`).

    Args:
        model: the network; moved to ``device``.
        x: training inputs (any device; moved to ``device`` once).
        y: int64 labels in ``[0, K)``.
        config: :class:`TrainConfig` (default: the paper's settings).
        channel: optional noise channel, ``probs (B, K) -> noisy probs (B, K)``, trained
            jointly (see the module docstring); moved to ``device``. Its ``project_()``
            method, if any, is called after every optimiser step, and its ``penalty()``
            method, if any, returns a scalar added to every minibatch loss (the trace
            penalty of :class:`dean_nb.learner.denoise.NoisyChannel`). Parameters with
            ``requires_grad`` off are not trained (a frozen channel).
        device: where to train (default: CUDA when available).
        generator: fixes the minibatch order and the dropout masks (torch's global RNG is
            seeded from it inside a fork). With the same seed training is bit-for-bit
            repeatable on the CPU; on CUDA some kernels are not deterministic.
        progress: show a ``tqdm`` progress bar over epochs.
        on_epoch_end: optional ``callback(epoch, model, channel)`` called after each epoch
            (``epoch`` counts from 1; ``channel`` is ``None`` without one), e.g. to record
            the channel's trajectory. It runs on a fork of torch's RNG, so what it draws does
            not change training; the model (and channel) go back to training mode after it.

    Returns:
        ``model``, trained, in eval mode (the channel, if any, too), its 4-D parameters in
        channels-last memory format (the values and the module are unchanged).
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_data(x, y, getattr(model, "num_classes", None))
    n_train = x.shape[0]
    if n_train == 0:
        raise ValueError("x must contain at least one training example")
    device = resolve_device(device)
    gen = make_generator(generator)
    x, y = _to_device(model, channel, x, y, device)
    optimizers = [make_optimizer(model, n_train, config, channel)]
    optimizers += channel_optimizers(model, config, channel)
    hooks = (getattr(channel, "penalty", None), getattr(channel, "project_", None))
    seed = derive_seed(gen)
    epochs = tqdm(range(config.epochs), desc="train", disable=not progress, leave=False)
    _set_mode(model, channel, training=True)
    with seeded_global_rng(seed, device=device):
        for epoch in epochs:
            order = torch.randperm(n_train, generator=gen, device=gen.device).to(device)
            total = _train_epoch(model, channel, x, y, order, config, optimizers, hooks, progress)
            if progress:
                epochs.set_postfix(loss=f"{total / n_train:.4f}")
            if on_epoch_end is not None:
                # The callback may draw (e.g. MC dropout); fork the RNG so training does not
                # depend on what it does.
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    on_epoch_end(epoch + 1, model, channel)
                _set_mode(model, channel, training=True)
    _set_mode(model, channel, training=False)
    return model


def _to_device(
    model: nn.Module,
    channel: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the model (channels-last), the channel and the data to ``device``; return the data.

    Channels-last (NHWC) lets oneDNN and cuDNN convolve without reordering NCHW tensors; the
    model keeps that layout, so scoring and evaluation convolve fast too.
    """
    model.to(device, memory_format=torch.channels_last)  # (only 4-D parameters change)
    if channel is not None:
        channel.to(device)
    x, y = x.to(device), y.to(device)
    if x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _set_mode(model: nn.Module, channel: nn.Module | None, *, training: bool) -> None:
    """Put the model and the channel (if any) in training or eval mode."""
    model.train(training)
    if channel is not None:
        channel.train(training)


def _train_epoch(
    model: nn.Module,
    channel: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    config: TrainConfig,
    optimizers: list[torch.optim.Optimizer],
    hooks: tuple[Callable[[], torch.Tensor] | None, Callable[[], None] | None],
    progress: bool,
) -> float:
    """One pass over ``x`` in minibatches of ``order``; the summed loss when ``progress``.

    ``hooks`` are the channel's ``penalty`` (added to every minibatch loss) and ``project_``
    (run after every optimiser step), each ``None`` when absent.
    """
    penalty, project = hooks
    total = 0.0
    for start in range(0, x.shape[0], config.batch_size):
        idx = order[start : start + config.batch_size]
        loss = batch_loss(model(x[idx]), y[idx], channel)
        if callable(penalty):
            loss = loss + penalty()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        if callable(project):
            with torch.no_grad():
                project()
        if progress:
            total += float(loss.detach()) * idx.numel()
    return total


def evaluate_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int | None = None,
    device: DeviceLike = None,
) -> float:
    """Fraction of ``x (N, ...)`` whose argmax prediction (dropout off) equals ``y (N,)``.

    The model is moved to ``device`` (default: CUDA when available); its train/eval modes are
    restored afterwards. Returns a float in ``[0, 1]``.
    """
    _check_data(x, y, getattr(model, "num_classes", None))
    if x.shape[0] == 0:
        raise ValueError("x must contain at least one example")
    device = resolve_device(device)
    model.to(device)
    predictions = predict_probs(model, x, batch_size=batch_size).argmax(dim=-1)
    return float((predictions == y.to(device)).float().mean().item())
