"""Forward passes: T Monte-Carlo dropout passes, and deterministic predictions.

Axis order: MC samples first, ``probs_T_N_K[t, n, k] = p_t(y = k | x_n)``.

:func:`mc_dropout_probs` runs T stochastic passes with dropout on and every other layer in
evaluation mode (Gal and Ghahramani's MC dropout; the paper's step 2). Three things make it
cheap without changing the estimator:

* **The trunk runs once.** The deterministic layers of an
  :class:`~dean_nb.learner.models.MCDropoutNet` before its first dropout run once per input;
  only the head runs T times.
* **Masks are drawn as random bits.** ``nn.Dropout`` draws one float per element through
  torch's Bernoulli sampler (about 11 ns per element on one core, four times the matrix
  product the mask feeds). Here a mask entry is a field of a few random bits ``u`` (2 bits for
  the paper's rate 0.25, 1 bit for 0.5: 32 or 64 entries per 64-bit draw of the generator),
  kept when ``u >= p 2**b``: exactly Bernoulli(1 - p) whenever ``p 2**b`` is an integer for a
  width ``b`` of at most 8 bits. Other rates compare a float32 uniform with ``p``, as torch
  does.
* **Dropout and the dense layer after it are fused.** Masked rows are formed a cache-sized
  chunk at a time and fed straight to ``addmm``, so the ``(T, B, D)`` block is never written
  to memory.

Two kinds of masks (``masks=``):

* ``"independent"`` (default): a fresh mask for every input and every pass, as the authors'
  Keras code draws them (and as ``nn.Dropout`` does on a batch).
* ``"consistent"``: one mask per pass, shared by every input (Kirsch et al. 2019's consistent
  MC dropout, which BatchBALD's joint entropies need: pass t is one sampled network). The
  masks are drawn once for all T before the first input, so the output does not depend on
  ``batch_size``, and copies of an input get identical samples. A dropout followed by a dense
  layer becomes a product with T masked weight matrices, ``x @ (diag(m_t) W)``.

:func:`torch_dropout_probs` is the straightforward estimator it replaces: T whole passes with
torch's own dropout (its path for independent masks on a model whose dropout it cannot sample
itself, and the reference of ``benchmarks/mc_dropout.py``). Consistent masks on such a model
hook each dropout module instead (:func:`dean_nb.learner.masks.consistent_masks`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from dean_nb.learner.masks import consistent_masks, keep_mask
from dean_nb.learner.models import ChannelDropout
from dean_nb.runtime import GeneratorLike, derive_seed, make_generator, seeded_global_rng
from dean_nb.validation import check_inputs, check_int_range

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MASK_MODES",
    "MAX_HEAD_ELEMENTS_ACCELERATOR",
    "MAX_HEAD_ELEMENTS_CPU",
    "inference_modes",
    "max_head_elements",
    "mc_dropout_probs",
    "model_device",
    "predict_probs",
    "torch_dropout_probs",
]

#: Default number of inputs per trunk pass in :func:`mc_dropout_probs` and :func:`predict_probs`.
DEFAULT_BATCH_SIZE = 256

#: The kinds of dropout masks :func:`mc_dropout_probs` draws (see the module docstring).
MASK_MODES: tuple[str, ...] = ("independent", "consistent")

#: Upper bound on the number of elements of a ``(t, B, ...)`` head block, on the CPU (2**22
#: float32 values = 16 MiB) and on an accelerator (2**25 = 128 MiB). The T axis is split into
#: chunks to respect it.
MAX_HEAD_ELEMENTS_CPU = 2**22
MAX_HEAD_ELEMENTS_ACCELERATOR = 2**25

#: Dropout layers whose masks :func:`mc_dropout_probs` draws itself in a sequential head (any
#: other kind sends the model down the whole-model path).
_SAMPLED_DROPOUTS = (nn.Dropout, nn.Dropout2d, ChannelDropout)

#: Elements of one masked chunk in the fused dropout + dense product on the CPU (1 MiB of
#: float32: it stays in cache between the masking and the matrix product). Accelerators mask
#: a whole pass at once.
FUSED_CHUNK_ELEMENTS_CPU = 2**18


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


def _walkable_layers(head: nn.Module) -> list[nn.Module] | None:
    """The head's layers when all its dropout is top-level and of a kind the sampler draws
    (``nn.Dropout``, ``nn.Dropout2d`` on maps, :class:`~dean_nb.learner.models.ChannelDropout`),
    else ``None``."""
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    for layer in layers:
        if isinstance(layer, _DropoutNd):
            if type(layer) not in _SAMPLED_DROPOUTS:
                return None
        elif any(isinstance(module, _DropoutNd) for module in layer.modules()):
            return None
    return layers


def _channels(layer: nn.Module, feature_shape: tuple[int, ...]) -> int | None:
    """How many independent channels a dropout layer masks on features ``feature_shape`` (one
    input's), or ``None`` for element-wise dropout."""
    if type(layer) is nn.Dropout:
        return None
    if isinstance(layer, ChannelDropout):
        return layer.channels
    if len(feature_shape) != 3:
        raise ValueError(
            f"nn.Dropout2d needs (C, H, W) maps per input, got feature shape {feature_shape}"
        )
    return feature_shape[0]


def _per_sample(layer: nn.Module, h: torch.Tensor, expanded: bool) -> torch.Tensor:
    """Apply ``layer`` to ``h (B, ...)``, or to every pass of ``h (t, B, ...)``."""
    if not expanded:
        return layer(h)
    t, b = h.shape[:2]
    out = layer(h.reshape(t * b, *h.shape[2:]))
    return out.view(t, b, *out.shape[1:])


class _MaskSampler:
    """Draws the masks of one :func:`mc_dropout_probs` call and applies them to head blocks.

    ``h`` is a head activation, either shared by every pass, ``(B, *f)`` (before the first
    dropout), or one per pass, ``(t, B, *f)``. Consistent masks ``(T, *f)`` are drawn once
    per dropout layer, on first use, in layer order.
    """

    def __init__(self, mode: str, n_samples: int, generator: torch.Generator) -> None:
        self.mode = mode
        self.n_samples = n_samples
        self.generator = generator
        self.fused_chunk = FUSED_CHUNK_ELEMENTS_CPU if generator.device.type == "cpu" else math.inf
        self._consistent: dict[int, torch.Tensor] = {}

    def _pass_masks(
        self, layer_index: int, p: float, feature_shape: tuple[int, ...], t0: int, t: int
    ):
        """Consistent masks ``(t, *f)`` of passes ``t0 .. t0 + t - 1``."""
        if layer_index not in self._consistent:
            shape = (self.n_samples, *feature_shape)
            self._consistent[layer_index] = keep_mask(shape, p, self.generator)
        return self._consistent[layer_index][t0 : t0 + t]

    def dropout(
        self,
        index: int,
        p: float,
        channels: int | None,
        h: torch.Tensor,
        expanded: bool,
        t0: int,
        t: int,
    ) -> torch.Tensor:
        """``h`` with dropout applied in each of ``t`` passes: ``(t, B, *f)``.

        ``channels`` C masks ``(t, B, C)`` blocks of ``prod(f) / C`` features (channel
        dropout); ``None`` masks every feature.
        """
        batch_shape = h.shape[1:] if expanded else h.shape
        b, per_input = batch_shape[0], math.prod(batch_shape[1:])
        c = per_input if channels is None else channels
        grouped = h.reshape(*h.shape[: h.ndim - len(batch_shape)], b, c, per_input // c)
        scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
        if self.mode == "consistent":
            masks = self._pass_masks(index, p, (c,), t0, t)[:, None, :, None]
            return (masks * grouped).mul_(scale).view(t, *batch_shape)
        masks = keep_mask((t, b, c), p, self.generator, dtype=h.dtype).unsqueeze(-1)
        if expanded:
            return (masks * grouped).mul_(scale).view(t, *batch_shape)
        return (masks * (grouped * scale)).view(t, *batch_shape)

    def dropout_linear(
        self,
        index: int,
        p: float,
        channels: int | None,
        linear: nn.Linear,
        h_B_D: torch.Tensor,
        t0: int,
        t: int,
    ) -> torch.Tensor:
        """``linear(dropout(h))`` for ``t`` passes of a shared ``h (B, D)``: ``(t, B, out)``.

        ``channels`` C drops blocks of ``D / C`` features together; ``None`` single ones.
        """
        b, d = h_B_D.shape
        c = d if channels is None else channels
        scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
        weight, bias = linear.weight, linear.bias
        if self.mode == "consistent":
            masks_t_D = self._pass_masks(index, p, (c,), t0, t).repeat_interleave(d // c, dim=1)
            weights = (weight.unsqueeze(0) * masks_t_D.unsqueeze(1)).mul_(scale)
            z_B_tO = h_B_D @ weights.reshape(t * weight.shape[0], d).T
            z = z_B_tO.view(b, t, -1).transpose(0, 1)
            return (z + bias if bias is not None else z).contiguous()
        out = torch.empty(t, b, weight.shape[0], device=h_B_D.device, dtype=h_B_D.dtype)
        scaled = h_B_D * scale
        rows = int(max(1, min(b, self.fused_chunk // max(1, d))))
        buffer = torch.empty(rows, d, device=h_B_D.device, dtype=h_B_D.dtype)
        for pass_index in range(t):
            for start in range(0, b, rows):
                n = min(rows, b - start)
                chunk = self._masked_rows(p, c, scaled[start : start + n], buffer[:n])
                target = out[pass_index, start : start + n]
                if bias is None:
                    torch.mm(chunk, weight.T, out=target)
                else:
                    torch.addmm(bias, chunk, weight.T, out=target)
        return out

    def _masked_rows(
        self, p: float, channels: int, rows_n_D: torch.Tensor, buffer_n_D: torch.Tensor
    ) -> torch.Tensor:
        """``rows`` times a fresh mask of ``channels`` blocks per row, written to ``buffer``."""
        n, d = rows_n_D.shape
        if channels == d:
            return keep_mask((n, d), p, self.generator, out=buffer_n_D).mul_(rows_n_D)
        masks_n_C = keep_mask((n, channels), p, self.generator, dtype=rows_n_D.dtype)
        grouped = buffer_n_D.view(n, channels, d // channels)
        torch.mul(rows_n_D.view(n, channels, -1), masks_n_C.unsqueeze(-1), out=grouped)
        return buffer_n_D


def _head_logits(
    layers: list[nn.Module], h: torch.Tensor, sampler: _MaskSampler, t0: int, t: int
) -> torch.Tensor:
    """Logits ``(t, B, K)`` of passes ``t0 .. t0 + t - 1`` of the head ``layers`` on ``h (B, D)``."""
    expanded = False
    i = 0
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, _SAMPLED_DROPOUTS):
            feature_shape = tuple(h.shape[2:] if expanded else h.shape[1:])
            channels = _channels(layer, feature_shape)
            if not expanded and h.ndim == 2 and isinstance(following, nn.Linear):
                h = sampler.dropout_linear(i, layer.p, channels, following, h, t0, t)
                expanded, i = True, i + 2
                continue
            h, expanded = sampler.dropout(i, layer.p, channels, h, expanded, t0, t), True
        else:
            h = _per_sample(layer, h, expanded)
        i += 1
    return h if expanded else h.unsqueeze(0).expand(t, *h.shape)


def _num_classes(model: nn.Module, name: str) -> int:
    k = getattr(model, "num_classes", None)
    if k is None:
        raise ValueError(f"{name} is empty and the model has no num_classes attribute")
    return int(k)


def _probs_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in float32 through ``log_softmax`` (never NaN, rows sum to 1)."""
    return torch.log_softmax(logits.float(), dim=-1).exp()


def _check_mode(masks: str) -> str:
    if masks not in MASK_MODES:
        raise ValueError(f"masks must be one of {', '.join(MASK_MODES)}; got {masks!r}")
    return masks


def mc_dropout_probs(
    model: nn.Module,
    x: torch.Tensor,
    n_samples: int,
    batch_size: int | None = None,
    generator: GeneratorLike = None,
    masks: str = "independent",
) -> torch.Tensor:
    """Class probabilities from ``n_samples`` MC-dropout passes (the paper's step 2).

    Dropout layers are in training mode, every other layer in evaluation mode; the caller's
    modes are restored afterwards. For a model with ``trunk`` and ``head`` (an
    :class:`~dean_nb.learner.models.MCDropoutNet`) the trunk runs once per batch and the head T
    times, with the masks drawn and applied as the module docstring says; the T axis is chunked so
    that a head block holds at most :func:`max_head_elements` values. A model whose dropout
    is not top-level ``nn.Dropout``, ``nn.Dropout2d`` or
    :class:`~dean_nb.learner.models.ChannelDropout` layers of a sequential head runs whole:
    through :func:`torch_dropout_probs` for independent masks, with each dropout module hooked
    (:func:`~dean_nb.learner.masks.consistent_masks`) for consistent ones.

    Args:
        model: the classifier (its parameters' device is where the work happens).
        x: inputs ``(N, ...)``, e.g. images ``(N, C, H, W)``; any device.
        n_samples: T >= 1 stochastic passes.
        batch_size: inputs per trunk pass (default :data:`DEFAULT_BATCH_SIZE`).
        generator: fixes the masks (a seed is derived from it for a generator on the model's
            device; torch's global RNG is never touched). The same generator state, device and,
            for independent masks, ``batch_size`` give identical output.
        masks: ``"independent"`` (a mask per input and pass) or ``"consistent"`` (a mask per
            pass, shared by all inputs); see :data:`MASK_MODES`.

    Returns:
        ``probs_T_N_K`` float32 on the model's device; each row sums to 1.
    """
    n_samples = check_int_range("n_samples", n_samples, 1)
    masks = _check_mode(masks)
    x = check_inputs("x", x)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    batch_size = check_int_range("batch_size", batch_size, 1)
    device = model_device(model)
    trunk, head = _split(model)
    layers = _walkable_layers(head)
    n = x.shape[0]
    if n == 0:
        return torch.empty(n_samples, 0, _num_classes(model, "x"), device=device)
    if layers is None and masks == "consistent":
        return _hooked_consistent_probs(model, x, n_samples, batch_size, generator)
    if layers is None:
        return torch_dropout_probs(model, x, n_samples, batch_size, generator)
    seed = derive_seed(make_generator(generator))
    sampler = _MaskSampler(masks, n_samples, torch.Generator(device=device).manual_seed(seed))
    block_limit = max_head_elements(device)
    out: torch.Tensor | None = None
    with torch.no_grad(), inference_modes(model, dropout=True):
        for start in range(0, n, batch_size):
            features = trunk(x[start : start + batch_size].to(device))
            b = features.shape[0]
            per_input = max(1, features[0].numel())
            t_chunk = max(1, min(n_samples, block_limit // (b * per_input)))
            for t0 in range(0, n_samples, t_chunk):
                t = min(t_chunk, n_samples - t0)
                probs = _probs_from_logits(_head_logits(layers, features, sampler, t0, t))
                if out is None:
                    out = torch.empty(n_samples, n, probs.shape[-1], device=device)
                out[t0 : t0 + t, start : start + b] = probs
    assert out is not None
    return out


def _hooked_consistent_probs(
    model: nn.Module, x: torch.Tensor, n_samples: int, batch_size: int, generator: GeneratorLike
) -> torch.Tensor:
    """Consistent masks on any model: T whole passes per batch under
    :func:`~dean_nb.learner.masks.consistent_masks` (one mask per pass and dropout module)."""
    device = model_device(model)
    seed = derive_seed(make_generator(generator))
    chunks = []
    with (
        torch.no_grad(),
        inference_modes(model, dropout=False),
        consistent_masks(model, seed) as pass_index,
    ):
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size].to(device)
            passes = []
            for t in range(n_samples):
                pass_index.value = t
                passes.append(_probs_from_logits(model(batch)))
            chunks.append(torch.stack(passes))
    return torch.cat(chunks, dim=1)


def torch_dropout_probs(
    model: nn.Module,
    x: torch.Tensor,
    n_samples: int,
    batch_size: int | None = None,
    generator: GeneratorLike = None,
) -> torch.Tensor:
    """Class probabilities from ``n_samples`` whole passes with torch's own dropout.

    The straightforward MC dropout that :func:`mc_dropout_probs` replaces, and its path for a
    model whose dropout it cannot sample itself: dropout layers in training mode, every other
    layer in evaluation mode (the caller's modes are restored), and the whole model run on
    each batch of ``batch_size`` inputs repeated ``n_samples`` times, ``(T * B, ...)``, so
    every input and pass gets its own masks (independent masks). Costs T full forward passes
    and ``T * batch_size`` inputs' activations at once.

    Args:
        model: the classifier (its parameters' device is where the work happens).
        x: inputs ``(N, ...)``; any device.
        n_samples: T >= 1 passes.
        batch_size: inputs per forward pass before the repetition (default
            :data:`DEFAULT_BATCH_SIZE`).
        generator: fixes the masks: torch's global RNG is seeded, inside a fork, with a seed
            derived from it (the caller's global RNG state is untouched).

    Returns:
        ``probs_T_N_K`` float32 on the model's device; each row sums to 1.
    """
    n_samples = check_int_range("n_samples", n_samples, 1)
    x = check_inputs("x", x)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    batch_size = check_int_range("batch_size", batch_size, 1)
    device = model_device(model)
    if x.shape[0] == 0:
        return torch.empty(n_samples, 0, _num_classes(model, "x"), device=device)
    seed = derive_seed(make_generator(generator))
    chunks = []
    with (
        torch.no_grad(),
        inference_modes(model, dropout=True),
        seeded_global_rng(seed, device=device),
    ):
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size].to(device)
            repeated = batch.unsqueeze(0).expand(n_samples, *batch.shape)
            logits = model(repeated.reshape(n_samples * batch.shape[0], *batch.shape[1:]))
            chunks.append(_probs_from_logits(logits).view(n_samples, batch.shape[0], -1))
    return torch.cat(chunks, dim=1)


def predict_probs(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Deterministic class probabilities ``(N, K)`` (every layer in eval mode, dropout off).

    Float32 on the model's device; the caller's train/eval modes are restored afterwards.
    """
    x = check_inputs("x", x)
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
