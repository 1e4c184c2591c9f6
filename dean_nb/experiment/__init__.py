"""The book's lab: what one run is, how it runs, how runs are stored and shared.

- :mod:`~dean_nb.experiment.config`: :class:`ExperimentConfig` (every field validated when
  built), run keys; :mod:`~dean_nb.experiment.presets`: the named protocols.
- :mod:`~dean_nb.experiment.loop`: Algorithms 1 and 2 (:func:`run_active_learning`), with
  :mod:`~dean_nb.experiment.checkpoint` (resume a killed run) and
  :mod:`~dean_nb.experiment.step_model` (the model of a step: :func:`train_step_model`).
- :mod:`~dean_nb.experiment.labellers`: who labels the acquired batches (the simulated
  oracle, a script, a person in a notebook).
- :mod:`~dean_nb.experiment.records`: run records and their provenance.
- :mod:`~dean_nb.experiment.grid`: resumable grids; :mod:`~dean_nb.experiment.locks`: the run
  locks that let processes share a results folder.
- :mod:`~dean_nb.experiment.replay`: re-make a stored run and compare.
- :mod:`~dean_nb.experiment.denoise_study`: chapter 4's training on noisy labels.

The names below are re-exported lazily (``experiment.run_active_learning`` imports the loop
when first used), so importing a record or a configuration does not import the algorithms.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "DENOISE_CHOICES": "config",
    "DENOISE_SUFFIX": "config",
    "FORWARD_SUFFIX": "config",
    "LOCATION_FIELDS": "config",
    "ExperimentConfig": "config",
    "method_label": "config",
    "parse_override": "config",
    "run_key": "config",
    "PRESETS": "presets",
    "preset_of": "presets",
    "RunResult": "records",
    "StepRecord": "records",
    "load_run": "records",
    "provenance": "records",
    "oracle_answers": "loop",
    "run_active_learning": "loop",
    "train_step_model": "step_model",
    "Labeller": "labellers",
    "LabelsNeeded": "labellers",
    "ScriptedLabeller": "labellers",
    "SimulatedOracle": "labellers",
    "WidgetLabeller": "labellers",
    "GridPaths": "grid",
    "checkpoint_path": "grid",
    "default_executor": "grid",
    "load_grid": "grid",
    "make_grid": "grid",
    "result_path": "grid",
    "run_grid": "grid",
    "DEFAULT_STALE_AFTER": "locks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
