"""MC-dropout probabilities and the scores computed from them (chapter "Scoring the pool").

Axis order everywhere: MC samples first, ``probs_T_N_K[t, n, k] = p_t(y = k | x_n)``.

* :func:`mc_dropout_probs`: T stochastic forward passes with dropout on and everything else in
  evaluation mode (Gal and Ghahramani's MC dropout; the paper's step 2, T = 100). The
  deterministic trunk of an :class:`~dean_nb.models.MCDropoutNet` runs once per input and only
  the stochastic head runs T times, on a ``(T * B, D)`` block.
* :func:`bald`: mutual information between the label and the weights (the paper's eq. 2, the
  importance score rho): ``H(mean_t p_t) - mean_t H(p_t)``.
* :func:`predictive_entropy`: ``H(mean_t p_t)`` (the entropy baseline).
* :func:`variation_ratio`: ``1 - (count of the modal class) / T``.
* :func:`model_uncertainty`: the paper's sigma, the mean variation ratio on a fixed validation
  set (section 4.1), which sets the annealing temperature beta = f(sigma).

Entropies use natural logs and ``xlogy`` (``0 log 0 = 0``), so no ``log(0)`` is ever taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from dean_nb.runtime import GeneratorLike, derive_seed, make_generator, seeded_global_rng
from dean_nb.validation import check_floating, check_int_range, check_probabilities

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_HEAD_ELEMENTS_ACCELERATOR",
    "MAX_HEAD_ELEMENTS_CPU",
    "bald",
    "expected_entropy",
    "inference_modes",
    "max_head_elements",
    "mc_dropout_probs",
    "model_device",
    "model_uncertainty",
    "predict_probs",
    "predictive_entropy",
    "variation_ratio",
]

#: Default number of inputs per trunk pass in :func:`mc_dropout_probs` and :func:`predict_probs`.
DEFAULT_BATCH_SIZE = 256

#: Upper bound on the number of elements of the ``(t * B, D)`` block fed to the head at once,
#: on the CPU (2**22 float32 values = 16 MiB; larger blocks are no faster there) and on an
#: accelerator (2**25 = 128 MiB; smaller blocks launch more, smaller kernels). The T axis is
#: split into chunks to respect it.
MAX_HEAD_ELEMENTS_CPU = 2**22
MAX_HEAD_ELEMENTS_ACCELERATOR = 2**25


def max_head_elements(device: torch.device) -> int:
    """The head-block bound for ``device`` (see :data:`MAX_HEAD_ELEMENTS_CPU`)."""
    return MAX_HEAD_ELEMENTS_CPU if device.type == "cpu" else MAX_HEAD_ELEMENTS_ACCELERATOR


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter, else of its first buffer, else the CPU."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


@contextlib.contextmanager
def inference_modes(model: nn.Module, *, dropout: bool) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode, with dropout layers in train mode when ``dropout`` is true.

    The caller's per-module ``training`` flags are restored on exit, whatever they were.
    """
    saved = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        if dropout:
            for module in model.modules():
                if isinstance(module, _DropoutNd):
                    module.train()
        yield model
    finally:
        for module, mode in saved:
            module.training = mode


def _split(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(trunk, head)`` of an MC-dropout net; any other module is all head."""
    trunk = getattr(model, "trunk", None)
    head = getattr(model, "head", None)
    if isinstance(trunk, nn.Module) and isinstance(head, nn.Module):
        return trunk, head
    return nn.Identity(), model


def _check_inputs(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with a batch axis, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _num_classes(model: nn.Module, name: str) -> int:
    k = getattr(model, "num_classes", None)
    if k is None:
        raise ValueError(f"{name} is empty and the model has no num_classes attribute")
    return int(k)


def _probs_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in float32 through ``log_softmax`` (never NaN, rows sum to 1)."""
    return torch.log_softmax(logits.float(), dim=-1).exp()


def mc_dropout_probs(
    model: nn.Module,
    x: torch.Tensor,
    n_samples: int,
    batch_size: int | None = None,
    generator: GeneratorLike = None,
) -> torch.Tensor:
    """Class probabilities from ``n_samples`` MC-dropout passes (the paper's step 2).

    Dropout layers are in training mode, every other layer in evaluation mode; the caller's
    modes are restored afterwards. For a model with ``trunk`` and ``head`` (an
    :class:`~dean_nb.models.MCDropoutNet`) the trunk runs once per batch and its output is
    repeated T times so the head sees a ``(T * B, D)`` block; the T axis is chunked so that a
    block holds at most :func:`max_head_elements` values. A model without that split runs whole
    on the repeated input (same numbers, more work).

    Args:
        model: the classifier (its parameters' device is where the work happens).
        x: inputs ``(N, ...)``, e.g. images ``(N, C, H, W)``; any device.
        n_samples: T >= 1 stochastic passes.
        batch_size: inputs per trunk pass (default :data:`DEFAULT_BATCH_SIZE`).
        generator: fixes the dropout masks (a seed is derived from it and torch's global RNG
            is seeded with it inside a fork, so the caller's global state is untouched).
            The same generator state, ``batch_size`` and device give identical output.

    Returns:
        ``probs_T_N_K`` float32 on the model's device; each row sums to 1.
    """
    n_samples = check_int_range("n_samples", n_samples, 1)
    x = _check_inputs("x", x)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    batch_size = check_int_range("batch_size", batch_size, 1)
    device = model_device(model)
    n = x.shape[0]
    if n == 0:
        return torch.empty(n_samples, 0, _num_classes(model, "x"), device=device)
    seed = derive_seed(make_generator(generator))
    trunk, head = _split(model)
    # Apply a leading dropout to the expanded (t, B, D) view directly: its output is a fresh
    # tensor, so the repeated block is never copied (same draws as on the (t * B, D) copy).
    lead_dropout: nn.Module | None = None
    if isinstance(head, nn.Sequential) and len(head) > 1 and isinstance(head[0], _DropoutNd):
        lead_dropout, head = head[0], head[1:]
    block_limit = max_head_elements(device)
    out: torch.Tensor | None = None
    with (
        torch.no_grad(),
        inference_modes(model, dropout=True),
        seeded_global_rng(seed, device=device),
    ):
        for start in range(0, n, batch_size):
            features = trunk(x[start : start + batch_size].to(device))
            b = features.shape[0]
            per_input = max(1, features[0].numel())
            t_chunk = max(1, min(n_samples, block_limit // (b * per_input)))
            for t0 in range(0, n_samples, t_chunk):
                t = min(t_chunk, n_samples - t0)
                block = features.unsqueeze(0).expand(t, *features.shape)
                if lead_dropout is not None:
                    block = lead_dropout(block)
                probs = _probs_from_logits(head(block.reshape(t * b, *features.shape[1:])))
                if out is None:
                    out = torch.empty(n_samples, n, probs.shape[-1], device=device)
                out[t0 : t0 + t, start : start + b] = probs.view(t, b, -1)
    assert out is not None
    return out


def predict_probs(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Deterministic class probabilities ``(N, K)`` (every layer in eval mode, dropout off).

    Float32 on the model's device; the caller's train/eval modes are restored afterwards.
    """
    x = _check_inputs("x", x)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    batch_size = check_int_range("batch_size", batch_size, 1)
    device = model_device(model)
    if x.shape[0] == 0:
        return torch.empty(0, _num_classes(model, "x"), device=device)
    with torch.no_grad(), inference_modes(model, dropout=False):
        chunks = [
            _probs_from_logits(model(x[start : start + batch_size].to(device)))
            for start in range(0, x.shape[0], batch_size)
        ]
    return torch.cat(chunks)


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
) -> float:
    """The paper's model uncertainty sigma: mean variation ratio of T MC-dropout passes on a
    fixed validation set ``x_val (N, ...)`` (section 4.1). A float in ``[0, 1 - 1/K]``."""
    x_val = _check_inputs("x_val", x_val)
    if x_val.shape[0] == 0:
        raise ValueError("x_val must contain at least one input")
    probs = mc_dropout_probs(model, x_val, n_samples, batch_size=batch_size, generator=generator)
    return float(variation_ratio(probs).mean().item())
