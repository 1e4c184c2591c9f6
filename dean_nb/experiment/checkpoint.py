"""A run's checkpoint: its finished steps, written atomically after every step, and resumed.

Chapter "Experiments". The file is ``.<run_key>.partial.json`` beside the run's record
(:func:`partial_path`); :func:`resume_state` rebuilds the run's state from it, so a killed run
resumes from its last finished step and gives the record of an uninterrupted run.

A run with a labeller (:mod:`dean_nb.experiment.labellers`) also writes each batch's answers as
soon as the labeller returns, before the step's record is complete: the optional field
``pending_answers`` (``{"step", "selected", "labels"}``), absent from the checkpoints of the
simulated oracle and of older versions (which still load). Every checkpoint names who answered
in ``labeller`` (:func:`dean_nb.experiment.labellers.recorded_labeller`: ``null`` for the
simulated oracle); :func:`check_labeller` refuses to resume it with another labeller, so a run
never mixes a person's answers with the oracle's or with another person's. A checkpoint of an
older version has no ``labeller`` and resumes with any.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch

from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.experiment.records import StepRecord, atomic_write_json
from dean_nb.problem.oracle import RelabellingOracle

#: ``format`` of a checkpoint file (:func:`run_active_learning`'s ``checkpoint``).
CHECKPOINT_FORMAT = "dean_nb.checkpoint/1"


class SavedRun(NamedTuple):
    """What a checkpoint holds: the initial set, the finished steps, the answers of the
    next step's batch when a labeller gave them before the step finished (else ``None``),
    and who answered (``labeller``, ``None`` for the simulated oracle; ``labeller_recorded``
    is ``False`` for a checkpoint of an older version, which does not say)."""

    initial: list[int]
    steps: list[StepRecord]
    pending: dict[str, Any] | None = None
    labeller: str | None = None
    labeller_recorded: bool = False


def write_checkpoint(
    path: Path,
    config: ExperimentConfig,
    initial: torch.Tensor,
    steps: list[StepRecord],
    pending: dict[str, Any] | None = None,
    labeller: str | None = None,
) -> None:
    """Write a checkpoint atomically; ``pending`` (``{"step", "selected", "labels"}``): the
    answers of the batch of step ``len(steps)``, stored when the labeller gave them;
    ``labeller``: the name of who answers (``None``: the simulated oracle)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "run_key": run_key(config),
        "config": config.to_dict(),
        "initial_indices": initial.tolist(),
        "steps": [s.to_dict() for s in steps],
        "labeller": labeller,
    }
    if pending is not None:
        payload["pending_answers"] = pending
    atomic_write_json(path, payload)


def _check_pending(pending: Any, n_steps: int) -> dict[str, Any] | None:
    """A checkpoint's ``pending_answers``: ``None``, or a batch of the step after the last."""
    if pending is None:
        return None
    step, selected, labels = pending["step"], pending["selected"], pending["labels"]
    if step != n_steps or not isinstance(selected, list) or not isinstance(labels, list):
        raise ValueError(f"its pending answers are not those of step {n_steps}")
    if len(selected) != len(labels) or not all(isinstance(v, int) for v in selected + labels):
        raise ValueError("its pending answers are not one integer label per selected index")
    return {"step": step, "selected": selected, "labels": labels}


def read_checkpoint(path: Path, config: ExperimentConfig) -> SavedRun | None:
    """The :class:`SavedRun` of a checkpoint written for ``config``, or ``None``."""
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
        pending = _check_pending(payload.get("pending_answers"), len(steps))
        labeller = payload.get("labeller")
        if labeller is not None and not isinstance(labeller, str):
            raise ValueError(f"its labeller {labeller!r} is not a name")
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        warnings.warn(f"ignoring checkpoint {path}: {err}", RuntimeWarning, stacklevel=4)
        return None
    return SavedRun(steps_initial, steps, pending, labeller, "labeller" in payload)


def check_labeller(path: Path, saved: SavedRun, labeller: str | None) -> None:
    """Refuse to resume ``saved`` (read from ``path``) with another labeller than its own.

    Args:
        path: the checkpoint file (named in the error).
        saved: what it holds (:func:`read_checkpoint`).
        labeller: this run's labeller as recorded
            (:func:`dean_nb.experiment.labellers.recorded_labeller`; ``None``: the simulated
            oracle).

    Raises:
        ValueError: naming ``labeller``, the checkpoint, who answered there and who answers
            now. A checkpoint of an older version (no ``labeller`` stored) passes.
    """
    if not saved.labeller_recorded or saved.labeller == labeller:
        return
    raise ValueError(
        f"labeller: checkpoint {path} holds the answers of {_who(saved.labeller)}, but this "
        f"run asks {_who(labeller)}; resume it with the same labeller, or give another "
        "checkpoint path (a run never mixes two labellers' answers)"
    )


def _who(labeller: str | None) -> str:
    return "the simulated oracle" if labeller is None else f"labeller {labeller!r}"


class ResumedState(NamedTuple):
    """The loop's state after a checkpoint's finished steps (see :func:`resume_state`)."""

    labelled: torch.Tensor  # (L,) indices into the training set: the initial set, then batches
    labels: torch.Tensor  # (L,) the labels the model trains on
    pool: torch.Tensor  # (P,) the remaining pool, in its original order
    steps: list[StepRecord]
    acquired_answers: list[list[int]]  # every answer to labelled[len(initial):], in order


def resume_state(
    saved: tuple[list[int], list[StepRecord]] | SavedRun,
    config: ExperimentConfig,
    initial: torch.Tensor,
    pool: torch.Tensor,
    answers: torch.Tensor | None,
    y_train: torch.Tensor,
    num_classes: int | None = None,
    oracle: RelabellingOracle | None = None,
) -> ResumedState:
    """The loop's state after a checkpoint's finished steps.

    Exactly what the loop holds after those steps: the initial set, then each step's batch in
    order (its labels the oracle's ``answers``, checked against the recorded ones; with
    ``answers=None``, a labeller's run, the recorded ``noisy_labels``, which must be classes
    in ``[0, num_classes)``), and the pool with the batches removed, in its original order. A
    step's re-labels (``relabelled``) are checked against ``oracle`` (required then) and an
    image's label is the ``oracle``'s vote over its answers.
    Raises ``ValueError`` when the checkpoint disagrees with this run's split or oracle.
    """
    saved_initial, steps = saved[0], saved[1]
    if saved_initial != initial.tolist():
        raise ValueError("its initial labelled set is not this run's")
    if len(steps) > config.n_steps + 1:
        raise ValueError(f"it holds {len(steps)} steps; the run has {config.n_steps + 1}")
    labelled, labels, pool = initial.clone(), y_train[initial].clone(), pool.clone()
    acquired: list[list[int]] = []
    for i, record in enumerate(steps):
        n_answers = sum(len(a) for a in acquired)
        if record.step != i or record.n_labels != initial.numel() + n_answers:
            raise ValueError(f"its step {i} is not step {i} of this run")
        n_relabelled = len(record.relabelled or [])
        budget = config.acquisition_size - n_relabelled if i < config.n_steps else 0
        chosen = torch.tensor(record.selected, dtype=torch.int64)
        if chosen.numel() != budget or budget < 0:
            raise ValueError(f"its step {i} selected {chosen.numel()} images, not {budget}")
        if n_relabelled:
            labels = _replay_relabels(record, labelled, labels, acquired, initial.numel(), oracle)
        if not budget:
            continue
        in_pool = torch.isin(pool, chosen)
        if int(in_pool.sum()) != budget or torch.unique(chosen).numel() != budget:
            raise ValueError(f"its step {i} selected images outside the pool")
        noisy = _recorded_answers(record, answers, chosen, num_classes)
        if record.true_labels != y_train[chosen].tolist():
            raise ValueError(f"its step {i} true labels are not this run's")
        labelled = torch.cat([labelled, chosen])
        labels = torch.cat([labels, noisy])
        acquired.extend([int(v)] for v in noisy)
        pool = pool[~in_pool]
    return ResumedState(labelled, labels, pool, steps, acquired)


def _replay_relabels(
    record: StepRecord,
    labelled: torch.Tensor,
    labels: torch.Tensor,
    acquired: list[list[int]],
    n_initial: int,
    oracle: RelabellingOracle | None,
) -> torch.Tensor:
    """A finished step's re-labels, checked against the oracle: ``acquired`` grows in place,
    the new labels (votes) come back."""
    if oracle is None:
        raise ValueError(f"its step {record.step} re-labels images, and no oracle replays them")
    position = {int(image): p for p, image in enumerate(labelled[n_initial:].tolist())}
    try:
        oracle.replay(
            {image: acquired[p] for image, p in position.items()},
            record.relabelled,
            record.relabel_answers or [],
        )
    except ValueError as error:
        raise ValueError(f"at its step {record.step}, {error}") from None
    labels = labels.clone()
    for image in set(record.relabelled):
        labels[n_initial + position[image]] = oracle.vote(image, acquired[position[image]])
    return labels


def _recorded_answers(
    record: StepRecord, answers: torch.Tensor | None, chosen: torch.Tensor, k: int | None
) -> torch.Tensor:
    """A finished step's noisy labels: the oracle's (checked), or a labeller's as recorded."""
    noisy = record.noisy_labels or []
    if answers is not None:
        if noisy != answers[chosen].tolist():
            raise ValueError(f"its step {record.step} labels are not this run's oracle answers")
        return answers[chosen]
    if len(noisy) != chosen.numel() or not all(
        isinstance(v, int) and (k is None or 0 <= v < k) for v in noisy
    ):
        raise ValueError(f"its step {record.step} labels are not one class per selected image")
    return torch.tensor(noisy, dtype=torch.int64)


def partial_path(record: Path) -> Path:
    """The checkpoint of a run's record: ``.<run_key>.partial.json`` beside it (hidden, so
    :func:`dean_nb.analysis.results.load_results` skips it)."""
    return record.with_name(f".{record.stem}.partial.json")
