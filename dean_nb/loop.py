"""The active-learning loop: one run of Algorithm 1 (Algorithm 2 with a noisy oracle).

Chapter "Experiments" (and every results chapter). One *run* (:func:`run_active_learning`) is
Algorithm 1 of the paper (Algorithm 2 with a noisy oracle and, optionally, the denoising layer
of section 4):

1. split the training set into an initial labelled set (``initial_per_class`` images of every
   class), a fixed validation set and the pool (:func:`dean_nb.data.make_split`; the same split
   for every strategy at a given seed);
2. at every step: build a fresh model, train it from scratch on the labelled set
   (:func:`train_step_model`; through a :class:`dean_nb.denoise.NoisyChannel` when
   ``denoise``; the base model is what gets scored, selects and is evaluated), record its
   clean test accuracy and its uncertainty ``sigma`` (mean variation ratio on the validation
   set);
3. unless it is the last step: select a batch of ``b`` pool images with the strategy, ask the
   noisy oracle for their labels, move them from the pool to the labelled set.

Only acquired labels go through the oracle (the K-ary symmetric channel of eq. 1, or the
channel ``config.noise`` names: :mod:`dean_nb.noise`): the initial and validation sets stay
clean, as in the authors' runs. The oracle answers are drawn once per
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
(see :func:`run_active_learning`). The loop trusts its :class:`~dean_nb.config.ExperimentConfig`:
every field was validated when the configuration was built.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import scoring, strategies, training
from .config import ExperimentConfig, run_key
from .data import load_dataset, make_split
from .denoise import NoisyChannel
from .models import arch_for_dataset, build_model
from .oracle import NoisyOracle
from .records import RunResult, StepRecord, atomic_write_json, provenance
from .runtime import make_generator, resolve_device

__all__ = [
    "oracle_answers",
    "purpose_seed",
    "run_active_learning",
    "torch_threads",
    "train_step_model",
]


def purpose_seed(seed: int, purpose: str) -> int:
    """A 62-bit seed for one purpose of a run (``"oracle"``, ``"model:0"``, ``"train:3"``...).

    A hash of ``(seed, purpose)``: purposes never share a stream, and adding a purpose does
    not shift the others (unlike drawing child seeds in sequence from one generator).
    """
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, root: str | None, download: bool):
    return load_dataset(name, root=root, download=download)


def oracle_answers(config: ExperimentConfig) -> torch.Tensor:
    """The noisy oracle's answer for every training image of a run, ``(N_train,)`` int64.

    The oracle (its channel :meth:`~dean_nb.config.ExperimentConfig.oracle_channel`: the
    K-ary symmetric channel of eq. 1 with ``config.epsilon`` unless ``config.noise`` names
    another) answers every training image once, up front, from its own seeded generator: common random numbers across
    strategies, and integers that no float kernel can change. Only acquired indices are ever
    read.
    """
    data = _cached_dataset(config.dataset, config.root, config.download)
    oracle = NoisyOracle(config.oracle_channel(), seed=purpose_seed(config.seed, "oracle"))
    return oracle.label(data.y_train)


def run_active_learning(
    config: ExperimentConfig,
    *,
    progress: bool | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> RunResult:
    """One active-learning run (Algorithm 1; Algorithm 2 when ``epsilon > 0``/``denoise``).

    Args:
        config: the run (dataset, strategy, noise, protocol sizes, seed, device).
        progress: show a progress bar over steps; ``None`` means ``not config.quiet``.
        on_step: called with each :class:`StepRecord` as soon as it is complete (live
            plots in a notebook, logging); steps replayed from ``checkpoint`` are not passed.
        checkpoint: a JSON file of the finished steps, rewritten atomically after every step
            (:func:`dean_nb.grid.run_grid` uses :func:`dean_nb.grid.checkpoint_path`). When
            it exists and was written for the same computation (the same
            :meth:`~dean_nb.config.ExperimentConfig.computed_fields`: every field but
            ``root``, ``device``, ``num_threads``, ``quiet``, ``download``), the run replays
            its steps and continues from the first unfinished one. The state at a step is a
            function of the finished steps'
            selections and oracle answers (each step's model, training, sigma and selection
            draw from their own :func:`purpose_seed` generators; the oracle answers are drawn
            up front), so on the same machine a resumed run equals an uninterrupted one in
            everything but wall times and provenance (``provenance["resumed_from_step"]``
            says where it resumed). A checkpoint of another configuration, or one that
            disagrees with this run's split and oracle, is ignored with a warning and
            overwritten. The file is left in place: the caller removes it once the result
            is safe.

    Returns:
        A :class:`RunResult` with ``n_steps + 1`` step records. The test accuracy of step 0 is
        the initial model's; the last step selects nothing.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    show = (not config.quiet) if progress is None else bool(progress)
    path = None if checkpoint is None else Path(checkpoint)
    with torch_threads(config.num_threads):
        return _run(config, show, on_step, path)


@contextlib.contextmanager
def torch_threads(n_threads: int | None):
    """Run a block with ``torch.set_num_threads(n_threads)``, restoring the old count after.

    ``None`` changes nothing.
    """
    if n_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_step_model(
    config: ExperimentConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    step: int,
    device: torch.device,
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Train step ``step``'s model from scratch, as the active-learning loop does.

    The network, its initial weights and the minibatch order come from ``config.seed`` and
    ``step`` (see :func:`purpose_seed`), so the model of a step depends only on the labelled
    set, not on the strategy that chose it.

    Args:
        config: the run's configuration (architecture, epochs, lr, weight decay, batch size,
            ``denoise``).
        x: labelled images ``(L, C, H, W)`` on ``device``.
        y: their (possibly noisy) labels ``(L,)`` on ``device``.
        num_classes: K.
        step: 0 for the model on the initial labels, then 1, 2, ...
        device: where to train.

    Returns:
        ``(model, channel)``: the base model in eval mode, and the trained
        :class:`dean_nb.denoise.NoisyChannel` when ``config.denoise`` (else ``None``).
    """
    train_kwargs: dict[str, Any] = {
        "epochs": config.epochs,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
    }
    if config.batch_size is not None:
        train_kwargs["batch_size"] = config.batch_size
    c, h, w = x.shape[1:]
    seed = config.seed
    model = build_model(
        arch_for_dataset(config.dataset),
        num_classes,
        c,
        (h, w),
        seed=purpose_seed(seed, f"model:{step}"),
        conv_dropout=config.conv_dropout,
    ).to(device)
    channel = None
    if config.denoise:
        channel = NoisyChannel(num_classes).to(device)
    training.train_model(
        model,
        x,
        y,
        training.TrainConfig(**train_kwargs),
        channel=channel,
        device=device,
        generator=make_generator(purpose_seed(seed, f"train:{step}")),
        progress=False,
    )
    return model.eval(), channel


def _run(
    config: ExperimentConfig,
    show: bool,
    on_step: Callable[[StepRecord], None] | None,
    checkpoint: Path | None = None,
) -> RunResult:
    """The body of :func:`run_active_learning` (see there)."""
    device = resolve_device(config.device)
    seed = config.seed

    data = _cached_dataset(config.dataset, config.root, config.download)
    num_classes = data.num_classes
    split = make_split(
        data.y_train, num_classes, config.initial_per_class, config.validation_size, seed=seed
    )
    needed = config.n_steps * config.acquisition_size
    if needed > split.pool.numel():
        raise ValueError(
            f"n_steps * acquisition_size = {needed} exceeds the pool ({split.pool.numel()} "
            f"images of {config.dataset} after the initial and validation sets)"
        )

    x_train = data.x_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    x_val = x_train[split.validation.to(device)]

    true_channel = config.oracle_channel()  # the channel oracle_answers draws through
    answers = oracle_answers(config)  # (N,) on the CPU

    labelled = split.initial.clone()  # (L,) indices into x_train
    labels = data.y_train[labelled].clone()  # (L,) labels the model trains on
    pool = split.pool.clone()  # (P,) remaining pool indices

    steps: list[StepRecord] = []
    saved = None if checkpoint is None else _load_checkpoint(checkpoint, config)
    if saved is not None:
        try:
            labelled, labels, pool, steps = _replay(
                saved, config, split.initial, split.pool, answers, data.y_train
            )
        except ValueError as err:
            warnings.warn(
                f"ignoring checkpoint {checkpoint}: {err}; the run starts from step 0",
                RuntimeWarning,
                stacklevel=3,
            )
    resumed = len(steps)
    bar = _progress_bar(config.n_steps + 1, show, f"{config.method} eps={config.epsilon:g}")
    if bar is not None and resumed:
        bar.update(resumed)
    try:
        for step in range(resumed, config.n_steps + 1):
            start = time.perf_counter()
            model, channel = train_step_model(
                config, x_train[labelled.to(device)], labels.to(device), num_classes, step, device
            )
            accuracy = training.evaluate_accuracy(
                model, x_test, y_test, batch_size=config.eval_batch_size, device=device
            )
            sigma = scoring.model_uncertainty(
                model,
                x_val,
                config.n_mc_samples,
                batch_size=config.eval_batch_size,
                generator=make_generator(purpose_seed(seed, f"sigma:{step}")),
            )
            record = StepRecord(
                step=step,
                n_labels=int(labelled.numel()),
                test_accuracy=float(accuracy),
                sigma=float(sigma),
                channel=(
                    channel.matrix.detach().to("cpu", torch.float64).tolist()
                    if channel is not None
                    else None
                ),
            )
            if step < config.n_steps:
                n_candidates = min(pool.numel(), config.pool_subset or pool.numel())
                strategy = strategies.get(config.strategy, **config.strategy_kwargs(n_candidates))
                ctx = strategies.AcquisitionContext(
                    model=model,
                    x_pool=x_train[pool.to(device)],
                    budget=config.acquisition_size,
                    generator=make_generator(purpose_seed(seed, f"select:{step}")),
                    device=device,
                    x_labelled=x_train[labelled.to(device)],
                    x_validation=x_val,
                    n_mc_samples=config.n_mc_samples,
                    batch_size=config.eval_batch_size,
                    sigma=float(sigma),
                )
                selection = strategies.select_from_pool(strategy, ctx, config.pool_subset)
                chosen_pos = selection.indices.detach().to("cpu", torch.int64)
                _check_selection(chosen_pos, pool.numel(), config.acquisition_size)
                chosen = pool[chosen_pos]  # (b,) indices into x_train
                noisy = answers[chosen]
                record.selected = chosen.tolist()
                record.noisy_labels = noisy.tolist()
                record.true_labels = data.y_train[chosen].tolist()
                record.beta = None if selection.beta is None else float(selection.beta)

                labelled = torch.cat([labelled, chosen])
                labels = torch.cat([labels, noisy])
                keep = torch.ones(pool.numel(), dtype=torch.bool)
                keep[chosen_pos] = False
                pool = pool[keep]
            record.wall_time = time.perf_counter() - start
            steps.append(record)
            if checkpoint is not None:
                _write_checkpoint(checkpoint, config, split.initial, steps)
            if bar is not None:
                bar.set_postfix(acc=f"{record.test_accuracy:.3f}", sigma=f"{record.sigma:.3f}")
                bar.update(1)
            if on_step is not None:
                on_step(record)
    finally:
        if bar is not None:
            bar.close()

    info = provenance(device)
    if resumed:
        info["resumed_from_step"] = resumed
    return RunResult(
        config=config,
        steps=steps,
        initial_indices=split.initial.tolist(),
        true_channel=true_channel.tolist(),
        provenance=info,
    )


#: ``format`` of a checkpoint file (:func:`run_active_learning`'s ``checkpoint``).
_CHECKPOINT_FORMAT = "dean_nb.checkpoint/1"


def _write_checkpoint(
    path: Path, config: ExperimentConfig, initial: torch.Tensor, steps: list[StepRecord]
) -> None:
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "run_key": run_key(config),
        "config": config.to_dict(),
        "initial_indices": initial.tolist(),
        "steps": [s.to_dict() for s in steps],
    }
    atomic_write_json(path, payload)


def _load_checkpoint(
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
        if payload.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"format {payload.get('format')!r}, expected {_CHECKPOINT_FORMAT!r}")
        saved = ExperimentConfig.from_dict(payload["config"])
        if saved.computed_fields() != config.computed_fields():
            raise ValueError(f"written for another configuration ({run_key(saved)})")
        steps = [StepRecord.from_dict(s) for s in payload["steps"]]
        steps_initial = list(payload["initial_indices"])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        warnings.warn(f"ignoring checkpoint {path}: {err}", RuntimeWarning, stacklevel=4)
        return None
    return steps_initial, steps


def _replay(
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
