"""What asking again buys: the training labels of a run, step by step (chapter "The paper's
premises").

A run that re-labels (``relabel-majority``, ``activelab``) spends part of each step's answers on
images it already holds; each image trains on the majority of its answers
(:func:`~dean_nb.problem.oracle.seeded_vote`). Its record keeps every answer, so the labels each
step's model trained on, and how many of them were wrong, follow from the record alone: no
oracle, data set or model is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dean_nb.experiment.records import RunResult
from dean_nb.problem.oracle import seeded_vote

__all__ = ["LABEL_QUALITY_COLUMNS", "label_quality", "label_quality_table"]

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
    num_classes = len(run.true_channel) if run.true_channel else None
    if num_classes is None:
        raise ValueError("run has no true_channel; its labels cannot be voted on")
    seed = run.config.seed
    answers: dict[int, list[int]] = {}
    truth: dict[int, int] = {}
    relabels = 0
    rows = []
    for record in run.steps:
        wrong = sum(
            seeded_vote(a, image=i, seed=seed, num_classes=num_classes) != truth[i]
            for i, a in answers.items()
        )
        n_answers = sum(len(a) for a in answers.values())
        rows.append(
            {
                "step": int(record.step),
                "n_acquired": n_answers,
                "images": len(answers),
                "relabels": relabels,
                "wrong": int(wrong),
                "wrong_share": wrong / len(answers) if answers else float("nan"),
                "test_accuracy": float(record.test_accuracy),
            }
        )
        relabelled, given = record.relabelled or [], record.relabel_answers or []
        if len(relabelled) != len(given):
            raise ValueError(f"step {record.step} has not one answer per re-labelled image")
        for image, answer in zip(relabelled, given, strict=True):
            if image not in answers:
                raise ValueError(f"step {record.step} re-labels image {image}, never acquired")
            answers[image].append(int(answer))
        relabels += len(relabelled)
        for image, answer, label in zip(
            record.selected, record.noisy_labels, record.true_labels, strict=True
        ):
            answers[int(image)] = [int(answer)]
            truth[int(image)] = int(label)
    return rows


def label_quality_table(runs: Iterable[RunResult]):
    """:func:`label_quality` of every run as one DataFrame (:data:`LABEL_QUALITY_COLUMNS`), the
    run's ``method`` (``relabel-majority``, ``dean+denoise``), ``epsilon``, ``oracle_memory``
    and ``seed`` in front of its steps."""
    import pandas as pd

    rows = []
    for run in runs:
        if not isinstance(run, RunResult):
            raise TypeError(f"runs must hold RunResult records, got {type(run).__name__}")
        cfg = run.config
        head = {
            "method": cfg.method,
            "epsilon": cfg.epsilon,
            "oracle_memory": cfg.oracle_memory,
            "seed": cfg.seed,
        }
        rows += [head | row for row in label_quality(run)]
    return pd.DataFrame(rows, columns=list(LABEL_QUALITY_COLUMNS))
