"""Devices, generators and the seeded global-RNG block."""

import torch

from dean_nb.runtime import derive_seed, make_generator, resolve_device, seeded_global_rng


def test_make_generator_is_reproducible_and_passes_generators_through():
    a, b = make_generator(5), make_generator(5)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    g = torch.Generator()
    assert make_generator(g) is g


def test_derive_seed_depends_on_the_generator_state():
    g = make_generator(0)
    assert derive_seed(g) != derive_seed(g)
    assert derive_seed(make_generator(0)) == derive_seed(make_generator(0))


def test_seeded_global_rng_is_deterministic_and_restores_caller_state():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_global_rng(9):
        first = torch.rand(3)
    with seeded_global_rng(9):
        second = torch.rand(3)
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected_next)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in {"cpu", "cuda"}
