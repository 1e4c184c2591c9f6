"""Your data and your model in the loop, the grid and the CLI: import paths ``module:function``.

A tiny module written into a temporary folder defines a tabular data set (scikit-learn's
``make_classification``) and a model factory; the loop runs on it, the CLI runs a grid of it in
two worker processes, and ``report`` reads the records without the module. Bad paths are
refused before any run, naming the field. A grid of it also runs on a Dask ``LocalCluster`` of
two worker processes (``dask_executor``), whose records ``report`` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dean_nb.cli import main
from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.experiment.grid import dask_executor, make_grid, run_grid
from dean_nb.experiment.loop import run_active_learning
from dean_nb.problem.datasets import dataset_from_path, load_dataset

ROOT = Path(__file__).resolve().parents[1]

MODULE = """
import numpy as np
import torch
from torch import nn
from sklearn.datasets import make_classification


def load():
    x, y = make_classification(
        n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return x[:240], y[:240], torch.tensor(x[240:]), torch.tensor(y[240:])


def net(num_classes, input_shape, seed):
    (d,) = input_shape
    return nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, num_classes))


def text():
    return "not a data set"


def not_a_model(num_classes, input_shape, seed):
    return "not a model"
"""

TINY = dict(epochs=2, n_steps=1, acquisition_size=5, n_mc_samples=3, validation_size=20)


@pytest.fixture(scope="module")
def mymod(tmp_path_factory):
    """The folder holding ``mymod.py``, on ``sys.path`` for this module's tests."""
    folder = tmp_path_factory.mktemp("own_code")
    (folder / "mymod.py").write_text(MODULE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield folder
    sys.modules.pop("mymod", None)
    dataset_from_path.cache_clear()


def _tiny(dataset: str = "mymod:load", **changes) -> ExperimentConfig:
    return ExperimentConfig.preset(dataset, "quick", **{**TINY, "quiet": True, **changes})


def test_an_import_path_data_set_is_converted(mymod):
    data = load_dataset("mymod:load")
    assert data.name == "mymod:load" and data.num_classes == 3
    assert data.input_shape == (8,) and data.x_train.dtype == torch.float32
    assert data.y_train.dtype == torch.int64 and data.x_test.shape == (60, 8)
    assert "input_shape=(8,)" in repr(data)


def test_the_config_stores_the_strings_without_importing(mymod):
    config = ExperimentConfig(dataset="elsewhere.pkg:load", model="elsewhere.nets:build")
    assert "elsewhere" not in sys.modules  # report reads records of data it cannot import
    assert config.to_dict()["model"] == "elsewhere.nets:build"
    assert run_key(config).startswith("elsewhere.pkg-load_dean_eps0_seed0_")
    assert "model" not in ExperimentConfig().to_dict()
    for bad in ("imagenet", "mymod.load", "mymod:", "my mod:load"):
        with pytest.raises(ValueError, match=r"dataset must be one of .*import path"):
            ExperimentConfig(dataset=bad)
    with pytest.raises(ValueError, match="model must be None or an import path"):
        ExperimentConfig(model="build_mlp")


def test_the_loop_runs_on_your_data_and_model(mymod):
    config = _tiny(model="mymod:net", strategy="bald")
    assert config.initial_per_class == 2 and config.num_threads == 1  # the quick preset's
    result = run_active_learning(config)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["config"]["dataset"] == "mymod:load"
    assert record["config"]["model"] == "mymod:net"
    assert len(record["steps"]) == 2 and len(record["steps"][0]["selected"]) == 5
    assert torch.tensor(record["true_channel"]).shape == (3, 3)
    again = ExperimentConfig.from_dict(record["config"])
    assert again == config and run_key(again) == run_key(config)
    # no model: build_mlp for flat features
    plain = run_active_learning(config.replace(model=None))
    assert "model" not in plain.to_dict()["config"] and len(plain.steps) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "nomodule:load"}, "dataset 'nomodule:load': module 'nomodule' does not"),
        ({"dataset": "mymod:missing"}, "dataset 'mymod:missing': module 'mymod' has no"),
        ({"dataset": "mymod:text"}, "dataset 'mymod:text' must return a Dataset or a tuple"),
        ({"model": "mymod:not_a_model"}, "model 'mymod:not_a_model' must return an nn.Module"),
        ({"model": "nomodule:net"}, "model 'nomodule:net': module 'nomodule' does not import"),
    ],
)
def test_a_bad_path_is_refused_before_any_run(mymod, tmp_path, capsys, changes, message):
    config = _tiny(**changes)
    with pytest.raises(ValueError, match=message):
        run_active_learning(config)
    with pytest.raises(ValueError, match=message):
        run_grid([config, config.replace(seed=1)], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing claimed, nothing written
    field = next(iter(changes))
    argv = ["run", f"--{field}", changes[field], "--out", str(tmp_path / "cli"), "--quiet"]
    if field == "model":
        argv += ["--dataset", "mymod:load"]
    capsys.readouterr()
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


def test_the_cli_runs_a_grid_of_your_data_that_report_reads_without_it(mymod, tmp_path):
    out = tmp_path / "grid"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(mymod), str(ROOT)])}
    run = [sys.executable, "-m", "dean_nb", "run", "--dataset", "mymod:load"]
    run += ["--model", "mymod:net", "--strategies", "random,bald", "--seeds", "0-1"]
    run += ["--workers", "2", "--out", str(out), "--quiet", "--override"]
    run += [f"{k}={v}" for k, v in TINY.items()]
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = sorted(out.glob("*.json"))
    assert len(records) == 4 and all(":" not in p.name for p in records)
    config = json.loads(records[0].read_text())["config"]
    assert (config["dataset"], config["model"]) == ("mymod:load", "mymod:net")

    env["PYTHONPATH"] = str(ROOT)  # report: without the module
    report = [sys.executable, "-m", "dean_nb", "report", str(out)]
    done = subprocess.run(report, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stdout + done.stderr
    assert "== mymod:load: test accuracy" in done.stdout
    assert "random" in done.stdout and "bald" in done.stdout
    assert (out / "learning_curves_mymod-load.png").is_file()


@pytest.mark.slow  # a cluster of two processes starts (about 30 s on two busy cores)
def test_a_dask_grid_of_your_data_runs_and_report_reads_it(mymod, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    # a real cluster's workers import the module from their own path, not the test's
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mymod), str(ROOT)]))
    base = _tiny(model="mymod:net")
    configs = make_grid(base, ["random", "bald"], [0.0], seeds=[0, 1])
    out = tmp_path / "dask"
    executor, closers = dask_executor("local", 2)  # a LocalCluster of 2 processes
    try:
        paths = run_grid(configs, out, executor=executor, progress=False)
    finally:
        for close in closers:
            close()
    assert sorted(p.name for p in paths) == sorted(p.name for p in out.glob("*.json"))
    assert len(paths) == 4 and not list(out.glob(".*"))  # no lock, no checkpoint left
    for path in paths:
        config = json.loads(path.read_text())["config"]
        assert (config["dataset"], config["model"]) == ("mymod:load", "mymod:net")

    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr()
    assert "skipped" not in printed.out + printed.err
    assert "== mymod:load: test accuracy" in printed.out
    assert "random" in printed.out and "bald" in printed.out
    assert (tmp_path / "report" / "learning_curves_mymod-load.png").is_file()
