"""The noisy oracle (eq. 1): channel shape and orientation, flip statistics, bad input."""

import math

import pytest
import torch

from dean_nb.problem.noise import check_channel_matrix
from dean_nb.problem.oracle import (
    COLUMN_SUM_ATOL,
    NoisyOracle,
    channel_information_bits,
    check_channel,
    columns_off_one,
    empirical_channel,
    majority_vote,
    symmetric_channel,
    symmetric_information_bits,
    wrong_label_chi2,
)


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


def test_one_column_sum_rule_for_tensors_and_lists():
    """``check_channel`` (tensors) and ``noise.check_channel_matrix`` (lists of lists) apply
    one rule: every exact column sum within ``COLUMN_SUM_ATOL`` (1e-6, absolute) of 1."""
    assert COLUMN_SUM_ATOL == 1e-6
    for off, accepted in [(0.0, True), (5e-7, True), (5e-6, False), (1e-3, False)]:
        t = symmetric_channel(4, 0.2)
        t[0, 1] += off
        assert (columns_off_one(t) == []) == accepted
        assert [j for j, _ in columns_off_one(t)] == ([] if accepted else [1])
        if accepted:
            check_channel(t)
            check_channel_matrix(t.tolist(), 4)
            continue
        with pytest.raises(ValueError, match="column-stochastic"):
            check_channel(t)
        with pytest.raises(ValueError, match="column 1 sums to"):
            check_channel_matrix(t.tolist(), 4)
    assert [j for j, _ in columns_off_one(torch.full((2, 2), float("nan")))] == [0, 1]


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


@pytest.mark.parametrize("k,eps", [(3, 0.2), (10, 0.3), (10, 0.0)])
def test_symmetric_channel_eigenvalues(k, eps):
    eig = torch.linalg.eigvalsh(symmetric_channel(k, eps))
    expected = torch.tensor([1 - eps * k / (k - 1)] * (k - 1) + [1.0], dtype=torch.float64)
    torch.testing.assert_close(eig, expected.sort().values)


def test_empirical_channel_counts_and_columns():
    gen = torch.Generator().manual_seed(0)
    y_true = torch.randint(0, 5, (2000,), generator=gen)
    y_noisy = torch.randint(0, 5, (2000,), generator=gen)
    counts, channel = empirical_channel(y_true, y_noisy, 5)
    assert counts.sum() == 2000
    assert counts[2, 3] == ((y_noisy == 2) & (y_true == 3)).sum()
    torch.testing.assert_close(channel.sum(0), torch.ones(5, dtype=torch.float64))
    counts, channel = empirical_channel(y_true, y_true, 5)  # a perfect oracle
    torch.testing.assert_close(channel, torch.eye(5, dtype=torch.float64))


@pytest.mark.parametrize("k,eps", [(2, 0.1), (10, 0.0), (10, 0.3), (10, 0.9), (7, 0.5)])
def test_information_matches_closed_form_and_bounds(k, eps):
    bits = channel_information_bits(symmetric_channel(k, eps))
    assert bits == pytest.approx(symmetric_information_bits(k, eps), abs=1e-9)
    assert 0.0 <= bits <= math.log2(k) + 1e-12
    assert math.copysign(1.0, bits) == 1.0  # never -0.0


def test_information_of_clean_and_useless_channels():
    assert channel_information_bits(torch.eye(4, dtype=torch.float64)) == pytest.approx(2.0)
    assert channel_information_bits(symmetric_channel(10, 0.9)) == 0.0
    # noise only destroys information: it falls as epsilon rises to (K - 1) / K
    bits = [symmetric_information_bits(10, e) for e in (0.0, 0.1, 0.3, 0.6, 0.9)]
    assert bits == sorted(bits, reverse=True)


def test_wrong_label_chi2_zero_for_uniform_and_large_for_skewed():
    uniform = torch.full((4, 4), 10.0).fill_diagonal_(50.0)
    assert wrong_label_chi2(uniform) == (0.0, 8)
    skewed = uniform.clone()
    skewed[1, 0] = 40.0
    chi2, dof = wrong_label_chi2(skewed)
    assert chi2 > 10 and dof == 8


def test_majority_vote_takes_the_mode_and_breaks_ties_at_random():
    votes = torch.tensor([[1, 2, 0], [1, 2, 1], [0, 2, 2]])
    winner = majority_vote(votes, 3, generator=0)
    assert winner[:2].tolist() == [1, 2]
    assert winner[2] in (0, 1, 2)
    tie = torch.tensor([[0] * 2000, [1] * 2000])
    share = majority_vote(tie, 2, generator=1).double().mean().item()
    assert 0.45 < share < 0.55
    assert torch.equal(majority_vote(tie, 2, generator=3), majority_vote(tie, 2, generator=3))
