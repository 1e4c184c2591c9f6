"""The training labels of a re-labelling run, read from its record alone
(:mod:`dean_nb.analysis.relabelling`)."""

from __future__ import annotations

import pytest

from dean_nb.analysis.relabelling import (
    LABEL_QUALITY_COLUMNS,
    RELABEL_OUTCOME_COLUMNS,
    label_quality,
    label_quality_table,
    relabel_outcome,
    relabel_outcome_table,
)
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.records import RunResult, StepRecord
from dean_nb.problem.oracle import seeded_vote, symmetric_channel

K = 3


def run_of(steps: list[dict], seed: int = 0, **config) -> RunResult:
    records = [
        StepRecord(step=t, n_labels=10 + t, test_accuracy=0.5, sigma=0.1, **fields)
        for t, fields in enumerate(steps)
    ]
    cfg = ExperimentConfig.preset("digits", "quick", seed=seed, epsilon=0.3, **config)
    return RunResult(cfg, records, true_channel=symmetric_channel(K, 0.3).tolist())


# image 5 (true 1) is answered wrongly first, then right twice; image 6 (true 2) wrongly once
STEPS = [
    {"selected": [5, 6], "noisy_labels": [0, 0], "true_labels": [1, 2]},
    {"relabelled": [5], "relabel_answers": [1]},
    {"relabelled": [5], "relabel_answers": [1]},
    {},
]


def test_a_steps_model_trains_on_the_votes_of_the_earlier_answers():
    rows = label_quality(run_of(STEPS))
    assert [r["n_acquired"] for r in rows] == [0, 2, 3, 4]
    assert [r["images"] for r in rows] == [0, 2, 2, 2]
    assert [r["relabels"] for r in rows] == [0, 0, 1, 2]
    tie = seeded_vote([0, 1], image=5, seed=0, num_classes=K) != 1  # one wrong, one right
    assert [r["wrong"] for r in rows] == [0, 2, 1 + tie, 1]  # two right answers outvote one
    assert rows[0]["wrong_share"] != rows[0]["wrong_share"]  # NaN: no image yet
    assert rows[-1]["wrong_share"] == 0.5


def test_a_tie_follows_the_runs_seeded_coin():
    by_seed = {}
    for seed in range(12):
        by_seed[seed] = label_quality(run_of(STEPS, seed=seed))[2]["wrong"]
        assert by_seed[seed] == 1 + (seeded_vote([0, 1], image=5, seed=seed, num_classes=K) != 1)
    assert set(by_seed.values()) == {1, 2}  # the coin falls both ways over seeds


def test_an_inconsistent_record_is_refused_with_its_step():
    with pytest.raises(ValueError, match="step 1 re-labels image 9, never acquired"):
        label_quality(run_of([STEPS[0], {"relabelled": [9], "relabel_answers": [0]}]))
    with pytest.raises(ValueError, match="step 1 has not one answer per re-labelled image"):
        label_quality(run_of([STEPS[0], {"relabelled": [5], "relabel_answers": []}]))


def test_the_table_names_each_runs_method_memory_and_seed():
    runs = [run_of(STEPS, seed=3, oracle_memory=0.5, strategy="activelab")]
    table = label_quality_table(runs)
    assert tuple(table.columns) == LABEL_QUALITY_COLUMNS
    assert set(table["method"]) == {"activelab"} and set(table["oracle_memory"]) == {0.5}
    assert list(table["seed"]) == [3] * 4
    with pytest.raises(TypeError, match="RunResult"):
        label_quality_table([{"config": {}}])


def test_relabel_outcome_counts_what_asking_again_found_and_mended():
    # image 5 (true 1): wrong, then right twice (mended); image 6 (true 2): wrong, asked once
    # more and wrong again (kept); image 7 (true 0): right, never asked again
    steps = [
        {"selected": [5, 6, 7], "noisy_labels": [0, 0, 0], "true_labels": [1, 2, 0]},
        {"relabelled": [5, 6], "relabel_answers": [1, 0]},
        {"relabelled": [5], "relabel_answers": [1]},
        {},
    ]
    outcome = relabel_outcome(run_of(steps))
    assert outcome == {"asked_again": 2, "first_wrong": 2, "vote_wrong": 1, "most_answers": 3}
    # one answer each: nothing asked again, the most answers is one
    plain = relabel_outcome(run_of([STEPS[0], {}]))
    assert plain == {"asked_again": 0, "first_wrong": 0, "vote_wrong": 0, "most_answers": 1}
    assert relabel_outcome(run_of([{}]))["most_answers"] == 0


def test_relabel_outcome_agrees_with_label_quality_at_the_end():
    # the last step's wrong count (labels before it) equals the wrong votes of the images asked
    # again plus the wrong first answers of the images asked once, for every seed's coin
    for seed in range(6):
        run = run_of(STEPS, seed=seed)
        outcome = relabel_outcome(run)
        wrong_once = 1  # image 6 is asked once and wrong
        assert label_quality(run)[-1]["wrong"] == outcome["vote_wrong"] + wrong_once


def test_the_outcome_table_names_each_run_and_refuses_an_inconsistent_one():
    runs = [run_of(STEPS, seed=s, oracle_memory=0.0, strategy="relabel-majority") for s in (0, 1)]
    table = relabel_outcome_table(runs)
    assert tuple(table.columns) == RELABEL_OUTCOME_COLUMNS
    assert list(table["seed"]) == [0, 1] and set(table["oracle_memory"]) == {0.0}
    assert list(table["asked_again"]) == [1, 1] and list(table["most_answers"]) == [3, 3]
    with pytest.raises(TypeError, match="RunResult"):
        relabel_outcome_table([{"config": {}}])
    blind = run_of(STEPS)
    blind.true_channel = None
    for read in (relabel_outcome, label_quality):
        with pytest.raises(ValueError, match="true_channel"):
            read(blind)
    bad = run_of([STEPS[0], {"relabelled": [9], "relabel_answers": [0]}])
    with pytest.raises(ValueError, match="step 1 re-labels image 9, never acquired"):
        relabel_outcome(bad)
