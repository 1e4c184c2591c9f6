"""The model of a step: a fresh network trained from scratch on the labelled set.

Chapter "Experiments". :func:`train_step_model` is what the active-learning loop
(:mod:`dean_nb.experiment.loop`) trains at every step, and what the chapters call to train the
very model of a run's step: the plain network, the network under the paper's denoising layer
(``denoise=True``), or forward correction through an estimated channel (``denoise="forward"``).
:func:`out_of_fold_probs` predicts labelled items by models that did not train on them
(cross-validation, for the re-labelling strategies). :func:`step_network` builds the untrained network (the data set's architecture, a reader's
``model`` factory, or the default for one's own data).
"""

from __future__ import annotations

from typing import Any

import torch

from dean_nb.experiment.config import ExperimentConfig
from dean_nb.learner import forward, mc_dropout, training
from dean_nb.learner.denoise import NoisyChannel
from dean_nb.learner.models import arch_for_dataset, build_model, default_model, model_from_path
from dean_nb.runtime import make_generator, purpose_seed
from dean_nb.validation import check_int_range, is_import_path

__all__ = [
    "out_of_fold_probs",
    "step_network",
    "train_step_model",
]


def step_network(
    config: ExperimentConfig, num_classes: int, input_shape: tuple[int, ...], seed: int
) -> torch.nn.Module:
    """A fresh network of ``config`` (its weights drawn from ``seed``): ``config.model``'s factory, else the built-in data set's architecture,
    else (one's own data) :func:`dean_nb.learner.models.default_model`."""
    if config.model is not None:
        return model_from_path(config.model, num_classes, input_shape, seed)
    if not is_import_path(config.dataset):
        c, h, w = input_shape
        arch = arch_for_dataset(config.dataset)
        return build_model(
            arch, num_classes, c, (h, w), seed=seed, conv_dropout=config.conv_dropout
        )
    return default_model(num_classes, input_shape, seed, config.conv_dropout)


def train_step_model(
    config: ExperimentConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    step: int,
    device: torch.device,
    x_unlabelled: torch.Tensor | None = None,
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Train step ``step``'s model from scratch, as the active-learning loop does.

    The network, its initial weights and the minibatch order come from ``config.seed`` and
    ``step`` (see :func:`purpose_seed`), so the model of a step depends only on the labelled
    set, not on the strategy that chose it.

    Args:
        config: the run's configuration (the network: ``model``, else the data set's;
            epochs, lr, weight decay, batch size, ``denoise``).
        x: labelled items ``(L, ...)`` (images ``(L, C, H, W)``) on ``device``.
        y: their (possibly noisy) labels ``(L,)`` on ``device``.
        num_classes: K.
        step: 0 for the model on the initial labels, then 1, 2, ...
        device: where to train.
        x_unlabelled: ``(U, ...)`` inputs without labels among which forward correction also
            looks for anchor points (the loop passes the validation images); ``None``: the
            labelled items alone.

    Returns:
        ``(model, channel)``: the base model in eval mode, and the trained
        :class:`dean_nb.learner.denoise.NoisyChannel` when ``config.denoise`` (with
        ``"forward"``, the fixed estimate it trained through; else ``None``).

    With ``denoise="forward"`` (Patrini et al. 2017) the step first trains the plain model
    (the very model of ``denoise=False``), estimates the channel from its predictions on
    ``x`` and ``x_unlabelled`` (:func:`dean_nb.learner.forward.anchor_channel`, the 97th
    percentile), then trains a fresh model from the same initial weights and minibatch order
    through that fixed estimate: twice the training of a plain step. Step 0 trains on the
    clean initial labels alone, so there is no answer of the oracle to estimate a channel from
    (an estimate from a 40-label model's unsure anchors is far from the identity and sinks the
    first model): its model is the plain one, and its channel the identity.
    """
    train_kwargs: dict[str, Any] = {
        "epochs": config.epochs,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
    }
    if config.batch_size is not None:
        train_kwargs["batch_size"] = config.batch_size
    shape = tuple(int(n) for n in x.shape[1:])

    def trained(channel: torch.nn.Module | None) -> torch.nn.Module:
        seed = config.seed
        model = step_network(config, num_classes, shape, purpose_seed(seed, f"model:{step}"))
        model = model.to(device)
        training.train_model(
            model,
            x,
            y,
            training.TrainConfig(**train_kwargs),
            channel=channel,
            device=device,
            generator=make_generator(purpose_seed(seed, f"train:{step}")),
            progress=False,
        )
        return model.eval()

    if config.denoise == "forward":
        plain = trained(None)
        if step == 0:  # the clean initial labels: no answer of the oracle to estimate from
            identity = torch.eye(num_classes, dtype=torch.float64)
            return plain, forward.fixed_channel(identity).to(device)
        x_anchor = x if x_unlabelled is None else torch.cat([x, x_unlabelled.to(x.device)])
        probs_N_K = mc_dropout.predict_probs(plain, x_anchor, batch_size=config.eval_batch_size)
        channel = forward.fixed_channel(forward.anchor_channel(probs_N_K)).to(device)
        return trained(channel), channel
    channel = NoisyChannel(num_classes).to(device) if config.denoise else None
    return trained(channel), channel


def out_of_fold_probs(
    config: ExperimentConfig,
    fixed: tuple[torch.Tensor, torch.Tensor],
    folded: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    step: int,
    device: torch.device,
    n_folds: int,
) -> torch.Tensor:
    """Out-of-sample predictions of labelled items, by ``n_folds``-fold cross-validation.

    A model that trained on an item has mostly learned its label, wrong or not: its own
    prediction says little about whether the label is right. ActiveLab (and cleanlab's
    label-quality scores generally) want predictions of a model that did not see the item.
    The ``folded`` items ``(x (R, ...), y (R,))`` are dealt into ``n_folds`` folds by a
    seeded permutation (purpose ``"folds:{step}"``); fold ``f``'s items are predicted by the
    step's model (:func:`train_step_model`, the same recipe) trained on the ``fixed`` items
    (the clean initial set, in every fold) and the other folds, as the mean of
    ``config.n_mc_samples`` MC-dropout passes (purpose ``"folds:{step}:{f}"``).

    Returns:
        ``(R, K)`` float64 predictions on the CPU, row ``r`` for ``folded``'s item ``r``.
    """
    x_folded, y_folded = folded
    n = int(x_folded.shape[0])
    n_folds = check_int_range("n_folds", n_folds, 2, max(n, 2))
    gen = make_generator(purpose_seed(config.seed, f"folds:{step}"))
    fold_R = torch.empty(n, dtype=torch.int64)
    fold_R[torch.randperm(n, generator=gen)] = torch.arange(n) % n_folds
    probs_R_K = torch.empty(n, num_classes, dtype=torch.float64)
    for f in range(n_folds):
        held = fold_R == f
        x = torch.cat([fixed[0], x_folded[~held.to(x_folded.device)]])
        y = torch.cat([fixed[1], y_folded[~held.to(y_folded.device)]])
        model, _ = train_step_model(config, x, y, num_classes, step, device)
        passes = mc_dropout.mc_dropout_probs(
            model,
            x_folded[held.to(x_folded.device)],
            config.n_mc_samples,
            batch_size=config.eval_batch_size,
            generator=make_generator(purpose_seed(config.seed, f"folds:{step}:{f}")),
        )
        probs_R_K[held] = passes.mean(0).to("cpu", torch.float64)
    return probs_R_K
