"""What asking again buys: the training labels of a run, step by step (chapter "The paper's
premises").

A run that re-labels (``relabel-majority``, ``activelab``) spends part of each step's answers on
images it already holds; each image trains on the majority of its answers
(:func:`~dean_nb.problem.oracle.seeded_vote`). Its record keeps every answer, so the labels each
step's model trained on, and how many of them were wrong, follow from the record alone: no
oracle, data set or model is needed.

- :func:`label_quality`, :func:`label_quality_table`: the training labels step by step;
- :func:`relabel_outcome`, :func:`relabel_outcome_table`: the images a run asked again, how
  many of them it found with a wrong first answer and how many its vote mended.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dean_nb.experiment.records import RunResult
from dean_nb.problem.oracle import seeded_vote

__all__ = [
    "LABEL_QUALITY_COLUMNS",
    "RELABEL_OUTCOME_COLUMNS",
    "label_quality",
    "label_quality_table",
    "relabel_outcome",
    "relabel_outcome_table",
]

#: Columns of :func:`label_quality_table`, in order.
LABEL_QUALITY_COLUMNS: tuple[str, ...] = (
    "method",
    "epsilon",
    "oracle_memory",
    "seed",
    "step",
    "n_acquired",
    "images",
    "relabels",
    "wrong",
    "wrong_share",
    "test_accuracy",
)

#: Columns of :func:`relabel_outcome_table`, in order.
RELABEL_OUTCOME_COLUMNS: tuple[str, ...] = (
    "method",
    "epsilon",
    "oracle_memory",
    "seed",
    "asked_again",
    "first_wrong",
    "vote_wrong",
    "most_answers",
)


def _answers_before_each_step(run: RunResult):
    """Replay a run's answers: yields ``(record, answers, truth)`` before each step's answers are
    added (``answers`` maps an acquired image to its answers so far, ``truth`` to its class),
    then ``(None, answers, truth)`` after the last step. Raises ``ValueError`` naming the step
    of an inconsistent record."""
    answers: dict[int, list[int]] = {}
    truth: dict[int, int] = {}
    for record in run.steps:
        yield record, answers, truth
        relabelled, given = record.relabelled or [], record.relabel_answers or []
        if len(relabelled) != len(given):
            raise ValueError(f"step {record.step} has not one answer per re-labelled image")
        for image, answer in zip(relabelled, given, strict=True):
            if image not in answers:
                raise ValueError(f"step {record.step} re-labels image {image}, never acquired")
            answers[image].append(int(answer))
        for image, answer, label in zip(
            record.selected, record.noisy_labels, record.true_labels, strict=True
        ):
            answers[int(image)] = [int(answer)]
            truth[int(image)] = int(label)
    yield None, answers, truth


def _num_classes(run: RunResult) -> int:
    """The run's number of classes, from its channel (a vote needs it); refused without one."""
    if not run.true_channel:
        raise ValueError("run has no true_channel; its labels cannot be voted on")
    return len(run.true_channel)


def _run_head(run: RunResult) -> dict[str, Any]:
    if not isinstance(run, RunResult):
        raise TypeError(f"runs must hold RunResult records, got {type(run).__name__}")
    cfg = run.config
    return {
        "method": cfg.method,
        "epsilon": cfg.epsilon,
        "oracle_memory": cfg.oracle_memory,
        "seed": cfg.seed,
    }


def label_quality(run: RunResult) -> list[dict[str, Any]]:
    """The acquired labels each step's model trained on, one dict per step.

    A step's model trains on the answers of every earlier step (its own batch is chosen after
    training). Per step: ``n_acquired`` answers paid for beyond the initial set, ``images`` the
    distinct acquired images (the initial set, clean, is left out), ``relabels`` how many of the
    answers were re-labels, ``wrong`` the images whose training label (the vote of their
    answers) is not their true class, and ``wrong_share`` = ``wrong / images`` (NaN with no
    image yet), and the step's ``test_accuracy``.

    ``ValueError`` names the step where the record is inconsistent: a re-label of an image not
    yet acquired, or not one answer per re-labelled image.
    """
    num_classes, seed = _num_classes(run), run.config.seed
    rows = []
    for record, answers, truth in _answers_before_each_step(run):
        if record is None:
            break
        n_answers = sum(len(a) for a in answers.values())
        wrong = sum(
            seeded_vote(a, image=i, seed=seed, num_classes=num_classes) != truth[i]
            for i, a in answers.items()
        )
        rows.append(
            {
                "step": int(record.step),
                "n_acquired": n_answers,
                "images": len(answers),
                "relabels": n_answers - len(answers),
                "wrong": int(wrong),
                "wrong_share": wrong / len(answers) if answers else float("nan"),
                "test_accuracy": float(record.test_accuracy),
            }
        )
    return rows


def label_quality_table(runs: Iterable[RunResult]):
    """:func:`label_quality` of every run as one DataFrame (:data:`LABEL_QUALITY_COLUMNS`), the
    run's ``method`` (``relabel-majority``, ``dean+denoise``), ``epsilon``, ``oracle_memory``
    and ``seed`` in front of its steps."""
    import pandas as pd

    rows = []
    for run in runs:
        head = _run_head(run)  # refuses what is no record first
        rows += [head | row for row in label_quality(run)]
    return pd.DataFrame(rows, columns=list(LABEL_QUALITY_COLUMNS))


def relabel_outcome(run: RunResult) -> dict[str, int]:
    """What asking again did to the images a run asked again, after its last step.

    Returns ``asked_again`` (images with more than one answer), ``first_wrong`` (of those, the
    images whose first answer was wrong: how well the strategy found wrong labels),
    ``vote_wrong`` (the images whose vote of all their answers is still wrong: what asking
    mended) and ``most_answers`` (the most answers any image got; 0 with no image). The same
    errors as :func:`label_quality` for an inconsistent record.
    """
    num_classes, seed = _num_classes(run), run.config.seed
    *_, (_, answers, truth) = _answers_before_each_step(run)
    asked = [image for image, given in answers.items() if len(given) > 1]
    return {
        "asked_again": len(asked),
        "first_wrong": sum(answers[i][0] != truth[i] for i in asked),
        "vote_wrong": sum(
            seeded_vote(answers[i], image=i, seed=seed, num_classes=num_classes) != truth[i]
            for i in asked
        ),
        "most_answers": max((len(given) for given in answers.values()), default=0),
    }


def relabel_outcome_table(runs: Iterable[RunResult]):
    """:func:`relabel_outcome` of every run, one row each (:data:`RELABEL_OUTCOME_COLUMNS`)."""
    import pandas as pd

    rows = []
    for run in runs:
        head = _run_head(run)
        rows.append(head | relabel_outcome(run))
    return pd.DataFrame(rows, columns=list(RELABEL_OUTCOME_COLUMNS))
