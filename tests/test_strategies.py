"""Tests of dean_nb.strategies: the shared contract of every strategy, and each one's defining
property (top scores, k-center greedy, joint entropy, annealing limits, pool subsetting)."""

from __future__ import annotations

import math

import pytest
import torch

from dean_nb import strategies
from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.learner import mc_dropout
from dean_nb.learner.models import build_model
from dean_nb.runtime import make_generator
from dean_nb.strategies import annealing, scoring
from dean_nb.strategies.base import AcquisitionContext

ALL_NAMES = (
    "random",
    "entropy",
    "bald",
    "coreset",
    "batchbald",
    "badge",
    "dean",
    "power-bald",
    "softmax-bald",
    "power-entropy",
    "typiclust",
    "relabel-majority",
    "activelab",
)
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


def test_registry_lists_every_strategy():
    assert strategies.available() == ALL_NAMES  # registration order (CLI messages use it)
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
    with pytest.raises(ValueError, match="unknown strategy 'vaal'") as info:
        strategies.get("vaal")
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


def test_random_is_uniform_over_the_pool(chisquare_p):
    counts = torch.zeros(10)
    gen = make_generator(0)
    for _ in range(2000):
        counts[strategies.random_indices(10, 3, gen)] += 1
    assert chisquare_p(counts.numpy(), None) > 1e-3


def test_top_k_breaks_ties_towards_the_lower_index():
    scores = torch.tensor([0.1, 0.5, 0.5, 0.2, 0.5])
    assert strategies.top_k_indices(scores, 3).tolist() == [1, 2, 4]
    with pytest.raises(ValueError, match="finite"):
        strategies.top_k_indices(torch.tensor([0.1, math.nan]), 1)


def test_entropy_picks_the_highest_predictive_entropies(model, data):
    selection = strategies.get("entropy").select(make_ctx(model, data))
    expected = scoring.predictive_entropy(mc_dropout.predict_probs(model, data["pool"]))
    torch.testing.assert_close(selection.scores, expected)
    top = set(torch.topk(expected, BUDGET).indices.tolist())
    assert set(selection.indices.tolist()) == top


def test_bald_picks_the_highest_bald_scores(model, data):
    selection = strategies.get("bald").select(make_ctx(model, data, seed=3))
    probs = mc_dropout.mc_dropout_probs(model, data["pool"], T_MC, generator=make_generator(3))
    expected = scoring.bald(probs)
    torch.testing.assert_close(selection.scores, expected)
    assert set(selection.indices.tolist()) == set(torch.topk(expected, BUDGET).indices.tolist())


# ------------------------------------------------------------------------------------------
# coreset and batchbald strategies (the algorithms: test_coreset.py, test_batchbald.py)
# ------------------------------------------------------------------------------------------


def test_coreset_strategy_runs_k_center_on_eval_features(model, data, brute_force_k_center):
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
    mc_dropout.mc_dropout_probs(model, data["pool"], T_MC, generator=gen)
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
        probs = mc_dropout.mc_dropout_probs(model, data["pool"], T_MC, generator=gen)
        expected = annealing.annealed_selection(
            probs.mean(0), scoring.bald(probs), budget, math.inf, n_clusters, generator=gen
        )
        assert selection.indices.tolist() == expected.indices.tolist()
        centroids = set(expected.centroids.tolist())
        drawn = expected.drawn_centroids.tolist()
        picks = selection.indices.tolist()
        for i, pick in enumerate(picks):
            assert drawn[i] in centroids
            if drawn[i] not in picks[:i]:  # a centroid not taken yet is itself the pick
                assert pick == drawn[i]


def test_dean_at_zero_beta_is_uniform(model, data, chisquare_p):
    small = {**data, "pool": data["pool"][:12]}
    strategy = strategies.get("dean", beta_kind="log", n_clusters=4)  # sigma = 1 -> beta = 0
    counts = torch.zeros(12)
    for seed in range(60):
        selection = strategy.select(make_ctx(model, small, seed=seed, sigma=1.0, budget=3))
        assert selection.beta == 0.0
        counts[selection.indices] += 1
    assert chisquare_p(counts.numpy(), None) > 1e-3


@pytest.mark.parametrize("beta", [0.0, 0.7, 40.0, math.inf])
def test_dean_with_fixed_beta_uses_it_at_any_sigma(model, data, beta):
    n_clusters = 12
    strategy = strategies.get("dean", beta=beta, n_clusters=n_clusters)
    for sigma in (1e-4, 0.5, 1.0):
        selection = strategy.select(make_ctx(model, data, seed=6, sigma=sigma))
        assert selection.beta == beta and selection.sigma == sigma
        # the annealed sampler at that beta, by hand on the same draws
        gen = make_generator(6)
        probs = mc_dropout.mc_dropout_probs(model, data["pool"], T_MC, generator=gen)
        expected = annealing.annealed_batch(
            probs.mean(0), scoring.bald(probs), BUDGET, beta, n_clusters, generator=gen
        )
        assert selection.indices.tolist() == expected.tolist()
    # no validation set and no sigma: none is needed for the draw, none is reported
    selection = strategy.select(make_ctx(model, data, seed=6, x_validation=None))
    assert selection.beta == beta and selection.sigma is None
    assert selection.indices.tolist() == expected.tolist()


def test_dean_beta_0_starts_the_run_at_beta_0_and_cools_through_the_map(model, data):
    beta_0, sigma_0 = annealing.PAPER_COLD_START_BETA, 0.05  # a model far surer than MNIST's
    strategy = strategies.get("dean", beta_0=beta_0, n_clusters=12)
    first = strategy.select(make_ctx(model, data, seed=6, sigma=sigma_0))
    assert first.beta == pytest.approx(beta_0, rel=1e-9)  # scale 1/4 would give 1.2e8
    later = strategy.select(make_ctx(model, data, seed=6, sigma=0.03, sigma_0=sigma_0))
    unit = lambda s: math.exp(1 / s) - 1  # noqa: E731  the paper's exp map at scale 1
    assert later.beta == pytest.approx(beta_0 * unit(0.03) / unit(sigma_0), rel=1e-9)
    # the same draw as the annealed sampler at that beta
    fixed = strategies.get("dean", beta=later.beta, n_clusters=12)
    again = fixed.select(make_ctx(model, data, seed=6, sigma=0.03))
    assert later.indices.tolist() == again.indices.tolist()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"beta_0": 0.0}, "beta_0 must lie in"),
        ({"beta_0": math.inf}, "beta_0 must lie in"),
        ({"beta_0": 13.4, "beta": 10.0}, "excludes a fixed beta"),
    ],
)
def test_dean_refuses_a_bad_beta_0(options, match):
    with pytest.raises(ValueError, match=match):
        strategies.get("dean", **options)


def test_dean_beta_0_refuses_a_first_model_without_uncertainty(model, data):
    strategy = strategies.get("dean", beta_0=13.4)
    with pytest.raises(ValueError, match="sigma_0 > 0"):
        strategy.select(make_ctx(model, data, sigma=0.2, sigma_0=0.0))


def test_dean_with_fixed_beta_zero_is_uniform(model, data, chisquare_p):
    small = {**data, "pool": data["pool"][:12]}
    strategy = strategies.get("dean", beta=0.0, n_clusters=4)
    counts = torch.zeros(12)
    for seed in range(60):
        counts[
            strategy.select(make_ctx(model, small, seed=seed, sigma=0.01, budget=3)).indices
        ] += 1
    assert chisquare_p(counts.numpy(), None) > 1e-3


def test_dean_with_fixed_infinite_beta_picks_centroids(model, data):
    n_clusters, budget = 15, 4
    strategy = strategies.get("dean", beta="inf", n_clusters=n_clusters)  # JSON's spelling
    assert strategy.beta == math.inf
    for seed in range(3):
        selection = strategy.select(make_ctx(model, data, seed=seed, sigma=0.9, budget=budget))
        gen = make_generator(seed)
        probs = mc_dropout.mc_dropout_probs(model, data["pool"], T_MC, generator=gen)
        expected = annealing.annealed_selection(
            probs.mean(0), scoring.bald(probs), budget, math.inf, n_clusters, generator=gen
        )
        picks, drawn = selection.indices.tolist(), expected.drawn_centroids.tolist()
        assert picks == expected.indices.tolist()
        for i, pick in enumerate(picks):
            assert drawn[i] in set(expected.centroids.tolist())
            if drawn[i] not in picks[:i]:
                assert pick == drawn[i]


@pytest.mark.parametrize(
    ("beta", "error"), [(-1.0, ValueError), (math.nan, ValueError), (True, TypeError)]
)
def test_dean_refuses_a_bad_fixed_beta(beta, error):
    with pytest.raises(error, match=r"^beta must"):
        strategies.get("dean", beta=beta)


def test_dean_option_beta_leaves_default_run_keys_unchanged():
    # computed before DeAn had the option: a config that does not set it keeps its key
    config = ExperimentConfig.preset("digits", "quick", strategy="dean", conv_dropout="element")
    assert run_key(config) == "digits_dean_eps0_seed0_22644290f5"
    fixed = ExperimentConfig.preset("digits", "quick", strategy_options={"beta": 2.0})
    assert run_key(fixed) != run_key(config)
    assert strategies.get("dean", **fixed.strategy_kwargs(100)).beta == 2.0


# ------------------------------------------------------------------------------------------
# pool subsetting
# ------------------------------------------------------------------------------------------


def test_pool_subset_maps_indices_back_to_the_full_pool(model, data):
    ctx = make_ctx(model, data, seed=8)
    selection = strategies.select_from_pool("entropy", ctx, pool_subset=20)
    scored = torch.isfinite(selection.scores)
    assert int(scored.sum()) == 20
    entropy = scoring.predictive_entropy(mc_dropout.predict_probs(model, data["pool"]))
    torch.testing.assert_close(selection.scores[scored], entropy[scored])
    subset = scored.nonzero().squeeze(1)
    top_in_subset = subset[torch.topk(entropy[subset], BUDGET).indices]
    assert set(selection.indices.tolist()) == set(top_in_subset.tolist())
    # the subset is the generator's uniform draw without replacement
    expected_subset = torch.randperm(POOL, generator=make_generator(8))[:20].sort().values
    assert subset.tolist() == expected_subset.tolist()


@pytest.mark.parametrize("size", [1, 7, POOL - 1])
def test_pool_subset_indices_are_distinct_sorted_and_the_selection_subset(model, data, size):
    subset = strategies.pool_subset_indices(POOL, size, make_generator(3))
    assert subset.dtype == torch.int64 and subset.numel() == size
    assert subset.unique().numel() == size and (subset[1:] > subset[:-1]).all()
    assert 0 <= subset.min() and subset.max() < POOL
    if size >= BUDGET:  # the subset select_from_pool scores
        selection = strategies.select_from_pool("entropy", make_ctx(model, data, seed=3), size)
        assert torch.isfinite(selection.scores).nonzero().squeeze(1).tolist() == subset.tolist()


def test_pool_subset_indices_of_the_whole_pool_draw_nothing():
    gen = make_generator(5)
    before = gen.get_state()
    for size in (None, POOL, POOL + 10):
        assert torch.equal(strategies.pool_subset_indices(POOL, size, gen), torch.arange(POOL))
    assert torch.equal(gen.get_state(), before)


def test_pool_subset_of_full_size_is_the_plain_strategy(model, data):
    full = strategies.get("bald").select(make_ctx(model, data, seed=1))
    same = strategies.select_from_pool("bald", make_ctx(model, data, seed=1), pool_subset=POOL)
    assert torch.equal(full.indices, same.indices)
    with pytest.raises(ValueError, match="pool_subset"):
        strategies.select_from_pool("bald", make_ctx(model, data), pool_subset=BUDGET - 1)
