"""Scores computed from MC-dropout samples (chapter "Scoring the pool").

Axis order everywhere: MC samples first, ``probs_T_N_K[t, n, k] = p_t(y = k | x_n)``. The
samples come from :func:`dean_nb.learner.mc_dropout.mc_dropout_probs` (re-exported here with the other
forward-pass helpers, so ``scoring.mc_dropout_probs`` keeps working).

* :func:`bald`: mutual information between the label and the weights (the paper's eq. 2, the
  importance score rho): ``H(mean_t p_t) - mean_t H(p_t)``.
* :func:`predictive_entropy`: ``H(mean_t p_t)`` (the entropy baseline).
* :func:`expected_entropy`: ``mean_t H(p_t)``.
* :func:`variation_ratio`: ``1 - (count of the modal class) / T``.
* :func:`model_uncertainty`: the paper's sigma, the mean variation ratio on a fixed validation
  set (section 4.1), which sets the annealing temperature beta = f(sigma).

Entropies use natural logs and ``xlogy`` (``0 log 0 = 0``), so no ``log(0)`` is ever taken.
"""

from __future__ import annotations

import torch
from torch import nn

from dean_nb.learner.mc_dropout import mc_dropout_probs
from dean_nb.runtime import GeneratorLike
from dean_nb.validation import check_floating, check_inputs, check_probabilities

__all__ = [
    "bald",
    "expected_entropy",
    "model_uncertainty",
    "predictive_entropy",
    "variation_ratio",
]


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) over the last axis, ``0 log 0 = 0``, clamped at >= 0."""
    return (-torch.special.xlogy(probs, probs).sum(dim=-1)).clamp_min(0.0)


def _check_mc_probs(name: str, probs: torch.Tensor) -> torch.Tensor:
    check_floating(name, probs)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise ValueError(f"{name} must have shape (T, N, K) with T >= 1, got {tuple(probs.shape)}")
    return check_probabilities(name, probs)


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy of the mean prediction, ``H(mean_t p_t)`` in nats: ``(N,)`` in ``[0, log K]``.

    Accepts MC samples ``probs_T_N_K`` (averaged over T first) or one prediction ``(N, K)``.
    """
    if isinstance(probs, torch.Tensor) and probs.ndim == 3:
        mean_probs = _check_mc_probs("probs", probs).mean(dim=0)
    elif isinstance(probs, torch.Tensor) and probs.ndim == 2:
        mean_probs = check_probabilities("probs", check_floating("probs", probs))
    elif isinstance(probs, torch.Tensor):
        raise ValueError(f"probs must have shape (T, N, K) or (N, K), got {tuple(probs.shape)}")
    else:
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    return _entropy(mean_probs)


def bald(probs_T_N_K: torch.Tensor) -> torch.Tensor:
    """BALD score, the paper's eq. 2: ``H(mean_t p_t) - mean_t H(p_t)`` in nats, ``(N,)``.

    The mutual information between an input's label and the model weights, estimated from T
    MC-dropout samples. Lies in ``[0, predictive_entropy]``: 0 when all samples agree, up to
    ``log K`` when confident samples disagree uniformly.
    """
    probs = _check_mc_probs("probs_T_N_K", probs_T_N_K)
    total = _entropy(probs.mean(dim=0))
    expected = _entropy(probs).mean(dim=0)
    return (total - expected).clamp_min(0.0)


def expected_entropy(probs_T_N_K: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the single passes, ``mean_t H(p_t)`` in nats: ``(N,)``.

    The aleatoric part of the decomposition ``predictive_entropy = expected_entropy + bald``
    (chapter 2); ``probs_T_N_K`` are T MC-dropout samples.
    """
    return _entropy(_check_mc_probs("probs_T_N_K", probs_T_N_K)).mean(dim=0)


def variation_ratio(probs_T_N_K: torch.Tensor) -> torch.Tensor:
    """Variation ratio ``1 - (count of the modal argmax class) / T``: ``(N,)`` in ``[0, 1 - 1/K]``.

    Each MC sample votes for its argmax class (ties go to the lowest index); 0 means every
    sample voted the same way.
    """
    probs = _check_mc_probs("probs_T_N_K", probs_T_N_K)
    t, n, k = probs.shape
    votes_N_T = probs.argmax(dim=-1).T
    counts_N_K = torch.zeros(n, k, device=probs.device, dtype=torch.int64)
    counts_N_K.scatter_add_(1, votes_N_T, torch.ones_like(votes_N_T))
    mode_count = counts_N_K.max(dim=1).values
    return (t - mode_count).to(torch.float32) / t


def model_uncertainty(
    model: nn.Module,
    x_val: torch.Tensor,
    n_samples: int,
    batch_size: int | None = None,
    generator: GeneratorLike = None,
    masks: str = "independent",
) -> float:
    """The paper's model uncertainty sigma: mean variation ratio of T MC-dropout passes on a
    fixed validation set ``x_val (N, ...)`` (section 4.1). A float in ``[0, 1 - 1/K]``.

    ``masks`` is passed to :func:`~dean_nb.learner.mc_dropout.mc_dropout_probs`."""
    x_val = check_inputs("x_val", x_val)
    if x_val.shape[0] == 0:
        raise ValueError("x_val must contain at least one input")
    probs = mc_dropout_probs(
        model, x_val, n_samples, batch_size=batch_size, generator=generator, masks=masks
    )
    return float(variation_ratio(probs).mean().item())
