"""A labeller in the loop (issue 21): the simulated oracle as a labeller gives the record of no
labeller; a labeller's answers are checked, recorded, written to the checkpoint as they arrive,
and never asked for twice; the record and the checkpoint name the labeller, and a checkpoint is
resumed only by its own; the scripted and the widget labellers' scripted answers; the widget
labeller's clicks on disk (``answers_path``), clicked through its buttons without a front end."""

from __future__ import annotations

import json
import re

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
    saved = json.loads(ckpt.read_text())
    assert "pending_answers" not in saved
    # the record of no labeller names none; the checkpoint says: the simulated oracle
    assert "labeller" not in result.provenance and "labeller" not in plain.provenance
    assert saved["labeller"] is None


def test_a_labellers_answers_are_the_records_noisy_labels(plain):
    labeller = Counting(y_train())
    result = run_active_learning(config(), labeller=labeller)
    asked = [s.selected for s in result.steps[:-1]]
    assert labeller.asked == asked
    assert result.provenance["labeller"] == "Counting"  # not to be taken for the oracle's
    assert RunResult.from_dict(result.to_dict()).provenance["labeller"] == "Counting"
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


def test_a_checkpoint_is_resumed_only_by_its_own_labeller(tmp_path):
    ckpt = tmp_path / "ckpt.json"
    with pytest.raises(KeyboardInterrupt):
        run_active_learning(config(), labeller=Counting(y_train(), crash_on=2), checkpoint=ckpt)
    before = ckpt.read_bytes()
    assert json.loads(before)["labeller"] == "Counting"
    others = [
        (ScriptedLabeller([0] * 20), "asks labeller 'ScriptedLabeller'"),
        (None, "asks the simulated oracle"),
        (SimulatedOracle.for_config(config()), "asks the simulated oracle"),
    ]
    for other, asks in others:
        with pytest.raises(
            ValueError, match=f"^labeller: checkpoint .*'Counting', but this run {asks}"
        ):
            run_active_learning(config(), labeller=other, checkpoint=ckpt)
    assert ckpt.read_bytes() == before  # the person's answers are not overwritten

    # a checkpoint of an older version names no labeller: it resumes with any, as before
    old = json.loads(before)
    del old["labeller"]
    ckpt.write_text(json.dumps(old))
    other = ScriptedLabeller([1] * 10)
    result = run_active_learning(config(), labeller=other, checkpoint=ckpt)
    assert other.used == 10 and result.provenance["resumed_from_step"] == 1
    assert result.provenance["labeller"] == "ScriptedLabeller"

    # the simulated oracle's checkpoint is not resumed by a person either
    oracle_ckpt = tmp_path / "oracle.json"
    run_active_learning(config(n_steps=1), checkpoint=oracle_ckpt)
    with pytest.raises(ValueError, match="holds the answers of the simulated oracle"):
        run_active_learning(config(n_steps=1), labeller=Counting(y_train()), checkpoint=oracle_ckpt)


@pytest.fixture
def shown(monkeypatch) -> list:
    """What :class:`WidgetLabeller` displays, caught instead of sent to a front end."""
    pytest.importorskip("ipywidgets")
    import IPython.display

    caught: list = []
    monkeypatch.setattr(IPython.display, "display", caught.append)
    return caught


def click(shown: list, row: int, label: int) -> None:
    """Click button ``label`` of the ``row``-th item of the last display, as a person does."""
    item = shown[-1].children[row]
    item.children[1].children[label].click()


def test_widget_clicks_are_on_disk_at_once_and_never_asked_again(tmp_path, shown):
    path = tmp_path / "labels" / "clicks.json"
    names = ["a", "b", "c"]
    first = WidgetLabeller(names, answers_path=path)
    on_disk = json.loads(path.read_text())  # created at once: an unwritable folder fails now
    assert on_disk == {"format": "dean_nb.widget_answers/1", "class_names": names, "answers": {}}
    indices, inputs = torch.tensor([4, 9, 2]), torch.zeros(3, 5)
    with pytest.raises(LabelsNeeded, match="3 of 3 items"):
        first(indices, inputs)
    assert len(shown[-1].children) == 3
    click(shown, 0, 2)
    assert json.loads(path.read_text())["answers"] == {"4": 2}  # on disk before the next click
    click(shown, 1, 1)
    click(shown, 1, 0)  # a second thought replaces the first
    assert json.loads(path.read_text())["answers"] == {"4": 2, "9": 0}

    # the notebook is closed: a new labeller reads the clicks, shows only the unanswered item
    again = WidgetLabeller(names, answers_path=str(path))
    assert again.clicked == {4: 2, 9: 0}
    with pytest.raises(LabelsNeeded, match="1 of 3 items"):
        again(indices, inputs)
    assert len(shown[-1].children) == 1
    click(shown, 0, 1)  # item 2
    assert again(indices, inputs) == [2, 0, 1]
    n_shown = len(shown)
    assert WidgetLabeller(names, answers_path=path)(indices, inputs) == [2, 0, 1]
    assert len(shown) == n_shown  # nothing shown: every item has its answer


def test_a_closed_notebook_loses_no_click_in_the_loop(tmp_path, shown):
    path, ckpt = tmp_path / "clicks.json", tmp_path / "run.json"
    names = [str(k) for k in range(10)]
    cfg = config(n_steps=1)
    with pytest.raises(LabelsNeeded, match="10 of 10"):
        run_active_learning(cfg, labeller=WidgetLabeller(names, answers_path=path), checkpoint=ckpt)
    for row in range(4):
        click(shown, row, 7)
    # closed halfway through the batch: its four answers are kept, six items are shown
    with pytest.raises(LabelsNeeded, match="6 of 10"):
        run_active_learning(cfg, labeller=WidgetLabeller(names, answers_path=path), checkpoint=ckpt)
    for row in range(6):
        click(shown, row, 3)
    result = run_active_learning(
        cfg, labeller=WidgetLabeller(names, answers_path=path), checkpoint=ckpt
    )
    assert sorted(result.steps[0].noisy_labels) == [3] * 6 + [7] * 4
    assert result.provenance["labeller"] == "WidgetLabeller"
    assert json.loads(ckpt.read_text())["labeller"] == "WidgetLabeller"


def test_widget_answers_path_is_checked_by_name(tmp_path):
    names = ["a", "b", "c"]
    with pytest.raises(TypeError, match=r"answers_path must be a path .* got int"):
        WidgetLabeller(names, answers_path=3)
    with pytest.raises(ValueError, match="answers_path must name a JSON file"):
        WidgetLabeller(names, answers_path=tmp_path)
    with pytest.raises(ValueError, match="answers_path must name a JSON file"):
        WidgetLabeller(names, answers_path="")
    with pytest.raises(ValueError, match=r"script .* or answers_path .* not both"):
        WidgetLabeller(names, script=[0], answers_path=tmp_path / "a.json")

    path = tmp_path / "clicks.json"
    good = {"format": "dean_nb.widget_answers/1", "class_names": names, "answers": {"5": 1}}
    bad_files = [
        ('{"format": "dean_nb.widget_answers/1", "answers": {"5": ', "cannot be read as JSON"),
        (json.dumps([1, 2]), "is not a WidgetLabeller answers file"),
        (json.dumps({**good, "format": "other/1"}), "is not a WidgetLabeller answers file"),
        (json.dumps({**good, "class_names": ["x", "y"]}), "keeps answers for the classes"),
        (json.dumps({**good, "answers": [1]}), "'answers' must be an object"),
        (
            json.dumps({**good, "answers": {"5": 3}}),
            r"item 5 has answer 3, not a class in \[0, 3\)",
        ),
        (json.dumps({**good, "answers": {"5": -1}}), "item 5 has answer -1"),
        (json.dumps({**good, "answers": {"5": True}}), "item 5 has answer True"),
        (json.dumps({**good, "answers": {"five": 1}}), "'five' is not a training index"),
        (json.dumps({**good, "answers": {"-5": 1}}), "'-5' is not a training index"),
    ]
    for text, match in bad_files:
        path.write_text(text)
        with pytest.raises(ValueError, match=f"^answers_path {re.escape(str(path))}.*{match}"):
            WidgetLabeller(names, answers_path=path)
        assert path.read_text() == text  # a bad file is left for the person to repair
    path.write_text(json.dumps(good))
    labeller = WidgetLabeller(names, answers_path=path)
    assert labeller.clicked == {5: 1}
    for index, label in [(-1, 0), ("5", 0), (True, 0), (2.5, 0)]:
        with pytest.raises((TypeError, ValueError), match=r"^index must"):
            labeller.answer(index, label)
    for label in (3, -1, True, 1.5):
        with pytest.raises((TypeError, ValueError), match=r"^label must"):
            labeller.answer(5, label)
    assert json.loads(path.read_text()) == good  # refused answers change nothing
    labeller.answer(np.int64(8), torch.tensor(2))  # numpy's and torch's integers are integers
    assert json.loads(path.read_text())["answers"] == {"5": 1, "8": 2}
