"""The noisy oracle (eq. 1): channel shape and orientation, flip statistics, bad input."""

import math

import pytest
import torch

from dean_nb.oracle import NoisyOracle, check_channel, symmetric_channel


@pytest.mark.parametrize("k,eps", [(2, 0.0), (10, 0.3), (47, 0.1)])
def test_symmetric_channel_is_column_stochastic(k, eps):
    t = symmetric_channel(k, eps)
    assert t.shape == (k, k)
    torch.testing.assert_close(t.sum(0), torch.ones(k, dtype=torch.float64))
    torch.testing.assert_close(t.diagonal(), torch.full((k,), 1 - eps, dtype=torch.float64))
    off = t[~torch.eye(k, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, eps / (k - 1)))


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, float("nan")])
def test_epsilon_outside_unit_interval_is_rejected(eps):
    with pytest.raises(ValueError, match=r"epsilon must lie in \[0.0, 1.0\)"):
        symmetric_channel(10, eps)


def test_num_classes_must_be_at_least_two():
    with pytest.raises(ValueError, match="num_classes"):
        symmetric_channel(1, 0.1)


def test_flip_rate_and_off_diagonal_uniformity(chisquare_p):
    k, eps, n = 10, 0.3, 200_000
    oracle = NoisyOracle(symmetric_channel(k, eps), seed=0)
    y = torch.arange(n) % k
    noisy = oracle.label(y)
    flips = noisy != y
    # Flip rate within 5 binomial standard deviations of epsilon.
    sd = math.sqrt(eps * (1 - eps) / n)
    assert abs(flips.float().mean().item() - eps) < 5 * sd
    # Among flips, the offset (noisy - true) mod K is uniform over 1..K-1.
    offsets = ((noisy[flips] - y[flips]) % k).numpy()
    counts = [int((offsets == d).sum()) for d in range(1, k)]
    assert chisquare_p(counts, None) > 1e-3


def test_zero_noise_returns_true_labels():
    y = torch.randint(0, 5, (1000,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(NoisyOracle(symmetric_channel(5, 0.0), seed=3).label(y), y)


def test_asymmetric_channel_follows_its_columns():
    # True class 0 is reported as 1 with probability 0.6; class 1 is always kept.
    t = torch.tensor([[0.4, 0.0], [0.6, 1.0]], dtype=torch.float64)
    oracle = NoisyOracle(t, seed=0)
    noisy = oracle.label(torch.zeros(50_000, dtype=torch.long))
    assert abs(noisy.float().mean().item() - 0.6) < 0.01
    assert torch.all(oracle.label(torch.ones(100, dtype=torch.long)) == 1)


def test_same_seed_same_labels():
    y = torch.arange(500) % 10
    t = symmetric_channel(10, 0.4)
    assert torch.equal(NoisyOracle(t, seed=7).label(y), NoisyOracle(t, seed=7).label(y))
    assert not torch.equal(NoisyOracle(t, seed=7).label(y), NoisyOracle(t, seed=8).label(y))


def test_row_stochastic_matrix_is_rejected():
    t = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    with pytest.raises(ValueError, match="column-stochastic"):
        check_channel(t)


@pytest.mark.parametrize(
    "matrix",
    [
        torch.ones(3, 2) / 3,
        torch.tensor([[1.5, 0.0], [-0.5, 1.0]]),
        torch.full((2, 2), float("nan")),
    ],
)
def test_malformed_matrices_are_rejected(matrix):
    with pytest.raises(ValueError, match="matrix"):
        NoisyOracle(matrix, seed=0)


def test_labels_out_of_range_are_rejected():
    oracle = NoisyOracle(symmetric_channel(3, 0.1), seed=0)
    with pytest.raises(ValueError, match=r"y_true must lie in \[0, 2\]"):
        oracle.label(torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="integer"):
        oracle.label(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        oracle.label(torch.zeros(2, 2, dtype=torch.long))
