"""Per-step checkpoints (dean_nb.experiment.loop): a killed run resumes from its last finished step.

Properties: a run interrupted after step k and resumed from its checkpoint gives the record of
an uninterrupted run (selections, accuracies, sigma, beta, channel: everything but wall times
and provenance), trains only the missing steps, and does not depend on torch's global RNG; a
checkpoint of another configuration or one that disagrees with the run is ignored; run_grid
resumes from the checkpoint inline and in worker processes and removes it once the record is
written.
"""

from __future__ import annotations

import json

import pytest
import torch

from dean_nb.experiment import loop
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.grid import checkpoint_path, result_path, run_grid
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.records import RunResult

SMALL = dict(epochs=2, n_steps=3, acquisition_size=10, n_mc_samples=3, quiet=True)


def config(**overrides) -> ExperimentConfig:
    return ExperimentConfig.preset(
        "digits", "quick", **{"strategy": "dean", "denoise": True, "epsilon": 0.3, **SMALL}
    ).replace(**overrides)


def content(result: RunResult | dict) -> dict:
    """A record without wall times and provenance: what must not change on resume."""
    data = result.to_dict() if isinstance(result, RunResult) else result
    data = dict(data)
    data.pop("provenance")
    data["steps"] = [{k: v for k, v in s.items() if k != "wall_time"} for s in data["steps"]]
    return data


class Stop(Exception):
    pass


def stop_after(step: int):
    def on_step(record):
        if record.step == step:
            raise Stop

    return on_step


def count_trainings(monkeypatch) -> list[int]:
    steps: list[int] = []
    real = loop.train_step_model

    def spy(config, x, y, num_classes, step, device):
        steps.append(step)
        return real(config, x, y, num_classes, step, device)

    monkeypatch.setattr(loop, "train_step_model", spy)
    return steps


@pytest.fixture(scope="module")
def uninterrupted() -> RunResult:
    return run_active_learning(config())


@pytest.mark.parametrize("after", [0, 1])
def test_interrupted_run_resumes_to_the_uninterrupted_record(
    after, uninterrupted, tmp_path, monkeypatch
):
    ckpt = tmp_path / ".run.partial.json"
    with pytest.raises(Stop):
        run_active_learning(config(), checkpoint=ckpt, on_step=stop_after(after))
    saved = json.loads(ckpt.read_text())
    assert [s["step"] for s in saved["steps"]] == list(range(after + 1))

    # whatever torch's global RNG holds in the resuming process, the run is the same
    torch.manual_seed(12345)
    torch.rand(1000)
    trained = count_trainings(monkeypatch)
    seen: list[int] = []
    resumed = run_active_learning(config(), checkpoint=ckpt, on_step=lambda r: seen.append(r.step))
    assert content(resumed) == content(uninterrupted)
    # only the missing steps were computed; the finished ones came from the checkpoint
    assert trained == seen == list(range(after + 1, config().n_steps + 1))
    for kept, old in zip(resumed.steps, saved["steps"], strict=False):
        assert kept.wall_time == old["wall_time"]
    assert resumed.provenance["resumed_from_step"] == after + 1
    assert "resumed_from_step" not in uninterrupted.provenance
    # the checkpoint now holds the whole run
    assert len(json.loads(ckpt.read_text())["steps"]) == config().n_steps + 1


def test_the_loop_neither_reads_nor_changes_torchs_global_rng(uninterrupted):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    # draws from the global RNG between steps must not change what the next step does
    result = run_active_learning(config(), on_step=lambda r: torch.rand(17 + r.step))
    assert content(result) == content(uninterrupted)
    torch.manual_seed(7)
    run_active_learning(config())
    assert torch.equal(torch.get_rng_state(), before)


def test_a_complete_checkpoint_returns_without_training(uninterrupted, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.json"
    run_active_learning(config(), checkpoint=ckpt)
    trained = count_trainings(monkeypatch)
    again = run_active_learning(config(), checkpoint=ckpt)
    assert trained == []
    assert content(again) == content(uninterrupted)


def test_location_fields_do_not_invalidate_a_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.json"
    with pytest.raises(Stop):
        run_active_learning(config(), checkpoint=ckpt, on_step=stop_after(1))
    trained = count_trainings(monkeypatch)
    run_active_learning(config(device="cpu", num_threads=2, quiet=False), checkpoint=ckpt)
    assert trained == [2, 3]


def _tamper_labels(data):
    data["steps"][0]["noisy_labels"][0] = (data["steps"][0]["noisy_labels"][0] + 1) % 10


def _tamper_selection(data):
    data["steps"][1]["selected"][0] = data["initial_indices"][0]  # not a pool image


def _tamper_config(data):
    data["config"]["epochs"] = 3


@pytest.mark.parametrize(
    "tamper, message",
    [
        (_tamper_config, "another configuration"),
        (_tamper_labels, "not this run's oracle answers"),
        (_tamper_selection, "outside the pool"),
        (lambda data: data.update(format="other/9"), "format"),
    ],
)
def test_a_checkpoint_that_does_not_match_is_ignored(
    tamper, message, uninterrupted, tmp_path, monkeypatch
):
    ckpt = tmp_path / "ckpt.json"
    with pytest.raises(Stop):
        run_active_learning(config(), checkpoint=ckpt, on_step=stop_after(1))
    data = json.loads(ckpt.read_text())
    tamper(data)
    ckpt.write_text(json.dumps(data))
    trained = count_trainings(monkeypatch)
    with pytest.warns(RuntimeWarning, match=message):
        result = run_active_learning(config(), checkpoint=ckpt)
    assert trained == [0, 1, 2, 3]
    assert content(result) == content(uninterrupted)


def test_an_unreadable_checkpoint_is_ignored(uninterrupted, tmp_path):
    ckpt = tmp_path / "ckpt.json"
    ckpt.write_text('{"format": "dean_nb.checkpoint/1", "steps": [')  # a torn copy
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint"):
        result = run_active_learning(config(), checkpoint=ckpt)
    assert content(result) == content(uninterrupted)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_grid_resumes_from_the_checkpoint_and_removes_it(workers, uninterrupted, tmp_path):
    # workers=2: the default executor's spawned processes resume from the checkpoint too
    other = config(strategy="random", denoise=False)
    ckpt = checkpoint_path(config(), tmp_path)
    assert ckpt.name == f".{result_path(config(), tmp_path).stem}.partial.json"
    with pytest.raises(Stop):
        run_active_learning(config(), checkpoint=ckpt, on_step=stop_after(1))
    saved = json.loads(ckpt.read_text())["steps"]

    paths = run_grid([config(), other], tmp_path, max_workers=workers, progress=False)
    record = json.loads(paths[0].read_text())
    assert content(record) == content(uninterrupted)
    assert [s["wall_time"] for s in record["steps"][:2]] == [s["wall_time"] for s in saved]
    assert record["provenance"]["resumed_from_step"] == 2
    assert "resumed_from_step" not in json.loads(paths[1].read_text())["provenance"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert sorted(paths.computed) == sorted(paths)
