"""Asking again (issue 22): the oracle's memory, the re-labelling strategies and the loop.

Properties: at memory 1 every answer repeats the first; at memory 0 later answers are fresh
draws from the channel (their law is the channel's column); at memory m a share m of images
repeat themselves; the r-th answer to an image is the same whoever asks; ties of the vote are
seeded. ``relabel-majority`` re-labels exactly the most doubted acquired images above its
threshold, capped, and fills the rest by BALD; ``activelab`` is cleanlab's own ranking. In the
loop, a step spends ``b`` answers, re-labels are answered by the oracle's memory, the model
trains on the vote, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dean_nb import strategies
from dean_nb.analysis.relabelling import label_quality
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.labellers import ScriptedLabeller
from dean_nb.experiment.loop import oracle_answers, run_active_learning
from dean_nb.experiment.records import RunResult, StepRecord
from dean_nb.learner.models import build_model
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.oracle import RelabellingOracle, symmetric_channel
from dean_nb.runtime import make_generator
from dean_nb.strategies import scoring
from dean_nb.strategies.base import AcquisitionContext, mc_probs

K = 10


def make_oracle(memory: float, n: int = 400, epsilon: float = 0.4, seed: int = 3):
    gen = make_generator(0)
    y_true = torch.randint(0, K, (n,), generator=gen)
    first = torch.randint(0, K, (n,), generator=gen)
    return RelabellingOracle(symmetric_channel(K, epsilon), first, y_true, memory, seed)


def test_full_memory_repeats_every_first_answer():
    oracle = make_oracle(1.0)
    assert bool(oracle.repeats_N.all())
    for image in range(0, 400, 37):
        assert {oracle.answer(image, r) for r in range(6)} == {int(oracle.first_answers[image])}


def test_without_memory_later_answers_follow_the_channel():
    epsilon = 0.4
    oracle = make_oracle(0.0, epsilon=epsilon)
    assert not bool(oracle.repeats_N.any())
    # the first answer is still the one drawn up front
    assert oracle.answer(5, 0) == int(oracle.first_answers[5])
    right = sum(
        oracle.answer(image, r) == int(oracle.y_true[image])
        for image in range(400)
        for r in range(1, 6)
    )
    # 2,000 fresh answers, each right with probability 1 - epsilon
    assert stats.binomtest(right, 2000, 1 - epsilon).pvalue > 1e-3
    wrong = [
        (oracle.answer(image, r) - int(oracle.y_true[image])) % K
        for image in range(400)
        for r in range(1, 6)
    ]
    counts = np.bincount([w for w in wrong if w], minlength=K)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3  # the wrong answers are uniform (eq. 1)


def test_a_share_memory_of_images_repeat_themselves():
    oracle = make_oracle(0.3, n=4000)
    share = int(oracle.repeats_N.sum())
    assert stats.binomtest(share, 4000, 0.3).pvalue > 1e-3
    image = int(torch.nonzero(oracle.repeats_N)[0])
    assert {oracle.answer(image, r) for r in range(8)} == {int(oracle.first_answers[image])}


def test_the_rth_answer_is_common_to_every_asker():
    one, two = make_oracle(0.0), make_oracle(0.0)
    asked = [(7, 3), (7, 1), (100, 2), (7, 3)]
    assert [one.answer(i, r) for i, r in asked] == [two.answer(i, r) for i, r in reversed(asked)][
        ::-1
    ]
    # another seed, other fresh answers
    other = make_oracle(0.0, seed=4)
    fresh = [(i, r) for i in range(60) for r in range(1, 4)]
    assert [one.answer(i, r) for i, r in fresh] != [other.answer(i, r) for i, r in fresh]


def test_the_vote_takes_the_majority_and_breaks_ties_by_a_seeded_coin():
    oracle = make_oracle(0.0)
    assert oracle.vote(3, [4]) == 4
    assert oracle.vote(3, [4, 2, 2]) == 2
    tied = [oracle.vote(image, [1, 6]) for image in range(200)]
    assert set(tied) == {1, 6}
    assert stats.binomtest(tied.count(1), 200, 0.5).pvalue > 1e-3
    assert tied == [make_oracle(0.5).vote(image, [1, 6]) for image in range(200)]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"memory": 1.5}, "memory"),
        ({"memory": -0.1}, "memory"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_oracle_arguments_are_refused_by_name(kwargs, name):
    args = {"memory": 0.5, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=name):
        RelabellingOracle(symmetric_channel(K, 0.1), torch.zeros(4), torch.zeros(4), **args)


def test_oracle_memory_leaves_the_run_keys_of_resolute_noise_unchanged():
    config = ExperimentConfig(strategy="random", quiet=True)
    assert "oracle_memory" not in config.to_dict()
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    forgetful = config.replace(oracle_memory=0.5)
    assert forgetful.to_dict()["oracle_memory"] == 0.5
    assert ExperimentConfig.from_dict(forgetful.to_dict()) == forgetful
    with pytest.raises(ValueError, match="oracle_memory"):
        config.replace(oracle_memory=2)


def test_a_step_record_without_relabels_is_written_as_before():
    record = StepRecord(step=0, n_labels=20, test_accuracy=0.5, sigma=0.3)
    data = record.to_dict()
    assert not {"relabelled", "relabel_answers", "n_images"} & set(data)
    again = StepRecord(**{**data, "relabelled": [3], "relabel_answers": [1], "n_images": 19})
    assert StepRecord.from_dict(again.to_dict()) == again


# -- the strategies ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model("digits", num_classes=K, in_channels=1, image_size=8, seed=0)


@pytest.fixture(scope="module")
def relabel_ctx_fields() -> dict:
    gen = make_generator(11)
    answers = torch.randint(0, K, (15, 3), generator=gen)
    answers[:8, 1:] = -1  # eight images with one answer, seven with three
    answers[8:12, 1] = answers[8:12, 0]  # where the second answer agrees with the first
    return {
        "x_pool": torch.randn(40, 1, 8, 8, generator=gen),
        "x_relabel": torch.randn(15, 1, 8, 8, generator=gen),
        "answers_R_A": answers,
        "labels_R": answers[:, 0].clone(),
        "n_mc_samples": 6,
        "device": "cpu",
    }


def ctx_of(model, fields, budget=10, seed=0) -> AcquisitionContext:
    return AcquisitionContext(model=model, budget=budget, generator=make_generator(seed), **fields)


@pytest.mark.parametrize(("share", "min_doubt"), [(0.5, 0.5), (0.3, 0.0), (1.0, 0.9), (0.0, 0.5)])
def test_relabel_majority_asks_again_about_the_most_doubted_labels(
    model, relabel_ctx_fields, share, min_doubt
):
    ctx = ctx_of(model, relabel_ctx_fields)
    selection = strategies.get("relabel-majority", share=share, min_doubt=min_doubt).select(ctx)
    # the same passes, drawn in the strategy's order: the acquired images' first
    # (none at share 0: nothing may be re-labelled, so nothing is scored)
    gen = make_generator(0)
    cap = math.floor(share * 10)
    n_relabel = 0
    if cap:
        probs_R_K = mc_probs(ctx, ctx.x_relabel, gen).mean(0).double()
        doubt_R = 1 - probs_R_K[torch.arange(15), ctx.labels_R]
        eligible = torch.nonzero(doubt_R > min_doubt).flatten()
        n_relabel = min(cap, eligible.numel())
        expected = eligible[torch.argsort(doubt_R[eligible], descending=True, stable=True)]
        assert selection.relabel.tolist() == expected[:n_relabel].tolist()
    assert selection.relabel.numel() == n_relabel
    rest = 10 - n_relabel
    assert selection.indices.numel() == rest
    if rest:
        bald_N = scoring.bald(mc_probs(ctx, ctx.x_pool, gen))
        top = torch.argsort(bald_N, descending=True, stable=True)[:rest]
        assert selection.indices.tolist() == top.tolist()


def test_relabel_majority_without_acquired_images_is_bald(model, relabel_ctx_fields):
    fields = {k: v for k, v in relabel_ctx_fields.items() if k == "x_pool" or k == "device"}
    fields["n_mc_samples"] = 6
    ctx = ctx_of(model, fields)
    mine = strategies.get("relabel-majority").select(ctx)
    bald = strategies.get("bald").select(ctx_of(model, fields))
    assert mine.relabel.numel() == 0
    assert torch.equal(mine.indices, bald.indices)


def test_activelab_is_cleanlabs_own_ranking(model, relabel_ctx_fields):
    from cleanlab.multiannotator import get_active_learning_scores

    ctx = ctx_of(model, relabel_ctx_fields, budget=12)
    selection = strategies.get("activelab").select(ctx)
    gen = make_generator(0)
    probs_R_K = mc_probs(ctx, ctx.x_relabel, gen).mean(0).double()
    probs_N_K = mc_probs(ctx, ctx.x_pool, gen).mean(0).double()
    answers = ctx.answers_R_A.double().numpy()
    answers[answers < 0] = np.nan
    scores_R, scores_N = get_active_learning_scores(
        answers,
        (probs_R_K / probs_R_K.sum(1, keepdim=True)).numpy(),
        (probs_N_K / probs_N_K.sum(1, keepdim=True)).numpy(),
    )
    both = np.concatenate([scores_R, scores_N])
    lowest = np.argsort(both, kind="stable")[:12]
    assert sorted(selection.relabel.tolist()) == sorted(i for i in lowest if i < 15)
    assert sorted(selection.indices.tolist()) == sorted(i - 15 for i in lowest if i >= 15)
    np.testing.assert_allclose(selection.scores.numpy(), scores_N, rtol=1e-6)
    # an informative pool and doubtful labels: both kinds of question get asked
    assert selection.relabel.numel() + selection.indices.numel() == 12


@pytest.mark.parametrize("name", ["relabel-majority", "activelab"])
def test_relabel_fields_are_checked_by_name(model, relabel_ctx_fields, name):
    bad = dataclasses.replace(ctx_of(model, relabel_ctx_fields), labels_R=torch.zeros(3))
    with pytest.raises(ValueError, match="labels_R"):
        strategies.get(name).select(bad)
    bad = dataclasses.replace(ctx_of(model, relabel_ctx_fields), answers_R_A=torch.zeros(15))
    with pytest.raises(ValueError, match="answers_R_A"):
        strategies.get(name).select(bad)


@pytest.mark.parametrize(("option", "value"), [("share", 1.5), ("min_doubt", 1.0)])
def test_relabel_majority_refuses_bad_options_by_name(option, value):
    with pytest.raises(ValueError, match=option):
        strategies.get("relabel-majority", **{option: value})


# -- the loop ---------------------------------------------------------------------------------

RUN = dict(
    strategy="relabel-majority",
    strategy_options={"share": 0.5, "min_doubt": 0.0},
    epsilon=0.4,
    n_steps=3,
    acquisition_size=20,
    epochs=15,
    n_mc_samples=6,
    quiet=True,
)


def content(result) -> list[dict]:
    return [{k: v for k, v in s.to_dict().items() if k != "wall_time"} for s in result.steps]


@pytest.fixture(scope="module")
def forgetful_run():
    return run_active_learning(ExperimentConfig.preset("digits", "quick", oracle_memory=0.0, **RUN))


def test_a_step_spends_b_answers_and_relabels_acquired_images(forgetful_run):
    steps = forgetful_run.steps
    config = forgetful_run.config
    answers = oracle_answers(config)
    y_train = load_dataset("digits").y_train
    oracle = RelabellingOracle(config.oracle_channel(), answers, y_train, 0.0, config.seed)
    asked: dict[int, list[int]] = {}
    for record in steps[:-1]:
        relabelled = record.relabelled or []
        assert len(record.selected) + len(relabelled) == config.acquisition_size
        for image, answer in zip(relabelled, record.relabel_answers or [], strict=True):
            assert image in asked  # only images acquired at an earlier step
            assert answer == oracle.answer(image, len(asked[image]))
            asked[image].append(answer)
        for image, answer in zip(record.selected, record.noisy_labels, strict=True):
            assert answer == int(answers[image])
            asked[image] = [answer]
    assert sum(len(s.relabelled or []) for s in steps) > 0  # min_doubt 0: it did re-label
    # labels paid for grow by b a step; distinct images by fewer
    n0 = steps[0].n_labels
    assert [s.n_labels for s in steps] == [n0 + 20 * i for i in range(len(steps))]
    last = steps[-1]
    assert last.n_images == n0 + len(asked) < last.n_labels
    # the record alone gives the same accounting (dean_nb.analysis.relabelling)
    quality = label_quality(forgetful_run)
    assert [q["n_acquired"] for q in quality] == [s.n_labels - n0 for s in steps]
    assert quality[-1]["images"] == len(asked)
    assert quality[-1]["relabels"] == sum(len(a) - 1 for a in asked.values())


def test_a_resumed_relabelling_run_equals_the_uninterrupted_one(forgetful_run, tmp_path):
    class Stop(Exception):
        pass

    def stop(record):
        if record.step == 2:
            raise Stop

    config = forgetful_run.config
    ckpt = tmp_path / ".run.partial.json"
    with pytest.raises(Stop):
        run_active_learning(config, checkpoint=ckpt, on_step=stop)
    saved = json.loads(ckpt.read_text())
    assert any(s.get("relabelled") for s in saved["steps"])
    forged = json.loads(ckpt.read_text())
    step = next(s for s in forged["steps"] if s.get("relabelled"))
    step["relabel_answers"][0] = (step["relabel_answers"][0] + 1) % K
    forged_ckpt = tmp_path / ".forged.partial.json"
    forged_ckpt.write_text(json.dumps(forged))
    with pytest.warns(RuntimeWarning, match=r"step \d+, its re-labels are not the oracle's"):
        restarted = run_active_learning(config, checkpoint=forged_ckpt)
    assert "resumed_from_step" not in restarted.provenance
    resumed = run_active_learning(config, checkpoint=ckpt)
    assert resumed.provenance["resumed_from_step"] == 3
    assert content(resumed) == content(forgetful_run)


def test_replaying_relabels_extends_the_answers_and_refuses_what_the_oracle_never_said():
    channel = symmetric_channel(K, 0.5)
    y = torch.arange(40) % K
    oracle = RelabellingOracle(channel, y.clone(), y, 0.0, seed=3)
    answers_by_image = {4: [4], 7: [7]}
    said = [oracle.answer(4, 1), oracle.answer(7, 1), oracle.answer(4, 2)]
    oracle.replay(answers_by_image, [4, 7, 4], said)
    assert answers_by_image == {4: [4, said[0], said[2]], 7: [7, said[1]]}
    with pytest.raises(ValueError, match="one answer per image"):
        oracle.replay(answers_by_image, [4], [])
    with pytest.raises(ValueError, match="never acquired"):
        oracle.replay(answers_by_image, [5], [0])
    wrong = (oracle.answer(7, 2) + 1) % K
    with pytest.raises(ValueError, match="not the oracle's answers"):
        oracle.replay(answers_by_image, [7], [wrong])


def test_with_full_memory_asking_again_repeats_the_first_answer():
    result = run_active_learning(ExperimentConfig.preset("digits", "quick", **RUN))
    first: dict[int, int] = {}
    for record in result.steps:
        for image, answer in zip(
            record.relabelled or [], record.relabel_answers or [], strict=True
        ):
            assert answer == first[image]
        first.update(zip(record.selected, record.noisy_labels, strict=True))


def test_a_labeller_with_a_relabelling_strategy_is_refused_before_training():
    config = ExperimentConfig.preset("digits", "quick", **RUN)
    with pytest.raises(ValueError, match=r"relabel-majority.*simulated oracle"):
        run_active_learning(config, labeller=ScriptedLabeller([0] * 100))


def test_a_strategy_that_never_asks_again_does_not_feel_the_oracles_memory():
    # why the premises grid runs random, dean+denoise and dean+forward at one memory only
    settings = RUN | {"strategy": "bald", "strategy_options": {}, "n_steps": 2}
    resolute = run_active_learning(ExperimentConfig.preset("digits", "quick", **settings))
    forgetful = run_active_learning(
        ExperimentConfig.preset("digits", "quick", oracle_memory=0.0, **settings)
    )
    assert content(resolute) == content(forgetful)


def test_a_relabelling_record_replays_and_a_forged_relabel_is_caught(forgetful_run):
    from dean_nb.experiment.replay import ReplayMismatch, check_replay

    again = run_active_learning(forgetful_run.config)
    report = check_replay(forgetful_run, again, mode="exact")
    assert report.first_divergence is None
    forged = RunResult.from_dict(forgetful_run.to_dict())
    step = next(s for s in forged.steps if s.relabelled)
    step.relabel_answers[0] = (step.relabel_answers[0] + 1) % K
    with pytest.raises(ReplayMismatch, match="re-labels are not the oracle's"):
        check_replay(forged, again, mode="tolerant")


# -- out-of-sample predictions ----------------------------------------------------------------


def test_an_items_out_of_fold_prediction_never_saw_its_label():
    from dean_nb.experiment.step_model import out_of_fold_probs

    config = ExperimentConfig.preset("digits", "quick", **RUN)
    data = load_dataset("digits")
    x, y = data.x_train[:160], data.y_train[:160]
    fixed, folded = (x[:40], y[:40]), (x[40:], y[40:])
    probs = out_of_fold_probs(config, fixed, folded, K, 1, torch.device("cpu"), 3)
    assert probs.shape == (120, K) and probs.dtype == torch.float64
    torch.testing.assert_close(probs.sum(1), torch.ones(120, dtype=torch.float64))
    forged = folded[1].clone()
    forged[7] = (forged[7] + 1) % K
    again = out_of_fold_probs(config, fixed, (folded[0], forged), K, 1, torch.device("cpu"), 3)
    # row 7 came from the model of its fold, which trained without it: unchanged, bit for bit
    assert torch.equal(again[7], probs[7])
    assert not torch.equal(again, probs)  # the other folds' models did see the forged label
    with pytest.raises(ValueError, match="n_folds"):
        out_of_fold_probs(config, fixed, folded, K, 1, torch.device("cpu"), 1)


def test_relabel_folds_are_validated_and_left_out_of_old_run_keys():
    config = ExperimentConfig(strategy="activelab", quiet=True)
    assert "relabel_folds" not in config.to_dict()
    assert config.replace(relabel_folds=3).to_dict()["relabel_folds"] == 3
    with pytest.raises(ValueError, match="relabel_folds"):
        config.replace(relabel_folds=1)
    with pytest.raises(ValueError, match="relabel_folds"):
        config.replace(relabel_folds=-2)


def test_given_out_of_sample_predictions_replace_the_models_own(model, relabel_ctx_fields):
    from cleanlab.multiannotator import get_active_learning_scores

    probs_R_K = torch.softmax(torch.randn(15, K, generator=make_generator(3)), 1).double()
    ctx = dataclasses.replace(
        ctx_of(model, relabel_ctx_fields, budget=12), probs_relabel_R_K=probs_R_K
    )
    selection = strategies.get("activelab").select(ctx)
    pool = mc_probs(ctx, ctx.x_pool, make_generator(0)).mean(0).double()  # nothing else drawn
    answers = ctx.answers_R_A.double().numpy()
    answers[answers < 0] = np.nan
    scores_R, scores_N = get_active_learning_scores(
        answers, probs_R_K.numpy(), (pool / pool.sum(1, keepdim=True)).numpy()
    )
    lowest = np.argsort(np.concatenate([scores_R, scores_N]), kind="stable")[:12]
    assert sorted(selection.relabel.tolist()) == sorted(i for i in lowest if i < 15)
    bad = dataclasses.replace(ctx, probs_relabel_R_K=torch.ones(15, K))
    with pytest.raises(ValueError, match="probs_relabel_R_K"):
        strategies.get("relabel-majority").select(bad)


def test_the_loop_hands_out_of_fold_predictions_to_the_strategy(monkeypatch):
    seen = []
    real = strategies.ActiveLabStrategy.select

    def spy(self, ctx):
        seen.append(ctx.probs_relabel_R_K)
        return real(self, ctx)

    monkeypatch.setattr(strategies.ActiveLabStrategy, "select", spy)
    settings = RUN | {"strategy": "activelab", "strategy_options": {}, "n_steps": 2}
    run_active_learning(ExperimentConfig.preset("digits", "quick", relabel_folds=2, **settings))
    assert seen[0] is None  # step 0: nothing acquired yet
    assert seen[1].shape == (20, K)
