"""Labellers: who answers the loop's questions (issue 21; chapter "Experiments").

:func:`~dean_nb.experiment.loop.run_active_learning` asks a *labeller* for the labels of every
acquired batch: a callable ``labeller(indices, inputs)`` given the batch's indices into the data
set's training split (a ``LongTensor (b,)``) and their inputs (``(b, ...)``, on the run's
device), returning their ``b`` labels (any integer sequence, array or tensor; checked by
:func:`check_answers`). Without a labeller the loop reads the simulated noisy oracle's answers,
drawn up front (:func:`~dean_nb.experiment.loop.oracle_answers`); :class:`SimulatedOracle` is
that very oracle as a labeller, so ``labeller=SimulatedOracle.for_config(config)`` gives the
record of no labeller.

- :class:`ScriptedLabeller`: answers from a list, in order (tests, notebooks run unattended).
- :class:`WidgetLabeller`: a person in a notebook, one button per class (ipywidgets); with
  ``answers_path`` every click is on disk at once (:func:`read_widget_answers`), so a notebook
  closed halfway through a batch loses no answer.

With a checkpoint, each batch's answers are written to it as soon as the labeller returns; a
resumed run reads them there and does not ask again. A run with a labeller other than the
simulated oracle names it in its record's provenance and in its checkpoint
(:func:`recorded_labeller`), so a person's run is never taken for a simulated one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.records import atomic_write_json
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.oracle import NoisyOracle
from dean_nb.runtime import purpose_seed
from dean_nb.validation import check_int_range

__all__ = [
    "Labeller",
    "LabelsNeeded",
    "ScriptedLabeller",
    "SimulatedOracle",
    "WidgetLabeller",
    "check_answers",
    "draw_oracle_answers",
    "labeller_name",
    "read_widget_answers",
    "recorded_labeller",
]

#: ``format`` of a :class:`WidgetLabeller`'s answers file (``answers_path``).
ANSWERS_FORMAT = "dean_nb.widget_answers/1"


@runtime_checkable
class Labeller(Protocol):
    """Anything called as ``labeller(indices, inputs) -> labels``."""

    def __call__(self, indices: torch.Tensor, inputs: torch.Tensor) -> Any: ...


def labeller_name(labeller: Any) -> str:
    """How an error names a labeller: its ``__name__`` or its class name."""
    return getattr(labeller, "__name__", None) or type(labeller).__name__


def recorded_labeller(labeller: Any) -> str | None:
    """Who answers a run, as its record's provenance (``"labeller"``) and its checkpoint name
    it: ``None`` for no labeller and for :class:`SimulatedOracle` (the record of no labeller),
    else :func:`labeller_name`."""
    if labeller is None or isinstance(labeller, SimulatedOracle):
        return None
    return labeller_name(labeller)


def check_answers(labeller: Any, answers: Any, size: int, num_classes: int) -> torch.Tensor:
    """A labeller's answers as an int64 ``(size,)`` CPU tensor of classes in ``[0, K)``.

    Raises:
        ValueError: naming the labeller and the offending value (not a sequence of integers,
            the wrong length, a label outside ``[0, K)``).
    """
    name = labeller_name(labeller)
    try:
        values = torch.as_tensor(answers).detach().to("cpu").reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"labeller {name} returned {answers!r}, not integer labels") from err
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise ValueError(f"labeller {name} returned {values.dtype} labels; expected integers")
    if values.numel() != size:
        raise ValueError(f"labeller {name} returned {values.numel()} labels for {size} items")
    bad = [v for v in values.tolist() if not 0 <= v < num_classes]
    if bad:
        raise ValueError(f"labeller {name} returned label {bad[0]}, outside [0, {num_classes})")
    return values.to(torch.int64)


def draw_oracle_answers(config: ExperimentConfig, y_train: torch.Tensor) -> torch.Tensor:
    """The simulated noisy oracle's answer for every training item, ``(N_train,)`` int64:
    ``config``'s channel, from the generator of purpose ``"oracle"``."""
    oracle = NoisyOracle(config.oracle_channel(), seed=purpose_seed(config.seed, "oracle"))
    return oracle.label(y_train)


class SimulatedOracle:
    """The simulated noisy oracle as a labeller: ``answers[indices]``, inputs unused.

    Args:
        answers: the oracle's answer for every training item ``(N_train,)``.
    """

    def __init__(self, answers: torch.Tensor) -> None:
        self.answers = torch.as_tensor(answers, dtype=torch.int64).reshape(-1).cpu()

    @classmethod
    def for_config(cls, config: ExperimentConfig) -> SimulatedOracle:
        """The oracle of a run of ``config``: the answers the loop draws without a labeller."""
        data = load_dataset(config.dataset, root=config.root, download=config.download)
        return cls(draw_oracle_answers(config, data.y_train))

    def __call__(self, indices: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return self.answers[torch.as_tensor(indices, dtype=torch.int64).cpu()]


class ScriptedLabeller:
    """Answers from a list, in order, batch after batch; refuses once the list runs out.

    Args:
        answers: the labels to give, the first batch's first.
    """

    def __init__(self, answers: Sequence[int]) -> None:
        self.answers = [int(a) for a in answers]
        self.used = 0

    def __call__(self, indices: torch.Tensor, inputs: torch.Tensor) -> list[int]:
        size = len(indices)
        if self.used + size > len(self.answers):
            raise RuntimeError(
                f"ScriptedLabeller has {len(self.answers)} answers, {self.used} already given: "
                f"not enough for a batch of {size}"
            )
        out = self.answers[self.used : self.used + size]
        self.used += size
        return out


class LabelsNeeded(RuntimeError):
    """The batch is shown; click an answer for each item, then run the cell again."""


class WidgetLabeller:
    """A person in a notebook: each picked item shown, one button per class (ipywidgets).

    With ``script`` the labeller answers from that list, like :class:`ScriptedLabeller`, and
    shows nothing: a notebook run unattended (nbval, CI) passes the answers a person gave.
    Without it, a call shows the batch's unanswered items (an image through matplotlib, a
    feature vector as text) with one button per class and raises :class:`LabelsNeeded`; once
    every item has an answer, the same call (run the cell again, with the run's checkpoint, so
    that the finished steps are not recomputed) returns them. Answers are kept by training
    index in ``clicked``; a click calls :meth:`answer`.

    With ``answers_path`` every answer is also written to that JSON file at once (atomically:
    the file is always complete), and a new labeller reads it back: a notebook closed halfway
    through a batch loses no click, and an answered item is never shown again. The file is
    ``{"format", "class_names", "answers": {"<training index>": class}}``; keep one per data
    set, since the keys are indices into its training split.

    Args:
        class_names: the K class names, button ``k`` answers class ``k``.
        script: answers to give instead of asking (no front end).
        answers_path: a JSON file (``str`` or ``os.PathLike``) that keeps every answer;
            created (with its folder) when missing.

    Raises:
        TypeError: ``answers_path`` is not a path.
        ValueError: fewer than 2 classes; both ``script`` and ``answers_path``; an
            ``answers_path`` that is a folder or whose file is not an answers file of these
            classes (:func:`read_widget_answers`).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        script: Sequence[int] | None = None,
        answers_path: str | os.PathLike[str] | None = None,
    ):
        self.class_names = [str(c) for c in class_names]
        if len(self.class_names) < 2:
            raise ValueError(f"class_names needs at least 2 classes, got {self.class_names}")
        if script is not None and answers_path is not None:
            raise ValueError(
                "give script (answers without a front end) or answers_path (a person's "
                "answers kept on disk), not both"
            )
        self.script = None if script is None else ScriptedLabeller(script)
        self.answers_path = None if answers_path is None else _check_answers_path(answers_path)
        self.clicked: dict[int, int] = {}
        if self.answers_path is not None:
            self.clicked = read_widget_answers(self.answers_path, self.class_names)
            if not self.answers_path.exists():
                self._save({})  # a folder that cannot be written fails now, not at a click

    def __call__(self, indices: torch.Tensor, inputs: torch.Tensor) -> list[int]:
        if self.script is not None:
            return self.script(indices, inputs)
        keys = [int(i) for i in indices]
        missing = [n for n, key in enumerate(keys) if key not in self.clicked]
        if not missing:
            return [self.clicked[key] for key in keys]
        self._show([(keys[n], inputs[n]) for n in missing])
        raise LabelsNeeded(
            f"{len(missing)} of {len(keys)} items need an answer: click one class for each "
            "shown item, then run the cell again"
        )

    def answer(self, index: int, label: int) -> None:
        """Keep ``label`` as the answer for training item ``index`` (what a click does; a
        later answer replaces an earlier one); with ``answers_path``, on disk before it returns.

        Raises:
            TypeError, ValueError: ``index`` is not an integer >= 0 or ``label`` not a class in
                ``[0, K - 1]`` (:func:`~dean_nb.validation.check_int_range`).
        """
        key = check_int_range("index", index, 0)
        value = check_int_range("label", label, 0, len(self.class_names) - 1)
        clicked = {**self.clicked, key: value}
        if self.answers_path is not None:
            self._save(clicked)  # a click that cannot be kept on disk is not kept at all
        self.clicked = clicked

    def _save(self, clicked: dict[int, int]) -> None:
        assert self.answers_path is not None
        answers = {str(key): clicked[key] for key in sorted(clicked)}
        payload = {"format": ANSWERS_FORMAT, "class_names": self.class_names, "answers": answers}
        atomic_write_json(self.answers_path, payload)

    def _show(self, items: list[tuple[int, torch.Tensor]]) -> None:
        import ipywidgets as widgets  # lazily: only a person in a notebook needs it
        from IPython.display import display

        rows = []
        for key, item in items:
            view = widgets.Output()
            with view:
                _draw(item)
            buttons = [widgets.Button(description=name) for name in self.class_names]
            for label, button in enumerate(buttons):
                button.on_click(self._on_click(key, label, buttons))
            rows.append(widgets.HBox([view, widgets.VBox(buttons)]))
        display(widgets.VBox(rows))

    def _on_click(self, key: int, label: int, buttons: list[Any]):
        def on_click(_button: Any) -> None:
            self.answer(key, label)
            for n, button in enumerate(buttons):
                button.button_style = "success" if n == label else ""

        return on_click


def _check_answers_path(answers_path: Any) -> Path:
    """``answers_path`` as a :class:`Path`; refused by name when it cannot be one."""
    if not isinstance(answers_path, (str, os.PathLike)):
        raise TypeError(
            f"answers_path must be a path (str or os.PathLike), got {type(answers_path).__name__}"
        )
    path = Path(answers_path)
    if str(answers_path) == "" or path.is_dir():
        raise ValueError(f"answers_path must name a JSON file, got {str(answers_path)!r}")
    return path


def read_widget_answers(path: str | os.PathLike[str], class_names: Sequence[str]) -> dict[int, int]:
    """The answers a :class:`WidgetLabeller` kept in ``path``: ``{training index: class}``
    (``{}`` when the file does not exist).

    Raises:
        ValueError: naming ``answers_path``, the file and the cause: not JSON, not an answers
            file, kept for other class names, a key that is not a training index, an answer
            outside ``[0, K)``. Repair the file or give another ``answers_path``.
    """
    path = Path(path)
    names = [str(c) for c in class_names]
    where = f"answers_path {path}"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{where} cannot be read as JSON ({err}); repair it or give another"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != ANSWERS_FORMAT:
        raise ValueError(f"{where} is not a WidgetLabeller answers file ({ANSWERS_FORMAT})")
    if payload.get("class_names") != names:
        raise ValueError(
            f"{where} keeps answers for the classes {payload.get('class_names')}, not {names}"
        )
    answers = payload.get("answers")
    if not isinstance(answers, dict):
        raise ValueError(f"{where}: 'answers' must be an object {{training index: class}}")
    out: dict[int, int] = {}
    for key, label in answers.items():
        if not (isinstance(key, str) and key.isdecimal() and key.isascii()):
            raise ValueError(f"{where}: {key!r} is not a training index")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(names):
            raise ValueError(
                f"{where}: item {key} has answer {label!r}, not a class in [0, {len(names)})"
            )
        out[int(key)] = label
    return out


def _draw(item: torch.Tensor) -> None:
    """Show one item: an image ``(C, H, W)`` or ``(H, W)`` with matplotlib, else its values."""
    x = item.detach().to("cpu", torch.float32)
    if x.ndim in (2, 3) and (x.ndim == 2 or x.shape[0] in (1, 3)):
        import matplotlib.pyplot as plt

        image = x if x.ndim == 2 else x.permute(1, 2, 0).squeeze(-1)
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else image * 0
        _fig, ax = plt.subplots(figsize=(1.5, 1.5))
        ax.imshow(image.numpy(), cmap="gray" if image.ndim == 2 else None)
        ax.axis("off")
        plt.show()
    else:
        print(", ".join(f"{v:.3g}" for v in x.reshape(-1).tolist()))
