"""dean_nb.analysis.pick_stats: perplexity limits, the chi-square test's calibration and its cells, the
first picks' seeding, and the batch-diversity statistics against direct computations."""

import math

import numpy as np
import pytest
import torch

from dean_nb.analysis.pick_stats import (
    batch_diversity,
    chi_square_gof,
    first_picks,
    perplexity,
    pick_summary,
)
from dean_nb.strategies import clustering


@pytest.fixture(scope="module")
def pool():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(80, 4, generator=g), 1).double()
    scores = torch.rand(80, generator=g, dtype=torch.float64) + 0.1
    labels = clustering.cluster_points(probs, 10)
    centroids = clustering.median_centroids(labels, scores)
    return probs, scores, labels, centroids, scores[centroids]


def test_perplexity_of_uniform_and_point_masses():
    assert perplexity(torch.full((50,), 1 / 50)) == pytest.approx(50)
    assert perplexity(torch.tensor([0.0, 1.0, 0.0])) == pytest.approx(1)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert perplexity(p) == pytest.approx(math.exp(-(p * p.log()).sum().item()))


def test_pick_summary_limits(pool):
    probs, _, _, centroids, weights = pool
    perp0, mass0 = pick_summary(probs, centroids, weights, 0.0)
    assert perp0 == pytest.approx(80) and mass0 == pytest.approx(10 / 80)
    perp_inf, mass_inf = pick_summary(probs, centroids, weights, math.inf)
    assert mass_inf == pytest.approx(1.0)
    assert perp_inf == pytest.approx(perplexity(weights / weights.sum()))


def test_first_picks_are_seeded_and_follow_the_distribution(pool):
    probs, _, _, centroids, weights = pool
    a = first_picks(probs, centroids, weights, 0.0, 2000, seed=3)
    assert a.shape == (2000,) and torch.equal(
        a, first_picks(probs, centroids, weights, 0.0, 2000, 3)
    )
    assert not torch.equal(a, first_picks(probs, centroids, weights, 0.0, 2000, 4))
    p_value, cells = chi_square_gof(a, torch.full((80,), 1 / 80, dtype=torch.float64))
    assert p_value > 1e-3 and cells == 80
    frozen = first_picks(probs, centroids, weights, math.inf, 200, seed=5)
    assert torch.isin(frozen, centroids).all()


def test_chi_square_is_calibrated_and_rejects_a_wrong_distribution():
    gen = torch.Generator().manual_seed(1)
    probs = torch.distributions.Dirichlet(torch.ones(30)).sample().double()
    p_values = []
    for _ in range(200):
        picks = torch.multinomial(probs, 500, replacement=True, generator=gen)
        p_values.append(chi_square_gof(picks, probs)[0])
    # under the null the p-values are about uniform: about 5% fall below 0.05
    assert 0.01 < np.mean(np.array(p_values) < 0.05) < 0.12
    wrong = torch.full((30,), 1 / 30, dtype=torch.float64)
    picks = torch.multinomial(probs, 2000, replacement=True, generator=gen)
    assert chi_square_gof(picks, wrong)[0] < 1e-6


def test_chi_square_cells_expect_enough_and_a_pick_off_the_support_raises():
    probs = torch.tensor([0.0, 0.03, 0.03, 0.04, 0.9], dtype=torch.float64)
    picks = torch.multinomial(probs, 100, replacement=True)
    _, cells = chi_square_gof(picks, probs, min_expected=5.0)
    assert cells == 2  # 3 + 3 expected picks merge; the 4 join the 90 of the last cell
    with pytest.raises(ValueError, match="zero"):
        chi_square_gof(torch.tensor([0, 4]), probs)


def test_batch_diversity_against_direct_computation():
    distances = torch.tensor(
        [[0.0, 0.1, 0.5, 0.9], [0.1, 0.0, 0.4, 0.8], [0.5, 0.4, 0.0, 0.3], [0.9, 0.8, 0.3, 0.0]]
    )
    clusters, classes = torch.tensor([0, 0, 1, 2]), torch.tensor([5, 6, 6, 6])
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0])
    stats = batch_diversity(torch.tensor([0, 1, 3]), distances, clusters, classes, scores)
    assert stats["clusters"] == 2 and stats["classes"] == 2
    assert stats["nearest pick"] == pytest.approx((0.1 + 0.1 + 0.8) / 3)
    assert stats["BALD"] == pytest.approx(7 / 3)
    with pytest.raises(ValueError, match="two picks"):
        batch_diversity(torch.tensor([2]), distances, clusters, classes, scores)
