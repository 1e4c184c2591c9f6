"""How a learned channel matches the true one (``dean_nb.analysis.channel_fit``).

Properties: the true channel fits itself exactly and the identity scores the flip rate; a
symmetric ``W`` against pair-flip ``T`` sits at the chance level of the flip share, with the
total-variation distance of its formula; mass moved towards ``T``'s flips raises the share
monotonically; a ``W`` whose flips go the other way scores zero; bad input is refused by name.
"""

from __future__ import annotations

import math

import pytest
import torch

from dean_nb.analysis.channel_fit import channel_fit, fit_table
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.records import RunResult, StepRecord
from dean_nb.problem.oracle import pairflip_channel, symmetric_channel

K, EPS = 10, 0.3


def test_the_true_channel_fits_itself_and_the_identity_scores_the_flip_rate():
    t = pairflip_channel(K, EPS)
    fit = channel_fit(t, t)
    assert fit.tv_distance == pytest.approx(0.0, abs=1e-12)
    assert fit.flip_share == pytest.approx(1.0)
    assert fit.columns_matched == 1.0
    assert fit.tv_identity == pytest.approx(EPS)
    identity = channel_fit(torch.eye(K), t)
    assert identity.tv_distance == pytest.approx(EPS)
    assert math.isnan(identity.flip_share)  # no off-diagonal mass to place


def test_a_symmetric_w_against_pairflip_is_at_chance():
    fit = channel_fit(symmetric_channel(K, EPS), pairflip_channel(K, EPS))
    assert fit.flip_share == pytest.approx(1 / (K - 1))
    assert fit.flip_share_uniform == pytest.approx(1 / (K - 1))
    assert fit.tv_distance == pytest.approx(EPS * (K - 2) / (K - 1))


def test_moving_mass_onto_the_true_flips_raises_the_share():
    t, s = pairflip_channel(K, EPS), symmetric_channel(K, EPS)
    shares = [channel_fit((1 - a) * s + a * t, t).flip_share for a in (0.0, 0.25, 0.5, 0.9)]
    assert shares == sorted(shares) and shares[-1] > 0.9
    dists = [channel_fit((1 - a) * s + a * t, t).tv_distance for a in (0.0, 0.25, 0.5, 0.9)]
    assert dists == sorted(dists, reverse=True)


def test_flips_the_other_way_score_zero():
    t = pairflip_channel(K, EPS)
    backwards = pairflip_channel(K, EPS).T.contiguous()  # j -> j - 1: still column-stochastic
    fit = channel_fit(backwards, t)
    assert fit.flip_share == 0.0 and fit.columns_matched == 0.0
    assert fit.tv_distance == pytest.approx(EPS)


def test_a_noise_free_true_channel_has_no_structure_to_find():
    w = symmetric_channel(K, 0.2)
    fit = channel_fit(w, torch.eye(K))
    assert math.isnan(fit.flip_share) and math.isnan(fit.flip_share_uniform)
    assert math.isnan(fit.columns_matched)
    assert fit.tv_distance == pytest.approx(0.2) and fit.tv_identity == 0.0


def test_a_symmetric_true_channel_leaves_the_flip_measures_without_information():
    """Every off-diagonal entry is a flip of the symmetric T: any W would score a flip share
    of 1 at a chance level of 1, and no column has one largest flip: all three are NaN."""
    for w in (pairflip_channel(K, EPS), symmetric_channel(K, 0.1), torch.eye(K)):
        fit = channel_fit(w, symmetric_channel(K, EPS))
        assert math.isnan(fit.columns_matched)
        assert math.isnan(fit.flip_share) and math.isnan(fit.flip_share_uniform)
        assert 0.0 <= fit.tv_distance <= 1.0


@pytest.mark.parametrize(
    ("learned", "true", "match"),
    [
        (torch.full((K, K), 0.2), pairflip_channel(K, EPS), "learned: .*column-stochastic"),
        (torch.eye(K), -torch.eye(K), "true: .*non-negative|true: .*lie in"),
        (torch.eye(3), pairflip_channel(K, EPS), "one shape"),
        (torch.ones(K), torch.eye(K), "learned: .*square"),
    ],
)
def test_bad_input_is_refused_by_name(learned, true, match):
    with pytest.raises(ValueError, match=match):
        channel_fit(learned, true)


def test_fit_table_reads_the_last_learned_channel_of_each_run():
    t = pairflip_channel(K, EPS)
    w_first, w_last = symmetric_channel(K, EPS), (t + symmetric_channel(K, EPS)) / 2

    def run(denoise: bool, seed: int) -> RunResult:
        config = ExperimentConfig.preset(
            "digits", "quick", noise="pairflip", epsilon=EPS, denoise=denoise, seed=seed
        )
        steps = [
            StepRecord(
                step=n,
                n_labels=20 * (n + 1),
                test_accuracy=0.5,
                sigma=0.3,
                channel=w.tolist() if denoise else None,
            )
            for n, w in enumerate((w_first, w_last))
        ]
        return RunResult(config=config, steps=steps, true_channel=t.tolist())

    table = fit_table([run(True, 0), run(False, 0), run(True, 1)])
    assert list(table["seed"]) == [0, 1]  # the run without a layer is left out
    assert set(table["method"]) == {"dean+denoise"} and set(table["noise"]) == {"pairflip"}
    expected = channel_fit(w_last, t)
    assert table["flip_share"].tolist() == pytest.approx([expected.flip_share] * 2)
    assert table["tv_distance"].tolist() == pytest.approx([expected.tv_distance] * 2)
    # every step: the fit as the labels grow
    steps = fit_table([run(True, 0), run(False, 0)], every_step=True)
    assert list(steps["step"]) == [0, 1] and list(steps["n_acquired"]) == [0, 20]
    fits = [channel_fit(w, t).tv_distance for w in (w_first, w_last)]
    assert steps["tv_distance"].tolist() == pytest.approx(fits)
    with pytest.raises(TypeError, match="every_step"):
        fit_table([], every_step="yes")
