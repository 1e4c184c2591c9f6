"""The active-learning loop: one run of Algorithm 1 (Algorithm 2 with a noisy oracle).

Chapter "Experiments" (and every results chapter). One *run* (:func:`run_active_learning`) is
Algorithm 1 of the paper (Algorithm 2 with a noisy oracle and, optionally, the denoising layer
of section 4):

1. split the training set into an initial labelled set (``initial_per_class`` images of every
   class), a fixed validation set and the pool (:func:`dean_nb.problem.split.make_split`; the
   same split for every strategy at a given seed);
2. at every step: build a fresh model, train it from scratch on the labelled set
   (:func:`~dean_nb.experiment.step_model.train_step_model`; through a :class:`dean_nb.learner.denoise.NoisyChannel` when
   ``denoise``; the base model is what gets scored, selects and is evaluated), record its
   clean test accuracy and its uncertainty ``sigma`` (mean variation ratio on the validation
   set);
3. unless it is the last step: select a batch of ``b`` pool images with the strategy, ask the
   noisy oracle for their labels, move them from the pool to the labelled set.

Only acquired labels go through the oracle (the K-ary symmetric channel of eq. 1, or the
channel ``config.noise`` names: :mod:`dean_nb.problem.noise`): the initial and validation sets
stay clean, as in the authors' runs. The oracle answers are drawn once per
training image at the start of a run (:func:`oracle_answers`), so a given image gets the same
(possibly wrong) label whichever strategy asks for it at that seed: strategies are compared on
common random numbers.

The split is drawn with ``config.seed`` itself (so ``make_split(..., seed)`` in a chapter shows
the very sets a run used); every other random draw has its own generator derived from
``config.seed`` and a purpose string (:func:`purpose_seed`): the oracle, and each step's model
initialisation, training, sigma and selection (including the pool subset). The same seed
therefore gives the same selected indices on CPU, every strategy starts from the same initial
model, and changing one purpose (say, the strategy) leaves the others' draws untouched.

A run can keep its finished steps in a checkpoint file, rewritten atomically after every step;
a killed run resumes from its last finished step and gives the record of an uninterrupted run
(see :func:`run_active_learning`). The loop trusts its
:class:`~dean_nb.experiment.config.ExperimentConfig`: every field was validated when the
configuration was built.

Inside, a run is ``_prepare`` (data, split, oracle answers) and ``_restore`` (a checkpoint's
finished steps), then at every step :func:`train_step_model`, ``_measure`` (test accuracy, then
sigma) and, unless it is the last step, ``_acquire`` (the strategy's selection) and
``_commit_batch`` (the oracle's labels, moved from the pool to the labelled set).
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dean_nb import strategies
from dean_nb.experiment.checkpoint import (
    check_labeller,
    read_checkpoint,
    resume_state,
    write_checkpoint,
)
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.labellers import check_answers, draw_oracle_answers, recorded_labeller
from dean_nb.experiment.records import RunResult, StepRecord, provenance
from dean_nb.experiment.step_model import out_of_fold_probs, step_network, train_step_model
from dean_nb.learner import training
from dean_nb.problem.datasets import Dataset, load_dataset
from dean_nb.problem.oracle import RelabellingOracle
from dean_nb.problem.split import Split, make_split
from dean_nb.runtime import make_generator, purpose_seed, resolve_device, torch_threads
from dean_nb.strategies import scoring
from dean_nb.validation import is_import_path

__all__ = [
    "check_import_paths",
    "oracle_answers",
    "run_active_learning",
]


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, root: str | None, download: bool):
    return load_dataset(name, root=root, download=download)


def check_import_paths(configs: Iterable[ExperimentConfig]) -> None:
    """Refuse, before any run, a data set or model named by an import path that does not work.

    For every configuration whose ``dataset`` is an import path or that names a ``model``: the
    data set is loaded (cached: the runs of this process reuse it), a matrix ``noise`` must be
    K x K, and the network of a step is built once and run on two training items, which must
    give logits ``(2, K)``. Configurations of a built-in data set and network cost nothing.

    Raises:
        ValueError: naming ``dataset``, ``model`` or ``noise``, the path and the cause (a
            module that does not import, no such function, a function that raises or returns
            something else, logits of the wrong shape).
    """
    built: set[tuple] = set()
    for config in configs:
        own_data = is_import_path(config.dataset)
        if not own_data and config.model is None:
            continue
        data = _cached_dataset(config.dataset, config.root, config.download)
        k = data.num_classes
        if own_data and not isinstance(config.noise, str) and len(config.noise) != k:
            n = len(config.noise)
            raise ValueError(
                f"noise is a {n} x {n} matrix, but dataset {config.dataset!r} has {k} classes"
            )
        key = (config.dataset, config.model, config.conv_dropout)
        if key not in built:
            built.add(key)
            _check_network(config, data)


def _check_network(config: ExperimentConfig, data: Dataset) -> None:
    """Build a step's network for ``data`` and check that two items give ``(2, K)`` logits."""
    field = "model" if config.model is not None else "dataset"
    path = config.model if config.model is not None else config.dataset
    try:
        model = step_network(config, data.num_classes, data.input_shape, seed=0).eval()
        with torch.no_grad():
            logits = model(data.x_train[:2])
    except ValueError as err:
        message = str(err) if str(err).startswith(field) else f"{field} {path!r}: {err}"
        raise ValueError(message) from err
    except Exception as err:
        raise ValueError(
            f"{field} {path!r}: its network fails on two training items of shape "
            f"{tuple(data.x_train[:2].shape)}: {type(err).__name__}: {err}"
        ) from err
    expected = (min(2, data.x_train.shape[0]), data.num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{field} {path!r}: the network must give logits {expected}, got {got}")


def oracle_answers(config: ExperimentConfig) -> torch.Tensor:
    """The noisy oracle's answer for every training image of a run, ``(N_train,)`` int64.

    The oracle (its channel
    :meth:`~dean_nb.experiment.config.ExperimentConfig.oracle_channel`: the K-ary symmetric
    channel of eq. 1 with ``config.epsilon`` unless ``config.noise`` names another) answers
    every training image once, up front, from its own seeded generator: common random numbers
    across strategies, and integers that no float kernel can change. Only acquired indices are
    ever read.
    """
    data = _cached_dataset(config.dataset, config.root, config.download)
    return draw_oracle_answers(config, data.y_train)


def run_active_learning(
    config: ExperimentConfig,
    *,
    progress: bool | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    labeller: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
) -> RunResult:
    """One active-learning run (Algorithm 1; Algorithm 2 when ``epsilon > 0``/``denoise``).

    Args:
        config: the run (dataset, strategy, noise, protocol sizes, seed, device).
        progress: show a progress bar over steps; ``None`` means ``not config.quiet``.
        on_step: called with each :class:`StepRecord` as soon as it is complete (live
            plots in a notebook, logging); steps replayed from ``checkpoint`` are not passed.
        checkpoint: a JSON file of the finished steps, rewritten atomically after every step
            (:func:`dean_nb.experiment.grid.run_grid` uses
            :func:`dean_nb.experiment.grid.checkpoint_path`). When it exists and was written
            for the same computation (the same
            :meth:`~dean_nb.experiment.config.ExperimentConfig.computed_fields`: every field
            but ``root``, ``device``, ``num_threads``, ``quiet``, ``download``), the run
            replays its steps and continues from the first unfinished one. The state at a step
            is a function of the finished steps' selections and oracle answers (each step's
            model, training, sigma and selection draw from their own :func:`purpose_seed`
            generators; the oracle answers are drawn up front), so on the same machine a
            resumed run equals an uninterrupted one in everything but wall times and
            provenance (``provenance["resumed_from_step"]`` says where it resumed). A
            checkpoint of another configuration, or one that disagrees with this run's split
            and oracle, is ignored with a warning and overwritten. The file is left in place:
            the caller removes it once the result is safe.
        labeller: who labels each acquired batch, ``labeller(indices, inputs) -> labels``
            (:mod:`dean_nb.experiment.labellers`): ``indices`` a ``LongTensor (b,)`` into the
            data set's training split, ``inputs`` their items ``(b, ...)``; ``b`` integer
            classes in ``[0, K)`` back (checked). The record's ``noisy_labels`` are its
            answers. ``None``: the simulated noisy oracle (:func:`oracle_answers`). With a
            ``checkpoint``, a batch's answers are written to it as soon as the labeller
            returns (``pending_answers``), and a resumed run reads them there: it never asks
            for a batch twice. A labeller other than the simulated oracle is named in the
            record's ``provenance["labeller"]`` and in the checkpoint
            (:func:`~dean_nb.experiment.labellers.recorded_labeller`); resuming a
            checkpoint with another labeller than its own raises ``ValueError`` before any
            training (a checkpoint of an older version, which names none, resumes with any).

    Returns:
        A :class:`RunResult` with ``n_steps + 1`` step records. The test accuracy of step 0 is
        the initial model's; the last step selects nothing.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    check_import_paths([config])
    if labeller is not None and _relabels(config):
        raise ValueError(
            f"strategy {config.strategy!r} asks about labelled images again, which only the "
            "simulated oracle answers (labeller=None); a labeller answers each image once"
        )
    show = (not config.quiet) if progress is None else bool(progress)
    path = None if checkpoint is None else Path(checkpoint)
    with torch_threads(config.num_threads):
        return _run(config, show, on_step, path, labeller)


def _relabels(config: ExperimentConfig) -> bool:
    """Whether the run's strategy may ask about labelled images again."""
    strategy = strategies.get(config.strategy, **config.strategy_kwargs(1))
    return bool(getattr(strategy, "relabels", False))


def _run(
    config: ExperimentConfig,
    show: bool,
    on_step: Callable[[StepRecord], None] | None,
    checkpoint: Path | None = None,
    labeller: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
) -> RunResult:
    """The body of :func:`run_active_learning` (see there): set up, resume, then every step."""
    run = _prepare(config)
    run.labeller, run.labeller_name = labeller, recorded_labeller(labeller)
    steps = _restore(run, checkpoint)
    resumed = len(steps)
    bar = _progress_bar(config.n_steps + 1, show, f"{config.method} eps={config.epsilon:g}")
    if bar is not None and resumed:
        bar.update(resumed)
    try:
        for step in range(resumed, config.n_steps + 1):
            start = time.perf_counter()
            model, channel = train_step_model(
                config,
                run.x_train[run.labelled.to(run.device)],
                run.labels.to(run.device),
                run.num_classes,
                step,
                run.device,
                **({"x_unlabelled": run.x_val} if config.denoise == "forward" else {}),
            )
            record = _measure(run, model, channel, step)
            if step < config.n_steps:
                sigma_0 = steps[0].sigma if steps else record.sigma
                selection = _acquire(run, model, (sigma_0, record.sigma), step)
                noisy = _ask(run, selection, step, steps, checkpoint)
                _commit_batch(run, record, selection, noisy)
            record.wall_time = time.perf_counter() - start
            steps.append(record)
            if checkpoint is not None:
                write_checkpoint(
                    checkpoint, config, run.split.initial, steps, labeller=run.labeller_name
                )
            if bar is not None:
                bar.set_postfix(acc=f"{record.test_accuracy:.3f}", sigma=f"{record.sigma:.3f}")
                bar.update(1)
            if on_step is not None:
                on_step(record)
    finally:
        if bar is not None:
            bar.close()

    info = provenance(run.device)
    if resumed:
        info["resumed_from_step"] = resumed
    if run.labeller_name is not None:  # absent for the simulated oracle: its records as ever
        info["labeller"] = run.labeller_name
    return RunResult(
        config=config,
        steps=steps,
        initial_indices=run.split.initial.tolist(),
        true_channel=run.true_channel.tolist(),
        provenance=info,
    )


@dataclass
class _RunState:
    """What one run's steps share: the data on the device, the split, the oracle's answers,
    and the labelled set and pool as they grow and shrink (indices into ``x_train``)."""

    config: ExperimentConfig
    device: torch.device
    data: Dataset
    split: Split
    x_train: torch.Tensor  # (N, C, H, W) on the device
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor
    true_channel: torch.Tensor  # the channel oracle_answers draws through
    answers: torch.Tensor  # (N,) on the CPU
    labelled: torch.Tensor  # (L,) indices into x_train
    labels: torch.Tensor  # (L,) labels the model trains on
    pool: torch.Tensor  # (P,) remaining pool indices
    oracle: RelabellingOracle  # answers when an image is asked again
    acquired_answers: list[list[int]]  # every answer to labelled[n_initial:], in order
    relabels: bool  # whether the strategy may ask again (_relabels)
    labeller: Callable[[torch.Tensor, torch.Tensor], Any] | None = None
    labeller_name: str | None = None  # recorded_labeller(labeller)
    pending: dict[str, Any] | None = None  # a checkpoint's answers to the next batch

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def n_initial(self) -> int:
        return self.split.initial.numel()

    @property
    def n_labels(self) -> int:
        """Labels paid for: the initial set's and every answer since."""
        return self.n_initial + sum(len(a) for a in self.acquired_answers)


def _prepare(config: ExperimentConfig) -> _RunState:
    """Load the data, draw the split (``config.seed`` itself) and the oracle's answers."""
    device = resolve_device(config.device)
    data = _cached_dataset(config.dataset, config.root, config.download)
    split = make_split(
        data.y_train,
        data.num_classes,
        config.initial_per_class,
        config.validation_size,
        seed=config.seed,
    )
    needed = config.n_steps * config.acquisition_size
    if needed > split.pool.numel():
        raise ValueError(
            f"n_steps * acquisition_size = {needed} exceeds the pool ({split.pool.numel()} "
            f"images of {config.dataset} after the initial and validation sets)"
        )
    x_train = data.x_train.to(device)
    true_channel, answers = config.oracle_channel(), oracle_answers(config)
    return _RunState(
        config=config,
        device=device,
        data=data,
        split=split,
        x_train=x_train,
        x_test=data.x_test.to(device),
        y_test=data.y_test.to(device),
        x_val=x_train[split.validation.to(device)],
        true_channel=true_channel,
        answers=answers,
        labelled=split.initial.clone(),
        labels=data.y_train[split.initial].clone(),
        pool=split.pool.clone(),
        oracle=RelabellingOracle(
            true_channel, answers, data.y_train, config.oracle_memory, config.seed
        ),
        acquired_answers=[],
        relabels=_relabels(config),
    )


def _restore(run: _RunState, checkpoint: Path | None) -> list[StepRecord]:
    """The finished steps of ``checkpoint`` (``run`` set to the state after them), or ``[]``.

    A checkpoint that disagrees with this run is ignored with a warning (attributed to the
    caller of :func:`run_active_learning`); one of another labeller is refused
    (:func:`check_labeller`: its answers are not overwritten).
    """
    saved = None if checkpoint is None else read_checkpoint(checkpoint, run.config)
    if saved is None:
        return []
    check_labeller(checkpoint, saved, run.labeller_name)
    try:
        answers = run.answers if run.labeller is None else None
        state = resume_state(
            saved,
            run.config,
            run.split.initial,
            run.split.pool,
            answers,
            run.data.y_train,
            num_classes=run.num_classes,
            oracle=run.oracle,
        )
    except ValueError as err:
        warnings.warn(
            f"ignoring checkpoint {checkpoint}: {err}; the run starts from step 0",
            RuntimeWarning,
            stacklevel=4,
        )
        return []
    run.labelled, run.labels, run.pool = state.labelled, state.labels, state.pool
    run.acquired_answers = state.acquired_answers
    run.pending = saved.pending
    return state.steps


def _ask(
    run: _RunState,
    selection: strategies.Selection,
    step: int,
    steps: list[StepRecord],
    checkpoint: Path | None,
) -> torch.Tensor | None:
    """The labeller's answers for the selected batch (``None``: no labeller, the oracle's).

    Answers a checkpoint holds for this very batch are reused; fresh ones are written to the
    checkpoint before the loop goes on."""
    if run.labeller is None:
        return None
    chosen_pos = selection.indices.detach().to("cpu", torch.int64)
    _check_selection(chosen_pos, run.pool.numel(), run.config.acquisition_size)
    chosen = run.pool[chosen_pos]
    stored = run.pending
    if stored is not None and stored["step"] == step and stored["selected"] == chosen.tolist():
        return torch.tensor(stored["labels"], dtype=torch.int64)
    given = run.labeller(chosen.clone(), run.x_train[chosen.to(run.device)])
    noisy = check_answers(run.labeller, given, chosen.numel(), run.num_classes)
    if checkpoint is not None:
        pending = {"step": step, "selected": chosen.tolist(), "labels": noisy.tolist()}
        write_checkpoint(
            checkpoint, run.config, run.split.initial, steps, pending, run.labeller_name
        )
    return noisy


def _measure(
    run: _RunState, model: torch.nn.Module, channel: torch.nn.Module | None, step: int
) -> StepRecord:
    """Step ``step``'s record: the model's clean test accuracy, its sigma and the channel."""
    config = run.config
    accuracy = training.evaluate_accuracy(
        model, run.x_test, run.y_test, batch_size=config.eval_batch_size, device=run.device
    )
    sigma = scoring.model_uncertainty(
        model,
        run.x_val,
        config.n_mc_samples,
        batch_size=config.eval_batch_size,
        generator=make_generator(purpose_seed(config.seed, f"sigma:{step}")),
    )
    n_images = int(run.labelled.numel())
    return StepRecord(
        step=step,
        n_labels=run.n_labels,
        n_images=None if n_images == run.n_labels else n_images,
        test_accuracy=float(accuracy),
        sigma=float(sigma),
        channel=(
            channel.matrix.detach().to("cpu", torch.float64).tolist()
            if channel is not None
            else None
        ),
    )


def _acquire(
    run: _RunState, model: torch.nn.Module, sigmas: tuple[float, float], step: int
) -> strategies.Selection:
    """The strategy's selection of ``acquisition_size`` pool positions at step ``step``;
    ``sigmas``: the first model's and this step's uncertainty."""
    config, device, pool = run.config, run.device, run.pool
    n_candidates = min(pool.numel(), config.pool_subset or pool.numel())
    strategy = strategies.get(config.strategy, **config.strategy_kwargs(n_candidates))
    ctx = strategies.AcquisitionContext(
        model=model,
        x_pool=run.x_train[pool.to(device)],
        budget=config.acquisition_size,
        generator=make_generator(purpose_seed(config.seed, f"select:{step}")),
        device=device,
        x_labelled=run.x_train[run.labelled.to(device)],
        x_validation=run.x_val,
        n_mc_samples=config.n_mc_samples,
        batch_size=config.eval_batch_size,
        sigma=float(sigmas[1]),
        sigma_0=float(sigmas[0]),
        **_relabel_context(run, step),
    )
    return strategies.select_from_pool(strategy, ctx, config.pool_subset)


def _relabel_context(run: _RunState, step: int) -> dict[str, torch.Tensor]:
    """What a strategy may ask about again: every acquired image (``x_relabel``), its answers
    so far (``answers_R_A``, ``-1`` padded), its training label (``labels_R``) and, with
    ``config.relabel_folds`` and a re-labelling strategy, out-of-fold predictions
    (``probs_relabel_R_K``)."""
    acquired = run.labelled[run.n_initial :]
    width = max((len(a) for a in run.acquired_answers), default=1)
    answers_R_A = torch.full((acquired.numel(), width), -1, dtype=torch.int64)
    for row, given in enumerate(run.acquired_answers):
        answers_R_A[row, : len(given)] = torch.tensor(given, dtype=torch.int64)
    context = {
        "x_relabel": run.x_train[acquired.to(run.device)],
        "answers_R_A": answers_R_A,
        "labels_R": run.labels[run.n_initial :].clone(),
    }
    folds = min(run.config.relabel_folds, acquired.numel())
    if folds >= 2 and run.relabels:
        labels = run.labels.to(run.device)
        context["probs_relabel_R_K"] = out_of_fold_probs(
            run.config,
            (run.x_train[run.split.initial.to(run.device)], labels[: run.n_initial]),
            (context["x_relabel"], labels[run.n_initial :]),
            run.num_classes,
            step,
            run.device,
            folds,
        )
    return context


def _commit_batch(
    run: _RunState,
    record: StepRecord,
    selection: strategies.Selection,
    noisy: torch.Tensor | None = None,
) -> None:
    """Record the selected images and their labels (``noisy``, the labeller's, else the
    oracle's), move them to the labelled set."""
    relabel = _relabel_positions(run, selection)
    chosen_pos = selection.indices.detach().to("cpu", torch.int64)
    _check_selection(chosen_pos, run.pool.numel(), run.config.acquisition_size - relabel.numel())
    chosen = run.pool[chosen_pos]  # (b - r,) indices into x_train
    if relabel.numel():
        _relabel(run, record, relabel)
    if noisy is None:
        noisy = run.answers[chosen]
    record.selected = chosen.tolist()
    record.noisy_labels = noisy.tolist()
    record.true_labels = run.data.y_train[chosen].tolist()
    record.beta = None if selection.beta is None else float(selection.beta)

    run.labelled = torch.cat([run.labelled, chosen])
    run.labels = torch.cat([run.labels, noisy])
    run.acquired_answers.extend([int(v)] for v in noisy)
    keep = torch.ones(run.pool.numel(), dtype=torch.bool)
    keep[chosen_pos] = False
    run.pool = run.pool[keep]


def _relabel_positions(run: _RunState, selection: strategies.Selection) -> torch.Tensor:
    """``selection.relabel`` checked: distinct positions into the acquired images."""
    if selection.relabel is None:
        return torch.empty(0, dtype=torch.int64)
    relabel = selection.relabel.detach().to("cpu", torch.int64).reshape(-1)
    n_acquired = run.labelled.numel() - run.n_initial
    if relabel.numel() > run.config.acquisition_size:
        raise RuntimeError(
            f"strategy re-labels {relabel.numel()} images; the budget is "
            f"{run.config.acquisition_size} answers"
        )
    if relabel.numel() and (int(relabel.min()) < 0 or int(relabel.max()) >= n_acquired):
        raise RuntimeError(f"strategy re-labels positions outside [0, {n_acquired - 1}]")
    if torch.unique(relabel).numel() != relabel.numel():
        raise RuntimeError("strategy re-labels one image twice in a step")
    return relabel


def _relabel(run: _RunState, record: StepRecord, relabel: torch.Tensor) -> None:
    """Ask the oracle again about the acquired images at ``relabel``; their training labels
    become the vote over all their answers."""
    images = run.labelled[run.n_initial + relabel]
    new_answers = []
    for position, image in zip(relabel.tolist(), images.tolist(), strict=True):
        given = run.acquired_answers[position]
        given.append(run.oracle.answer(image, len(given)))
        new_answers.append(given[-1])
        run.labels[run.n_initial + position] = run.oracle.vote(image, given)
    record.relabelled = images.tolist()
    record.relabel_answers = new_answers


def _check_selection(indices: torch.Tensor, pool_size: int, budget: int) -> None:
    """A strategy must return ``budget`` distinct indices into the pool."""
    if indices.ndim != 1 or indices.numel() != budget:
        raise RuntimeError(
            f"strategy returned {tuple(indices.shape)} indices; expected ({budget},)"
        )
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= pool_size):
        raise RuntimeError(f"strategy returned indices outside [0, {pool_size - 1}]")
    if torch.unique(indices).numel() != indices.numel():
        raise RuntimeError("strategy returned duplicate indices")


def _progress_bar(total: int, show: bool, desc: str):
    if not show:
        return None
    return tqdm(total=total, desc=desc, leave=False)
