"""Re-make a stored run and check that it came from this library (chapter "Experiments").

A run record (:class:`dean_nb.experiment.records.RunResult`) is re-made from its configuration
and compared with the stored one. How closely depends on where the replay runs:

* **exact**, when this machine is of the kind that made the record (the same CPU model, the
  same torch CPU capability, the same device type, all three named in the record's
  provenance): every selected index, every oracle answer, accuracies and sigma to 1e-6, beta to
  a relative 1e-5. This is what "the same seed gives the same records" means.
* **tolerant**, anywhere else. torch's float kernels differ between CPU types (AVX-512, AVX2,
  ``ATEN_CPU_CAPABILITY=default``) and devices, in the last bits; 50 epochs of training amplify
  that into other picks a few acquisitions later and accuracies a few points apart. The check
  is then exact on what float rounding cannot change: the configuration, the split (initial
  indices), the true channel, the label counts, the oracle's answers (every noisy label of
  either run equals the oracle's seeded answer for that image) and the first acquisition,
  which the step-0 model makes before rounding has had time to grow; and within tolerances on
  the trained numbers: the step-0 model's accuracy and sigma, then every later step's.

The tolerances are the spread measured by re-making the stored ``digits`` records under
AVX-512, AVX2 and default kernels (see :data:`DEFAULT_TOLERANCES`). A sampler that draws one
extra number before each batch changes the first acquisition and fails both checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.loop import oracle_answers
from dean_nb.experiment.records import RunResult, provenance
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.oracle import RelabellingOracle
from dean_nb.runtime import resolve_device

__all__ = [
    "DEFAULT_TOLERANCES",
    "ReplayMismatch",
    "ReplayReport",
    "check_replay",
    "machine_kind",
    "replay_mode",
]

#: The fields of a record's provenance that name the kind of machine that made it.
MACHINE_FIELDS: tuple[str, ...] = ("cpu", "cpu_capability", "device_type")

#: Tolerances of the tolerant check, as absolute differences of fractions in [0, 1].
#:
#: Measured on the 20 stored ``digits`` DeAn and BALD records at epsilon 0 and 0.3 (seeds 0-4),
#: re-made on an AMD EPYC under torch's AVX-512, AVX2 and default kernels
#: (``benchmarks/replay_spread.py``). Under AVX-512, the records' own kind, every run was
#: identical. Under the other two no first acquisition changed, and the step-0 model moved by
#: at most 0.0015 (in sigma); 15 of the 40 runs diverged later, from pick 21 (the second
#: acquisition) on, and their later steps moved by up to 0.090 in accuracy and 0.069 in sigma.
#: (Before the MC-dropout masks were drawn as bit fields the same measurement gave 0.044 and
#: 0.047, and 0.050 in accuracy on another machine's AVX2 kernels.) The bounds are those maxima
#: with a margin: 3 test images of 500 and 0.01 in sigma at step 0, 0.12 and 0.10 later.
DEFAULT_TOLERANCES: dict[str, float] = {
    "step0_accuracy": 0.006,
    "step0_sigma": 0.01,
    "accuracy": 0.12,
    "sigma": 0.10,
}


class ReplayMismatch(AssertionError):
    """A re-made run disagrees with its record beyond what its check allows."""


@dataclass(frozen=True)
class ReplayReport:
    """What :func:`check_replay` compared.

    Attributes:
        mode: ``"exact"`` or ``"tolerant"``.
        reason: why that mode (which machine fields matched or differed).
        n_picks: acquired images in the record.
        first_divergence: index (in acquisition order) of the first pick that differs, or
            ``None`` when every pick agrees.
        max_accuracy_gap: largest |accuracy difference| over the steps.
        max_sigma_gap: largest |sigma difference| over the steps.
        mislabelled: the record's acquired labels that the oracle got wrong (the same on any
            machine, unlike the re-made run's picks elsewhere).
    """

    mode: str
    reason: str
    n_picks: int
    first_divergence: int | None
    max_accuracy_gap: float
    max_sigma_gap: float
    mislabelled: int


def provenance_here() -> dict[str, Any]:
    """This process's provenance on torch's default device."""
    return provenance(resolve_device(None))


def machine_kind(record_provenance: dict[str, Any] | None = None) -> dict[str, str | None]:
    """The CPU model, torch's CPU capability and device type of a record, or of this machine.

    Args:
        record_provenance: a record's provenance dict; ``None`` describes this process (its
            device being torch's default one).
    """
    if record_provenance is not None:
        device = record_provenance.get("device")
        return {
            "cpu": record_provenance.get("cpu"),
            "cpu_capability": record_provenance.get("cpu_capability"),
            "device_type": None if device is None else torch.device(device).type,
        }
    return machine_kind(provenance_here())


def replay_mode(
    provenance: dict[str, Any], device: str | torch.device | None = None
) -> tuple[str, str]:
    """``("exact" | "tolerant", reason)`` for replaying a record with this provenance here.

    Args:
        provenance: the stored record's provenance.
        device: where the replay runs (``None``: torch's default device).
    """
    here = machine_kind()
    here["device_type"] = resolve_device(device).type
    there = machine_kind(provenance)
    missing = [name for name in MACHINE_FIELDS if there[name] is None]
    if missing:
        return "tolerant", f"the record does not name its {', '.join(missing)}"
    differ = [f"{n} {there[n]!r} here {here[n]!r}" for n in MACHINE_FIELDS if there[n] != here[n]]
    if differ:
        return "tolerant", "another kind of machine made the record: " + "; ".join(differ)
    return "exact", f"same kind of machine ({here['cpu']}, {here['cpu_capability']})"


def check_replay(
    stored: RunResult,
    fresh: RunResult,
    mode: str = "auto",
    *,
    tolerances: dict[str, float] | None = None,
    answers: torch.Tensor | None = None,
) -> ReplayReport:
    """Compare a re-made run with its record; raise :class:`ReplayMismatch` where they differ.

    Args:
        stored: the record (:class:`dean_nb.experiment.records.RunResult`), e.g. from
            ``load_run``.
        fresh: the same configuration re-made with ``run_active_learning``.
        mode: ``"exact"``, ``"tolerant"`` or ``"auto"`` (:func:`replay_mode` of the record's
            provenance and the re-made run's device).
        tolerances: overrides of :data:`DEFAULT_TOLERANCES` for the tolerant check.
        answers: ``(N_train,)`` the oracle's answer for every training image
            (:func:`dean_nb.experiment.loop.oracle_answers`); ``None`` computes it from the
            config.

    Returns:
        A :class:`ReplayReport`.

    Raises:
        ValueError: ``mode`` unknown, or ``stored`` was answered by a labeller of its own
            (``provenance["labeller"]``): its labels are not the simulated oracle's.
    """
    labeller = stored.provenance.get("labeller")
    if labeller is not None:
        raise ValueError(
            f"stored was answered by the labeller {labeller!r}, not by the simulated oracle "
            "that a replay asks: compare it with a run made by the same labeller instead"
        )
    if mode not in ("auto", "exact", "tolerant"):
        raise ValueError(f"mode must be one of auto, exact, tolerant; got {mode!r}")
    limits = _tolerance_limits(tolerances)
    if mode == "auto":
        mode, reason = replay_mode(stored.provenance, fresh.provenance.get("device"))
    else:
        reason = "chosen by the caller"

    def fail(what: str) -> NoReturn:
        raise ReplayMismatch(f"{mode} replay of {stored.config.method}: {what}")

    _check_protocol(stored, fresh, fail)
    if answers is None:
        answers = oracle_answers(stored.config)
    _check_oracle(stored, fresh, answers, fail)
    first_stored, first_fresh = stored.steps[0].selected, fresh.steps[0].selected
    if first_fresh != first_stored:
        fail(f"the first acquisition differs ({len(set(first_fresh) - set(first_stored))} picks)")
    divergence = _first_divergence(_questions(fresh), _questions(stored))
    acc_gaps = [
        abs(a.test_accuracy - b.test_accuracy)
        for a, b in zip(fresh.steps, stored.steps, strict=True)
    ]
    sigma_gaps = [abs(a.sigma - b.sigma) for a, b in zip(fresh.steps, stored.steps, strict=True)]
    if mode == "exact":
        _check_exact(stored, fresh, divergence, acc_gaps, sigma_gaps, fail)
    else:
        _check_tolerant(acc_gaps, sigma_gaps, limits, fail)

    mislabelled = sum(
        n != t for s in stored.steps for n, t in zip(s.noisy_labels, s.true_labels, strict=True)
    )
    return ReplayReport(
        mode=mode,
        reason=reason,
        n_picks=len(stored.selected),
        first_divergence=divergence,
        max_accuracy_gap=max(acc_gaps),
        max_sigma_gap=max(sigma_gaps),
        mislabelled=int(mislabelled),
    )


def _questions(run: RunResult) -> list[tuple[str, int]]:
    """Every question of a run in order: ``("again", image)`` for a step's re-labels, then
    ``("new", image)`` for its batch."""
    return [
        question
        for step in run.steps
        for question in [("again", i) for i in step.relabelled or []]
        + [("new", i) for i in step.selected]
    ]


def _first_divergence(a: list, b: list) -> int | None:
    """The first position where ``a`` and ``b`` differ (the shorter one's end if one is a
    prefix of the other), ``None`` where they are equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _tolerance_limits(tolerances: dict[str, float] | None) -> dict[str, float]:
    """:data:`DEFAULT_TOLERANCES` with ``tolerances``' overrides, each checked."""
    limits = dict(DEFAULT_TOLERANCES)
    for name, value in (tolerances or {}).items():
        if name not in limits:
            raise ValueError(f"unknown tolerance {name!r}; known: {', '.join(limits)}")
        if not (isinstance(value, int | float) and 0 <= value < math.inf):
            raise ValueError(f"tolerance {name} must be a finite number >= 0, got {value!r}")
        limits[name] = float(value)
    return limits


def _check_protocol(stored: RunResult, fresh: RunResult, fail: Callable[[str], NoReturn]) -> None:
    """What no float rounding can change: configuration, split, channel, label counts."""
    if not isinstance(fresh.config, ExperimentConfig) or (
        fresh.config.computed_fields() != stored.config.computed_fields()
    ):
        fail("the configurations differ")
    if fresh.initial_indices != stored.initial_indices:
        fail("the initial labelled sets (the split) differ")
    if fresh.true_channel != stored.true_channel:
        fail("the oracle's channels differ")
    if [s.n_labels for s in fresh.steps] != [s.n_labels for s in stored.steps]:
        fail("the label counts per step differ")


def _check_oracle(
    stored: RunResult,
    fresh: RunResult,
    answers: torch.Tensor,
    fail: Callable[[str], NoReturn],
) -> None:
    """Every noisy label of either run must be the oracle's answer for its image, and every
    re-label the answer of the oracle's memory (:class:`RelabellingOracle`) to that question."""
    oracle = None
    for name, run in (("stored", stored), ("re-made", fresh)):
        picks = torch.tensor(run.selected, dtype=torch.int64)
        noisy = torch.tensor([n for s in run.steps for n in s.noisy_labels], dtype=torch.int64)
        if not torch.equal(answers[picks], noisy):
            fail(f"the {name} run's noisy labels are not the oracle's answers")
        if not any(s.relabelled for s in run.steps):
            continue
        if oracle is None:
            config = stored.config
            data = load_dataset(config.dataset, root=config.root, download=config.download)
            oracle = RelabellingOracle(
                config.oracle_channel(), answers, data.y_train, config.oracle_memory, config.seed
            )
        answers_by_image: dict[int, list[int]] = {}
        for step in run.steps:
            try:
                oracle.replay(answers_by_image, step.relabelled or [], step.relabel_answers or [])
            except ValueError as error:
                fail(f"the {name} run's step {step.step}: {error}")
            answers_by_image.update((i, [int(answers[i])]) for i in step.selected)


def _check_exact(
    stored: RunResult,
    fresh: RunResult,
    divergence: int | None,
    acc_gaps: list[float],
    sigma_gaps: list[float],
    fail: Callable[[str], NoReturn],
) -> None:
    """Same machine: every pick, accuracy and sigma to 1e-6, beta to a relative 1e-5."""
    if divergence is not None:
        fail(f"pick {divergence} differs (every pick must agree on this machine)")
    if max(acc_gaps) > 1e-6 or max(sigma_gaps) > 1e-6:
        fail(f"accuracy or sigma differ by {max(*acc_gaps, *sigma_gaps):.2g} (limit 1e-6)")
    for new, old in zip(fresh.steps, stored.steps, strict=True):
        if (new.beta is None) != (old.beta is None) or (
            new.beta is not None and not math.isclose(new.beta, old.beta, rel_tol=1e-5)
        ):
            fail(f"beta of step {new.step} differs: {new.beta} against {old.beta}")


def _check_tolerant(
    acc_gaps: list[float],
    sigma_gaps: list[float],
    limits: dict[str, float],
    fail: Callable[[str], NoReturn],
) -> None:
    """Another kind of machine: the step-0 model's gaps, then every step's, within ``limits``."""
    bounds = [
        ("step-0 accuracy", acc_gaps[:1], limits["step0_accuracy"]),
        ("step-0 sigma", sigma_gaps[:1], limits["step0_sigma"]),
        ("accuracy", acc_gaps, limits["accuracy"]),
        ("sigma", sigma_gaps, limits["sigma"]),
    ]
    for what, gaps, limit in bounds:
        if max(gaps) > limit:
            fail(f"{what} differs by {max(gaps):.3f} (tolerance {limit:g})")
