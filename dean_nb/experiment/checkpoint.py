"""A run's checkpoint: its finished steps, written atomically after every step, and resumed.

Chapter "Experiments". The file is ``.<run_key>.partial.json`` beside the run's record
(:func:`partial_path`); :func:`resume_state` rebuilds the run's state from it, so a killed run
resumes from its last finished step and gives the record of an uninterrupted run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.experiment.records import StepRecord, atomic_write_json

#: ``format`` of a checkpoint file (:func:`run_active_learning`'s ``checkpoint``).
CHECKPOINT_FORMAT = "dean_nb.checkpoint/1"


def write_checkpoint(
    path: Path, config: ExperimentConfig, initial: torch.Tensor, steps: list[StepRecord]
) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "run_key": run_key(config),
        "config": config.to_dict(),
        "initial_indices": initial.tolist(),
        "steps": [s.to_dict() for s in steps],
    }
    atomic_write_json(path, payload)


def read_checkpoint(
    path: Path, config: ExperimentConfig
) -> tuple[list[int], list[StepRecord]] | None:
    """``(initial indices, finished steps)`` of a checkpoint written for ``config``, or ``None``."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring unreadable checkpoint {path}: {err}", RuntimeWarning, stacklevel=4)
        return None
    try:
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {payload.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
        saved = ExperimentConfig.from_dict(payload["config"])
        if saved.computed_fields() != config.computed_fields():
            raise ValueError(f"written for another configuration ({run_key(saved)})")
        steps = [StepRecord.from_dict(s) for s in payload["steps"]]
        steps_initial = list(payload["initial_indices"])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        warnings.warn(f"ignoring checkpoint {path}: {err}", RuntimeWarning, stacklevel=4)
        return None
    return steps_initial, steps


def resume_state(
    saved: tuple[list[int], list[StepRecord]],
    config: ExperimentConfig,
    initial: torch.Tensor,
    pool: torch.Tensor,
    answers: torch.Tensor,
    y_train: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[StepRecord]]:
    """``(labelled, labels, pool, steps)`` after a checkpoint's finished steps.

    Exactly what the loop holds after those steps: the initial set, then each step's batch in
    order (its labels the oracle's answers, checked against the recorded ones), and the pool
    with the batches removed, in its original order. Raises ``ValueError`` when the
    checkpoint disagrees with this run's split or oracle.
    """
    saved_initial, steps = saved
    if saved_initial != initial.tolist():
        raise ValueError("its initial labelled set is not this run's")
    if len(steps) > config.n_steps + 1:
        raise ValueError(f"it holds {len(steps)} steps; the run has {config.n_steps + 1}")
    labelled = initial.clone()
    labels = y_train[initial].clone()
    pool = pool.clone()
    for i, record in enumerate(steps):
        if record.step != i or record.n_labels != labelled.numel():
            raise ValueError(f"its step {i} is not step {i} of this run")
        budget = config.acquisition_size if i < config.n_steps else 0
        chosen = torch.tensor(record.selected, dtype=torch.int64)
        if chosen.numel() != budget:
            raise ValueError(f"its step {i} selected {chosen.numel()} images, not {budget}")
        if not budget:
            continue
        in_pool = torch.isin(pool, chosen)
        if int(in_pool.sum()) != budget or torch.unique(chosen).numel() != budget:
            raise ValueError(f"its step {i} selected images outside the pool")
        if (
            record.noisy_labels != answers[chosen].tolist()
            or record.true_labels != y_train[chosen].tolist()
        ):
            raise ValueError(f"its step {i} labels are not this run's oracle answers")
        labelled = torch.cat([labelled, chosen])
        labels = torch.cat([labels, answers[chosen]])
        pool = pool[~in_pool]
    return labelled, labels, pool, steps


def partial_path(record: Path) -> Path:
    """The checkpoint of a run's record: ``.<run_key>.partial.json`` beside it (hidden, so
    :func:`dean_nb.analysis.results.load_results` skips it)."""
    return record.with_name(f".{record.stem}.partial.json")
