"""A labeller in the loop (issue 21): the simulated oracle as a labeller gives the record of no
labeller; a labeller's answers are checked, recorded, written to the checkpoint as they arrive,
and never asked for twice; the scripted and the widget labellers' scripted answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dean_nb.experiment import loop
from dean_nb.experiment.checkpoint import read_checkpoint
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.labellers import (
    LabelsNeeded,
    ScriptedLabeller,
    SimulatedOracle,
    WidgetLabeller,
    check_answers,
)
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.records import RunResult

SMALL = dict(n_steps=2, acquisition_size=10, epochs=5, n_mc_samples=4, quiet=True)


def config(**overrides) -> ExperimentConfig:
    return ExperimentConfig.preset(
        "digits", "quick", **{"strategy": "bald", "epsilon": 0.3, **SMALL}
    ).replace(**overrides)


def content(result: RunResult) -> dict:
    data = result.to_dict()
    data.pop("provenance")
    data["steps"] = [{k: v for k, v in s.items() if k != "wall_time"} for s in data["steps"]]
    return data


@pytest.fixture(scope="module")
def plain() -> RunResult:
    return run_active_learning(config())


class Counting:
    """Answers ``(true label + 1) mod K``; records every batch it is asked; raises on call
    ``crash_on`` (1-based) after answering the earlier ones."""

    def __init__(self, y_train: torch.Tensor, crash_on: int | None = None):
        self.y_train, self.crash_on, self.asked = y_train, crash_on, []

    def __call__(self, indices, inputs):
        assert indices.dtype == torch.int64 and inputs.shape[0] == indices.numel()
        if self.crash_on is not None and len(self.asked) + 1 == self.crash_on:
            raise KeyboardInterrupt("the notebook was closed")
        self.asked.append(indices.tolist())
        return np.asarray((self.y_train[indices] + 1) % 10)


def y_train() -> torch.Tensor:
    return loop.oracle_answers(config(epsilon=0.0))  # noiseless: the true labels


def test_the_simulated_oracle_as_a_labeller_gives_the_record_of_no_labeller(plain, tmp_path):
    oracle = SimulatedOracle.for_config(config())
    assert torch.equal(oracle.answers, loop.oracle_answers(config()))
    ckpt = tmp_path / "ckpt.json"
    result = run_active_learning(config(), labeller=oracle, checkpoint=ckpt)
    assert content(result) == content(plain)
    assert "pending_answers" not in json.loads(ckpt.read_text())


def test_a_labellers_answers_are_the_records_noisy_labels(plain):
    labeller = Counting(y_train())
    result = run_active_learning(config(), labeller=labeller)
    asked = [s.selected for s in result.steps[:-1]]
    assert labeller.asked == asked
    for s in result.steps[:-1]:
        assert s.noisy_labels == [(t + 1) % 10 for t in s.true_labels]
    # the first model and its selection do not depend on who labels
    assert result.steps[0].selected == plain.steps[0].selected


def test_a_crash_loses_no_answer_and_a_resumed_run_does_not_ask_again(tmp_path, monkeypatch):
    reference = run_active_learning(config(), labeller=Counting(y_train()))
    ckpt = tmp_path / "ckpt.json"
    first = Counting(y_train(), crash_on=2)
    with pytest.raises(KeyboardInterrupt):
        run_active_learning(config(), labeller=first, checkpoint=ckpt)
    assert len(first.asked) == 1  # step 0's batch, answered and then step 1 crashed
    again = Counting(y_train())
    resumed = run_active_learning(config(), labeller=again, checkpoint=ckpt)
    assert again.asked == [reference.steps[1].selected]  # step 0's batch is not asked again
    assert content(resumed) == content(reference)

    # a crash after the labeller answered but before the step's record was written
    ckpt2 = tmp_path / "ckpt2.json"
    real = loop._commit_batch

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(loop, "_commit_batch", crash)
    answered = Counting(y_train())
    with pytest.raises(KeyboardInterrupt):
        run_active_learning(config(), labeller=answered, checkpoint=ckpt2)
    assert answered.asked == [reference.steps[0].selected]
    saved = json.loads(ckpt2.read_text())
    assert saved["steps"] == []
    assert saved["pending_answers"] == {
        "step": 0,
        "selected": reference.steps[0].selected,
        "labels": reference.steps[0].noisy_labels,
    }
    monkeypatch.setattr(loop, "_commit_batch", real)
    later = Counting(y_train())
    resumed = run_active_learning(config(), labeller=later, checkpoint=ckpt2)
    assert later.asked == [reference.steps[1].selected]
    assert content(resumed) == content(reference)
    assert "pending_answers" not in json.loads(ckpt2.read_text())


def test_an_old_checkpoint_without_pending_answers_loads(tmp_path):
    ckpt = tmp_path / "ckpt.json"
    run_active_learning(config(n_steps=1), checkpoint=ckpt)
    payload = json.loads(ckpt.read_text())
    assert "pending_answers" not in payload
    saved = read_checkpoint(ckpt, config(n_steps=1))
    assert saved is not None and saved.pending is None and len(saved.steps) == 2


@pytest.mark.parametrize(
    "answers, match",
    [
        ([1, 2], "returned 2 labels for 3 items"),
        ([0, 1, 10], "returned label 10, outside \\[0, 10\\)"),
        ([0, -1, 2], "returned label -1"),
        ([0.5, 1.0, 2.0], "float"),
        ("abc", "not integer labels"),
    ],
)
def test_answers_are_checked_by_name(answers, match):
    def my_labeller(indices, inputs):
        return answers

    with pytest.raises(ValueError, match=f"labeller my_labeller .*{match}"):
        check_answers(my_labeller, my_labeller(None, None), 3, 10)
    assert check_answers(my_labeller, torch.tensor([3, 0, 9]), 3, 10).tolist() == [3, 0, 9]


def test_a_bad_answer_in_the_loop_names_the_labeller():
    with pytest.raises(ValueError, match="labeller ScriptedLabeller returned label 12"):
        run_active_learning(config(n_steps=1), labeller=ScriptedLabeller([12] * 10))


def test_scripted_labeller_answers_in_order_and_refuses_when_it_runs_out():
    labeller = ScriptedLabeller([3, 1, 4, 1, 5])
    x = torch.zeros(2, 4)
    assert labeller(torch.tensor([7, 8]), x) == [3, 1]
    assert labeller(torch.tensor([9, 2]), x) == [4, 1]
    with pytest.raises(RuntimeError, match="has 5 answers, 4 already given"):
        labeller(torch.tensor([0, 6]), x)


def test_widget_labeller_with_a_script_answers_without_a_front_end():
    result = run_active_learning(
        config(n_steps=1), labeller=WidgetLabeller([str(k) for k in range(10)], script=[2] * 10)
    )
    assert result.steps[0].noisy_labels == [2] * 10
    with pytest.raises(ValueError, match="at least 2 classes"):
        WidgetLabeller(["only"])


def test_widget_labeller_returns_the_clicked_answers():
    labeller = WidgetLabeller(["a", "b", "c"])
    labeller.clicked.update({5: 2, 7: 0})
    assert labeller(torch.tensor([7, 5]), torch.zeros(2, 3)) == [0, 2]
    if pytest.importorskip("ipywidgets") is not None:
        with pytest.raises(LabelsNeeded, match="1 of 2 items need an answer"):
            labeller(torch.tensor([7, 9]), torch.zeros(2, 3))
