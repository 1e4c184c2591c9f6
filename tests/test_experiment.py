"""The active-learning loop, run records and the resumable grid runner (dean_nb.experiment).

Properties: every strategy's quick run improves on its initial model; a seed fixes the split,
the oracle and every selection; only acquired labels are noisy (at rate epsilon); a killed
grid resumes without redoing or touching finished runs; writes are atomic; any
concurrent.futures executor (Dask's included) runs a grid; results load into a tidy frame.
"""

from __future__ import annotations

import functools
import json
import math
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from scipy import stats

from dean_nb import experiment, strategies, training
from dean_nb.data import load_dataset, make_split
from dean_nb.experiment import (
    ExperimentConfig,
    RunResult,
    StepRecord,
    format_summary,
    load_results,
    make_grid,
    result_path,
    run_active_learning,
    run_grid,
    summary_table,
    uncertainty_table,
)

# Small but honest: 20 clean initial labels, one acquisition of 60, 40 epochs (seconds on CPU).
FAST = dict(n_steps=1, acquisition_size=60, epochs=40, n_mc_samples=10, quiet=True)
# For the bookkeeping tests, where accuracy does not matter.
TINY = dict(n_steps=1, acquisition_size=10, epochs=1, n_mc_samples=2, quiet=True)


def quick(**overrides) -> ExperimentConfig:
    return ExperimentConfig.preset("digits", "quick", **overrides)


# BatchBALD's greedy joint entropy is the slowest strategy: fewer sampled label configurations.
OPTIONS = {"batchbald": {"n_joint_samples": 100, "max_exact_configurations": 100}}


@functools.cache
def _cached_run(key: str) -> RunResult:
    return run_active_learning(quick(**json.loads(key)))


def cached_run(**overrides) -> RunResult:
    return _cached_run(json.dumps(overrides, sort_keys=True))


def fast_run(strategy: str, **overrides) -> RunResult:
    """The FAST run of a strategy at seed 0, computed once per session."""
    return cached_run(
        strategy=strategy, strategy_options=OPTIONS.get(strategy, {}), **FAST, **overrides
    )


# --------------------------------------------------------------------------- config


def test_config_json_round_trip_and_presets():
    config = quick(strategy="bald", epsilon=0.2, denoise=True, seed=3, pool_subset=500)
    text = json.dumps(config.to_dict())
    assert ExperimentConfig.from_dict(json.loads(text)) == config
    paper = ExperimentConfig.preset("mnist", "paper")
    assert (paper.initial_per_class * 10, paper.validation_size) == (40, 5000)
    assert (paper.acquisition_size, paper.n_steps, paper.epochs) == (200, 5, 50)
    assert (paper.n_mc_samples, paper.n_clusters, paper.beta_kind) == (100, 2500, "exp")
    assert ExperimentConfig.preset("emnist", "paper").beta_kind == "pow4"
    assert ExperimentConfig.preset("cifar100", "paper").beta_kind == "pow4"
    assert ExperimentConfig.preset("svhn", "paper").beta_scale == 0.25
    assert ExperimentConfig.preset("fashion-mnist", "medium").acquisition_size == 200
    assert quick(n_clusters=None).effective_n_clusters == 5 * quick().acquisition_size


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ExperimentConfig.preset("mnist", "quick"), "presets by dataset"),
        (lambda: ExperimentConfig.preset("digits", "huge"), "preset must be one of"),
        (lambda: quick(strategy="magic"), "strategy must be one of .*dean"),
        (lambda: quick(epsilon=1.0), r"epsilon must lie in \[0.0, 1.0\)"),
        (lambda: quick(beta_kind="linear"), "beta_kind must be one of"),
        (lambda: quick(pool_subset=5), r"pool_subset must lie in \[20"),
        (lambda: quick(bogus=1), "unknown override"),
        (lambda: ExperimentConfig.from_dict({"bogus": 1}), "unknown ExperimentConfig field"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_parse_override_types():
    assert experiment.parse_override("epochs=7") == ("epochs", 7)
    assert experiment.parse_override("epsilon=0.25") == ("epsilon", 0.25)
    assert experiment.parse_override("denoise=yes") == ("denoise", True)
    assert experiment.parse_override("pool_subset=none") == ("pool_subset", None)
    assert experiment.parse_override("device=cuda:1") == ("device", "cuda:1")
    assert experiment.parse_override('strategy_options={"linkage": "average"}') == (
        "strategy_options",
        {"linkage": "average"},
    )
    with pytest.raises(ValueError, match="epochs needs a int"):
        experiment.parse_override("epochs=many")
    with pytest.raises(ValueError, match="unknown override key 'epoch'"):
        experiment.parse_override("epoch=3")


# --------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_improves_on_its_initial_model(name):
    result = fast_run(name)
    assert [s.n_labels for s in result.steps] == [20, 80]
    first, last = result.steps[0], result.steps[-1]
    assert last.test_accuracy > first.test_accuracy + 0.02, result.accuracies
    assert len(first.selected) == 60 and len(set(first.selected)) == 60
    assert last.selected == []  # the last model selects nothing
    assert 0.0 <= last.sigma <= 0.9 and math.isfinite(first.sigma)
    assert (first.beta is not None) == (name == "dean")


def test_same_seed_same_selection_and_different_seed_differs():
    a = fast_run("dean")
    b = run_active_learning(quick(strategy="dean", **FAST))
    c = fast_run("dean", seed=1)
    assert a.selected == b.selected
    assert a.accuracies == b.accuracies
    assert [s.beta for s in a.steps] == [s.beta for s in b.steps]
    assert a.selected != c.selected
    assert a.initial_indices != c.initial_indices


def test_train_step_model_is_the_loops_step_model():
    # benchmarks/sigma_samples.py relies on this: the function rebuilds the loop's step-0 model
    for denoise in (False, True):
        config = quick(strategy="random", denoise=denoise, **FAST)
        run = cached_run(strategy="random", denoise=denoise, **FAST)
        data = load_dataset("digits")
        split = make_split(
            data.y_train, 10, config.initial_per_class, config.validation_size, seed=0
        )
        model, channel = experiment.train_step_model(
            config, data.x_train[split.initial], data.y_train[split.initial], 10, 0, "cpu"
        )
        assert not model.training and (channel is not None) == denoise
        accuracy = training.evaluate_accuracy(model, data.x_test, data.y_test, device="cpu")
        assert float(accuracy) == run.steps[0].test_accuracy
        assert run.initial_indices == split.initial.tolist()


def test_initial_set_and_initial_model_are_shared_by_every_strategy():
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


def test_oracle_noise_only_on_acquired_labels(monkeypatch):
    seen: list[torch.Tensor] = []
    real_train = training.train_model

    def spy(model, x, y, *args, **kwargs):
        seen.append(y.detach().cpu().clone())
        return real_train(model, x, y, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", spy)
    eps = 0.3
    config = quick(strategy="random", epsilon=eps, n_steps=3, acquisition_size=200, **_no(TINY))
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


def _no(overrides: dict) -> dict:
    """TINY without the fields a test sets itself."""
    return {k: v for k, v in overrides.items() if k not in ("n_steps", "acquisition_size")}


def test_oracle_answers_are_common_to_strategies():
    # the same image gets the same noisy answer whichever strategy asks for it
    runs = [
        run_active_learning(
            quick(strategy=name, epsilon=0.4, n_steps=1, acquisition_size=300, **_no(TINY))
        )
        for name in ("random", "entropy", "dean")
    ]
    answers: dict[int, int] = {}
    for run in runs:
        for s in run.steps:
            for i, y in zip(s.selected, s.noisy_labels, strict=True):
                assert answers.setdefault(i, y) == y
    assert len(answers) < sum(len(run.selected) for run in runs)  # the batches overlap


def test_denoising_records_a_column_stochastic_channel():
    result = run_active_learning(quick(strategy="random", denoise=True, epsilon=0.3, **TINY))
    for step in result.steps:
        w = torch.tensor(step.channel, dtype=torch.float64)
        assert w.shape == (10, 10)
        torch.testing.assert_close(w.sum(0), torch.ones(10, dtype=torch.float64), atol=1e-5, rtol=0)
        assert (w >= 0).all()
    assert result.true_channel[0][0] == pytest.approx(0.7)
    plain = run_active_learning(quick(strategy="random", **TINY))
    assert all(s.channel is None for s in plain.steps)


def test_pool_subset_and_progress_callback():
    steps: list[StepRecord] = []
    config = quick(strategy="dean", pool_subset=50, **TINY)
    result = run_active_learning(config, on_step=steps.append)
    assert steps == result.steps
    assert len(result.steps[0].selected) == 10


def test_run_result_json_round_trip(tmp_path):
    result = run_active_learning(quick(strategy="dean", denoise=True, **TINY))
    path = result.to_json(tmp_path / "run.json")
    back = experiment.load_run(path)
    assert back.to_dict() == result.to_dict()
    assert back.config == result.config
    prov = back.provenance
    assert {"dean_nb_version", "git_commit", "date", "hostname", "torch", "device"} <= set(prov)


# --------------------------------------------------------------------------- grids


def tiny_grid(**overrides):
    base = quick(**{**TINY, **overrides})
    return make_grid(base, ["random", "dean+denoise"], [0.0, 0.3], (False,), [0])


def test_make_grid_and_run_keys():
    configs = make_grid(quick(), ["dean", "dean+denoise", "bald"], [0, 0.3], (False,), [0, 1])
    assert len(configs) == 3 * 2 * 2
    assert {c.method for c in configs} == {"dean", "dean+denoise", "bald"}
    keys = {experiment.run_key(c) for c in configs}
    assert len(keys) == len(configs)
    both = make_grid(quick(), ["bald"], [0.1], (False, True), [0])
    assert [c.denoise for c in both] == [False, True]
    # where and how verbosely a run happens does not change its key; what it computes does
    c = configs[0]
    assert experiment.run_key(c.replace(quiet=True, device="cpu", root="/x")) == experiment.run_key(
        c
    )
    assert experiment.run_key(c.replace(epochs=3)) != experiment.run_key(c)
    assert experiment.run_key(c).startswith("digits_dean_eps0_seed0_")


def test_interrupted_grid_resumes_without_redoing_or_losing_runs(tmp_path, monkeypatch):
    configs = tiny_grid()
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert sorted(paths) == sorted(tmp_path.glob("*.json")) and len(paths) == 4
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}

    lost = paths[2]
    lost.unlink()  # as if the grid was killed before this run finished
    calls: list[ExperimentConfig] = []
    real = experiment.run_active_learning

    def counting(config, **kwargs):
        calls.append(config)
        return real(config, **kwargs)

    monkeypatch.setattr(experiment, "run_active_learning", counting)
    again = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert again == paths
    assert [result_path(c, tmp_path) for c in calls] == [lost]
    for p in paths:
        if p != lost:
            assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p]
    # the rerun reproduces the lost run exactly (same seed, same selections)
    assert _steps(lost.read_bytes()) == _steps(before[lost][1])
    # nothing left to do
    calls.clear()
    run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert calls == []


def _steps(text) -> list[dict]:
    """A run file's step records without their wall times."""
    steps = json.loads(text)["steps"]
    return [{k: v for k, v in s.items() if k != "wall_time"} for s in steps]


def test_failed_run_does_not_lose_the_others_and_writes_nothing_partial(tmp_path, monkeypatch):
    configs = tiny_grid()
    real = experiment.run_active_learning

    def flaky(config, **kwargs):
        if config.strategy == "dean" and config.epsilon > 0:
            raise FloatingPointError("boom")
        return real(config, **kwargs)

    monkeypatch.setattr(experiment, "run_active_learning", flaky)
    with pytest.raises(RuntimeError, match=r"1 of 4 runs failed:\n.*dean\+denoise_eps0.3.*boom"):
        run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in tmp_path.glob("*.json"))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"

    def broken_dump(obj, fh, **kwargs):
        fh.write('{"config": {"dataset": "dig')  # a partial write, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment.json, "dump", broken_dump)
    with pytest.raises(KeyboardInterrupt):
        experiment._atomic_write_json(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    experiment._atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_records_get_the_usual_file_mode(tmp_path):
    # like any file the user writes (umask applied), not mkstemp's private 0600
    experiment._atomic_write_json(tmp_path / "run.json", {"a": 1})
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o666 & ~umask


def test_any_executor_runs_a_grid_with_the_same_results(tmp_path):
    configs = tiny_grid()
    inline = run_grid(configs, tmp_path / "inline", max_workers=1, progress=False)
    # one worker thread: runs in threads share torch's global RNG (dropout), so only a
    # single-threaded worker (or processes) reproduces the inline results bit for bit
    with ThreadPoolExecutor(max_workers=1) as pool:
        threaded = run_grid(configs, tmp_path / "threads", executor=pool, progress=False)
    for a, b in zip(inline, threaded, strict=True):
        assert a.name == b.name
        assert _steps(a.read_bytes()) == _steps(b.read_bytes())


def test_dask_executor_runs_a_grid(tmp_path):
    distributed = pytest.importorskip("distributed")
    configs = tiny_grid()[:2]
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        paths = run_grid(configs, tmp_path / "dask", executor=client.get_executor(), progress=False)
    inline = run_grid(configs, tmp_path / "inline", max_workers=1, progress=False)
    for a, b in zip(inline, paths, strict=True):
        assert _steps(a.read_bytes()) == _steps(b.read_bytes())
    df = load_results(tmp_path / "dask")
    assert len(df) == 2 * 2 and set(df["method"]) == {"random", "dean+denoise"}


# --------------------------------------------------------------------------- results


def _fake_results(folder):
    """Synthetic runs with known accuracies: acc = 0.5 + 0.1 * step + 0.01 * seed (+0.05 dean)."""
    for strategy in ("dean", "random"):
        for eps in (0.0, 0.3):
            for seed in (0, 1, 2):
                config = quick(strategy=strategy, epsilon=eps, seed=seed)
                steps = [
                    StepRecord(
                        step=t,
                        n_labels=20 + 20 * t,
                        test_accuracy=0.5
                        + 0.1 * t
                        + 0.01 * seed
                        + (0.05 if strategy == "dean" else 0),
                        sigma=0.4 - 0.1 * t,
                        beta=(math.inf if t == 2 else 1.0 + t) if strategy == "dean" else None,
                        selected=[] if t == 2 else [t],
                        wall_time=0.1,
                    )
                    for t in range(3)
                ]
                RunResult(config=config, steps=steps).to_json(result_path(config, folder))


def test_load_results_and_summary_table(tmp_path):
    _fake_results(tmp_path)
    (tmp_path / ".digits_x.json.abc.tmp").write_text('{"trunc')  # a killed write's leftover
    df = load_results(tmp_path)
    assert len(df) == 2 * 2 * 3 * 3
    assert list(df.columns) == list(experiment.RESULT_COLUMNS)
    assert df["beta"].isna().sum() == 2 * 3 * 3  # random has no beta
    assert np.isinf(df["beta"]).sum() == 2 * 3  # dean's last step: beta = inf round-trips

    summary = summary_table(df)
    assert len(summary) == 2 * 2 * 3
    row = summary[
        (summary.strategy == "dean") & (summary.epsilon == 0.3) & (summary.n_labels == 60)
    ]
    assert row["n"].item() == 3
    expected = [0.5 + 0.2 + 0.01 * s + 0.05 for s in range(3)]
    assert row["mean"].item() == pytest.approx(np.mean(expected))
    assert row["std"].item() == pytest.approx(np.std(expected, ddof=1))

    table = format_summary(summary)
    assert table.shape == (4, 3)
    assert table.loc[("digits", 0.3, "dean"), 60] == "76.00 ± 1.00"
    sigma = uncertainty_table(df)
    assert sigma.shape == (4, 3)
    assert sigma.loc[("digits", 0.0, "random"), 1] == pytest.approx(0.3)


def test_plots_return_figures_without_global_state(tmp_path):
    import matplotlib.pyplot as plt

    from dean_nb import plots
    from dean_nb.oracle import symmetric_channel

    _fake_results(tmp_path)
    df = load_results(tmp_path)
    before = plt.get_fignums()
    fig = plots.learning_curves(df)
    assert len(fig.axes) == 2  # one panel per epsilon
    assert {line.get_label() for line in fig.axes[0].lines} == {"dean (n=3)", "random (n=3)"}
    np.testing.assert_allclose(
        fig.axes[0].lines[0].get_ydata(), 100 * np.array([0.56, 0.66, 0.76]), rtol=1e-9
    )
    fig2 = plots.uncertainty_curves(df)
    true = symmetric_channel(10, 0.3)
    fig3 = plots.channel_heatmaps(true, torch.eye(10))
    assert len(fig3.axes[0].texts) == 100
    fig3.savefig(tmp_path / "channel.png")
    assert plt.get_fignums() == before and fig2 is not None
    with pytest.raises(ValueError, match="square"):
        plots.channel_heatmaps(torch.ones(2, 3), torch.ones(2, 3))
