"""Tests of dean_nb.strategies: the shared contract of every strategy, and each one's defining
property (top scores, k-center greedy, joint entropy, annealing limits, pool subsetting)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dean_nb import annealing, scoring, strategies
from dean_nb.models import build_model
from dean_nb.runtime import make_generator
from dean_nb.strategies import AcquisitionContext

ALL_NAMES = ("random", "entropy", "bald", "coreset", "batchbald", "dean")
POOL = 60
BUDGET = 5
T_MC = 8


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model("digits", num_classes=10, in_channels=1, image_size=8, seed=0)


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    gen = make_generator(123)
    return {
        "pool": torch.randn(POOL, 1, 8, 8, generator=gen),
        "labelled": torch.randn(12, 1, 8, 8, generator=gen),
        "validation": torch.randn(20, 1, 8, 8, generator=gen),
    }


def make_ctx(model, data, seed: int = 0, budget: int = BUDGET, **kwargs) -> AcquisitionContext:
    fields = {
        "model": model,
        "x_pool": data["pool"],
        "budget": budget,
        "generator": make_generator(seed),
        "device": "cpu",
        "x_labelled": data["labelled"],
        "x_validation": data["validation"],
        "n_mc_samples": T_MC,
    }
    fields.update(kwargs)
    return AcquisitionContext(**fields)


def random_probs(shape: tuple[int, ...], seed: int, temperature: float = 1.0) -> torch.Tensor:
    gen = make_generator(seed)
    logits = torch.randn(*shape, generator=gen, dtype=torch.float64) / temperature
    return torch.softmax(logits, dim=-1)


# ------------------------------------------------------------------------------------------
# Shared contract (one template for every strategy)
# ------------------------------------------------------------------------------------------


def test_registry_lists_the_six_strategies():
    assert set(strategies.available()) == set(ALL_NAMES)
    for name in ALL_NAMES:
        strategy = strategies.get(name)
        assert strategy.name == name
        assert isinstance(strategy, strategies.Strategy)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_selection_is_budget_distinct_in_range_indices(name, model, data):
    selection = strategies.get(name).select(make_ctx(model, data))
    idx = selection.indices
    assert idx.dtype == torch.int64 and idx.shape == (BUDGET,)
    assert len(set(idx.tolist())) == BUDGET
    assert int(idx.min()) >= 0 and int(idx.max()) < POOL
    if selection.scores is not None:
        assert selection.scores.shape == (POOL,)
        assert torch.isfinite(selection.scores).all()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_same_seed_gives_same_selection(name, model, data):
    strategy = strategies.get(name)
    first = strategy.select(make_ctx(model, data, seed=7)).indices
    again = strategy.select(make_ctx(model, data, seed=7)).indices
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_budget_larger_than_pool_is_rejected(name, model, data):
    ctx = make_ctx(model, data, budget=POOL + 1)
    with pytest.raises(ValueError, match=rf"budget.*{POOL}"):
        strategies.get(name).select(ctx)


def test_budget_equal_to_pool_takes_everything(model, data):
    small = {**data, "pool": data["pool"][:6]}
    for name in ALL_NAMES:
        idx = strategies.get(name).select(make_ctx(model, small, budget=6)).indices
        assert sorted(idx.tolist()) == list(range(6)), name


def test_unknown_name_lists_available_names():
    with pytest.raises(ValueError, match="unknown strategy 'badge'") as info:
        strategies.get("badge")
    for name in ALL_NAMES:
        assert name in str(info.value)


def test_unknown_option_names_the_known_ones():
    with pytest.raises(TypeError, match="beta_kind"):
        strategies.get("dean", temperature=3)
    with pytest.raises(ValueError, match="n_joint_samples"):
        strategies.get("batchbald", n_joint_samples=0)


# ------------------------------------------------------------------------------------------
# random, entropy, bald
# ------------------------------------------------------------------------------------------


def test_random_is_uniform_over_the_pool():
    counts = torch.zeros(10)
    gen = make_generator(0)
    for _ in range(2000):
        counts[strategies.random_indices(10, 3, gen)] += 1
    expected = 2000 * 3 / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001


def test_top_k_breaks_ties_towards_the_lower_index():
    scores = torch.tensor([0.1, 0.5, 0.5, 0.2, 0.5])
    assert strategies.top_k_indices(scores, 3).tolist() == [1, 2, 4]
    with pytest.raises(ValueError, match="finite"):
        strategies.top_k_indices(torch.tensor([0.1, math.nan]), 1)


def test_entropy_picks_the_highest_predictive_entropies(model, data):
    selection = strategies.get("entropy").select(make_ctx(model, data))
    expected = scoring.predictive_entropy(scoring.predict_probs(model, data["pool"]))
    torch.testing.assert_close(selection.scores, expected)
    top = set(torch.topk(expected, BUDGET).indices.tolist())
    assert set(selection.indices.tolist()) == top


def test_bald_picks_the_highest_bald_scores(model, data):
    selection = strategies.get("bald").select(make_ctx(model, data, seed=3))
    probs = scoring.mc_dropout_probs(model, data["pool"], T_MC, generator=make_generator(3))
    expected = scoring.bald(probs)
    torch.testing.assert_close(selection.scores, expected)
    assert set(selection.indices.tolist()) == set(torch.topk(expected, BUDGET).indices.tolist())


# ------------------------------------------------------------------------------------------
# coreset: k-center greedy
# ------------------------------------------------------------------------------------------


def brute_force_k_center(points: torch.Tensor, budget: int, centres: torch.Tensor) -> list[int]:
    chosen: list[int] = []
    for _ in range(budget):
        all_centres = torch.cat([centres, points[chosen]])
        d = torch.cdist(points, all_centres, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = d.min(dim=1).values
        nearest[chosen] = -1.0
        chosen.append(int(torch.argmax(nearest)))
    return chosen


def test_k_center_picks_the_farthest_point_first():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    points = torch.tensor(
        [[1.0, 0.0], [5.0, 4.0], [9.0, 1.0], [5.0, 0.0], [0.0, -3.0]], dtype=torch.float64
    )
    picks = strategies.k_center_greedy(points, 2, centres)
    # distances to the nearest centre: 1, sqrt(41), sqrt(2), 5, 3
    assert picks[0].item() == 1
    # after adding (5, 4): (5, 0) is 4 away from it, (0, -3) is 3 from the origin
    assert picks[1].item() == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_matches_brute_force(seed):
    gen = make_generator(seed)
    points = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    centres = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    picks = strategies.k_center_greedy(points, 8, centres, chunk_size=7)
    assert picks.tolist() == brute_force_k_center(points, 8, centres)


def test_k_center_without_centres_starts_central_then_goes_far():
    points = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]], dtype=torch.float64)
    picks = strategies.k_center_greedy(points, 3)
    assert picks[0].item() == 3  # nearest the mean 3.2
    assert picks[1].item() == 4  # farthest from x = 3
    assert picks[2].item() == 0  # 3 away from its nearest centre (x = 3)


def test_min_squared_distances_matches_cdist_for_any_chunking():
    gen = make_generator(4)
    points = torch.randn(23, 5, generator=gen, dtype=torch.float64)
    centres = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    expected = torch.cdist(points, centres).min(dim=1).values ** 2
    for chunk in (1, 4, 100):
        got = strategies.min_squared_distances(points, centres, chunk_size=chunk)
        torch.testing.assert_close(got, expected)


def test_coreset_strategy_runs_k_center_on_eval_features(model, data):
    selection = strategies.get("coreset").select(make_ctx(model, data))
    model.eval()
    with torch.no_grad():
        pool = model.features(data["pool"]).double()
        labelled = model.features(data["labelled"]).double()
    model.train()
    assert selection.indices.tolist() == brute_force_k_center(pool, BUDGET, labelled)
    nearest = torch.cdist(pool, labelled).min(dim=1).values
    torch.testing.assert_close(selection.scores, nearest.float())
    assert model.training  # the caller's mode is restored


# ------------------------------------------------------------------------------------------
# batchbald: joint entropy and the greedy
# ------------------------------------------------------------------------------------------


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
def test_exact_joint_entropy_matches_enumeration(passes, points, classes):
    probs = random_probs((passes, points, classes), seed=points)
    got = float(strategies.joint_entropy_exact(probs))
    assert got == pytest.approx(brute_force_joint_entropy(probs), rel=1e-10, abs=1e-12)


def test_exact_joint_entropy_of_independent_points_adds_up():
    # a single pass makes the points independent: H(y1, y2, y3) = sum_i H(y_i)
    probs = random_probs((1, 3, 4), seed=9)
    marginal = -(probs * probs.log()).sum(dim=-1).sum()
    assert float(strategies.joint_entropy_exact(probs)) == pytest.approx(float(marginal))


def test_exact_joint_entropy_survives_zero_probabilities():
    probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.5, 0.5]]])
    got = strategies.joint_entropy_exact(probs)
    assert torch.isfinite(got)
    assert float(got) == pytest.approx(brute_force_joint_entropy(probs))


def test_sampled_joint_entropy_is_close_to_exact():
    probs = random_probs((10, 5, 3), seed=11, temperature=0.7)
    exact = float(strategies.joint_entropy_exact(probs))
    estimate = float(strategies.joint_entropy_sampled(probs, 20_000, make_generator(0)))
    assert estimate == pytest.approx(exact, abs=0.03)


def test_sampled_joint_entropy_is_unbiased_over_seeds():
    probs = random_probs((6, 4, 3), seed=12)
    exact = float(strategies.joint_entropy_exact(probs))
    estimates = torch.tensor(
        [
            float(strategies.joint_entropy_sampled(probs, 200, make_generator(seed)))
            for seed in range(100)
        ]
    )
    stderr = float(estimates.std()) / math.sqrt(len(estimates))
    assert abs(float(estimates.mean()) - exact) < 4 * stderr + 1e-6


def test_sampled_joint_entropy_avoids_underflow_for_long_batches():
    # 150 confident points: per-pass configuration probabilities fall far below 1e-308
    probs = random_probs((5, 150, 10), seed=13, temperature=0.3)
    got = strategies.joint_entropy_sampled(probs, 200, make_generator(0))
    assert torch.isfinite(got) and float(got) > 0


def test_batchbald_of_one_point_is_bald():
    probs = random_probs((7, 30, 4), seed=14).float()
    picks, values = strategies.batchbald_indices(probs, 1)
    bald = scoring.bald(probs).double()
    assert picks.item() == int(torch.argmax(bald))
    assert values.item() == pytest.approx(float(bald.max()), abs=1e-5)


def test_batchbald_skips_a_duplicate_that_bald_would_take():
    probs = random_probs((6, 12, 3), seed=15).float()
    # confident passes that disagree: the highest BALD in the pool
    informative = torch.tensor([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]] * 2)
    probs[:, 0] = informative
    probs[:, 1] = informative  # an exact copy of point 0
    bald = scoring.bald(probs)
    assert set(torch.topk(bald, 2).indices.tolist()) == {0, 1}
    picks, _ = strategies.batchbald_indices(probs, 2)
    assert picks[0].item() in (0, 1)
    assert picks[1].item() not in (0, 1)


def test_batchbald_greedy_matches_brute_force_greedy():
    probs = random_probs((5, 8, 3), seed=16)
    picks, values = strategies.batchbald_indices(probs, 3)
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


def test_batchbald_sampled_path_agrees_with_exact_on_clear_cases():
    probs = random_probs((8, 15, 3), seed=17, temperature=0.5)
    exact, _ = strategies.batchbald_indices(probs, 4, max_exact_configurations=10**6)
    sampled, _ = strategies.batchbald_indices(
        probs, 4, max_exact_configurations=1, n_joint_samples=20_000, generator=make_generator(0)
    )
    assert exact[:2].tolist() == sampled[:2].tolist()
    assert len(set(sampled.tolist())) == 4


def test_batchbald_candidate_restriction_uses_top_bald(model, data):
    strategy = strategies.get("batchbald", candidates_per_pick=2)
    selection = strategy.select(make_ctx(model, data, seed=5))
    top = set(torch.topk(selection.scores, 2 * BUDGET).indices.tolist())
    assert set(selection.indices.tolist()) <= top


# ------------------------------------------------------------------------------------------
# dean
# ------------------------------------------------------------------------------------------


def test_dean_records_sigma_and_beta(model, data):
    selection = strategies.get("dean").select(make_ctx(model, data, seed=2))
    sigma = scoring.model_uncertainty(
        model, data["validation"], T_MC, generator=_generator_after_pool_pass(model, data, 2)
    )
    assert selection.sigma == pytest.approx(sigma)
    assert selection.beta == pytest.approx(annealing.beta_from_uncertainty(sigma, "exp", 0.25))


def _generator_after_pool_pass(model, data, seed: int) -> torch.Generator:
    gen = make_generator(seed)
    scoring.mc_dropout_probs(model, data["pool"], T_MC, generator=gen)
    return gen


def test_dean_without_validation_or_sigma_is_rejected(model, data):
    ctx = make_ctx(model, data, x_validation=None)
    with pytest.raises(ValueError, match="x_validation"):
        strategies.get("dean").select(ctx)


def test_dean_with_certain_model_picks_cluster_centroids(model, data):
    n_clusters, budget = 15, 4
    strategy = strategies.get("dean", n_clusters=n_clusters)
    for seed in range(3):
        selection = strategy.select(make_ctx(model, data, seed=seed, sigma=1e-4, budget=budget))
        assert math.isinf(selection.beta)  # sigma -> 0 gives beta -> inf
        # the same draws, done by hand: MC dropout on the pool, then the annealed sampler
        gen = make_generator(seed)
        probs = scoring.mc_dropout_probs(model, data["pool"], T_MC, generator=gen)
        expected = annealing.annealed_selection(
            probs.mean(0), scoring.bald(probs), budget, math.inf, n_clusters, generator=gen
        )
        assert selection.indices.tolist() == expected.indices.tolist()
        centroids = set(expected.centroids.tolist())
        drawn = expected.drawn_centroids.tolist()
        for i, pick in enumerate(selection.indices.tolist()):
            if drawn[i] not in drawn[:i]:  # a centroid drawn for the first time is returned
                assert pick == drawn[i] and pick in centroids


def test_dean_at_zero_beta_is_uniform(model, data):
    small = {**data, "pool": data["pool"][:12]}
    strategy = strategies.get("dean", beta_kind="log", n_clusters=4)  # sigma = 1 -> beta = 0
    counts = torch.zeros(12)
    for seed in range(60):
        selection = strategy.select(make_ctx(model, small, seed=seed, sigma=1.0, budget=3))
        assert selection.beta == 0.0
        counts[selection.indices] += 1
    expected = 60 * 3 / 12
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 31.3  # chi-square, 11 degrees of freedom, p = 0.001


# ------------------------------------------------------------------------------------------
# pool subsetting
# ------------------------------------------------------------------------------------------


def test_pool_subset_maps_indices_back_to_the_full_pool(model, data):
    ctx = make_ctx(model, data, seed=8)
    selection = strategies.select_from_pool("entropy", ctx, pool_subset=20)
    scored = torch.isfinite(selection.scores)
    assert int(scored.sum()) == 20
    entropy = scoring.predictive_entropy(scoring.predict_probs(model, data["pool"]))
    torch.testing.assert_close(selection.scores[scored], entropy[scored])
    subset = scored.nonzero().squeeze(1)
    top_in_subset = subset[torch.topk(entropy[subset], BUDGET).indices]
    assert set(selection.indices.tolist()) == set(top_in_subset.tolist())
    # the subset is the generator's uniform draw without replacement
    expected_subset = torch.randperm(POOL, generator=make_generator(8))[:20].sort().values
    assert subset.tolist() == expected_subset.tolist()


def test_pool_subset_of_full_size_is_the_plain_strategy(model, data):
    full = strategies.get("bald").select(make_ctx(model, data, seed=1))
    same = strategies.select_from_pool("bald", make_ctx(model, data, seed=1), pool_subset=POOL)
    assert torch.equal(full.indices, same.indices)
    with pytest.raises(ValueError, match="pool_subset"):
        strategies.select_from_pool("bald", make_ctx(model, data), pool_subset=BUDGET - 1)
