"""The training labels of a re-labelling run, read from its record alone
(:mod:`dean_nb.analysis.relabelling`)."""

from __future__ import annotations

import pytest

from dean_nb.analysis.relabelling import (
    LABEL_QUALITY_COLUMNS,
    label_quality,
    label_quality_table,
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
