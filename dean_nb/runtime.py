"""Devices and random generators: the two things every module threads through.

Every function in ``dean_nb`` that draws takes a ``torch.Generator`` (or a seed) instead of
touching global random state, so the same seed gives the same selection on CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch

__all__ = [
    "DeviceLike",
    "GeneratorLike",
    "default_device",
    "derive_seed",
    "make_generator",
    "resolve_device",
    "seeded_global_rng",
]

DeviceLike = str | torch.device | None
GeneratorLike = torch.Generator | int | None


def default_device() -> torch.device:
    """CUDA when it is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: DeviceLike = None) -> torch.device:
    """``None`` means :func:`default_device`; strings become ``torch.device``."""
    if device is None:
        return default_device()
    return torch.device(device)


def make_generator(seed: GeneratorLike = None, device: DeviceLike = "cpu") -> torch.Generator:
    """A ``torch.Generator`` from a seed; a generator passes through unchanged.

    ``None`` draws a fresh non-deterministic seed (never the global generator's state).
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def derive_seed(generator: torch.Generator) -> int:
    """A 62-bit integer drawn from ``generator``, to seed a child generator or a forked RNG."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: DeviceLike = None) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's state afterwards.

    Needed where torch draws from global state with no generator argument (``nn.Dropout``,
    parameter initialisation): the block is deterministic and the caller's RNG is untouched.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cuda_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        torch.manual_seed(seed)
        yield


def purpose_seed(seed: int, purpose: str) -> int:
    """A 62-bit seed for one purpose of a run (``"oracle"``, ``"model:0"``, ``"train:3"``...).

    A hash of ``(seed, purpose)``: purposes never share a stream, and adding a purpose does
    not shift the others (unlike drawing child seeds in sequence from one generator).
    """
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


@contextlib.contextmanager
def torch_threads(n_threads: int | None):
    """Run a block with ``torch.set_num_threads(n_threads)``, restoring the old count after.

    ``None`` changes nothing.
    """
    if n_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
