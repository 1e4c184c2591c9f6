"""The experiment API in one namespace: ``from dean_nb import experiment``.

A facade: every name here is defined in the module that holds its concept, and re-exported so
chapters can write ``experiment.ExperimentConfig``, ``experiment.run_active_learning``,
``experiment.load_results``:

* :mod:`dean_nb.config`: :class:`ExperimentConfig` (every field validated when built),
  :data:`PRESETS`, :func:`method_label`, :data:`DENOISE_SUFFIX`, :func:`run_key`,
  :func:`parse_override`;
* :mod:`dean_nb.records`: :class:`StepRecord`, :class:`RunResult`, :func:`load_run`,
  :func:`provenance`;
* :mod:`dean_nb.loop`: :func:`run_active_learning` (Algorithms 1 and 2, with per-step
  checkpoints), :func:`train_step_model`, :func:`oracle_answers`, :func:`purpose_seed`;
* :mod:`dean_nb.grid`: :func:`make_grid`, :func:`run_grid`, :func:`result_path`, :func:`load_grid`,
  :func:`checkpoint_path`, :class:`GridPaths`, :func:`default_executor` (the claims that let
  processes share a results folder are in :mod:`dean_nb.claims`);
* :mod:`dean_nb.compare`: :func:`load_results` (the tidy frame, :data:`RESULT_COLUMNS`),
  :func:`summary_table`, :func:`uncertainty_table`, :func:`format_summary`, :func:`config_id`.

Package code and tests import from those modules; this one only gathers them.
"""

from __future__ import annotations

from .claims import DEFAULT_STALE_AFTER
from .compare import (
    RESULT_COLUMNS,
    SkippedRecordWarning,
    config_id,
    format_summary,
    load_results,
    summary_table,
    uncertainty_table,
)
from .config import (
    BETA_KINDS,
    DENOISE_SUFFIX,
    PRESETS,
    ExperimentConfig,
    method_label,
    parse_override,
    run_key,
)
from .grid import (
    GridPaths,
    checkpoint_path,
    default_executor,
    load_grid,
    make_grid,
    result_path,
    run_grid,
)
from .loop import (
    oracle_answers,
    purpose_seed,
    run_active_learning,
    torch_threads,
    train_step_model,
)
from .records import RunResult, StepRecord, load_run, provenance

__all__ = [
    "BETA_KINDS",
    "DEFAULT_STALE_AFTER",
    "DENOISE_SUFFIX",
    "PRESETS",
    "RESULT_COLUMNS",
    "ExperimentConfig",
    "GridPaths",
    "RunResult",
    "SkippedRecordWarning",
    "StepRecord",
    "checkpoint_path",
    "config_id",
    "default_executor",
    "format_summary",
    "load_grid",
    "load_results",
    "load_run",
    "make_grid",
    "method_label",
    "oracle_answers",
    "parse_override",
    "provenance",
    "purpose_seed",
    "result_path",
    "run_active_learning",
    "run_grid",
    "run_key",
    "summary_table",
    "torch_threads",
    "train_step_model",
    "uncertainty_table",
]
