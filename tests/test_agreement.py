"""Agreement of two models' scores (chapters 1 and 2): rank correlation, top-b overlap, the
class shares of the top picks."""

import pytest
import torch

from dean_nb.analysis.agreement import (
    mean_pairwise_agreement,
    score_agreement,
    top_class_shares,
    top_overlap,
)


def test_identical_scores_agree_fully():
    scores = torch.rand(50, generator=torch.Generator().manual_seed(0))
    assert top_overlap(scores, scores, 10) == 1.0
    assert score_agreement(scores, scores, 10) == {
        "spearman": pytest.approx(1.0),
        "top-b overlap": 1.0,
    }


def test_reversed_scores_disagree_fully():
    scores = torch.arange(20.0)
    assert top_overlap(scores, -scores, 10) == 0.0
    assert score_agreement(scores, -scores, 5)["spearman"] == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(5))
def test_overlap_is_symmetric_and_in_unit_interval(seed):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.rand(40, generator=gen), torch.rand(40, generator=gen)
    assert top_overlap(a, b, 7) == top_overlap(b, a, 7)
    assert 0.0 <= top_overlap(a, b, 7) <= 1.0
    assert top_overlap(a, b, 40) == 1.0  # the whole pool


def test_top_class_shares():
    scores = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    labels = torch.tensor([2, 2, 0, 1, 1])
    shares = top_class_shares(scores, labels, 3, 4)
    assert shares.tolist() == [0.25, 0.25, 0.5]
    assert shares.sum().item() == pytest.approx(1.0)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        top_overlap(torch.rand(5), torch.rand(6), 2)
    with pytest.raises(ValueError):
        top_overlap(torch.rand(5), torch.rand(5), 6)
    with pytest.raises(ValueError):
        top_class_shares(torch.rand(5), torch.zeros(4, dtype=torch.long), 2, 2)


def test_mean_pairwise_agreement_averages_every_pair():
    gen = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(50, generator=gen) for _ in range(3))
    got = mean_pairwise_agreement([a, b, c], 10)
    pairs = [score_agreement(a, b, 10), score_agreement(a, c, 10), score_agreement(b, c, 10)]
    for key in ("spearman", "top-b overlap"):
        assert got[key] == pytest.approx(sum(p[key] for p in pairs) / 3)
    assert mean_pairwise_agreement([a, a], 10) == score_agreement(a, a, 10)
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_agreement([a], 10)
