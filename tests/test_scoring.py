"""MC-dropout probabilities, BALD, entropy, variation ratio and sigma."""

import math

import pytest
import torch
from torch import nn

from dean_nb.learner import mc_dropout
from dean_nb.learner.masks import dropout_modules
from dean_nb.learner.mc_dropout import inference_modes, mc_dropout_probs, predict_probs
from dean_nb.learner.models import build_model
from dean_nb.runtime import seeded_global_rng
from dean_nb.strategies.scoring import (
    bald,
    expected_entropy,
    model_uncertainty,
    predictive_entropy,
    variation_ratio,
)


def one_hot(classes, k):
    return torch.nn.functional.one_hot(torch.as_tensor(classes), k).float()


# ---------------------------------------------------------------- closed-form cases


def test_identical_samples_have_zero_bald():
    p = torch.tensor([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    probs = p.expand(6, 2, 3)
    assert torch.allclose(bald(probs), torch.zeros(2), atol=1e-6)
    expected = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    assert torch.allclose(predictive_entropy(probs), expected, atol=1e-6)


def test_disagreeing_one_hot_samples():
    two = one_hot([[0], [1]], 2)  # (T=2, N=1, K=2)
    assert bald(two).item() == pytest.approx(math.log(2), abs=1e-6)
    assert predictive_entropy(two).item() == pytest.approx(math.log(2), abs=1e-6)
    four = one_hot([[0], [1], [2], [3]], 4)
    assert bald(four).item() == pytest.approx(math.log(4), abs=1e-6)
    assert variation_ratio(four).item() == pytest.approx(0.75)


def test_uniform_prediction_has_entropy_log_k_and_zero_bald():
    for k in (2, 10, 47):
        probs = torch.full((5, 3, k), 1.0 / k)
        assert torch.allclose(predictive_entropy(probs), torch.full((3,), math.log(k)), atol=1e-5)
        assert torch.allclose(
            predictive_entropy(probs[0]), torch.full((3,), math.log(k)), atol=1e-5
        )
        assert torch.allclose(bald(probs), torch.zeros(3), atol=1e-5)


def test_variation_ratio_of_known_votes():
    votes = torch.tensor([[0, 2], [0, 2], [1, 2], [2, 2], [0, 1]])  # (T=5, N=2)
    probs = 0.7 * one_hot(votes, 3) + 0.1  # argmax = vote, rows sum to 1
    assert torch.allclose(variation_ratio(probs), torch.tensor([1 - 3 / 5, 1 - 4 / 5]))
    assert variation_ratio(one_hot([[1]] * 7, 3)).item() == 0.0


def test_entropy_of_one_prediction_matches_mean_of_samples():
    probs = torch.distributions.Dirichlet(torch.ones(4)).sample((8, 5))
    assert torch.allclose(predictive_entropy(probs), predictive_entropy(probs.mean(0)), atol=1e-6)


@pytest.mark.parametrize("concentration", [0.05, 0.5, 5.0])
def test_bald_between_zero_and_entropy_and_log_k(concentration):
    gen = torch.Generator().manual_seed(0)
    k = 6
    alpha = torch.full((k,), concentration)
    probs = torch.distributions.Dirichlet(alpha).sample((20, 200))
    probs[:, :10] = one_hot(torch.randint(0, k, (20, 10), generator=gen), k)  # exact zeros
    b, h = bald(probs), predictive_entropy(probs)
    assert torch.isfinite(b).all() and torch.isfinite(h).all()
    assert (b >= 0).all()
    assert (b <= h + 1e-6).all()
    assert (h <= math.log(k) + 1e-5).all()
    v = variation_ratio(probs)
    assert ((v >= 0) & (v <= 1 - 1 / k + 1e-6)).all()


@pytest.mark.parametrize("concentration", [0.05, 0.5, 5.0])
def test_entropy_is_expected_entropy_plus_bald(concentration):
    k = 5
    with seeded_global_rng(1):
        probs = torch.distributions.Dirichlet(torch.full((k,), concentration)).sample((7, 300))
    e = expected_entropy(probs)
    assert e.shape == (300,)
    assert ((e >= 0) & (e <= predictive_entropy(probs) + 1e-5)).all()
    assert torch.allclose(predictive_entropy(probs), e + bald(probs), atol=1e-5)
    # one pass: expected entropy is the entropy of that pass
    assert torch.allclose(expected_entropy(probs[:1]), predictive_entropy(probs[0]), atol=1e-6)


def test_expected_entropy_separates_aleatoric_from_epistemic():
    aleatoric = torch.tensor([[0.5, 0.5, 0.0]] * 4)
    epistemic = one_hot([0, 0, 1, 1], 3)
    probs = torch.stack([aleatoric, epistemic], dim=1)  # (T=4, N=2, K=3)
    assert torch.allclose(expected_entropy(probs), torch.tensor([math.log(2), 0.0]), atol=1e-6)
    assert torch.allclose(bald(probs), torch.tensor([0.0, math.log(2)]), atol=1e-6)
    assert torch.allclose(variation_ratio(probs), torch.tensor([0.0, 0.5]))


@pytest.mark.parametrize("fn", [bald, expected_entropy, variation_ratio])
def test_pure_scores_validate_input(fn):
    with pytest.raises(ValueError, match="probs_T_N_K"):
        fn(torch.full((4, 3), 0.25))
    with pytest.raises(ValueError, match="sum to 1"):
        fn(torch.full((2, 4, 3), 0.5))
    bad = torch.full((2, 4, 2), 0.5)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(bad)
    with pytest.raises(TypeError):
        fn([[0.5, 0.5]])


def test_predictive_entropy_rejects_bad_shapes():
    with pytest.raises(ValueError, match="probs"):
        predictive_entropy(torch.ones(4))


# ---------------------------------------------------------------- MC dropout


def test_mc_probs_are_distributions_that_vary(digits_model, x_digits):
    probs = mc_dropout_probs(digits_model, x_digits, 12, batch_size=16, generator=0)
    assert probs.shape == (12, 40, 10) and probs.dtype == torch.float32
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert torch.allclose(probs.sum(-1), torch.ones(12, 40), atol=1e-5)
    assert probs.std(dim=0).mean() > 1e-3  # samples differ: dropout is on
    assert (bald(probs) > 0).all()


def test_same_seed_same_probs_and_global_rng_untouched(digits_model, x_digits):
    torch.manual_seed(11)
    expected = torch.rand(2)
    torch.manual_seed(11)
    a = mc_dropout_probs(digits_model, x_digits, 5, generator=3)
    assert torch.equal(torch.rand(2), expected)
    b = mc_dropout_probs(digits_model, x_digits, 5, generator=torch.Generator().manual_seed(3))
    c = mc_dropout_probs(digits_model, x_digits, 5, generator=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_trunk_cached_matches_naive_passes_in_distribution(monkeypatch, digits_model, x_digits):
    """Mean probabilities agree with T independent full forward passes (and when the T axis
    is chunked), within 5 standard errors."""
    t = 1000
    x = x_digits[:6]
    cached = mc_dropout_probs(digits_model, x, t, generator=0)
    monkeypatch.setattr(mc_dropout, "MAX_HEAD_ELEMENTS_CPU", 3 * 512 * 100)  # chunks of 100 samples
    chunked = mc_dropout_probs(digits_model, x, t, batch_size=3, generator=1)
    with torch.no_grad(), inference_modes(digits_model, dropout=True), seeded_global_rng(2):
        naive = torch.stack([torch.softmax(digits_model(x), -1) for _ in range(t)])
    for other in (cached, chunked):
        se = ((other.var(0) + naive.var(0)) / t).sqrt()
        assert ((other.mean(0) - naive.mean(0)).abs() <= 5 * se + 1e-4).all()
        assert torch.allclose(other.std(0), naive.std(0), rtol=0.2, atol=3e-3)


def test_caller_modes_are_restored(digits_model, x_digits):
    model = digits_model
    model.train()
    model.head[0].eval()  # an odd mixture on purpose
    before = [m.training for m in model.modules()]
    mc_dropout_probs(model, x_digits[:4], 3, generator=0)
    assert [m.training for m in model.modules()] == before
    predict_probs(model, x_digits[:4])
    assert [m.training for m in model.modules()] == before
    model.eval()
    before = [m.training for m in model.modules()]
    model_uncertainty(model, x_digits[:4], 3, generator=0)
    assert [m.training for m in model.modules()] == before


def test_predict_probs_is_deterministic_softmax(digits_model, x_digits):
    probs = predict_probs(digits_model, x_digits, batch_size=7)
    digits_model.eval()
    with torch.no_grad():
        expected = torch.softmax(digits_model(x_digits), -1)
    assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.equal(probs, predict_probs(digits_model, x_digits, batch_size=7))


def test_without_dropout_noise_sigma_and_bald_vanish(x_digits):
    model = build_model("digits", 10, 1, 8, seed=2)
    for m in dropout_modules(model):
        m.p = 0.0
    probs = mc_dropout_probs(model, x_digits, 6, generator=0)
    assert torch.allclose(bald(probs), torch.zeros(40), atol=1e-5)
    assert model_uncertainty(model, x_digits, 6, generator=0) == 0.0


def test_model_uncertainty_is_mean_variation_ratio(digits_model, x_digits):
    sigma = model_uncertainty(digits_model, x_digits, 20, generator=9)
    probs = mc_dropout_probs(digits_model, x_digits, 20, generator=9)
    assert sigma == pytest.approx(variation_ratio(probs).mean().item())
    assert 0.0 < sigma <= 0.9


def test_model_without_trunk_and_head_and_empty_input(digits_model):
    plain = nn.Sequential(
        nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )
    probs = mc_dropout_probs(plain, torch.randn(5, 2, 2), 4, generator=0)
    assert probs.shape == (4, 5, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(4, 5), atol=1e-5)
    assert mc_dropout_probs(digits_model, torch.empty(0, 1, 8, 8), 3).shape == (3, 0, 10)
    assert predict_probs(digits_model, torch.empty(0, 1, 8, 8)).shape == (0, 10)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"batch_size": 0}, "batch_size"),
        ({"x": torch.zeros(3, 1, 8, 8, dtype=torch.int64)}, "x"),
        ({"x": torch.zeros(8)}, "x"),
    ],
)
def test_mc_dropout_probs_validates_input(digits_model, kwargs, name):
    args = {"model": digits_model, "x": torch.zeros(3, 1, 8, 8), "n_samples": 2} | kwargs
    with pytest.raises((ValueError, TypeError), match=name):
        mc_dropout_probs(**args)
    with pytest.raises(ValueError, match="x_val"):
        model_uncertainty(digits_model, torch.empty(0, 1, 8, 8), 2)
