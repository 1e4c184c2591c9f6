"""The straightforward implementations the benchmarks measure against.

These are the package's own code before the performance work (commit 60b5bb3), kept here so a
benchmark can time both in one run on one machine:

* :func:`baseline_mc_dropout_probs`: the trunk once per batch, then ``nn.Dropout`` (torch's
  Bernoulli sampler, one float per element) on the repeated ``(t, B, D)`` block and the head
  on it, with torch's global RNG seeded in a fork.
* :func:`baseline_train`: Adam over shuffled minibatches of ``x[idx]``, the model in torch's
  default (contiguous) memory format.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dean_nb.learner.mc_dropout import inference_modes, max_head_elements, model_device
from dean_nb.learner.training import TrainConfig, batch_loss, make_optimizer
from dean_nb.runtime import derive_seed, make_generator, seeded_global_rng


def contiguous_copy(model: nn.Module) -> nn.Module:
    """``model`` with every parameter in the default memory format (in place; returned)."""
    return model.to(memory_format=torch.contiguous_format)


def baseline_mc_dropout_probs(
    model: nn.Module, x: torch.Tensor, n_samples: int, batch_size: int = 256, generator=0
) -> torch.Tensor:
    """``probs_T_N_K`` as ``dean_nb.scoring.mc_dropout_probs`` computed them before."""
    device = model_device(model)
    seed = derive_seed(make_generator(generator))
    trunk, head = model.trunk, model.head
    lead_dropout, head = head[0], head[1:]
    block_limit = max_head_elements(device)
    n = x.shape[0]
    out = None
    with (
        torch.no_grad(),
        inference_modes(model, dropout=True),
        seeded_global_rng(seed, device=device),
    ):
        for start in range(0, n, batch_size):
            features = trunk(x[start : start + batch_size].to(device))
            b = features.shape[0]
            t_chunk = max(1, min(n_samples, block_limit // (b * features[0].numel())))
            for t0 in range(0, n_samples, t_chunk):
                t = min(t_chunk, n_samples - t0)
                block = lead_dropout(features.unsqueeze(0).expand(t, *features.shape))
                logits = head(block.reshape(t * b, *features.shape[1:]))
                probs = torch.log_softmax(logits.float(), dim=-1).exp()
                if out is None:
                    out = torch.empty(n_samples, n, probs.shape[-1], device=device)
                out[t0 : t0 + t, start : start + b] = probs.view(t, b, -1)
    return out


def baseline_train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    generator=0,
    on_epoch: Callable[[], None] | None = None,
) -> nn.Module:
    """``dean_nb.training.train_model`` without a channel, as it trained before: ``x[idx]``
    per minibatch, Adam's default implementation. ``on_epoch()``, if given, runs after every
    epoch (a benchmark's timer)."""
    gen = make_generator(generator)
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    n_train = x.shape[0]
    optimizer = make_optimizer(model, n_train, config)
    model.train()
    with seeded_global_rng(derive_seed(gen), device=device):
        for _ in range(config.epochs):
            order = torch.randperm(n_train, generator=gen, device=gen.device).to(device)
            for start in range(0, n_train, config.batch_size):
                idx = order[start : start + config.batch_size]
                loss = batch_loss(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if on_epoch is not None:
                on_epoch()
    return model.eval()
