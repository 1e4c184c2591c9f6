"""Tests of dean_nb.strategies.batchbald: joint entropies (exact, sampled) and the greedy BatchBALD."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dean_nb.runtime import make_generator
from dean_nb.strategies import batchbald, scoring


def brute_force_joint_entropy(probs_T_B_K: torch.Tensor) -> float:
    n_passes, n_points, n_classes = probs_T_B_K.shape
    total = 0.0
    for config in itertools.product(range(n_classes), repeat=n_points):
        p = sum(
            math.prod(float(probs_T_B_K[t, i, y]) for i, y in enumerate(config))
            for t in range(n_passes)
        )
        p /= n_passes
        if p > 0:
            total -= p * math.log(p)
    return total


@pytest.mark.parametrize(("passes", "points", "classes"), [(5, 1, 3), (4, 3, 3), (6, 4, 2)])
def test_exact_joint_entropy_matches_enumeration(passes, points, classes, random_probs):
    probs = random_probs((passes, points, classes), seed=points)
    got = float(batchbald.joint_entropy_exact(probs))
    assert got == pytest.approx(brute_force_joint_entropy(probs), rel=1e-10, abs=1e-12)


def test_exact_joint_entropy_of_independent_points_adds_up(random_probs):
    # a single pass makes the points independent: H(y1, y2, y3) = sum_i H(y_i)
    probs = random_probs((1, 3, 4), seed=9)
    marginal = -(probs * probs.log()).sum(dim=-1).sum()
    assert float(batchbald.joint_entropy_exact(probs)) == pytest.approx(float(marginal))


def test_exact_joint_entropy_survives_zero_probabilities():
    probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.5, 0.5]]])
    got = batchbald.joint_entropy_exact(probs)
    assert torch.isfinite(got)
    assert float(got) == pytest.approx(brute_force_joint_entropy(probs))


def test_sampled_joint_entropy_is_close_to_exact(random_probs):
    probs = random_probs((10, 5, 3), seed=11, temperature=0.7)
    exact = float(batchbald.joint_entropy_exact(probs))
    estimate = float(batchbald.joint_entropy_sampled(probs, 20_000, make_generator(0)))
    assert estimate == pytest.approx(exact, abs=0.03)


def test_sampled_joint_entropy_is_unbiased_over_seeds(random_probs):
    probs = random_probs((6, 4, 3), seed=12)
    exact = float(batchbald.joint_entropy_exact(probs))
    estimates = torch.tensor(
        [
            float(batchbald.joint_entropy_sampled(probs, 200, make_generator(seed)))
            for seed in range(100)
        ]
    )
    stderr = float(estimates.std()) / math.sqrt(len(estimates))
    assert abs(float(estimates.mean()) - exact) < 4 * stderr + 1e-6


def test_sampled_joint_entropy_avoids_underflow_for_long_batches(random_probs):
    # 150 confident points: per-pass configuration probabilities fall far below 1e-308
    probs = random_probs((5, 150, 10), seed=13, temperature=0.3)
    got = batchbald.joint_entropy_sampled(probs, 200, make_generator(0))
    assert torch.isfinite(got) and float(got) > 0


def test_batchbald_of_one_point_is_bald(random_probs):
    probs = random_probs((7, 30, 4), seed=14).float()
    picks, values = batchbald.batchbald_indices(probs, 1)
    bald = scoring.bald(probs).double()
    assert picks.item() == int(torch.argmax(bald))
    assert values.item() == pytest.approx(float(bald.max()), abs=1e-5)


def test_batchbald_skips_a_duplicate_that_bald_would_take(random_probs):
    probs = random_probs((6, 12, 3), seed=15).float()
    # confident passes that disagree: the highest BALD in the pool
    informative = torch.tensor([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]] * 2)
    probs[:, 0] = informative
    probs[:, 1] = informative  # an exact copy of point 0
    bald = scoring.bald(probs)
    assert set(torch.topk(bald, 2).indices.tolist()) == {0, 1}
    picks, _ = batchbald.batchbald_indices(probs, 2)
    assert picks[0].item() in (0, 1)
    assert picks[1].item() not in (0, 1)


def test_batchbald_greedy_matches_brute_force_greedy(random_probs):
    probs = random_probs((5, 8, 3), seed=16)
    picks, values = batchbald.batchbald_indices(probs, 3)
    cond = -(probs * probs.log()).sum(-1).mean(0)
    chosen: list[int] = []
    for _ in range(3):
        gains = {
            j: brute_force_joint_entropy(probs[:, [*chosen, j]]) - float(cond[[*chosen, j]].sum())
            for j in range(8)
            if j not in chosen
        }
        chosen.append(max(gains, key=gains.get))
    assert picks.tolist() == chosen
    # the joint mutual information never exceeds the sum of the points' BALD scores
    assert float(values[-1]) <= float(scoring.bald(probs)[picks].sum()) + 1e-9


def test_batchbald_sampled_path_agrees_with_exact_on_clear_cases(random_probs):
    probs = random_probs((8, 15, 3), seed=17, temperature=0.5)
    exact, _ = batchbald.batchbald_indices(probs, 4, max_exact_configurations=10**6)
    sampled, _ = batchbald.batchbald_indices(
        probs, 4, max_exact_configurations=1, n_joint_samples=20_000, generator=make_generator(0)
    )
    assert exact[:2].tolist() == sampled[:2].tolist()
    assert len(set(sampled.tolist())) == 4


def test_consistent_masks_make_copies_redundant_in_the_joint_information():
    """Two copies of an image under consistent MC dropout: their exact joint mutual
    information is well below twice their BALD (the second copy adds much less than the
    first), and BatchBALD on a pool of duplicated images never takes both copies of one. With
    independent masks the copies' samples differ and look like more information."""
    from dean_nb.learner.mc_dropout import mc_dropout_probs
    from dean_nb.learner.models import build_model

    model = build_model("digits", 10, 1, 8, seed=0)
    with torch.no_grad():
        model.head[-1].weight.mul_(20)  # confident passes that disagree: BALD near log K
    x = torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    pool = torch.cat([x, x])
    consistent = mc_dropout_probs(model, pool, 30, generator=1, masks="consistent")
    independent = mc_dropout_probs(model, pool, 30, generator=1)

    def joint_mi(probs_T_N_K, i, j):
        pair = probs_T_N_K[:, [i, j]]
        joint = batchbald.joint_entropy_exact(pair)
        return float(joint - batchbald.conditional_entropies(pair).sum())

    bald_N = scoring.bald(consistent).double()
    for i in range(5):
        assert joint_mi(consistent, i, i + 20) < 2 * float(bald_N[i]) - 1e-6
        consistent_mi = joint_mi(consistent, i, i + 20)
        assert consistent_mi < 1.6 * float(bald_N[i])
        assert consistent_mi < joint_mi(independent, i, i + 20)
    top_bald = [int(p) % 20 for p in torch.topk(bald_N, 4).indices]
    assert len(set(top_bald)) < 4  # BALD alone takes both copies of its best images
    picks, _ = batchbald.batchbald_indices(consistent, 4)  # exact joint entropies
    originals = [int(p) % 20 for p in picks]
    assert len(set(originals)) == len(originals)
