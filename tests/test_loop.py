"""The active-learning loop (dean_nb.experiment.loop): Algorithms 1 and 2.

Properties: every strategy's quick run improves on its initial model; a seed fixes the split,
the oracle and every selection; :func:`train_step_model` is the loop's step model; every
strategy starts from the same initial set and model; only acquired labels are noisy (at rate
epsilon) and the oracle's answers are common to strategies; denoising records a
column-stochastic channel. The loop's checkpoints are tested in ``test_checkpoint.py``.
"""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from scipy import stats

from dean_nb import strategies
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.loop import run_active_learning
from dean_nb.experiment.records import RunResult, StepRecord
from dean_nb.experiment.step_model import train_step_model
from dean_nb.learner import training
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.split import make_split

# Small but honest: 20 clean initial labels, one acquisition of 60, 40 epochs (seconds on CPU).
FAST = dict(n_steps=1, acquisition_size=60, epochs=40, n_mc_samples=10, quiet=True)

# BatchBALD's greedy joint entropy is the slowest strategy: fewer sampled label configurations.
OPTIONS = {"batchbald": {"n_joint_samples": 100, "max_exact_configurations": 100}}
# On consistent masks a batch's joint information cannot exceed log T: with FAST's T = 10 a
# batch of 60 exhausts it after a few picks, so BatchBALD buys the same 60 labels 20 at a time.
PROTOCOL = {"batchbald": {"n_steps": 3, "acquisition_size": 20}}


@functools.cache
def _cached_run(key: str) -> RunResult:
    return run_active_learning(ExperimentConfig.preset("digits", "quick", **json.loads(key)))


def cached_run(**overrides) -> RunResult:
    """The run of the ``quick`` preset with ``overrides``, computed once per session."""
    return _cached_run(json.dumps(overrides, sort_keys=True))


def fast_run(strategy: str, **overrides) -> RunResult:
    """The FAST run of a strategy at seed 0, computed once per session."""
    settings = FAST | PROTOCOL.get(strategy, {})
    return cached_run(
        strategy=strategy, strategy_options=OPTIONS.get(strategy, {}), **settings, **overrides
    )


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_improves_on_its_initial_model(name):
    result = fast_run(name)
    first, last = result.steps[0], result.steps[-1]
    assert (first.n_labels, last.n_labels) == (20, 80)
    assert last.test_accuracy > first.test_accuracy + 0.02, result.accuracies
    batch = (FAST | PROTOCOL.get(name, {}))["acquisition_size"]
    assert len(first.selected) == batch and len(set(first.selected)) == batch
    assert last.selected == []  # the last model selects nothing
    assert 0.0 <= last.sigma <= 0.9 and math.isfinite(first.sigma)
    assert (first.beta is not None) == (name == "dean")


def test_same_seed_same_selection_and_different_seed_differs(quick):
    a = fast_run("dean")
    b = run_active_learning(quick(strategy="dean", **FAST))
    c = fast_run("dean", seed=1)
    assert a.selected == b.selected
    assert a.accuracies == b.accuracies
    assert [s.beta for s in a.steps] == [s.beta for s in b.steps]
    assert a.selected != c.selected
    assert a.initial_indices != c.initial_indices


def test_train_step_model_is_the_loops_step_model(quick):
    # benchmarks/sigma_samples.py relies on this: the function rebuilds the loop's step-0 model
    for denoise in (False, True):
        config = quick(strategy="random", denoise=denoise, **FAST)
        run = cached_run(strategy="random", denoise=denoise, **FAST)
        data = load_dataset("digits")
        split = make_split(
            data.y_train, 10, config.initial_per_class, config.validation_size, seed=0
        )
        model, channel = train_step_model(
            config, data.x_train[split.initial], data.y_train[split.initial], 10, 0, "cpu"
        )
        assert not model.training and (channel is not None) == denoise
        accuracy = training.evaluate_accuracy(model, data.x_test, data.y_test, device="cpu")
        assert float(accuracy) == run.steps[0].test_accuracy
        assert run.initial_indices == split.initial.tolist()


def test_initial_set_and_initial_model_are_shared_by_every_strategy(quick):
    runs = [fast_run(name) for name in strategies.available()]
    data = load_dataset("digits")
    split = make_split(data.y_train, 10, 2, quick().validation_size, seed=0)
    for run in runs:
        assert run.initial_indices == split.initial.tolist()
        assert run.steps[0].test_accuracy == runs[0].steps[0].test_accuracy
        assert run.steps[0].sigma == runs[0].steps[0].sigma
        # acquired images come from the pool only
        assert not set(run.selected) & set(split.validation.tolist())
        assert not set(run.selected) & set(split.initial.tolist())


@pytest.mark.parametrize("beta", [0.5, "inf"])
def test_dean_with_fixed_beta_records_that_beta(tiny, beta):
    result = run_active_learning(tiny(strategy="dean", strategy_options={"beta": beta}))
    first = result.steps[0]
    assert first.beta == float(beta) and math.isfinite(first.sigma)
    again = RunResult.from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert again.steps[0].beta == float(beta)


def test_dean_beta_0_starts_every_run_at_beta_0_whatever_its_first_sigma(tiny):
    options = {"beta_0": 13.4}
    result = run_active_learning(tiny(strategy="dean", n_steps=2, strategy_options=options))
    sigma_0 = result.steps[0].sigma
    unit = [math.exp(1 / s.sigma) - 1 for s in result.steps[:2]]  # the exp map at scale 1
    assert result.steps[0].beta == pytest.approx(13.4, rel=1e-9)
    # the next selection keeps the first model's scale (not its own sigma's)
    assert result.steps[1].beta == pytest.approx(13.4 * unit[1] / unit[0], rel=1e-9)
    assert result.steps[1].sigma != sigma_0


def test_oracle_noise_only_on_acquired_labels(monkeypatch, tiny):
    seen: list[torch.Tensor] = []
    real_train = training.train_model

    def spy(model, x, y, *args, **kwargs):
        seen.append(y.detach().cpu().clone())
        return real_train(model, x, y, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", spy)
    eps = 0.3
    config = tiny(strategy="random", epsilon=eps, n_steps=3, acquisition_size=200)
    result = run_active_learning(config)
    data = load_dataset("digits")
    initial = torch.tensor(result.initial_indices)

    # what the models trained on: the clean initial labels, then the oracle's answers
    for step, y in zip(result.steps, seen, strict=True):
        assert y.numel() == step.n_labels
        assert torch.equal(y[: initial.numel()], data.y_train[initial])
    acquired_noisy = [lab for s in result.steps for lab in s.noisy_labels]
    assert torch.equal(seen[-1][initial.numel() :], torch.tensor(acquired_noisy))

    # true labels recorded are the dataset's; the flip rate is epsilon (600 acquisitions)
    true = torch.tensor([lab for s in result.steps for lab in s.true_labels])
    assert torch.equal(true, data.y_train[torch.tensor(result.selected)])
    flips = int((torch.tensor(acquired_noisy) != true).sum())
    assert stats.binomtest(flips, true.numel(), eps).pvalue > 1e-4, flips / true.numel()

    # a clean oracle changes nothing
    clean = run_active_learning(config.replace(epsilon=0.0))
    assert all(s.noisy_labels == s.true_labels for s in clean.steps)


def test_oracle_answers_are_common_to_strategies(tiny):
    # the same image gets the same noisy answer whichever strategy asks for it
    runs = [
        run_active_learning(tiny(strategy=name, epsilon=0.4, n_steps=1, acquisition_size=300))
        for name in ("random", "entropy", "dean")
    ]
    answers: dict[int, int] = {}
    for run in runs:
        for s in run.steps:
            for i, y in zip(s.selected, s.noisy_labels, strict=True):
                assert answers.setdefault(i, y) == y
    assert len(answers) < sum(len(run.selected) for run in runs)  # the batches overlap


def test_denoising_records_a_column_stochastic_channel(tiny):
    result = run_active_learning(tiny(strategy="random", denoise=True, epsilon=0.3))
    for step in result.steps:
        w = torch.tensor(step.channel, dtype=torch.float64)
        assert w.shape == (10, 10)
        torch.testing.assert_close(w.sum(0), torch.ones(10, dtype=torch.float64), atol=1e-5, rtol=0)
        assert (w >= 0).all()
    assert result.true_channel[0][0] == pytest.approx(0.7)
    plain = run_active_learning(tiny(strategy="random"))
    assert all(s.channel is None for s in plain.steps)


def test_pool_subset_and_progress_callback(tiny):
    steps: list[StepRecord] = []
    config = tiny(strategy="dean", pool_subset=50)
    result = run_active_learning(config, on_step=steps.append)
    assert steps == result.steps
    assert len(result.steps[0].selected) == 10
