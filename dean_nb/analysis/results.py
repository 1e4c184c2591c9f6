"""Results: the tidy frame of a results folder and its tables.

Chapters 5 and 6 and ``python -m dean_nb report``. :func:`load_results` reads every run record
of a folder (:mod:`dean_nb.experiment.records`) into one tidy :class:`pandas.DataFrame`, one row per run x
step (:data:`RESULT_COLUMNS`); :func:`config_id` tells repeats of one configuration (which may
be averaged) from other configurations (which are labelled apart, never mixed).
:func:`runs_frame` gives the same frame of runs in memory, named by the caller (chapter 9).
:func:`summary_table` gives the paper's Table-2 view (mean +/- std test accuracy over seeds at
each number of labels), :func:`format_summary` its text cells, and :func:`uncertainty_table` the
Table-1 view (mean sigma per step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dean_nb.experiment.config import LOCATION_FIELDS, ExperimentConfig, run_key
from dean_nb.experiment.records import RunResult, load_run
from dean_nb.problem.noise import noise_label
from dean_nb.validation import check_columns

__all__ = [
    "RESULT_COLUMNS",
    "SkippedRecordWarning",
    "config_id",
    "format_summary",
    "label_against",
    "load_results",
    "runs_frame",
    "summary_table",
    "uncertainty_table",
]


#: Columns of :func:`load_results`, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "strategy",
    "denoise",
    "method",
    "epsilon",
    "seed",
    "step",
    "n_labels",
    "n_acquired",
    "test_accuracy",
    "sigma",
    "beta",
    "wall_time",
    "run",
    "config_id",
)


# Fields in which the runs averaged in one row of a table may differ: the seed (the repeats)
# and where and how verbosely a run happened.
_REPEAT_FIELDS = ("seed", *LOCATION_FIELDS)


class SkippedRecordWarning(UserWarning):
    """:func:`load_results` skipped a JSON file that is not a readable run record."""


def config_id(config: ExperimentConfig) -> str:
    """A short hash of everything a run computes except its seed (10 hex digits).

    Runs with the same ``config_id`` are repeats of one configuration and may be averaged;
    it ignores the seed and the fields :func:`run_key` ignores (``root``, ``device``,
    ``num_threads``, ``quiet``, ``download``).
    """
    payload = config.computed_fields()
    del payload["seed"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _show(name: str, field_value: Any) -> str:
    """A config value as a label shows it: ``5``, ``0.0005``, ``none``, ``{"linkage":"average"}``,
    a noise matrix by its hash (``matrix-1a2b3c4d``)."""
    if name == "noise":
        return noise_label(field_value)
    if field_value is None:
        return "none"
    if isinstance(field_value, dict):
        return json.dumps(field_value, sort_keys=True, separators=(",", ":"))
    return repr(field_value) if isinstance(field_value, float) else str(field_value)


# Fields that are columns of the frame of their own, never part of a method's label.
_COLUMN_FIELDS = ("dataset", "strategy", "denoise", "epsilon")


def label_against(config: ExperimentConfig, reference: ExperimentConfig) -> str:
    """The method label of ``config``'s runs in :func:`load_results` with ``reference``.

    The method name (``dean``, ``bald+denoise``) when ``config`` differs from ``reference``
    only in the grid's axes (strategy, denoise, epsilon, seed) and where it runs, else the name
    with the fields that differ and their values: ``dean [beta_scale=1.0]``,
    ``dean [strategy_options={"beta":10}]``, ``dean [noise=pairflip]``.
    """
    values, ref = dataclasses.asdict(config), dataclasses.asdict(reference)
    differing = [
        f.name
        for f in dataclasses.fields(ExperimentConfig)
        if f.name not in _REPEAT_FIELDS + _COLUMN_FIELDS
        and json.dumps(values[f.name], sort_keys=True) != json.dumps(ref[f.name], sort_keys=True)
    ]
    shown = ", ".join(f"{name}={_show(name, values[name])}" for name in differing)
    return f"{config.method} [{shown}]" if differing else config.method


def _method_labels(
    configs: dict[str, ExperimentConfig], reference: ExperimentConfig | None = None
) -> dict[str, str]:
    """``config_id -> method label``: the method name, or, where one (dataset, method, epsilon)
    has several configurations, the name with the fields that differ, ``dean [epochs=5]``.
    With a ``reference``, every label is relative to it instead (:func:`label_against`)."""
    if reference is not None:
        return {cid: label_against(cfg, reference) for cid, cfg in configs.items()}
    groups: dict[tuple[str, str, float], list[str]] = {}
    for cid, cfg in configs.items():
        groups.setdefault((cfg.dataset, cfg.method, cfg.epsilon), []).append(cid)
    labels: dict[str, str] = {}
    for (_, method, _), ids in groups.items():
        if len(ids) == 1:
            labels[ids[0]] = method
            continue
        values = {cid: dataclasses.asdict(configs[cid]) for cid in ids}  # every field
        differing = [
            f.name
            for f in dataclasses.fields(ExperimentConfig)
            if f.name not in _REPEAT_FIELDS
            and len({json.dumps(v[f.name], sort_keys=True) for v in values.values()}) > 1
        ]
        for cid in ids:
            shown = ", ".join(f"{name}={_show(name, values[cid][name])}" for name in differing)
            labels[cid] = f"{method} [{shown}]"
    return labels


def _step_columns(result: RunResult, source: object) -> list[dict[str, Any]]:
    """The per-step columns of one run, ``step`` to ``wall_time``; ``ValueError`` naming
    ``source`` (a record's path, a run's name) if a step is malformed."""
    n0 = result.steps[0].n_labels if result.steps else 0
    try:
        return [
            {
                "step": int(s.step),
                "n_labels": int(s.n_labels),
                "n_acquired": int(s.n_labels) - int(n0),
                "test_accuracy": float(s.test_accuracy),
                "sigma": float(s.sigma),
                "beta": math.nan if s.beta is None else float(s.beta),
                "wall_time": float(s.wall_time),
            }
            for s in result.steps
        ]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source} has a malformed step ({err})") from None


def _run_rows(
    result: RunResult, steps: list[dict[str, Any]], *, method: str, run: str, cid: str
) -> list[dict[str, Any]]:
    """The rows of one run in the frame (:data:`RESULT_COLUMNS`): its configuration's columns,
    the given ``method`` label, ``run`` name and ``config_id``, and its ``steps``
    (:func:`_step_columns`)."""
    cfg = result.config
    head = {
        "dataset": cfg.dataset,
        "strategy": cfg.strategy,
        "denoise": bool(cfg.denoise),  # the layer or forward correction: ``method`` says which
        "method": method,
        "epsilon": cfg.epsilon,
        "seed": cfg.seed,
    }
    return [head | step | {"run": run, "config_id": cid} for step in steps]


def _frame(rows: list[dict[str, Any]]):
    """The rows as the tidy frame: :data:`RESULT_COLUMNS` in order, with their dtypes."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    return df.astype(
        {
            "denoise": bool,
            "epsilon": float,
            "seed": int,
            "step": int,
            "n_labels": int,
            "n_acquired": int,
            "test_accuracy": float,
            "sigma": float,
            "beta": float,
            "wall_time": float,
        }
    )


def load_results(out_dir: str | os.PathLike[str], *, reference: ExperimentConfig | None = None):
    """Every run JSON in ``out_dir`` as a tidy ``pandas.DataFrame``: one row per run x step.

    Columns: :data:`RESULT_COLUMNS`. ``method`` is ``strategy`` or ``strategy+denoise``;
    ``n_acquired`` counts labels beyond the initial set; ``beta`` is NaN where undefined;
    ``run`` is the file stem; ``config_id`` (:func:`config_id`) is equal for runs that differ
    only in their seed (and where they ran). Runs in memory, named by the caller, give the
    same frame with :func:`runs_frame`.

    Runs of different configurations are never mixed: where one (dataset, method, epsilon)
    has runs of several configurations (say ``dean`` with 50 and with 5 epochs), their
    ``method`` is labelled with the fields that differ (``dean [epochs=5]``,
    ``dean [epochs=50]``), so every table and figure shows them apart; so are two oracle
    channels at one noise level (``dean [noise=pairflip]``, ``dean [noise=symmetric]``, a
    matrix by its hash, ``dean [noise=matrix-1a2b3c4d]``).

    With a ``reference`` configuration (say the preset a chapter is about), labels are relative
    to it instead: a run that differs from ``reference`` only in the grid's axes (strategy,
    denoise, epsilon, seed) and where it ran keeps its plain method name, and any other run is
    labelled with the fields in which it differs from ``reference`` (``dean [beta_scale=1.0]``,
    ``dean [noise=pairflip]``), whatever else the folder holds.

    Temporary files of an interrupted write are ignored; a file that is not a readable run
    record (truncated, not JSON, JSON without ``config``, a malformed step) is skipped with a
    :class:`SkippedRecordWarning` naming it.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"results folder {folder} {what}")
    loaded: list[tuple[RunResult, list[dict[str, Any]], str, str]] = []
    configs: dict[str, ExperimentConfig] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            result = load_run(path)
            cid = config_id(result.config)
            steps = _step_columns(result, path)
        except (OSError, ValueError) as err:
            warnings.warn(f"{err}; skipped it", SkippedRecordWarning, stacklevel=2)
            continue
        loaded.append((result, steps, path.stem, cid))
        configs.setdefault(cid, result.config)
    labels = _method_labels(configs, reference)  # every run's configuration is needed
    rows = [
        row
        for result, steps, stem, cid in loaded
        for row in _run_rows(result, steps, method=labels[cid], run=stem, cid=cid)
    ]
    return _frame(rows)


def _named_runs(named_runs: Any) -> dict[str, list[RunResult]]:
    """:func:`runs_frame`'s argument as ``name -> runs``; ``TypeError``/``ValueError`` naming
    ``named_runs`` (and the entry) for anything else."""
    expected = "a mapping {name: RunResult or iterable of RunResult}"
    if not isinstance(named_runs, Mapping):
        raise TypeError(f"named_runs must be {expected}, got {type(named_runs).__name__}")
    if not named_runs:
        raise ValueError(f"named_runs is empty; it must be {expected} with at least one run")
    named: dict[str, list[RunResult]] = {}
    for name, value in named_runs.items():
        if not isinstance(name, str):
            raise TypeError(f"named_runs' keys must be method names (str), got {name!r}")
        if not name:
            raise ValueError("named_runs has an empty name; its keys are the method names")
        where = f"named_runs[{name!r}]"
        if isinstance(value, RunResult):
            named[name] = [value]
            continue
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise TypeError(
                f"{where} must be a RunResult or an iterable of them, got {value!r:.80}"
            )
        runs = list(value)
        if not runs:
            raise ValueError(f"{where} holds no runs")
        for i, run in enumerate(runs):
            if not isinstance(run, RunResult):
                raise TypeError(
                    f"{where}[{i}] must be a RunResult (what run_active_learning returns), "
                    f"got {type(run).__name__}"
                )
        named[name] = runs
    return named


def runs_frame(named_runs: Mapping[str, RunResult | Iterable[RunResult]]):
    """Runs in memory, named by the caller, as :func:`load_results`'s tidy frame.

    Args:
        named_runs: ``{name: runs}``, each value one :class:`~dean_nb.experiment.records.RunResult`
            (what :func:`~dean_nb.experiment.loop.run_active_learning` returns, or
            :func:`~dean_nb.experiment.records.load_run` reads) or an iterable of them (say one
            per seed). The name is the runs' ``method`` in the frame, in tables and in figures.

    Returns:
        A ``pandas.DataFrame``, one row per run x step, with :func:`load_results`'s columns
        (:data:`RESULT_COLUMNS`), order and dtypes: ``dataset``, ``strategy``, ``denoise``,
        ``method`` (the given name), ``epsilon``, ``seed`` (from each run's configuration),
        ``step``, ``n_labels``, ``n_acquired`` (labels beyond the initial set),
        ``test_accuracy``, ``sigma``, ``beta`` (NaN where undefined), ``wall_time``, ``run``
        (:func:`~dean_nb.experiment.config.run_key`: the stem of the run's record file) and
        ``config_id`` (:func:`config_id`). Rows follow ``named_runs``' order, then each name's
        runs, then the steps. Records read from a folder give :func:`load_results`'s frame,
        up to row order and the method labels. :func:`summary_table` averages a name's runs
        over seeds, and refuses a name that holds runs of several configurations.

    Raises:
        TypeError: ``named_runs`` is not a mapping, a name is not a string, or a value is
            neither a ``RunResult`` nor an iterable of them.
        ValueError: ``named_runs`` is empty, a name is empty or holds no runs, or a run has a
            malformed step.
    """
    named = _named_runs(named_runs)
    rows: list[dict[str, Any]] = []
    for name, runs in named.items():
        for i, result in enumerate(runs):
            steps = _step_columns(result, f"named_runs[{name!r}][{i}]")
            run, cid = run_key(result.config), config_id(result.config)
            rows += _run_rows(result, steps, method=name, run=run, cid=cid)
    return _frame(rows)


def summary_table(df, value: str = "test_accuracy"):
    """Mean, std and count of ``value`` over seeds per (dataset, strategy, denoise, epsilon, n_labels).

    The paper's Table 2 layout in long form. ``std`` is the sample standard deviation
    (``ddof=1``; NaN for a single seed). Returns a DataFrame with columns ``dataset, strategy,
    denoise, method, epsilon, n_labels, mean, std, n``.

    Raises:
        ValueError: ``df`` has a ``config_id`` column and one (dataset, method, epsilon) row
            would average runs of several configurations (e.g. frames of two folders
            concatenated); :func:`load_results` labels such runs apart within one folder.
    """
    keys = ["dataset", "strategy", "denoise", "method", "epsilon", "n_labels"]
    check_columns(df, [*keys, value])
    if "config_id" in df.columns:
        per_row = df.groupby(["dataset", "method", "epsilon"], sort=True)["config_id"].nunique()
        mixed = per_row[per_row > 1]
        if not mixed.empty:
            where = "; ".join(f"{d} {m} at epsilon {e:g}" for d, m, e in mixed.index)
            raise ValueError(
                f"df mixes runs of several configurations under one method name ({where}); "
                "average only repeats of one configuration: load one folder with "
                "load_results (it labels the configurations apart) or filter on config_id"
            )
    grouped = df.groupby(keys, sort=True)[value]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return out


def uncertainty_table(df):
    """Mean sigma over seeds per (dataset, method, epsilon, step): the paper's Table 1 view.

    Rows: (dataset, epsilon, method); columns: the step number; values: mean sigma.
    """
    check_columns(df, ("dataset", "epsilon", "method", "step", "sigma"))
    return df.pivot_table(
        index=["dataset", "epsilon", "method"], columns="step", values="sigma", aggfunc="mean"
    )


def format_summary(summary, *, percent: bool = True, digits: int = 2):
    """Table-2 text cells: ``"mean ± std"`` per (dataset, epsilon, method) row and n_labels column.

    Args:
        summary: the frame of :func:`summary_table`.
        percent: show accuracies in percent.
        digits: decimals.

    Returns:
        A DataFrame of strings indexed by (dataset, epsilon, method), columns = n_labels.
    """
    scale = 100.0 if percent else 1.0

    def cell(row) -> str:
        mean = row["mean"] * scale
        if row["n"] < 2 or math.isnan(row["std"]):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {row['std'] * scale:.{digits}f}"

    table = summary.assign(cell=summary.apply(cell, axis=1))
    wide = table.pivot(index=["dataset", "epsilon", "method"], columns="n_labels", values="cell")
    wide.columns.name = "n_labels"
    return wide.fillna("")
