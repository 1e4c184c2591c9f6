"""Tests of dean_nb.strategies.coreset: k-center greedy against brute force, and its chunked distances."""

from __future__ import annotations

import pytest
import torch

from dean_nb.runtime import make_generator
from dean_nb.strategies import coreset


def test_k_center_picks_the_farthest_point_first():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    points = torch.tensor(
        [[1.0, 0.0], [5.0, 4.0], [9.0, 1.0], [5.0, 0.0], [0.0, -3.0]], dtype=torch.float64
    )
    picks = coreset.k_center_greedy(points, 2, centres)
    # distances to the nearest centre: 1, sqrt(41), sqrt(2), 5, 3
    assert picks[0].item() == 1
    # after adding (5, 4): (5, 0) is 4 away from it, (0, -3) is 3 from the origin
    assert picks[1].item() == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_matches_brute_force(seed, brute_force_k_center):
    gen = make_generator(seed)
    points = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    centres = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    picks = coreset.k_center_greedy(points, 8, centres, chunk_size=7)
    assert picks.tolist() == brute_force_k_center(points, 8, centres)


def test_k_center_without_centres_starts_central_then_goes_far():
    points = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]], dtype=torch.float64)
    picks = coreset.k_center_greedy(points, 3)
    assert picks[0].item() == 3  # nearest the mean 3.2
    assert picks[1].item() == 4  # farthest from x = 3
    assert picks[2].item() == 0  # 3 away from its nearest centre (x = 3)


def test_min_squared_distances_matches_cdist_for_any_chunking():
    gen = make_generator(4)
    points = torch.randn(23, 5, generator=gen, dtype=torch.float64)
    centres = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    expected = torch.cdist(points, centres).min(dim=1).values ** 2
    for chunk in (1, 4, 100):
        got = coreset.min_squared_distances(points, centres, chunk_size=chunk)
        torch.testing.assert_close(got, expected)
