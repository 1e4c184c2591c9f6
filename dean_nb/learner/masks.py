"""Dropout masks: exact Bernoulli masks from random bits, and one mask per pass for any model.

Chapter "Scoring the pool". :func:`keep_mask` draws a keep mask from a few random bits per
entry (exactly Bernoulli(1 - p) whenever ``p 2**b`` is an integer for a width ``b`` of at most
8 bits). :func:`consistent_masks` makes every torch dropout module of *any* model draw one mask
per MC pass, shared by every input of the pass (Kirsch et al. 2019's consistent MC dropout,
which BatchBALD needs; baal's ``ConsistentMCDropout`` does the same by replacing modules):
within the block each module runs in evaluation mode and a forward hook multiplies its output
by the pass's mask, drawn from a seed of ``(seed, module, pass)`` alone, so the masks do not
depend on how the inputs are batched.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from dean_nb.learner.models import ChannelDropout
from dean_nb.runtime import purpose_seed

__all__ = [
    "HOOKED_DROPOUTS",
    "PassIndex",
    "consistent_masks",
    "dropout_modules",
    "keep_mask",
]

#: The dropout modules :func:`consistent_masks` can fix per pass: element-wise, whole channels
#: of 1-D, 2-D and 3-D maps, and the flat :class:`~dean_nb.learner.models.ChannelDropout`.
#: ``nn.AlphaDropout`` and ``nn.FeatureAlphaDropout`` change the kept values too: independent
#: masks only.
HOOKED_DROPOUTS: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    ChannelDropout,
)

#: Widths of the random bit fields that can hold a mask entry exactly: a rate p with an
#: integer ``p * 2**bits`` uses the narrowest (1 bit for 0.5, 2 for 0.25, 8 for 0.1875).
_BITS_PER_ENTRY = (1, 2, 4, 8)


def keep_mask(
    shape: tuple[int, ...],
    p: float,
    generator: torch.Generator,
    *,
    out: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A float mask of ``shape``: each entry 1 with probability ``1 - p``, else 0, independently.

    Drawn on ``generator``'s device as ``dtype`` (or into ``out``, a float tensor of
    ``shape``). When ``p * 2**b`` is an integer for a field width ``b`` of 1, 2, 4 or 8 bits,
    an entry is a uniform ``b``-bit integer ``u`` (``64 / b`` per 64-bit draw), kept when
    ``u >= p * 2**b``, so the probability is exact; otherwise a float32 uniform is compared
    with ``p``.
    """
    device = generator.device
    if out is None:
        out = torch.empty(shape, device=device, dtype=dtype)
    if p <= 0.0:
        return out.fill_(1.0)
    if p >= 1.0:
        return out.fill_(0.0)
    for bits in _BITS_PER_ENTRY:
        threshold = p * (1 << bits)
        if threshold == int(threshold):
            values = _random_bit_fields(math.prod(shape), bits, generator)
            return torch.ge(values.view(shape), int(threshold), out=out)
    uniform = torch.rand(shape, generator=generator, device=device)
    return torch.ge(uniform, p, out=out)


def _random_bit_fields(n: int, bits: int, generator: torch.Generator) -> torch.Tensor:
    """``(n,)`` independent uniform integers in ``[0, 2**bits)`` as uint8, ``8 / bits`` per
    random byte (``bits`` in 1, 2, 4, 8), from 64-bit draws of ``generator``."""
    per_byte = 8 // bits
    n_bytes = -(-n // per_byte)
    words = torch.empty(-(-n_bytes // 8), dtype=torch.int64, device=generator.device)
    words.random_(-(2**63), None, generator=generator)
    random_bytes = words.view(torch.uint8)[:n_bytes]
    if bits == 8:
        return random_bytes
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=generator.device)
    fields = (random_bytes.unsqueeze(-1) >> shifts).bitwise_and_((1 << bits) - 1)
    return fields.view(-1)[:n]


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Every torch dropout module of ``model`` (subclasses of ``_DropoutNd``), in module order."""
    return [module for module in model.modules() if isinstance(module, _DropoutNd)]


class PassIndex:
    """Which MC pass a :func:`consistent_masks` block is in: set ``pass_index.value = t``."""

    def __init__(self) -> None:
        self.value = 0


def _pass_mask(module: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The scaled keep mask of one pass for input ``x (B, ...)``, broadcast over the batch."""
    if isinstance(module, ChannelDropout):
        channels, length = module.channels, x.shape[1] // module.channels
        shape: tuple[int, ...] = (1, channels)
    elif type(module) is nn.Dropout:
        shape, length = (1, *x.shape[1:]), 1
    else:  # Dropout1d/2d/3d on batched maps (B, C, ...): one entry per channel
        shape, length = (1, x.shape[1]) + (1,) * (x.ndim - 2), 1
    generator = torch.Generator(device=x.device).manual_seed(seed)
    mask = keep_mask(shape, module.p, generator, dtype=x.dtype)
    if length > 1:
        mask = mask.repeat_interleave(length, dim=1)
    return mask.mul_(1.0 / (1.0 - module.p) if module.p < 1.0 else 0.0)


@contextlib.contextmanager
def consistent_masks(model: nn.Module, seed: int) -> Iterator[PassIndex]:
    """Within the block, each dropout module of ``model`` applies one mask per pass to every
    input: the mask of pass ``t`` (``pass_index.value = t``) is drawn from
    ``purpose_seed(seed, f"mask:{module}:{t}")`` the first time the module runs in that pass.

    The modules run in evaluation mode inside the block (the caller's modes and hooks are
    restored after). Raises ``ValueError`` for a dropout kind outside :data:`HOOKED_DROPOUTS`.
    """
    modules = dropout_modules(model)
    unsupported = sorted({type(m).__name__ for m in modules if type(m) not in HOOKED_DROPOUTS})
    if unsupported:
        raise ValueError(
            f"consistent masks need dropout modules of the kinds "
            f"{', '.join(t.__name__ for t in HOOKED_DROPOUTS)}; the model has "
            f"{', '.join(unsupported)} (use masks='independent')"
        )
    pass_index = PassIndex()
    cache: dict[tuple[int, int], torch.Tensor] = {}

    def apply(index: int, module: nn.Module, inputs: tuple, output: torch.Tensor):
        key = (index, pass_index.value)
        if key not in cache:
            seed_t = purpose_seed(seed, f"mask:{index}:{pass_index.value}")
            cache[key] = _pass_mask(module, inputs[0], seed_t)
        return output * cache[key]

    saved = [(m, m.training) for m in modules]
    handles = [m.register_forward_hook(functools.partial(apply, i)) for i, m in enumerate(modules)]
    try:
        for module in modules:
            module.eval()  # the identity: the hook applies the pass's mask
        yield pass_index
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in saved:
            module.training = mode
