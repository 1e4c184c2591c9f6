"""Tests of dean_nb.strategies.badge and the ``badge`` strategy: the embeddings are the last layer's
cross-entropy gradients at the predicted label (checked against autograd), k-means++ draws each
centre with probability d^2 / sum d^2 (chi-square), and the batch is diverse."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from dean_nb import strategies
from dean_nb.learner.models import build_mlp
from dean_nb.runtime import make_generator
from dean_nb.strategies import badge
from dean_nb.strategies.base import AcquisitionContext

P_THRESHOLD = 1e-3


def _autograd_embeddings(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(N, K * F)``: per sample, d CE(logits, argmax p) / d W of the last linear, by autograd."""
    model.eval()
    weight = model.head[-1].weight
    rows = []
    for x_1 in x.split(1):
        logits_1_K = model(x_1)
        y_hat_1 = logits_1_K.argmax(dim=1)
        loss = F.cross_entropy(logits_1_K, y_hat_1, reduction="sum")
        (grad_K_F,) = torch.autograd.grad(loss, weight)
        rows.append(grad_K_F.flatten())
    model.train()
    return torch.stack(rows)


# ------------------------------------------------------------------------------------------
# gradient embeddings
# ------------------------------------------------------------------------------------------


def test_gradient_embeddings_equal_autograd_last_layer_gradients():
    model = build_mlp(in_features=6, num_classes=4, width=8, seed=0)
    x = torch.randn(7, 6, generator=make_generator(0))
    model.eval()
    with torch.no_grad():
        features_N_F = model.features(x)
        probs_N_K = torch.softmax(model(x), dim=1)
    embeddings = badge.gradient_embeddings(features_N_F, probs_N_K)
    assert embeddings.shape == (7, 4 * 8)
    torch.testing.assert_close(embeddings, _autograd_embeddings(model, x), atol=1e-5, rtol=0)


def test_badge_scores_are_the_norms_of_the_autograd_gradients(digits_model, x_digits):
    ctx = AcquisitionContext(
        digits_model, x_digits, budget=5, generator=make_generator(0), device="cpu"
    )
    selection = strategies.get("badge").select(ctx)
    expected_N = _autograd_embeddings(digits_model, x_digits).norm(dim=1)
    torch.testing.assert_close(selection.scores, expected_N, atol=1e-5, rtol=1e-5)
    assert int(selection.indices[0]) == int(expected_N.argmax())  # first centre: largest norm
    assert digits_model.training  # the caller's mode is restored


# ------------------------------------------------------------------------------------------
# k-means++ seeding
# ------------------------------------------------------------------------------------------

POINTS_N_D = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -0.5], [2.0, 2.0]])


def _squared_distances(points_N_D: torch.Tensor) -> torch.Tensor:
    return torch.cdist(points_N_D.double(), points_N_D.double()).pow(2)


def test_first_centre_has_the_largest_norm():
    for seed in range(3):
        picks = badge.kmeans_pp_indices(POINTS_N_D, 3, make_generator(seed))
        assert int(picks[0]) == int(POINTS_N_D.norm(dim=1).argmax()) == 0


def test_second_centre_is_drawn_with_probability_d2_over_sum_d2(chisquare_p):
    d2_N = _squared_distances(POINTS_N_D)[0]
    gen = make_generator(0)
    counts = torch.zeros(5)
    for _ in range(3000):
        counts[badge.kmeans_pp_indices(POINTS_N_D, 2, gen)[1]] += 1
    assert counts[0] == 0  # the first centre is never drawn again
    probs = (d2_N / d2_N.sum())[1:]
    assert chisquare_p(counts[1:].numpy(), probs.numpy()) > P_THRESHOLD


def test_third_centre_uses_the_distance_to_the_nearest_chosen_centre(chisquare_p):
    # joint law of (second, third): d2(0, j) / S * min(d2(0, k), d2(j, k)) / S_j
    d2_N_N = _squared_distances(POINTS_N_D)
    pairs = list(itertools.permutations(range(1, 5), 2))
    expected = []
    for j, k in pairs:
        nearest_N = torch.minimum(d2_N_N[0], d2_N_N[j])
        expected.append(d2_N_N[0, j] / d2_N_N[0].sum() * nearest_N[k] / nearest_N.sum())
    gen = make_generator(1)
    counts = dict.fromkeys(pairs, 0)
    for _ in range(4000):
        picks = badge.kmeans_pp_indices(POINTS_N_D, 3, gen).tolist()
        counts[(picks[1], picks[2])] += 1
    assert sum(counts.values()) == 4000  # never the first centre again, never a repeat
    p_value = chisquare_p([counts[pair] for pair in pairs], torch.stack(expected).numpy())
    assert p_value > P_THRESHOLD


def test_picks_are_distinct_and_a_full_budget_takes_every_point():
    points_N_D = torch.randn(12, 3, generator=make_generator(2))
    for seed in range(5):
        picks = badge.kmeans_pp_indices(points_N_D, 12, make_generator(seed))
        assert picks.dtype == torch.int64 and sorted(picks.tolist()) == list(range(12))


def test_copies_are_never_both_chosen_while_a_distinct_point_remains():
    base_M_D = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [0.5, -1.5], [1.0, 1.0]])
    copies = torch.tensor([0, 0, 0, 1, 1, 2, 3, 4, 4, 4])  # 10 points at 5 locations
    points_N_D = base_M_D[copies]
    for seed in range(20):
        picks = badge.kmeans_pp_indices(points_N_D, 5, make_generator(seed))
        assert sorted(copies[picks].tolist()) == [0, 1, 2, 3, 4], seed


def test_when_every_distance_is_zero_the_next_centre_is_uniform(chisquare_p):
    points_N_D = torch.ones(5, 3)
    gen = make_generator(3)
    counts = torch.zeros(5)
    for _ in range(2000):
        picks = badge.kmeans_pp_indices(points_N_D, 2, gen)
        assert int(picks[0]) == 0  # norms tie: the lowest index
        counts[picks[1]] += 1
    assert counts[0] == 0
    assert chisquare_p(counts[1:].numpy(), None) > P_THRESHOLD


def test_same_seed_same_picks_other_seed_other_picks_any_chunk_size():
    points_N_D = torch.randn(40, 8, generator=make_generator(4))
    first = badge.kmeans_pp_indices(points_N_D, 10, make_generator(7))
    assert torch.equal(first, badge.kmeans_pp_indices(points_N_D, 10, make_generator(7)))
    assert torch.equal(first, badge.kmeans_pp_indices(points_N_D, 10, 7, chunk_size=3))
    assert not torch.equal(first, badge.kmeans_pp_indices(points_N_D, 10, make_generator(8)))


# ------------------------------------------------------------------------------------------
# the badge strategy
# ------------------------------------------------------------------------------------------


def test_strategy_returns_budget_distinct_pool_indices(digits_model, x_digits):
    ctx = AcquisitionContext(
        digits_model, x_digits, budget=8, generator=make_generator(1), device="cpu"
    )
    selection = strategies.get("badge").select(ctx)
    assert selection.indices.dtype == torch.int64 and selection.indices.shape == (8,)
    assert len(set(selection.indices.tolist())) == 8
    assert 0 <= int(selection.indices.min()) and int(selection.indices.max()) < 40


def test_strategy_batch_covers_more_clusters_than_top_norms(digits_model):
    # 4 distinct images with 10 near-copies each: the 4 largest gradient norms sit in one
    # cluster, while D^2 sampling almost never draws a near-copy of a chosen centre
    gen = make_generator(5)
    centres_C = torch.randn(4, 1, 8, 8, generator=gen)
    cluster_N = torch.arange(4).repeat_interleave(10)
    x_pool = centres_C[cluster_N] + 1e-3 * torch.randn(40, 1, 8, 8, generator=gen)
    for seed in range(5):
        ctx = AcquisitionContext(
            digits_model, x_pool, budget=4, generator=make_generator(seed), device="cpu"
        )
        selection = strategies.get("badge").select(ctx)
        top_norms = strategies.top_k_indices(selection.scores, 4)
        assert len(set(cluster_N[top_norms].tolist())) == 1
        assert len(set(cluster_N[selection.indices].tolist())) == 4, seed


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------


def test_bad_inputs_name_the_parameter():
    points_N_D = torch.randn(6, 2)
    with pytest.raises(ValueError, match=r"budget must lie in \[1, 6\]"):
        badge.kmeans_pp_indices(points_N_D, 7, 0)
    with pytest.raises(ValueError, match=r"embeddings_N_D must have shape \(N, D\)"):
        badge.kmeans_pp_indices(torch.randn(6), 2, 0)
    with pytest.raises(ValueError, match="embeddings_N_D must be finite"):
        badge.kmeans_pp_indices(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), 1, 0)
    with pytest.raises(ValueError, match=r"chunk_size must lie in \[1, inf\]"):
        badge.kmeans_pp_indices(points_N_D, 2, 0, chunk_size=0)
    features_N_F = torch.randn(6, 3)
    probs_N_K = torch.softmax(torch.randn(6, 4), dim=1)
    with pytest.raises(ValueError, match=r"features_N_F must have shape \(N, F\)"):
        badge.gradient_embeddings(features_N_F[0], probs_N_K)
    with pytest.raises(ValueError, match=r"probs_N_K must have shape \(N, K\)"):
        badge.gradient_embeddings(features_N_F, probs_N_K[None])
    with pytest.raises(ValueError, match=r"probs_N_K must have one row per point .*N = 6"):
        badge.gradient_embeddings(features_N_F, probs_N_K[:5])
    with pytest.raises(ValueError, match="probs_N_K rows must sum to 1"):
        badge.gradient_embeddings(features_N_F, 2 * probs_N_K)
    with pytest.raises(ValueError, match=r"chunk_size must lie in \[1, inf\]"):
        strategies.get("badge", chunk_size=0)


def test_strategy_refuses_a_budget_larger_than_the_pool(digits_model, x_digits):
    ctx = AcquisitionContext(digits_model, x_digits, budget=41, device="cpu")
    with pytest.raises(ValueError, match=r"budget must lie in \[1, 40\]"):
        strategies.get("badge").select(ctx)
