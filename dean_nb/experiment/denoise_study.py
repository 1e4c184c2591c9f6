"""Training on noisy labels, with or without a channel: the experiment of the denoising chapter.

One function, :func:`train_on_noisy_labels`, trains a base model (optionally behind a
:class:`dean_nb.learner.denoise.NoisyChannel`) on labels that went through a noisy oracle and records,
every ``record_every`` epochs, what the chapter and ``benchmarks/denoise_study.py`` look at:

* the clean test accuracy of the detached base model ``M`` (dropout off),
* the share of the *flipped* training labels that ``M`` predicts (memorisation),
* the channel matrix ``W`` (and so its diagonal).

The records come from :class:`EpochRecorder`, the ``on_epoch_end`` callback of
:func:`dean_nb.learner.training.train_model`; it draws no random numbers, so recording does not change
the training. :func:`channel_for` builds the channels of the chapter's named variants
(:data:`CHANNEL_VARIANTS`), and :func:`run_variant` runs one of them on one seed's labelled set.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from dean_nb.learner.denoise import NoisyChannel, near_identity
from dean_nb.learner.models import arch_for_dataset, build_model
from dean_nb.learner.training import TrainConfig, evaluate_accuracy, train_model
from dean_nb.problem.datasets import Dataset
from dean_nb.problem.noise import DEFAULT_NOISE, Noise, noise_channel, resolve_noise
from dean_nb.problem.oracle import NoisyOracle
from dean_nb.problem.split import make_split
from dean_nb.runtime import DeviceLike, GeneratorLike, make_generator, purpose_seed, resolve_device
from dean_nb.strategies.scoring import model_uncertainty
from dean_nb.validation import check_int_range

__all__ = [
    "CHANNEL_VARIANTS",
    "EpochRecorder",
    "NoisyLabelRun",
    "channel_for",
    "run_variant",
    "summarise",
    "train_on_noisy_labels",
]

#: The ways to train of the denoising chapter: no channel, the two learned parameterisations,
#: and two frozen controls (the oracle's own channel, and a symmetric one of diagonal 0.4).
CHANNEL_VARIANTS = (
    "no channel",
    "projected W",
    "softmax W",
    "W fixed at T",
    "W fixed, diagonal 0.4",
)


def channel_for(
    variant: str, num_classes: int, epsilon: float, noise: Noise = DEFAULT_NOISE
) -> NoisyChannel | None:
    """A fresh channel for one of :data:`CHANNEL_VARIANTS` (``None`` for ``"no channel"``).

    ``"W fixed at T"`` is frozen at the oracle's channel: ``noise`` (``"symmetric"``,
    ``"pairflip"`` or a K x K matrix, as :func:`dean_nb.problem.noise.resolve_noise` takes it) with
    flip probability ``epsilon``. The frozen variants are projected channels with
    ``requires_grad`` off.
    """
    if variant not in CHANNEL_VARIANTS:
        raise ValueError(f"variant must be one of {CHANNEL_VARIANTS}, got {variant!r}")
    noise = resolve_noise(noise, num_classes)
    if variant == "no channel":
        return None
    if variant == "projected W":
        return NoisyChannel(num_classes, "projected")
    if variant == "softmax W":
        return NoisyChannel(num_classes, "softmax")
    if variant == "W fixed at T":
        fixed = noise_channel(noise, num_classes, epsilon)
    else:
        fixed = near_identity(num_classes, 0.4)
    return NoisyChannel(num_classes, "projected", init=fixed).requires_grad_(False)


@dataclasses.dataclass
class NoisyLabelRun:
    """The per-epoch records of one training run on noisy labels (``R`` records).

    Attributes:
        epoch: ``(R,)`` int, the epochs recorded (multiples of ``record_every``).
        accuracy: ``(R,)`` clean test accuracy of the base model.
        memorised: ``(R,)`` share of the flipped training labels the base model predicts;
            empty when no label was flipped.
        channels: ``(R, K, K)`` float64, ``W`` at every record; ``None`` without a channel.
        flip_rate: share of the training labels the oracle flipped.
        sigma: the model uncertainty after training (``None`` without a validation set).
    """

    epoch: np.ndarray
    accuracy: np.ndarray
    memorised: np.ndarray
    channels: np.ndarray | None
    flip_rate: float
    sigma: float | None = None

    @property
    def diagonal(self) -> np.ndarray:
        """``(R,)`` mean diagonal of ``W`` per record (empty without a channel)."""
        if self.channels is None:
            return np.empty(0)
        return np.diagonal(self.channels, axis1=1, axis2=2).mean(axis=1)

    @property
    def channel(self) -> torch.Tensor | None:
        """``(K, K)`` float64: ``W`` at the last record (``None`` without a channel)."""
        return None if self.channels is None else torch.from_numpy(self.channels[-1])

    def at(self, key: str, epoch: int) -> float:
        """The value of ``key`` (``"accuracy"``, ``"memorised"``, ``"diagonal"``) at an epoch."""
        positions = np.flatnonzero(self.epoch == epoch)
        if positions.size == 0:
            raise KeyError(f"epoch {epoch} was not recorded (recorded: {self.epoch.tolist()})")
        return float(getattr(self, key)[positions[0]])


class EpochRecorder:
    """``on_epoch_end`` callback: accuracy, memorisation and ``W`` every ``every`` epochs.

    Args:
        x_test, y_test: clean test images ``(N, C, H, W)`` and labels ``(N,)``.
        x, y_true, y_noisy: the training images ``(L, C, H, W)``, their true and noisy labels
            ``(L,)``; memorisation is measured on the flipped ones.
        every: record when ``epoch % every == 0``.
        device: where to evaluate.
    """

    def __init__(self, x_test, y_test, x, y_true, y_noisy, every: int = 1, device=None):
        self.every = check_int_range("every", every, 1)
        self.x_test, self.y_test, self.device = x_test, y_test, device
        flipped = y_noisy != y_true
        self.x_flipped, self.y_flipped = x[flipped], y_noisy[flipped]
        self.epoch: list[int] = []
        self.accuracy: list[float] = []
        self.memorised: list[float] = []
        self.channels: list[np.ndarray] = []

    def __call__(self, epoch: int, model: nn.Module, channel: NoisyChannel | None) -> None:
        if epoch % self.every:
            return
        self.epoch.append(epoch)
        acc = evaluate_accuracy(model, self.x_test, self.y_test, device=self.device)
        self.accuracy.append(acc)
        if self.y_flipped.numel():  # share of flipped labels that the network predicts
            self.memorised.append(
                evaluate_accuracy(model, self.x_flipped, self.y_flipped, device=self.device)
            )
        if channel is not None:
            self.channels.append(channel.matrix.detach().cpu().double().numpy())


def train_on_noisy_labels(
    model: nn.Module,
    x: torch.Tensor,
    y_true: torch.Tensor,
    y_noisy: torch.Tensor,
    train_config: TrainConfig,
    *,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    channel: NoisyChannel | None = None,
    record_every: int = 1,
    generator: GeneratorLike = None,
    device: DeviceLike = None,
    x_validation: torch.Tensor | None = None,
    n_mc_samples: int = 20,
    sigma_seed: int = 0,
) -> NoisyLabelRun:
    """Train ``model`` (behind ``channel`` if given) on noisy labels, recording per epoch.

    Args:
        model: a fresh base model ``M``; trained in place.
        x: training images ``(L, C, H, W)``; ``y_true``, ``y_noisy``: ``(L,)`` int64 labels
            (the model trains on ``y_noisy``; ``y_true`` only marks the flipped ones).
        train_config: epochs, learning rate, weight decay, batch size.
        x_test, y_test: clean test set ``(N, C, H, W)``, ``(N,)``.
        channel: a :class:`~dean_nb.learner.denoise.NoisyChannel` trained with ``M`` (Algorithm 2),
            or ``None`` for plain cross-entropy.
        record_every: epochs between two records (see :class:`EpochRecorder`).
        generator: minibatch order and dropout (as :func:`~dean_nb.learner.training.train_model`).
        device: where to train and evaluate (default: CUDA when available).
        x_validation: clean validation images; when given, ``sigma`` is the model uncertainty
            of ``n_mc_samples`` MC-dropout passes on them, drawn from ``sigma_seed``.

    Returns:
        A :class:`NoisyLabelRun`. The draws are those of ``train_model`` alone, so a shorter
        run repeats the first records of a longer one.
    """
    device = resolve_device(device)
    x, y_true, y_noisy = x.to(device), y_true.to(device), y_noisy.to(device)
    x_test, y_test = x_test.to(device), y_test.to(device)
    if channel is not None:
        channel = channel.to(device)
    recorder = EpochRecorder(x_test, y_test, x, y_true, y_noisy, record_every, device)
    train_model(
        model,
        x,
        y_noisy,
        train_config,
        channel=channel,
        device=device,
        generator=generator,
        on_epoch_end=recorder,
    )
    sigma = None
    if x_validation is not None:
        sigma = model_uncertainty(
            model, x_validation.to(device), n_mc_samples, generator=make_generator(sigma_seed)
        )
    return NoisyLabelRun(
        epoch=np.array(recorder.epoch, dtype=np.int64),
        accuracy=np.array(recorder.accuracy),
        memorised=np.array(recorder.memorised),
        channels=np.stack(recorder.channels) if recorder.channels else None,
        flip_rate=float((y_noisy != y_true).double().mean()),
        sigma=None if sigma is None else float(sigma),
    )


def run_variant(
    dataset: Dataset,
    variant: str,
    epsilon: float,
    seed: int,
    epochs: int,
    *,
    labels_per_class: int,
    validation_size: int,
    lr: float = 1e-3,
    weight_decay: float = 3.5,
    n_mc_samples: int = 20,
    record_every: int = 1,
    device: DeviceLike = None,
    noise: Noise = DEFAULT_NOISE,
) -> NoisyLabelRun:
    """One run of the denoising chapter: ``variant`` on one seed's noisy labelled set.

    The labelled set is the initial set of ``make_split(dataset.y_train, K, labels_per_class,
    validation_size, seed)``, every label passed through an oracle seeded as the loop seeds its
    oracle (``purpose_seed(seed, "oracle")``), answering through ``noise`` with flip
    probability ``epsilon`` (the K-SC of eq. 1 by default; ``"pairflip"`` or a K x K matrix,
    as in :func:`channel_for`). The network is
    ``build_model(arch_for_dataset(dataset.name), ..., seed=seed)``, trained with
    ``make_generator(seed)``; ``sigma`` is measured on the split's validation set with
    ``n_mc_samples`` passes drawn from ``seed``. Every variant of a seed thus shares the
    labels, initial weights, minibatch order and dropout masks.
    """
    num_classes = dataset.num_classes
    noise = resolve_noise(noise, num_classes)  # checked before any compute
    channel = channel_for(variant, num_classes, epsilon, noise)
    split = make_split(dataset.y_train, num_classes, labels_per_class, validation_size, seed)
    y_true = dataset.y_train[split.initial]
    true_channel = noise_channel(noise, num_classes, epsilon)
    oracle = NoisyOracle(true_channel, seed=purpose_seed(seed, "oracle"))
    y_noisy = oracle.label(y_true)
    c, h, w = dataset.image_shape
    model = build_model(arch_for_dataset(dataset.name), num_classes, c, (h, w), seed=seed)
    return train_on_noisy_labels(
        model,
        dataset.x_train[split.initial],
        y_true,
        y_noisy,
        TrainConfig(epochs=epochs, lr=lr, weight_decay=weight_decay),
        x_test=dataset.x_test,
        y_test=dataset.y_test,
        channel=channel,
        record_every=record_every,
        generator=make_generator(seed),
        device=device,
        x_validation=dataset.x_train[split.validation],
        n_mc_samples=n_mc_samples,
        sigma_seed=seed,
    )


def summarise(runs: list[NoisyLabelRun], epochs: tuple[int, ...]) -> dict[str, float]:
    """Means over ``runs`` (the seeds of one setting) of what the chapter tabulates.

    ``accuracy @e`` for every ``e`` of ``epochs``; at the last of them ``memorised @e``
    (``NaN`` without flips) and ``mean diag(W)`` (``NaN`` without a channel); and ``sigma``.
    """
    if not runs or not epochs:
        raise ValueError("summarise needs at least one run and one epoch")
    last = epochs[-1]

    def mean(key: str, epoch: int) -> float:
        values = [r.at(key, epoch) for r in runs if getattr(r, key).size]
        return float(np.mean(values)) if values else math.nan

    row = {f"accuracy @{e}": mean("accuracy", e) for e in epochs}
    row[f"memorised @{last}"] = mean("memorised", last)
    row["mean diag(W)"] = mean("diagonal", last)
    sigmas = [r.sigma for r in runs if r.sigma is not None]
    row["sigma"] = float(np.mean(sigmas)) if sigmas else math.nan
    return row
