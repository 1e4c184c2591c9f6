"""Shared pytest settings and helpers for the package tests.

The helpers are plain functions offered as fixtures (``def test_x(random_probs): ...``), so
that one definition serves every test module without importing ``conftest`` by name (the
book's own ``conftest.py`` shares that module name when ``pytest --nbval`` collects both).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from dean_nb.runtime import make_generator

#: Significance level of every goodness-of-fit check: a correct sampler fails one in 1000.
P_THRESHOLD = 1e-3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster and robust to a busy, shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_probs(
    shape: tuple[int, ...],
    seed: int = 0,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Rows on the simplex over the last axis: ``softmax(randn(shape) / temperature)``."""
    gen = make_generator(seed)
    logits = torch.randn(*shape, generator=gen, dtype=torch.float64) / temperature
    return torch.softmax(logits, dim=-1).to(dtype)


def _chisquare_p(counts, probs) -> float:
    """Chi-square goodness-of-fit p value of ``counts`` against ``probs`` (uniform when
    ``None``); bins with expected count < 5 are merged."""
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.full(counts.size, 1.0 / counts.size) if probs is None else np.asarray(probs)
    expected = probs * counts.sum()
    small = expected < 5
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    assert counts.size >= 2
    return float(chisquare(counts, expected).pvalue)


def _brute_force_k_center(points: torch.Tensor, budget: int, centres: torch.Tensor) -> list[int]:
    """k-center greedy by recomputing every distance to every centre at each step."""
    chosen: list[int] = []
    for _ in range(budget):
        all_centres = torch.cat([centres, points[chosen]])
        d = torch.cdist(points, all_centres, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = d.min(dim=1).values
        nearest[chosen] = -1.0
        chosen.append(int(torch.argmax(nearest)))
    return chosen


@pytest.fixture
def random_probs():
    """``random_probs(shape, seed=0, temperature=1.0, dtype=float64)``: softmax rows."""
    return _random_probs


@pytest.fixture
def chisquare_p():
    """``chisquare_p(counts, probs=None)``: goodness-of-fit p value, small bins merged."""
    return _chisquare_p


@pytest.fixture
def brute_force_k_center():
    """``brute_force_k_center(points, budget, centres)``: the reference k-center picks."""
    return _brute_force_k_center
