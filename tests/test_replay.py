"""Replaying a stored run: exact on the same kind of machine, tolerant elsewhere, never blind."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dean_nb.experiment import replay
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.records import RunResult
from dean_nb.strategies import annealing

ROOT = Path(__file__).resolve().parents[1]

# A small DeAn run on the embedded digits data: three models, two acquisitions.
CONFIG = ExperimentConfig.preset(
    "digits", "quick", strategy="dean", epsilon=0.3, n_steps=2, epochs=10, quiet=True
)


@pytest.fixture(scope="module")
def stored() -> RunResult:
    return run_active_learning(CONFIG)


@pytest.fixture
def perturbed_sampler(monkeypatch):
    """DeAn's sampler with one extra draw from its generator before each batch."""
    original = annealing.annealed_batch

    def annealed_batch(*args, generator=None, **kwargs):
        torch.rand(1, generator=generator)
        return original(*args, generator=generator, **kwargs)

    monkeypatch.setattr(annealing, "annealed_batch", annealed_batch)


def test_same_machine_replay_is_exact(stored):
    fresh = run_active_learning(CONFIG)
    report = replay.check_replay(stored, fresh)
    assert report.mode == "exact" and report.first_divergence is None
    assert report.max_accuracy_gap == 0.0 and report.max_sigma_gap == 0.0
    assert report.n_picks == CONFIG.n_steps * CONFIG.acquisition_size
    wrong = [
        n != t for s in stored.steps for n, t in zip(s.noisy_labels, s.true_labels, strict=True)
    ]
    assert report.mislabelled == sum(wrong) > 0  # epsilon 0.3: the record's wrong answers


@pytest.mark.parametrize("mode", ["exact", "tolerant"])
def test_perturbed_sampler_fails_both_checks(stored, perturbed_sampler, mode):
    fresh = run_active_learning(CONFIG)
    assert fresh.selected != stored.selected
    with pytest.raises(replay.ReplayMismatch, match="first acquisition"):
        replay.check_replay(stored, fresh, mode)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda r: r.initial_indices.__setitem__(0, r.initial_indices[0] + 1), "split"),
        (
            lambda r: r.steps[1].noisy_labels.__setitem__(0, (r.steps[1].noisy_labels[0] + 1) % 10),
            "oracle's answers",
        ),
        (
            lambda r: setattr(r.steps[0], "test_accuracy", r.steps[0].test_accuracy + 0.05),
            "step-0 accuracy",
        ),
        (
            lambda r: setattr(r.steps[2], "test_accuracy", r.steps[2].test_accuracy - 0.2),
            "accuracy differs",
        ),
        (lambda r: setattr(r.steps[1], "sigma", r.steps[1].sigma + 0.2), "sigma differs"),
        (lambda r: setattr(r, "config", r.config.replace(epochs=11)), "configurations"),
    ],
)
def test_tampered_record_fails_tolerant_check(stored, corrupt, message):
    tampered = copy.deepcopy(stored)
    corrupt(tampered)
    with pytest.raises(replay.ReplayMismatch, match=message):
        replay.check_replay(tampered, stored, "tolerant")


def test_tolerant_check_allows_rounding_that_exact_does_not(stored):
    nudged = copy.deepcopy(stored)
    nudged.steps[0].sigma += 0.004  # within the measured step-0 spread
    nudged.steps[2].test_accuracy -= 0.05  # a diverged later step
    report = replay.check_replay(nudged, stored, "tolerant")
    assert report.max_accuracy_gap == pytest.approx(0.05)
    with pytest.raises(replay.ReplayMismatch):
        replay.check_replay(nudged, stored, "exact")


def test_mode_follows_the_records_machine(stored):
    here = replay.machine_kind()
    assert replay.replay_mode(stored.provenance)[0] == "exact"
    other = {**stored.provenance, "cpu_capability": "SOMETHING_ELSE"}
    mode, reason = replay.replay_mode(other)
    assert mode == "tolerant" and "cpu_capability" in reason and here["cpu_capability"] in reason
    unnamed = {k: v for k, v in stored.provenance.items() if k != "cpu"}
    assert replay.replay_mode(unnamed) == ("tolerant", "the record does not name its cpu")
    assert replay.replay_mode(stored.provenance, device="meta")[0] == "tolerant"


def test_bad_arguments_are_refused(stored):
    with pytest.raises(ValueError, match="mode must be one of"):
        replay.check_replay(stored, stored, "roughly")
    with pytest.raises(ValueError, match="unknown tolerance 'accuracy_gap'"):
        replay.check_replay(stored, stored, tolerances={"accuracy_gap": 0.1})
    with pytest.raises(ValueError, match="tolerance sigma must be a finite number"):
        replay.check_replay(stored, stored, tolerances={"sigma": float("inf")})


@pytest.mark.slow
def test_default_kernels_replay_passes_the_tolerant_check(stored, tmp_path):
    """Another kind of machine, for real: torch's non-vectorised kernels in a subprocess."""
    path = stored.to_json(tmp_path / "stored.json")
    script = (
        "import sys; from dean_nb.experiment import loop, records, replay\n"
        "stored = records.load_run(sys.argv[1])\n"
        "fresh = loop.run_active_learning(stored.config)\n"
        "report = replay.check_replay(stored, fresh)\n"
        "print(report.mode, report.max_accuracy_gap)\n"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "tolerant"


def test_a_record_answered_by_a_person_is_not_replayed_against_the_oracle(stored):
    answered = copy.deepcopy(stored)
    answered.provenance["labeller"] = "WidgetLabeller"
    with pytest.raises(ValueError, match="labeller 'WidgetLabeller', not by the simulated"):
        replay.check_replay(answered, stored)
