"""Tests of dean_nb.strategies.stochastic: Gumbel-top-k is sequential sampling without replacement, the
power and softmax weights are their formulas with the right limits, and the registered
strategies draw from those weights of their scores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dean_nb import strategies
from dean_nb.learner import mc_dropout
from dean_nb.learner.models import build_model
from dean_nb.runtime import make_generator
from dean_nb.strategies import scoring, stochastic
from dean_nb.strategies.base import AcquisitionContext

P_THRESHOLD = 1e-3
NAMES = ("power-bald", "softmax-bald", "power-entropy")
SCORES = torch.tensor([0.05, 0.4, 0.1, 0.8, 0.25, 0.6], dtype=torch.float64)


def first_pick_counts(log_weights_N: torch.Tensor, n_draws: int, seed: int = 0) -> np.ndarray:
    gen = make_generator(seed)
    counts = np.zeros(log_weights_N.shape[0])
    for _ in range(n_draws):
        counts[int(stochastic.gumbel_top_k(log_weights_N, 1, gen))] += 1
    return counts


# ------------------------------------------------------------------------------------------
# gumbel_top_k
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "beta"),
    [("power", 1.0), ("power", 2.5), ("softmax", 1.0), ("softmax", 4.0)],
)
def test_first_pick_follows_the_formula(weights, beta, chisquare_p):
    if weights == "power":
        log_w = stochastic.power_log_weights(SCORES, beta)
        expected = SCORES**beta / (SCORES**beta).sum()
    else:
        log_w = stochastic.softmax_log_weights(SCORES, beta)
        expected = torch.exp(beta * SCORES) / torch.exp(beta * SCORES).sum()
    torch.testing.assert_close(log_w.exp(), expected)
    counts = first_pick_counts(log_w, 3000, seed=int(10 * beta))
    assert chisquare_p(counts, expected.numpy()) > P_THRESHOLD


def test_ordered_pairs_are_sequential_sampling_without_replacement(chisquare_p):
    w = torch.tensor([1.0, 2.0, 3.0, 0.5, 4.5], dtype=torch.float64)
    total = float(w.sum())
    pairs = list(itertools.permutations(range(5), 2))
    expected = np.array([w[i] / total * w[j] / (total - w[i]) for i, j in pairs])
    assert expected.sum() == pytest.approx(1.0)
    index = {pair: k for k, pair in enumerate(pairs)}
    counts = np.zeros(len(pairs))
    gen = make_generator(1)
    log_w = w.log() + 3.0  # unnormalised log-weights are fine
    for _ in range(6000):
        i, j = stochastic.gumbel_top_k(log_w, 2, gen).tolist()
        counts[index[(i, j)]] += 1
    assert chisquare_p(counts, expected) > P_THRESHOLD


def test_zero_weights_come_last_in_uniform_order(chisquare_p):
    log_w = torch.tensor([0.0, -math.inf, -2.0, -math.inf, 1.0, -math.inf], dtype=torch.float64)
    positive, zero = {0, 2, 4}, [1, 3, 5]
    gen = make_generator(2)
    first_zero = np.zeros(3)
    for _ in range(1500):
        order = stochastic.gumbel_top_k(log_w, 6, gen).tolist()
        assert sorted(order) == list(range(6))
        assert set(order[:3]) == positive
        first_zero[zero.index(order[3])] += 1
    assert chisquare_p(first_zero, None) > P_THRESHOLD
    # all weights zero: a uniform draw, not an error or NaN
    every_zero = torch.full((4,), -math.inf, dtype=torch.float64)
    assert chisquare_p(first_pick_counts(every_zero, 800, seed=3), None) > P_THRESHOLD


def test_gumbel_top_k_is_seeded_and_returns_distinct_int64_indices():
    log_w = stochastic.power_log_weights(SCORES)
    a = stochastic.gumbel_top_k(log_w, 4, make_generator(5))
    b = stochastic.gumbel_top_k(log_w, 4, make_generator(5))
    assert a.dtype == torch.int64 and a.shape == (4,) and a.unique().numel() == 4
    assert torch.equal(a, b)
    draws = {tuple(stochastic.gumbel_top_k(log_w, 4, make_generator(s)).tolist()) for s in range(8)}
    assert len(draws) > 1


@pytest.mark.parametrize(
    ("log_weights", "budget", "error", "message"),
    [
        (torch.tensor([0.0, math.nan]), 1, ValueError, "log_weights_N contains NaN"),
        (torch.tensor([0.0, math.inf]), 1, ValueError, r"\+inf"),
        (torch.zeros(2, 2), 1, ValueError, r"log_weights_N must have shape \(N,\)"),
        (torch.zeros(3, dtype=torch.int64), 1, TypeError, "floating-point"),
        (torch.zeros(3), 4, ValueError, r"budget must lie in \[1, 3\]"),
        (torch.zeros(3), 0, ValueError, "budget"),
    ],
)
def test_gumbel_top_k_rejects_bad_input(log_weights, budget, error, message):
    with pytest.raises(error, match=message):
        stochastic.gumbel_top_k(log_weights, budget, make_generator(0))


# ------------------------------------------------------------------------------------------
# power and softmax weights: limits and numerics
# ------------------------------------------------------------------------------------------


def test_large_beta_is_top_k_and_small_beta_is_uniform():
    top = strategies.top_k_indices(SCORES, 4).tolist()
    for seed in range(5):
        for log_w in (
            stochastic.power_log_weights(SCORES, 1e6),
            stochastic.softmax_log_weights(SCORES, 1e6),
        ):
            assert stochastic.gumbel_top_k(log_w, 4, make_generator(seed)).tolist() == top
    uniform = torch.full((6,), 1 / 6, dtype=torch.float64)
    for log_w in (
        stochastic.power_log_weights(SCORES, 1e-9),
        stochastic.softmax_log_weights(SCORES, 1e-9),
    ):
        torch.testing.assert_close(log_w.exp(), uniform, atol=1e-8, rtol=0)


def test_power_puts_zero_scores_last_and_never_gives_nan():
    scores = torch.tensor([0.0, 0.3, 0.0, 1e-30, 0.7], dtype=torch.float32)
    for beta in (1e-300, 1.0, 1e6, 1e300):
        log_w = stochastic.power_log_weights(scores, beta)
        assert log_w.dtype == torch.float64 and not torch.isnan(log_w).any()
        assert (log_w < math.inf).all() and torch.isinf(log_w[[0, 2]]).all()
        assert math.isfinite(float(log_w[4]))
        order = stochastic.gumbel_top_k(log_w, 5, make_generator(0)).tolist()
        assert set(order[:3]) == {1, 3, 4} and set(order[3:]) == {0, 2}
        soft = stochastic.softmax_log_weights(scores, beta)
        assert not torch.isnan(soft).any() and float(soft.max()) <= 0.0
    coldest = stochastic.power_log_weights(scores, 1e300)
    assert stochastic.gumbel_top_k(coldest, 3, make_generator(1)).tolist() == [4, 1, 3]
    # every score zero: uniform, the limit of equal scores
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    torch.testing.assert_close(stochastic.power_log_weights(torch.zeros(4)).exp(), uniform)


def test_softmax_takes_scores_of_any_sign_and_power_refuses_negative_ones():
    scores = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(
        stochastic.softmax_log_weights(scores, 0.5).exp(), torch.softmax(0.5 * scores, 0)
    )
    with pytest.raises(ValueError, match="scores_N contains negative entries"):
        stochastic.power_log_weights(scores)
    for fn in (stochastic.power_log_weights, stochastic.softmax_log_weights):
        with pytest.raises(ValueError, match="scores_N contains NaN or inf"):
            fn(torch.tensor([0.1, math.nan]))
        with pytest.raises(ValueError, match=r"scores_N must have shape \(N,\)"):
            fn(torch.ones(2, 2))


BAD_BETAS = [
    (0.0, ValueError),
    (-1.0, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (True, TypeError),
    ("cold", TypeError),
]


@pytest.mark.parametrize(("beta", "error"), BAD_BETAS)
def test_bad_beta_is_refused_naming_beta(beta, error):
    for fn in (stochastic.power_log_weights, stochastic.softmax_log_weights):
        with pytest.raises(error, match=r"^beta must"):
            fn(SCORES, beta)
    for name in NAMES:
        with pytest.raises(error, match=r"^beta must"):
            strategies.get(name, beta=beta)


# ------------------------------------------------------------------------------------------
# the registered strategies
# ------------------------------------------------------------------------------------------

POOL, BUDGET, T_MC = 40, 6, 6


@pytest.fixture(scope="module")
def ctx_for():
    model = build_model("digits", num_classes=10, in_channels=1, image_size=8, seed=0)
    pool = torch.randn(POOL, 1, 8, 8, generator=make_generator(7))

    def make(seed: int) -> AcquisitionContext:
        return AcquisitionContext(
            model=model,
            x_pool=pool,
            budget=BUDGET,
            generator=make_generator(seed),
            device="cpu",
            n_mc_samples=T_MC,
        )

    return make


@pytest.mark.parametrize("name", NAMES)
def test_strategy_draws_from_the_weights_of_its_scores(name, ctx_for):
    strategy = strategies.get(name, beta=2.0)
    assert strategy.beta == 2.0 and strategies.get(name).beta == stochastic.DEFAULT_BETA == 1.0
    ctx = ctx_for(4)
    selection = strategy.select(ctx)
    # the same draws by hand: MC-dropout passes, the score, then Gumbel-top-k of its weights
    gen = make_generator(4)
    probs = mc_dropout.mc_dropout_probs(ctx.model, ctx.x_pool, T_MC, generator=gen)
    if name == "power-entropy":
        scores = scoring.predictive_entropy(probs)
    else:
        scores = scoring.bald(probs)
    if name == "softmax-bald":
        log_w = stochastic.softmax_log_weights(scores, 2.0)
    else:
        log_w = stochastic.power_log_weights(scores, 2.0)
    torch.testing.assert_close(selection.scores, scores)
    expected = stochastic.gumbel_top_k(log_w, BUDGET, gen)
    assert selection.indices.tolist() == expected.tolist()
    assert selection.indices.unique().numel() == BUDGET
    assert selection.beta is None and selection.sigma is None


@pytest.mark.parametrize("name", NAMES)
def test_strategy_is_reproducible_and_seed_dependent(name, ctx_for):
    strategy = strategies.get(name)
    first = strategy.select(ctx_for(11)).indices
    assert torch.equal(first, strategy.select(ctx_for(11)).indices)
    assert not torch.equal(first, strategy.select(ctx_for(12)).indices)
