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


def _joint_entropies_straightforward(log_config_T_C, probs_T_N_K, sampled):
    """H(y_batch, y_n) for every candidate: the (n, C, K) joint formed in full, float64."""
    log_joint_T_C = log_config_T_C.to(torch.float64)
    p_T_N_K = probs_T_N_K.to(torch.float64)
    joint_N_C_K = torch.einsum("tc,tnk->nck", log_joint_T_C.exp(), p_T_N_K) / p_T_N_K.shape[0]
    plogp_N_C = torch.xlogy(joint_N_C_K, joint_N_C_K).sum(dim=2)
    if not sampled:
        return -plogp_N_C.sum(dim=1)
    q_C = log_joint_T_C.exp().mean(dim=0)  # importance weights of the sampled configurations
    return -(plogp_N_C / (q_C * q_C.numel())).sum(dim=1)


@pytest.mark.parametrize("sampled", [False, True])
def test_joint_entropies_with_candidates_match_the_full_joint(random_probs, sampled):
    probs_T_N_K = random_probs((12, 300, 6), seed=4, temperature=2.0)
    batch_T_B_K = probs_T_N_K[:, :3]
    if sampled:
        configs = batchbald.sample_configurations(batch_T_B_K, 400, make_generator(3))
        log_config = batchbald.sampled_log_config_probs(batch_T_B_K, configs)
    else:
        log_config = batchbald.exact_log_config_probs(batch_T_B_K)
    expected = _joint_entropies_straightforward(log_config, probs_T_N_K, sampled)
    for block in (2**12, 2**21):  # the block size changes the cost, never the values
        got = batchbald.joint_entropies_with_candidates(
            log_config, probs_T_N_K, sampled=sampled, max_elements=block
        )
        assert torch.allclose(got, expected, rtol=1e-10, atol=0)


def test_the_first_picks_are_exact_while_the_batch_has_few_configurations(random_probs):
    # K = 10: the 4th pick's batch has 10^3 configurations, still enumerated at the default 1000
    probs = random_probs((8, 40, 10), seed=5, temperature=2.0)
    picks, gains = batchbald.batchbald_indices(probs, 4, generator=make_generator(0))
    for n in range(1, 5):
        exact = batchbald.joint_entropy_exact(probs[:, picks[:n]])
        assert gains[n - 1].item() == pytest.approx(
            (exact - batchbald.conditional_entropies(probs[:, picks[:n]]).sum()).item(),
            rel=1e-9,
        )
    # ... and with another draw for the sampled steps, the same four picks
    again, _ = batchbald.batchbald_indices(probs, 4, generator=make_generator(7))
    assert again.tolist() == picks.tolist()


def test_sampled_configurations_are_stratified_over_the_passes():
    # pass t answers class t with certainty: a configuration names the pass it came from
    n_passes = 5
    probs_T_B_K = torch.eye(n_passes, dtype=torch.float64)[:, None, :].repeat(1, 2, 1)
    configs = batchbald.sample_configurations(probs_T_B_K, 3 * n_passes + 2, make_generator(0))
    counts = torch.bincount(configs[:, 0], minlength=n_passes)
    assert counts.sum() == 17 and counts.min() == 3 and counts.max() <= 4  # 3 each, 2 extra
    assert torch.equal(configs[:, 0], configs[:, 1])  # one pass per configuration


def test_sampled_configurations_never_draw_a_class_their_pass_gives_probability_zero():
    # rows that sum to less than 1 (here by 1e-2, in practice by float rounding) leave uniforms
    # above the last cumulative sum: those go to the last class of positive probability
    probs = torch.tensor(
        [[[0.5, 0.49, 0.0], [0.0, 0.99, 0.0]], [[0.2, 0.3, 0.49], [0.99, 0.0, 0.0]]],
        dtype=torch.float64,
    )
    configs = batchbald.sample_configurations(probs, 20_000, make_generator(0))
    t_M = torch.arange(2).repeat_interleave(10_000)  # stratified: pass 0, then pass 1
    drawn_probs = probs[t_M[:, None], torch.arange(2)[None, :], configs]
    assert bool((drawn_probs > 0).all())
    # the last positive class takes the leftover mass (1% of pass 0's draws at point 0)
    share = float((configs[:10_000, 0] == 1).double().mean())
    assert abs(share - 0.50) < 4 * math.sqrt(0.25 / 10_000)
    assert bool((configs[:10_000, 1] == 1).all()) and bool((configs[10_000:, 1] == 0).all())


def exact_batch_mi(probs_T_B_K: torch.Tensor) -> float:
    joint = batchbald.joint_entropy_exact(probs_T_B_K)
    return float(joint - batchbald.conditional_entropies(probs_T_B_K).sum())


@pytest.mark.parametrize(("passes", "points", "classes"), [(5, 2, 3), (6, 4, 3), (8, 5, 2)])
def test_batch_mutual_information_is_within_its_standard_error_of_exact(
    passes, points, classes, random_probs
):
    probs = random_probs((passes, points, classes), seed=20 + points)
    estimate, stderr = batchbald.batch_mutual_information(probs, 2000, make_generator(1))
    assert 0 < stderr < 0.02
    assert abs(estimate - exact_batch_mi(probs)) < 4 * stderr


def test_batch_mutual_information_reaches_its_bounds_exactly():
    # passes that agree carry no information; passes with distinct certain answers carry log T
    same = torch.softmax(torch.randn(1, 7, 4, generator=make_generator(0)), -1).expand(5, 7, 4)
    assert batchbald.batch_mutual_information(same, 50, make_generator(0)) == (
        pytest.approx(0.0, abs=1e-12),
        pytest.approx(0.0, abs=1e-12),
    )
    distinct = torch.eye(5)[:, None, :].expand(5, 3, 5)  # pass t answers class t, surely
    estimate, stderr = batchbald.batch_mutual_information(distinct, 50, make_generator(0))
    assert estimate == pytest.approx(math.log(5)) and stderr == pytest.approx(0.0, abs=1e-12)


def test_batch_mutual_information_never_exceeds_log_T_and_is_sharper_on_long_batches():
    # 120 points, passes that differ a little each (as MC dropout's): the joint entropy's own
    # estimate spreads over seeds; the batch MI's stays within its standard error and below log T
    gen = make_generator(3)
    base_B_K = torch.randn(120, 10, generator=gen) * 3
    probs = torch.softmax(base_B_K + 0.15 * torch.randn(20, 120, 10, generator=gen), -1)
    conditional = float(batchbald.conditional_entropies(probs).sum())
    new = [batchbald.batch_mutual_information(probs, 250, make_generator(s)) for s in range(6)]
    old = [
        float(batchbald.joint_entropy_sampled(probs, 5000, make_generator(s))) - conditional
        for s in range(6)
    ]
    values = torch.tensor([v for v, _ in new])
    assert float(values.max()) <= math.log(20)
    stderr = max(s for _, s in new)
    assert float(values.std()) < 2.5 * stderr
    assert float(torch.tensor(old).std()) > 4 * float(values.std())


def test_batch_mutual_information_refuses_too_few_configurations(random_probs):
    with pytest.raises(ValueError, match="n_per_pass"):
        batchbald.batch_mutual_information(random_probs((3, 2, 2), seed=0), 1)


def test_batch_mutual_information_is_exact_where_a_pass_gives_a_class_probability_0():
    # rows that sum to less than 1 leave uniforms past the last cumulative sum, and pass 0
    # gives its last class probability 0: the estimate must stay finite and match the exact
    # value of the normalised rows
    probs = torch.tensor([[[0.6, 0.4 - 1e-3, 0.0]], [[0.2, 0.3, 0.5]]], dtype=torch.float64)
    probs = probs.expand(2, 3, 3).contiguous()
    estimate, stderr = batchbald.batch_mutual_information(probs, 4000, make_generator(0))
    assert math.isfinite(estimate) and math.isfinite(stderr)
    normalised = probs / probs.sum(-1, keepdim=True)
    assert abs(estimate - exact_batch_mi(normalised)) < 4 * stderr + 2e-3
