"""Shared pytest settings and helpers for the package tests.

Helpers are fixtures (pytest's way to share them: ``book/conftest.py`` is also a module named
``conftest``, so this file is not imported by name): ask for ``random_probs``,
``chisquare_p``, ``brute_force_k_center``, ``quick``, ``tiny``, ``write_record``,
``fake_results``, ``steps_without_times``, ``digits_model`` or ``x_digits`` as a test argument.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.grid import result_path
from dean_nb.experiment.records import RunResult, StepRecord
from dean_nb.learner.models import build_model
from dean_nb.runtime import make_generator

#: Significance level of every goodness-of-fit check: a correct sampler fails one in 1000.
P_THRESHOLD = 1e-3

# For the bookkeeping tests, where accuracy does not matter: one acquisition, one epoch.
TINY = dict(n_steps=1, acquisition_size=10, epochs=1, n_mc_samples=2, quiet=True)


@pytest.fixture(scope="module")
def digits_model() -> torch.nn.Module:
    """The untrained digits CNN (seed 0), shared by a test module."""
    return build_model("digits", 10, 1, 8, seed=0)


@pytest.fixture(scope="module")
def x_digits() -> torch.Tensor:
    """40 random digit-shaped inputs ``(40, 1, 8, 8)``."""
    return torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster and robust to a busy, shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_probs(
    shape: tuple[int, ...],
    seed: int = 0,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Rows on the simplex over the last axis: ``softmax(randn(shape) / temperature)``."""
    gen = make_generator(seed)
    logits = torch.randn(*shape, generator=gen, dtype=torch.float64) / temperature
    return torch.softmax(logits, dim=-1).to(dtype)


def _chisquare_p(counts, probs) -> float:
    """Chi-square goodness-of-fit p value of ``counts`` against ``probs`` (uniform when
    ``None``); bins with expected count < 5 are merged."""
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.full(counts.size, 1.0 / counts.size) if probs is None else np.asarray(probs)
    expected = probs * counts.sum()
    small = expected < 5
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    assert counts.size >= 2
    return float(chisquare(counts, expected).pvalue)


def _brute_force_k_center(points: torch.Tensor, budget: int, centres: torch.Tensor) -> list[int]:
    """k-center greedy by recomputing every distance to every centre at each step."""
    chosen: list[int] = []
    for _ in range(budget):
        all_centres = torch.cat([centres, points[chosen]])
        d = torch.cdist(points, all_centres, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = d.min(dim=1).values
        nearest[chosen] = -1.0
        chosen.append(int(torch.argmax(nearest)))
    return chosen


@pytest.fixture
def random_probs():
    """``random_probs(shape, seed=0, temperature=1.0, dtype=float64)``: softmax rows."""
    return _random_probs


@pytest.fixture
def chisquare_p():
    """``chisquare_p(counts, probs=None)``: goodness-of-fit p value, small bins merged."""
    return _chisquare_p


@pytest.fixture
def brute_force_k_center():
    """``brute_force_k_center(points, budget, centres)``: the reference k-center picks."""
    return _brute_force_k_center


def _quick(**overrides) -> ExperimentConfig:
    return ExperimentConfig.preset("digits", "quick", **overrides)


def _tiny(**overrides) -> ExperimentConfig:
    return _quick(**{**TINY, **overrides})


@pytest.fixture(scope="session")
def quick():
    """``quick(**overrides)``: the ``quick`` preset on ``digits`` with ``overrides``."""
    return _quick


@pytest.fixture(scope="session")
def tiny():
    """``tiny(**overrides)``: the ``quick`` preset shrunk to seconds (:data:`TINY`), then
    ``overrides``."""
    return _tiny


def _write_record(folder: Path, accuracy: float, **overrides) -> Path:
    """A finished two-step record with test accuracy ``accuracy`` at both steps, written
    where :func:`dean_nb.experiment.grid.run_grid` would, without training."""
    config = _quick(**overrides)
    steps = [
        StepRecord(step=t, n_labels=20 + 20 * t, test_accuracy=accuracy, sigma=0.3, wall_time=0.1)
        for t in range(2)
    ]
    return RunResult(config=config, steps=steps).to_json(result_path(config, folder))


@pytest.fixture(scope="session")
def write_record():
    """``write_record(folder, accuracy, **overrides) -> Path`` (no training)."""
    return _write_record


def _fake_results(folder: Path) -> None:
    """Synthetic runs with known accuracies: acc = 0.5 + 0.1 * step + 0.01 * seed (+0.05 dean)."""
    for strategy in ("dean", "random"):
        for eps in (0.0, 0.3):
            for seed in (0, 1, 2):
                config = _quick(strategy=strategy, epsilon=eps, seed=seed)
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


@pytest.fixture(scope="session")
def fake_results():
    """``fake_results(folder)``: 2 strategies x 2 epsilons x 3 seeds of known accuracies."""
    return _fake_results


def _steps_without_times(record: dict | bytes | str) -> list[dict]:
    """A run record's (or checkpoint's) steps without their wall times: what must be equal
    when a run is re-made. ``record`` is the JSON dict or the file's text."""
    if not isinstance(record, dict):
        record = json.loads(record)
    return [{k: v for k, v in s.items() if k != "wall_time"} for s in record["steps"]]


@pytest.fixture(scope="session")
def steps_without_times():
    """``steps_without_times(record)``: see :func:`_steps_without_times`."""
    return _steps_without_times
