"""The active-learning loop, its records, and a resumable grid runner.

Chapter "Experiments" (and every results chapter). One *run* is Algorithm 1 of the paper
(Algorithm 2 with a noisy oracle and, optionally, the denoising layer of section 4):

1. split the training set into an initial labelled set (``k`` per class), a fixed validation
   set and the pool (:func:`dean_nb.data.make_split`; the same split for every strategy at a
   given seed);
2. at every step: build a fresh model, train it from scratch on the labelled set (through a
   :class:`dean_nb.denoise.NoisyChannel` when ``denoise``; the base model is what gets scored,
   selects and is evaluated), record its clean test accuracy and its uncertainty ``sigma``
   (mean variation ratio on the validation set);
3. unless it is the last step: select a batch of ``b`` pool images with the strategy, ask the
   noisy oracle for their labels, move them from the pool to the labelled set.

Only acquired labels go through the oracle (the K-ary symmetric channel of eq. 1): the initial
and validation sets stay clean, as in the authors' runs. The oracle answers are drawn once per
training image at the start of a run, so a given image gets the same (possibly wrong) label
whichever strategy asks for it at that seed: strategies are compared on common random numbers.

The split is drawn with ``config.seed`` itself (so ``make_split(..., seed)`` in a chapter shows
the very sets a run used); every other random draw has its own generator derived from
``config.seed`` and a purpose string (:func:`purpose_seed`): the oracle, and each step's model
initialisation, training, sigma and selection (including the pool subset). The same seed
therefore gives the same selected indices on CPU, every strategy starts from the same initial
model, and changing one purpose (say, the strategy) leaves the others' draws untouched.

A grid (:func:`make_grid`, :func:`run_grid`) is a list of configurations, each written to its
own JSON file as soon as it finishes (atomically: temporary file + ``os.replace``); files already
on disk are skipped, so a killed grid resumes and loses nothing. Any
:class:`concurrent.futures.Executor` runs the grid, including Dask's
(``distributed.Client(...).get_executor()``). :func:`load_results` reads a results folder
into a tidy :class:`pandas.DataFrame` and :func:`summary_table` gives the paper's Table-2 view
(mean +/- std test accuracy over seeds at each number of labels).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import math
import multiprocessing
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import typing
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .runtime import make_generator, resolve_device
from .validation import check_float_range, check_int_range

__all__ = [
    "BETA_KINDS",
    "PRESETS",
    "ExperimentConfig",
    "GridPaths",
    "RunResult",
    "SkippedRecordWarning",
    "StepRecord",
    "checkpoint_path",
    "config_id",
    "format_summary",
    "load_results",
    "load_run",
    "make_grid",
    "method_label",
    "oracle_answers",
    "purpose_seed",
    "result_path",
    "run_active_learning",
    "run_grid",
    "run_key",
    "summary_table",
    "torch_threads",
    "uncertainty_table",
]

#: The inverse-uncertainty functions beta = f(sigma) of :mod:`dean_nb.annealing`.
BETA_KINDS: tuple[str, ...] = ("exp", "pow4", "log")

#: Suffix of a strategy name in :func:`make_grid` (and the CLI) that switches denoising on.
DENOISE_SUFFIX = "+denoise"

# Fields of ExperimentConfig that say where or how verbosely a run happens, not what it
# computes: they are left out of the run key, so a grid resumes on another machine or device.
_LOCATION_FIELDS = ("root", "device", "num_threads", "quiet", "download")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one active-learning run (one strategy, one noise level, one seed).

    The defaults are the ``quick`` preset on the embedded ``digits`` data (seconds on a CPU);
    :meth:`preset` gives the paper's protocol for each dataset.

    Attributes:
        dataset: one of :data:`dean_nb.data.DATASETS`.
        root: data folder for the torchvision datasets (``None``: :func:`dean_nb.data.resolve_root`).
        download: let torchvision fetch missing files into ``root``.
        strategy: a name of :func:`dean_nb.strategies.available`.
        strategy_options: extra keyword options of the strategy (see its class in
            :mod:`dean_nb.strategies`), e.g. ``{"linkage": "average"}`` for ``dean`` or
            ``{"n_joint_samples": 200}`` for ``batchbald``. For ``dean`` they override the
            ``beta_kind``/``beta_scale``/``n_clusters`` fields. JSON values only. The
            strategy is built with them when the config is, so an unknown option or an
            invalid value is refused then, not at the first acquisition.
        epsilon: oracle noise, the flip probability of the K-ary symmetric channel (eq. 1), in [0, 1).
        denoise: train through a learned noisy-channel layer (section 4, Algorithm 2).
        initial_per_class: ``k``: the initial labelled set holds ``k`` images of every class.
        validation_size: size of the fixed validation set on which sigma is measured.
        acquisition_size: ``b``, the number of labels acquired per step.
        n_steps: number of acquisitions; a run trains ``n_steps + 1`` models.
        epochs: training epochs per model (the paper: 50; 20 for its "uncertain model" ablation).
        n_mc_samples: ``T``, stochastic forward passes for the scores and for sigma.
        n_clusters: ``N(b)`` clusters of the DeAn sampler; ``None`` means ``5 b`` (paper text).
            Capped at the number of candidate pool images.
        beta_kind: ``f`` in beta = f(sigma): ``exp``, ``pow4`` or ``log``.
        beta_scale: the scale ``l`` of ``f`` (the paper: 1/4).
        pool_subset: score a uniform random subset of this many pool images per step
            (without replacement); ``None`` scores the whole pool.
        batch_size: training minibatch size (``None``: the :class:`dean_nb.training.TrainConfig` default).
        eval_batch_size: chunk size of the inference passes (``None``: one chunk per call
            unless the callee chooses otherwise).
        lr: Adam learning rate.
        weight_decay: the paper's weight decay on the first dense layer, divided by the
            number of training images.
        seed: the repeat's seed; fixes the split, the oracle and every draw of the run.
        device: ``None`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        num_threads: torch CPU threads during the run (restored afterwards); ``None`` leaves
            torch's setting. The tiny ``digits`` net runs far faster on one thread: with more,
            per-operation threading overhead dominates, and on a busy machine threads that
            wait on each other slow training down by an order of magnitude.
        quiet: no progress bars.
    """

    dataset: str = "digits"
    root: str | None = None
    download: bool = False
    strategy: str = "dean"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    epsilon: float = 0.0
    denoise: bool = False
    initial_per_class: int = 2
    validation_size: int = 100
    acquisition_size: int = 20
    n_steps: int = 5
    epochs: int = 50
    n_mc_samples: int = 20
    n_clusters: int | None = None
    beta_kind: str = "exp"
    beta_scale: float = 0.25
    pool_subset: int | None = None
    batch_size: int | None = None
    eval_batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 3.5
    seed: int = 0
    device: str | None = None
    num_threads: int | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        """Check every field (ranges, types, the strategy and its options) before any work.

        Errors name the field and what it accepts. Values are kept in canonical types so that
        equal configurations have equal run keys: floats as ``float`` (``-0.0`` as ``0.0``),
        NumPy integers and booleans as Python ones, a ``root`` path as ``str``.
        """
        from .data import DATASETS

        if not isinstance(self.dataset, str) or self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        _check_strategy_name(self.strategy)
        for name in ("download", "denoise", "quiet"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))
        if self.root is not None:
            root = os.fspath(self.root) if isinstance(self.root, os.PathLike) else self.root
            if not isinstance(root, str):
                raise TypeError(f"root must be a folder path (a str) or None, got {self.root!r}")
            object.__setattr__(self, "root", root)
        if not isinstance(self.strategy_options, dict):
            raise TypeError(
                f"strategy_options must be a dict, got {type(self.strategy_options).__name__}"
            )
        bad_keys = [k for k in self.strategy_options if not isinstance(k, str)]
        if bad_keys:
            raise TypeError(f"strategy_options keys must be option names (str), got {bad_keys}")
        try:
            json.dumps(self.strategy_options, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"strategy_options must hold JSON values only: {err}") from None
        check_float_range("epsilon", self.epsilon, 0.0, 1.0, high_inclusive=False)
        self._check_int("initial_per_class", 1)
        self._check_int("validation_size", 1)
        self._check_int("acquisition_size", 1)
        self._check_int("n_steps", 0)
        self._check_int("epochs", 1)
        self._check_int("n_mc_samples", 2)
        self._check_int("n_clusters", 1, optional=True)
        if self.beta_kind not in BETA_KINDS:
            raise ValueError(
                f"beta_kind must be one of {', '.join(BETA_KINDS)}; got {self.beta_kind!r}"
            )
        inf = math.inf
        check_float_range(
            "beta_scale", self.beta_scale, 0.0, inf, low_inclusive=False, high_inclusive=False
        )
        self._check_int("pool_subset", self.acquisition_size, optional=True)
        self._check_int("batch_size", 1, optional=True)
        self._check_int("eval_batch_size", 1, optional=True)
        check_float_range("lr", self.lr, 0.0, inf, low_inclusive=False, high_inclusive=False)
        check_float_range("weight_decay", self.weight_decay, 0.0, inf, high_inclusive=False)
        self._check_int("seed", 0, 2**63 - 1)
        self._check_int("num_threads", 1, optional=True)
        if self.device is not None:
            try:
                device = torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(
                    f"device must be a torch device string, got {self.device!r}"
                ) from err
            if not isinstance(self.device, str):  # torch.device(...) or an index: its name
                object.__setattr__(self, "device", str(device))
        # JSON round-trips floats and ints; keep the dataclass in canonical types (adding 0.0
        # turns -0.0 into 0.0, so ``--epsilons -0`` finds the runs of ``0``)
        for name in ("epsilon", "beta_scale", "lr", "weight_decay"):
            object.__setattr__(self, name, float(getattr(self, name)) + 0.0)
        self._check_strategy_options()

    def _check_int(
        self, name: str, low: int, high: int | None = None, *, optional: bool = False
    ) -> None:
        """Range-check an integer field; NumPy integers become ``int`` (their key is unchanged:
        they could not be written to JSON before). ``optional``: ``None`` is allowed."""
        value = getattr(self, name)
        if optional and value is None:
            return
        checked = check_int_range(name, value, low, high)
        if not isinstance(value, (int, float)):
            object.__setattr__(self, name, checked)

    def _check_strategy_options(self) -> None:
        """Build the strategy as a run will (:func:`dean_nb.strategies.get`), so that unknown
        option names and invalid option values are refused here, before any training."""
        from . import strategies

        try:
            strategies.get(self.strategy, **_strategy_options(self, self.effective_n_clusters))
        except (TypeError, ValueError) as err:
            raise type(err)(f"strategy_options of {self.strategy!r}: {err}") from None

    # -- derived ------------------------------------------------------------------------

    @property
    def effective_n_clusters(self) -> int:
        """``n_clusters``, or ``5 b`` (the paper's ``N(b) = floor(5 b)``) when unset."""
        return self.n_clusters if self.n_clusters is not None else 5 * self.acquisition_size

    @property
    def method(self) -> str:
        """A display name: the strategy, with ``+denoise`` when denoising (e.g. ``dean+denoise``)."""
        return method_label(self.strategy, self.denoise)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` (missing ones take defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown ExperimentConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**data)

    # -- presets --------------------------------------------------------------------------

    @classmethod
    def preset(cls, dataset: str, preset: str = "quick", **overrides: Any) -> ExperimentConfig:
        """The configuration of a named preset for a dataset, with ``overrides`` applied.

        ``quick`` exists for ``digits`` (CPU, seconds per run), ``medium`` for
        ``fashion-mnist``, ``paper`` for ``mnist``, ``emnist``, ``cifar10``,
        ``svhn`` and ``cifar100`` (the paper's protocol; a GPU). See :data:`PRESETS`.
        """
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
        table = PRESETS[preset]
        if dataset not in table:
            pairs = "; ".join(f"{p}: {', '.join(t)}" for p, t in PRESETS.items())
            raise ValueError(
                f"no {preset!r} preset for dataset {dataset!r}; presets by dataset: {pairs}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown override(s) {unknown}; known fields: {sorted(known)}")
        return cls(**{"dataset": dataset, **table[dataset], **overrides})


#: Preset values by preset name and dataset (every other field keeps its default).
#:
#: ``paper`` follows the paper (section 5, appendix B) and the authors' code: initial labels
#: (MNIST 4/class, EMNIST 2/class, SVHN and CIFAR10 5/class, CIFAR100 5/class = 500), b x steps
#: (200 x 5, 500 x 5, 5000 x 5, 5000 x 6, 8000 x 4), 50 epochs, T = 100, the pool subsets of
#: DESIGN.md (10k, 15k, 30k, 25k, 30k), beta = (e^(1/sigma) - 1)/4 for MNIST/CIFAR10/SVHN and
#: (4^(1/sigma) - 1)/4 for EMNIST/CIFAR100. Clusters: the authors' code uses 2500 for MNIST and
#: 10000 for CIFAR10/SVHN; EMNIST takes the paper's 5b = 2500 and CIFAR100 10000 (5b = 40000
#: would exceed its 30000-image pool subset). Validation: MNIST 5000 (authors); EMNIST 18800
#: (the authors hold out as many training images as the balanced test set has); SVHN 7326
#: (the authors' 10% of the training split); CIFAR10/CIFAR100 5000 (our choice).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        # embedded 8x8 digits (1297 train / 500 test): 20 initial labels, 5 x 20 acquired;
        # tuned so that a run takes seconds on one CPU core and accuracy clearly improves.
        "digits": dict(
            initial_per_class=2,
            validation_size=100,
            acquisition_size=20,
            n_steps=5,
            epochs=50,
            n_mc_samples=20,
            n_clusters=None,
            beta_kind="exp",
            beta_scale=0.25,
            pool_subset=None,
            num_threads=1,
        ),
    },
    "medium": {
        # Fashion-MNIST on the MNIST CNN, mirroring the authors' MNIST protocol (40 clean
        # initial labels, 5 x 200 acquired, 50 epochs, validation 5000), sized for 2 CPU cores:
        # T = 20 MC samples (benchmarks/mc_dropout.py: trunk-cached MC on 10k images costs
        # ~190 s at T = 100 on one busy core, so T = 100 would dominate a run; 20 samples keep
        # the BALD ranking's top picks stable) and the paper's own MNIST pool subset of 10k
        # (benchmarks/annealing.py: one DeAn step on 10k takes ~3 s); N(b) = 5b = 1000 clusters
        # as in the paper's text. One run takes a few minutes on one core.
        "fashion-mnist": dict(
            initial_per_class=4,
            validation_size=5000,
            acquisition_size=200,
            n_steps=5,
            epochs=50,
            n_mc_samples=20,
            n_clusters=1000,
            beta_kind="exp",
            beta_scale=0.25,
            pool_subset=10000,
            num_threads=1,
        ),
    },
    "paper": {
        "mnist": dict(
            initial_per_class=4,
            validation_size=5000,
            acquisition_size=200,
            n_steps=5,
            epochs=50,
            n_mc_samples=100,
            n_clusters=2500,
            beta_kind="exp",
            beta_scale=0.25,
            pool_subset=10000,
        ),
        "emnist": dict(
            initial_per_class=2,
            validation_size=18800,
            acquisition_size=500,
            n_steps=5,
            epochs=50,
            n_mc_samples=100,
            n_clusters=2500,
            beta_kind="pow4",
            beta_scale=0.25,
            pool_subset=15000,
        ),
        "cifar10": dict(
            initial_per_class=5,
            validation_size=5000,
            acquisition_size=5000,
            n_steps=6,
            epochs=50,
            n_mc_samples=100,
            n_clusters=10000,
            beta_kind="exp",
            beta_scale=0.25,
            pool_subset=25000,
        ),
        "svhn": dict(
            initial_per_class=5,
            validation_size=7326,
            acquisition_size=5000,
            n_steps=5,
            epochs=50,
            n_mc_samples=100,
            n_clusters=10000,
            beta_kind="exp",
            beta_scale=0.25,
            pool_subset=30000,
        ),
        "cifar100": dict(
            initial_per_class=5,
            validation_size=5000,
            acquisition_size=8000,
            n_steps=4,
            epochs=50,
            n_mc_samples=100,
            n_clusters=10000,
            beta_kind="pow4",
            beta_scale=0.25,
            pool_subset=30000,
        ),
    },
}


def _check_strategy_name(name: str) -> str:
    from . import strategies

    names = tuple(strategies.available())
    if name not in names:
        raise ValueError(f"strategy must be one of {', '.join(names)}; got {name!r}")
    return name


def method_label(strategy: str, denoise: bool) -> str:
    """``"dean"`` or ``"dean+denoise"``: how tables and plots name a strategy."""
    return f"{strategy}{DENOISE_SUFFIX}" if denoise else strategy


# --------------------------------------------------------------------------- records


@dataclass
class StepRecord:
    """What one step of a run measured and chose (all JSON-safe Python values).

    Attributes:
        step: 0 for the initial model, then 1, 2, ... after each acquisition.
        n_labels: size of the labelled set the step's model was trained on.
        test_accuracy: clean test accuracy of the base model, in [0, 1].
        sigma: model uncertainty (mean variation ratio on the validation set), in [0, 1].
        beta: the DeAn inverse temperature f(sigma) used for this step's selection (``None``
            for other strategies or when no selection happened).
        selected: the batch this step's model chose, as indices into the dataset's training
            set (empty on the last step).
        noisy_labels: the oracle's answers for ``selected``.
        true_labels: the clean labels of ``selected``.
        channel: the learned channel ``W`` (K x K, ``W[i, j] = p(y'=i | y=j)``) when
            denoising, else ``None``.
        wall_time: seconds the step took (training, evaluation, sigma, selection).
    """

    step: int
    n_labels: int
    test_accuracy: float
    sigma: float
    beta: float | None = None
    selected: list[int] = field(default_factory=list)
    noisy_labels: list[int] = field(default_factory=list)
    true_labels: list[int] = field(default_factory=list)
    channel: list[list[float]] | None = None
    wall_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``inf`` beta is written as the string ``"inf"``)."""
        data = dataclasses.asdict(self)
        data["beta"] = _float_to_json(self.beta)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["beta"] = _float_from_json(data.get("beta"))
        return cls(**data)


@dataclass
class RunResult:
    """One finished run: its configuration, one :class:`StepRecord` per step, provenance.

    Attributes:
        config: the :class:`ExperimentConfig` that produced it.
        steps: ``n_steps + 1`` records, the initial model first.
        initial_indices: the initial labelled set (indices into the training set).
        true_channel: the oracle's channel (K x K, column-stochastic).
        provenance: package and torch versions, git commit, date, host, device.
    """

    config: ExperimentConfig
    steps: list[StepRecord]
    initial_indices: list[int] = field(default_factory=list)
    true_channel: list[list[float]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracies(self) -> list[float]:
        """Test accuracy per step."""
        return [s.test_accuracy for s in self.steps]

    @property
    def n_labels(self) -> list[int]:
        """Labelled-set size per step."""
        return [s.n_labels for s in self.steps]

    @property
    def selected(self) -> list[int]:
        """Every acquired index, in acquisition order."""
        return [i for s in self.steps for i in s.selected]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (lists, not tensors)."""
        return {
            "config": self.config.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "initial_indices": list(self.initial_indices),
            "true_channel": self.true_channel,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            config=ExperimentConfig.from_dict(data["config"]),
            steps=[StepRecord.from_dict(s) for s in data["steps"]],
            initial_indices=list(data.get("initial_indices", [])),
            true_channel=data.get("true_channel", []),
            provenance=dict(data.get("provenance", {})),
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically to ``path`` (temporary file in the same folder + ``os.replace``)."""
        return _atomic_write_json(Path(path), self.to_dict())


def load_run(path: str | os.PathLike[str]) -> RunResult:
    """Read one run's JSON file.

    Raises:
        ValueError: the file is not valid JSON, or not a run record (a JSON object with
            ``config`` and ``steps``), or its configuration or steps are invalid; the message
            names the file and says why.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} is not a run record: a JSON {type(data).__name__}, not an object with "
            "'config' and 'steps'"
        )
    missing = [key for key in ("config", "steps") if key not in data]
    if missing:
        raise ValueError(f"{path} is not a run record: no {' or '.join(map(repr, missing))} key")
    try:
        return RunResult.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ValueError(
            f"{path} is not a valid run record ({type(err).__name__}: {err})"
        ) from None


def _float_to_json(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    return x


def _float_from_json(x: float | str | None) -> float | None:
    return None if x is None else float(x)


# --------------------------------------------------------------------------- provenance


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` when modified), or ``None`` outside a git tree."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not commit:
        return None
    return f"{commit}-dirty" if status else commit


def provenance(device: torch.device) -> dict[str, Any]:
    """Where and with what a run was made: versions, commit, date, host, device."""
    info: dict[str, Any] = {
        "dean_nb_version": __version__,
        "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        # Float results (and so a run's later picks) can differ between CPUs with other
        # vector units; these say which kind of CPU made the record.
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- the loop


def purpose_seed(seed: int, purpose: str) -> int:
    """A 62-bit seed for one purpose of a run (``"oracle"``, ``"model:0"``, ``"train:3"``...).

    A hash of ``(seed, purpose)``: purposes never share a stream, and adding a purpose does
    not shift the others (unlike drawing child seeds in sequence from one generator).
    """
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, root: str | None, download: bool):
    from .data import load_dataset

    return load_dataset(name, root=root, download=download)


def oracle_answers(config: ExperimentConfig) -> torch.Tensor:
    """The noisy oracle's answer for every training image of a run, ``(N_train,)`` int64.

    The oracle (the K-ary symmetric channel of eq. 1 with ``config.epsilon``) answers every
    training image once, up front, from its own seeded generator: common random numbers across
    strategies, and integers that no float kernel can change. Only acquired indices are ever
    read.
    """
    from .oracle import NoisyOracle, symmetric_channel

    data = _cached_dataset(config.dataset, config.root, config.download)
    channel = symmetric_channel(data.num_classes, config.epsilon)
    oracle = NoisyOracle(channel, seed=purpose_seed(config.seed, "oracle"))
    return oracle.label(data.y_train)


def _strategy_options(config: ExperimentConfig, n_candidates: int) -> dict[str, Any]:
    """Keyword options for :func:`dean_nb.strategies.get` (DeAn's come from the config)."""
    options: dict[str, Any] = {}
    if config.strategy == "dean":
        options = {
            "beta_kind": config.beta_kind,
            "beta_scale": config.beta_scale,
            "n_clusters": min(config.effective_n_clusters, n_candidates),
        }
    return {**options, **config.strategy_options}


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
            (:func:`run_grid` uses :func:`checkpoint_path`). When it exists and was written
            for the same computation (every field but ``root``, ``device``, ``num_threads``,
            ``quiet``, ``download``), the run replays its steps and continues from the first
            unfinished one. The state at step ``k`` is a function of the finished steps'
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
    from . import training
    from .models import arch_for_dataset, build_model

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
    ).to(device)
    channel = None
    if config.denoise:
        from .denoise import NoisyChannel

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
    from . import scoring, strategies, training
    from .data import make_split
    from .oracle import symmetric_channel

    device = resolve_device(config.device)
    seed = config.seed

    data = _cached_dataset(config.dataset, config.root, config.download)
    k = data.num_classes
    split = make_split(data.y_train, k, config.initial_per_class, config.validation_size, seed=seed)
    needed = config.n_steps * config.acquisition_size
    if needed > split.pool.numel():
        raise ValueError(
            f"n_steps * acquisition_size = {needed} exceeds the pool ({split.pool.numel()} "
            f"images of {config.dataset} after the initial and validation sets)"
        )

    x_train = data.x_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    x_val = x_train[split.validation.to(device)]

    true_channel = symmetric_channel(k, config.epsilon)
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
                config, x_train[labelled.to(device)], labels.to(device), k, step, device
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
                strategy = strategies.get(
                    config.strategy, **_strategy_options(config, n_candidates)
                )
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


def _computed_fields(config: ExperimentConfig) -> dict[str, Any]:
    """The fields that change what a run computes (those :func:`run_key` hashes)."""
    return {k: v for k, v in config.to_dict().items() if k not in _LOCATION_FIELDS}


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
    _atomic_write_json(path, payload)


def _load_checkpoint(
    path: Path, config: ExperimentConfig
) -> tuple[list[int], list[StepRecord]] | None:
    """``(initial indices, finished steps)`` of a checkpoint written for ``config``, or ``None``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring unreadable checkpoint {path}: {err}", RuntimeWarning, stacklevel=4)
        return None
    try:
        if data.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {_CHECKPOINT_FORMAT!r}")
        saved = ExperimentConfig.from_dict(data["config"])
        if _computed_fields(saved) != _computed_fields(config):
            raise ValueError(f"written for another configuration ({run_key(saved)})")
        steps = [StepRecord.from_dict(s) for s in data["steps"]]
        steps_initial = list(data["initial_indices"])
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


def _check_selection(indices: torch.Tensor, n_candidates: int, budget: int) -> None:
    """A strategy must return ``budget`` distinct indices into the candidates."""
    if indices.ndim != 1 or indices.numel() != budget:
        raise RuntimeError(
            f"strategy returned {tuple(indices.shape)} indices; expected ({budget},)"
        )
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n_candidates):
        raise RuntimeError(f"strategy returned indices outside [0, {n_candidates - 1}]")
    if torch.unique(indices).numel() != indices.numel():
        raise RuntimeError("strategy returned duplicate indices")


def _progress_bar(total: int, show: bool, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


# --------------------------------------------------------------------------- grids


def make_grid(
    base: ExperimentConfig,
    strategies: Sequence[str],
    epsilons: Sequence[float],
    denoise_options: Sequence[bool] = (False,),
    seeds: Sequence[int] = (0,),
) -> list[ExperimentConfig]:
    """Every combination of strategy x epsilon x denoise x seed on top of ``base``.

    A strategy written ``"name+denoise"`` runs with denoising only (whatever
    ``denoise_options`` says), so ``["dean", "dean+denoise", "bald"]`` with
    ``denoise_options=(False,)`` gives DeAn with and without the channel and plain BALD.
    Duplicates are dropped; the order is epsilon, seed, strategy, denoise.
    """
    if not strategies or not epsilons or not denoise_options or not seeds:
        raise ValueError("strategies, epsilons, denoise_options and seeds must be non-empty")
    parsed: list[tuple[str, tuple[bool, ...]]] = []
    for name in strategies:
        if name.endswith(DENOISE_SUFFIX):
            parsed.append((name[: -len(DENOISE_SUFFIX)], (True,)))
        else:
            parsed.append((name, tuple(bool(d) for d in denoise_options)))
    configs: list[ExperimentConfig] = []
    seen: set[tuple] = set()
    for eps in epsilons:
        for seed in seeds:
            for name, denoises in parsed:
                for denoise in denoises:
                    key = (float(eps), int(seed), name, denoise)
                    if key in seen:
                        continue
                    seen.add(key)
                    configs.append(
                        base.replace(
                            strategy=name, epsilon=float(eps), seed=int(seed), denoise=denoise
                        )
                    )
    return configs


def run_key(config: ExperimentConfig) -> str:
    """A stable file stem for a run: readable fields plus a short hash of the full config.

    ``digits_dean+denoise_eps0.3_seed2_1a2b3c4d``. The hash covers every field that changes
    what is computed (not ``root``, ``device``, ``num_threads``, ``quiet``, ``download``).
    """
    payload = {k: v for k, v in config.to_dict().items() if k not in _LOCATION_FIELDS}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
    return f"{config.dataset}_{config.method}_eps{config.epsilon:g}_seed{config.seed}_{digest}"


def result_path(config: ExperimentConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`run_grid` writes (and looks for) a run's JSON file."""
    return Path(out_dir) / f"{run_key(config)}.json"


def checkpoint_path(config: ExperimentConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`run_grid` keeps a run's finished steps until its record is written.

    ``.<run_key>.partial.json`` beside the record (hidden, so :func:`load_results` skips it).
    """
    return _partial_path(result_path(config, out_dir))


def _partial_path(record: Path) -> Path:
    return record.with_name(f".{record.stem}.partial.json")


def _lock_path(record: Path) -> Path:
    return record.with_name(f".{record.stem}.lock")


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it

#: This machine's name as locks and temporary files record it.
_HOST = socket.gethostname()
# ... and as it appears in temporary file names (no path separators or "~").
_HOST_TAG = re.sub(r"[^A-Za-z0-9._-]", "_", _HOST) or "host"
# A temporary file of _atomic_write_json: .<target>~<host>~<pid>~<random>.tmp
_TMP_NAME = re.compile(r"^\..+~(?P<host>[A-Za-z0-9._-]+)~(?P<pid>\d+)~[^~]*\.tmp$")


def _atomic_write_json(path: Path, payload: dict[str, Any], *, overwrite: bool = True) -> Path:
    """Write JSON so that ``path`` is either absent or complete (tmp file + rename).

    With ``overwrite=False`` an existing ``path`` is never replaced: the complete temporary
    file is hard-linked to ``path`` (``link`` fails when the name exists, atomically, NFS
    included) and ``FileExistsError`` is raised when another writer got there first. On file
    systems without hard links it falls back to check-then-rename (a narrow race).

    The temporary file is ``.<name>~<host>~<pid>~<random>.tmp`` in the same folder, so that
    :func:`run_grid` can tell a killed writer's leftover from a live writer's file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}~{_HOST_TAG}~{os.getpid()}~", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide records from other users
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_overwrite(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _link_no_overwrite(tmp: str, path: Path) -> None:
    """Give the complete file ``tmp`` the name ``path`` unless ``path`` exists; drop ``tmp``."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        # NFS: a retransmitted LINK whose first reply was lost reports EEXIST although it
        # worked; the link count says which (the classic NFS lock-file check)
        if os.stat(tmp).st_nlink < 2:
            raise FileExistsError(f"{path} exists; not overwritten") from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwritten") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _execute(
    config_dict: dict[str, Any],
    checkpoint: str | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> dict[str, Any]:
    """Run one configuration; what an executor's worker calls (top level, so it pickles).

    ``checkpoint`` is used only where its folder exists: a Dask worker without the grid's
    file system runs without one (and restarts a lost run from step 0).
    """
    config = ExperimentConfig.from_dict(config_dict)
    if checkpoint is not None and not Path(checkpoint).parent.is_dir():
        checkpoint = None
    return run_active_learning(config, checkpoint=checkpoint, on_step=on_step).to_dict()


def _limit_threads(n_threads: int) -> None:
    """Worker initialiser: split the cores between processes instead of oversubscribing."""
    torch.set_num_threads(max(1, n_threads))


def default_executor(max_workers: int | None = None) -> cf.Executor:
    """A ``ProcessPoolExecutor`` (spawned workers; torch threads split between them)."""
    cpus = os.cpu_count() or 1
    workers = max(1, min(max_workers or cpus, cpus))
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_threads,
        initargs=(max(1, cpus // workers),),
    )


# ----------------------------------------------------------------- claims shared by processes

#: Seconds without a heartbeat after which :func:`run_grid` takes a claim as abandoned.
DEFAULT_STALE_AFTER = 300.0

# Tokens of the claims this process holds (a lock naming this pid is live only if listed).
_LIVE_TOKENS: set[str] = set()


class _ClaimLost(Exception):
    """Another process took over this run's claim (ours had been judged stale)."""


@dataclass
class _Claim:
    record: Path
    token: str
    lost: bool = False
    misses: int = 0

    @property
    def lock(self) -> Path:
        return _lock_path(self.record)

    def check(self, _record: StepRecord | None = None) -> None:
        """Raise :class:`_ClaimLost` when the heartbeat found the claim taken over."""
        if self.lost:
            raise _ClaimLost(self.record.stem)


def _pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would terminate it; rely on the heartbeat instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    with contextlib.suppress(OSError, IndexError):
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        if stat_line.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


def _fs_now(folder: Path) -> float:
    """The current time by the clock that stamps files in ``folder``.

    An NFS server stamps the files (and ``utime(None)`` heartbeats) with its own clock, so
    ages measured against a probe file are immune to clock skew between client machines.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".dean_nb-clock~", suffix=".probe", dir=folder)
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)


def _read_lock(lock: Path) -> tuple[dict[str, Any] | None, os.stat_result]:
    """A lock's JSON (``None`` while empty or unreadable) and its stat; raises if missing."""
    with open(lock, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read()
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, st
    return (info if isinstance(info, dict) else None), st


def _owner_alive(
    info: dict[str, Any] | None, st: os.stat_result, now: float, stale_after: float
) -> bool:
    """Whether a lock's owner may still be computing its run.

    Dead when its heartbeat (the lock's mtime) is older than ``stale_after``, whoever owns it;
    on this machine also as soon as its pid is gone (or, for this very process, when the
    claim is not one it holds).
    """
    if now - st.st_mtime >= stale_after:
        return False
    if info is None:  # created a moment ago, its JSON not yet written
        return True
    pid = info.get("pid")
    if info.get("host") == _HOST and isinstance(pid, int):
        if pid == os.getpid():
            return info.get("token") in _LIVE_TOKENS
        return _pid_exists(pid)
    return True


def _create_lock(lock: Path, record: Path, token: str) -> None:
    """``O_CREAT | O_EXCL`` the lock (``FileExistsError`` if it exists) and write its JSON."""
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    info = {
        "host": _HOST,
        "pid": os.getpid(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "token": token,
        "run": record.stem,
    }
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _try_claim(record: Path, stale_after: float) -> tuple[str, Any]:
    """Claim one run: ``("claimed", token)``, ``("busy", lock info)`` or ``("done", None)``.

    Every claim is an ``O_EXCL`` creation of the lock. A stale lock is removed by one
    reclaimer at a time (:func:`_remove_stale_lock`), and only if it is still the very
    lock judged stale; the reclaimer then competes for the ``O_EXCL`` creation like anyone
    else, so there is never more than one winner.
    """
    lock = _lock_path(record)
    info: Any = None
    for _ in range(100):
        if record.exists():
            return "done", None
        token = uuid.uuid4().hex
        _LIVE_TOKENS.add(token)  # before the file exists: a reader in this process sees it live
        try:
            _create_lock(lock, record, token)
        except FileExistsError:
            _LIVE_TOKENS.discard(token)
        except BaseException:
            _LIVE_TOKENS.discard(token)
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise
        else:
            if record.exists():  # finished by another process since the check above
                _release_lock(lock, token)
                return "done", None
            return "claimed", token
        try:
            info, st = _read_lock(lock)
        except FileNotFoundError:
            continue  # released or reclaimed meanwhile: try again
        now = _fs_now(record.parent)
        if _owner_alive(info, st, now, stale_after):
            return "busy", info
        if not _remove_stale_lock(lock, info, st, now, stale_after):
            time.sleep(0.01)  # another process is reclaiming it: see what it leaves
    return "busy", info


def _same_lock(
    a: dict[str, Any] | None, a_st: os.stat_result, b: dict[str, Any] | None, b_st: os.stat_result
) -> bool:
    return (
        a_st.st_ino == b_st.st_ino
        and a_st.st_mtime_ns == b_st.st_mtime_ns
        and (a or {}).get("token") == (b or {}).get("token")
    )


def _remove_stale_lock(
    lock: Path, info: dict[str, Any] | None, st: os.stat_result, now: float, stale_after: float
) -> bool:
    """Remove ``lock`` if it is still the lock judged stale; ``False`` if another reclaims it.

    Reclaimers take turns through ``<lock>.reclaim``, created with ``O_EXCL`` and held for
    microseconds; inside, the lock is re-read and removed only if its inode, mtime (no
    heartbeat since) and token are those judged stale. A ``.reclaim`` file left by a
    reclaimer killed inside that window is removed once older than ``stale_after``.
    """
    mutex = lock.with_name(f"{lock.name}.reclaim")
    try:
        os.close(os.open(mutex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if now - os.stat(mutex).st_mtime >= stale_after:
                os.unlink(mutex)
        return False
    try:
        try:
            current, current_st = _read_lock(lock)
        except FileNotFoundError:
            return True
        if _same_lock(current, current_st, info, st):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mutex)


def _release_lock(lock: Path, token: str) -> None:
    """Remove ``lock`` if it still holds ``token``."""
    _LIVE_TOKENS.discard(token)
    with contextlib.suppress(OSError):
        info, _ = _read_lock(lock)
        if info is not None and info.get("token") == token:
            os.unlink(lock)


class _Claims:
    """The runs this process holds in a grid; a daemon thread keeps their locks fresh.

    Every ``interval`` seconds the thread sets each held lock's mtime to now (the heartbeat
    other hosts judge staleness by) and checks that the lock still holds this claim's token;
    a claim found replaced twice in a row is marked lost.
    """

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.interval = min(30.0, max(0.05, stale_after / 10))
        self._held: dict[Path, _Claim] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, record: Path) -> tuple[str, _Claim | None]:
        """``("claimed", claim)``, ``("busy", None)`` or ``("done", None)``."""
        status, value = _try_claim(record, self.stale_after)
        if status != "claimed":
            return status, None
        claim = _Claim(record, value)
        with self._mutex:
            self._held[record] = claim
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, name="dean_nb-heartbeat", daemon=True
                )
                self._thread.start()
        return status, claim

    def release(self, claim: _Claim | None) -> None:
        if claim is None:
            return
        with self._mutex:
            self._held.pop(claim.record, None)
        _release_lock(claim.lock, claim.token)

    def close(self) -> None:
        """Stop the heartbeat and release every claim still held."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            held = list(self._held.values())
        for claim in held:
            self.release(claim)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._mutex:
                held = list(self._held.values())
            for claim in held:
                self._refresh(claim)

    def _refresh(self, claim: _Claim) -> None:
        try:
            info, _ = _read_lock(claim.lock)
        except FileNotFoundError:
            # removed under us (by hand, or moved aside by a reclaimer): take it again
            with contextlib.suppress(OSError):
                _create_lock(claim.lock, claim.record, claim.token)
            return
        except OSError:
            return
        if info is not None and info.get("token") == claim.token:
            claim.misses = 0
            with contextlib.suppress(OSError):
                os.utime(claim.lock)
        elif info is not None:
            claim.misses += 1
            claim.lost = claim.misses >= 2


def _remove_stale_leftovers(folder: Path, stale_after: float) -> list[Path]:
    """Remove what killed processes left in a results folder; return what was removed.

    * temporary files of :func:`_atomic_write_json` whose writer is gone (this machine, pid
      dead) or that are older than ``stale_after`` (a live writer holds one for
      milliseconds);
    * reclaim mutexes (:func:`_remove_stale_lock`) and clock probes of killed processes;
    * checkpoints of runs whose record exists and which nobody holds.

    Locks of dead owners are not removed here: the next claim of their run reclaims them.
    """
    removed: list[Path] = []
    now: float | None = None
    for entry in os.scandir(folder):
        name = entry.name
        if not name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        stale = False
        if name.endswith(".tmp"):
            match = _TMP_NAME.match(name)
            if match and match["host"] == _HOST_TAG and int(match["pid"]) != os.getpid():
                stale = not _pid_exists(int(match["pid"]))
            if not stale:
                now = _fs_now(folder) if now is None else now
                stale = now - st.st_mtime >= stale_after
        elif name.endswith(".lock.reclaim") or name.startswith(".dean_nb-clock~"):
            now = _fs_now(folder) if now is None else now
            stale = now - st.st_mtime >= stale_after
        elif name.endswith(".partial.json"):
            stem = name[1 : -len(".partial.json")]
            record = folder / f"{stem}.json"
            stale = record.exists() and not _lock_path(record).exists()
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
    return removed


def _executor_slots(pool: cf.Executor, max_workers: int | None) -> int:
    """How many runs an executor computes at once (claims are taken that far ahead)."""
    n = getattr(pool, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    client = getattr(pool, "_client", None)  # distributed's ClientExecutor
    if client is not None:
        with contextlib.suppress(Exception):
            n = sum(client.nthreads().values())
            if n > 0:
                return int(n)
    return max(1, max_workers or os.cpu_count() or 1)


def _stop_workers(pool: cf.Executor) -> None:
    """On an interrupt, end an own process pool's workers instead of waiting for their runs."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


class GridPaths(list):
    """What :func:`run_grid` returns: every configuration's record path, in input order.

    A ``list`` of :class:`~pathlib.Path`, plus what this call did with them:

    Attributes:
        computed: records this process computed and wrote.
        found: records already there, or finished by another process during this call.
        left_to_others: runs another live process had claimed when this one finished; their
            records appear when those processes finish (run the grid again to check).
    """

    def __init__(self, paths: Iterable[Path] = ()) -> None:
        super().__init__(paths)
        self.computed: list[Path] = []
        self.found: list[Path] = []
        self.left_to_others: list[Path] = []


def run_grid(
    configs: Iterable[ExperimentConfig],
    out_dir: str | os.PathLike[str],
    executor: cf.Executor | None = None,
    progress: bool = True,
    *,
    max_workers: int | None = None,
    command: str | None = None,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> GridPaths:
    """Run every configuration not yet on disk; one JSON file per run, written on completion.

    Several ``run_grid`` calls (processes on one machine, or machines sharing the folder)
    can work on one ``out_dir`` at once and share the work: each run is computed once.

    * **Claims.** Before computing a run, a process claims it by creating
      ``.<run_key>.lock`` beside the record with ``O_CREAT | O_EXCL`` (host, pid, start
      time and a random token inside). A run claimed by a live owner is skipped (and tried
      once more at the end); the runs still claimed by others then are reported on stderr
      and in :attr:`GridPaths.left_to_others`. A thread refreshes the mtime of every held
      lock every ``min(30 s, stale_after / 10)``: the heartbeat.
    * **Dead owners.** A claim is reclaimed when its owner is dead: on the same host as soon
      as its pid no longer exists; on any host when its heartbeat is older than
      ``stale_after`` seconds. Reclaimers take turns through an ``O_EXCL`` mutex
      (``.<run_key>.lock.reclaim``, held for microseconds), remove the lock only if it is
      still the one judged stale (same inode, token and mtime), and then claim with
      ``O_EXCL`` like anyone else, so two reclaimers cannot both win.
    * **Records are written once.** The record is checked again after claiming, and written
      by hard-linking a complete temporary file to its name, which fails if the name
      exists: a finished record is never replaced, even by a process whose stale-judged
      claim was taken over (it finds the record there and drops its copy).
    * **Per-step checkpoints.** Each run keeps its finished steps in
      ``.<run_key>.partial.json`` (:func:`checkpoint_path`, written atomically after every
      step); a killed run resumes from its last finished step, and on the same machine the
      resumed record equals an uninterrupted one (see :func:`run_active_learning`). The
      checkpoint is removed once the record is written. Temporary files left by a writer
      killed mid-write are removed by the next ``run_grid`` on the folder (only those whose
      pid is gone on this host, or older than ``stale_after``).
    * **Interrupts and failures.** With an executor, this (parent) process claims and writes;
      it takes claims just before submitting, for as many runs as the executor has workers.
      A failed run releases its claim (its checkpoint stays for the next attempt); on an
      interrupt (``KeyboardInterrupt`` included) queued runs are cancelled, the workers of
      an own process pool are stopped, and every claim is released before the exception
      propagates.

    On NFS: ``O_EXCL`` creation and ``link`` are atomic on the server for NFSv3 and later
    with a modern Linux client (NFSv2, or very old clients, do not guarantee ``O_EXCL``), and
    a retransmitted ``link`` is recognised by its link count; ``rename`` is atomic.
    Staleness is judged against the file system's own clock (a probe file's mtime, which an
    NFS server stamps, as it stamps ``utime`` heartbeats), so clock skew between clients
    does not matter; file systems that take mtimes from the client clock (some FUSE mounts)
    need clocks synchronised well within ``stale_after``. The pid test only applies to
    claims from the same host name: give machines (and containers sharing a folder)
    distinct host names. ``stale_after`` must exceed the longest pause of a live process
    (a suspended process, a hung mount) or its run is computed twice; the record is still
    written once. Results written before these rules (no lock files) are read as usual.

    Args:
        configs: the runs (e.g. from :func:`make_grid`). Duplicates run once.
        out_dir: results folder; created if missing. A run whose file
            (:func:`result_path`) exists is skipped, so re-running a killed grid only runs
            what is missing, and never rewrites a finished file.
        executor: any :class:`concurrent.futures.Executor`: a ``ProcessPoolExecutor``, a
            ``ThreadPoolExecutor``, or Dask's ``distributed.Client(...).get_executor()``.
            Results come back to this process, which writes them, so workers need no shared
            file system; workers write the per-step checkpoint themselves where the results
            folder exists for them (a ``ProcessPoolExecutor``, or Dask workers on the shared
            file system). A Dask worker on which the folder does not exist runs without a
            checkpoint, so a run lost with its worker restarts from step 0 (a folder of the
            same name that is another machine's local disk only helps retries that land on
            that machine again). Runs in *threads* of one process share torch's global RNG
            (dropout masks are drawn from it), so a pool of several threads gives valid but
            not bit-reproducible runs; processes (and Dask workers with one thread)
            reproduce the inline results exactly. ``None``: runs inline when
            ``max_workers == 1`` or only one run is pending, else a
            :func:`default_executor` (closed afterwards).
        progress: a progress bar over runs (per-run bars are silenced under an executor).
        max_workers: for the default executor.
        command: the command line that launched the grid, stored in every record's
            provenance (the CLI passes its own), so a record says how to make it again.
        stale_after: seconds without a heartbeat after which another process's claim counts
            as abandoned (same for every process on the folder; default 5 minutes).

    Returns:
        A :class:`GridPaths`: the JSON paths of every configuration, in input order (finished
        before, now, or, for :attr:`GridPaths.left_to_others`, still being computed by other
        processes).

    Raises:
        RuntimeError: after every other run has finished and been written, if some runs
            failed; the message names them and their errors.
    """
    check_float_range("stale_after", stale_after, 0.0, math.inf, low_inclusive=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unique: dict[Path, ExperimentConfig] = {}
    for config in configs:
        if not isinstance(config, ExperimentConfig):
            raise TypeError(f"configs must hold ExperimentConfig, got {type(config).__name__}")
        unique.setdefault(result_path(config, out), config)
    outcome = GridPaths(unique)
    _remove_stale_leftovers(out, stale_after)
    pending = [(p, c) for p, c in unique.items() if not p.exists()]
    outcome.found = [p for p in unique if p.exists()]
    if not pending:
        return outcome

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc="runs", initial=0)
    failures: list[tuple[str, BaseException]] = []
    claims = _Claims(stale_after)
    busy: list[tuple[Path, ExperimentConfig]] = []

    def tick() -> None:
        if bar is not None:
            bar.update(1)

    def claim(path: Path) -> _Claim | None:
        """Claim a run; ``None`` (and the run accounted for) when it is done or busy."""
        status, held = claims.acquire(path)
        if status == "done":
            outcome.found.append(path)
            tick()
        elif status == "busy":
            busy.append((path, unique[path]))
        return held

    def jobs():
        """The pending runs, then once more those that were busy (their owner may be gone)."""
        yield from pending
        retry = list(busy)
        busy.clear()
        yield from retry

    def finish(path: Path, payload: dict[str, Any]) -> None:
        if command is not None:
            payload.setdefault("provenance", {})["command"] = command
        try:
            _atomic_write_json(path, payload, overwrite=False)
        except FileExistsError:
            outcome.found.append(path)  # another process wrote it first: its record stays
        else:
            outcome.computed.append(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_partial_path(path))
        tick()

    try:
        inline = executor is None and (max_workers == 1 or len(pending) == 1)
        if inline:
            for path, config in jobs():
                held = claim(path)
                if held is None:
                    continue
                try:
                    finish(
                        path,
                        _execute(config.to_dict(), os.fspath(_partial_path(path)), held.check),
                    )
                except _ClaimLost:
                    busy.append((path, config))
                except Exception as err:  # keep going: the other runs are worth having
                    failures.append((path.stem, err))
                finally:
                    claims.release(held)
        else:
            own = executor is None
            pool = default_executor(max_workers) if own else executor
            slots = _executor_slots(pool, max_workers)
            futures: dict[cf.Future, tuple[Path, _Claim]] = {}
            queue = jobs()
            interrupted = True
            try:

                def submit_more() -> None:
                    while len(futures) < slots:
                        job = next(queue, None)
                        if job is None:
                            return
                        path, config = job
                        held = claim(path)
                        if held is None:
                            continue
                        try:
                            future = pool.submit(
                                _execute,
                                config.replace(quiet=True).to_dict(),
                                os.fspath(_partial_path(path)),
                            )
                        except BaseException:
                            claims.release(held)
                            raise
                        futures[future] = (path, held)

                submit_more()
                while futures:
                    finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                    for future in finished:
                        path, held = futures.pop(future)
                        try:
                            finish(path, future.result())
                        except Exception as err:
                            failures.append((path.stem, err))
                        finally:
                            claims.release(held)
                    submit_more()
                interrupted = False
            finally:
                for future in futures:
                    future.cancel()
                if own:
                    if interrupted:
                        _stop_workers(pool)
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        claims.close()  # releases the claims of runs not finished (interrupts included)
        if bar is not None:
            bar.close()
    outcome.left_to_others = [p for p, _ in busy if not p.exists()]
    outcome.found += [p for p, _ in busy if p.exists()]
    if outcome.left_to_others:
        names = ", ".join(p.stem for p in outcome.left_to_others[:5])
        more = len(outcome.left_to_others) - 5
        print(
            f"{len(outcome.left_to_others)} of {len(pending)} runs left to other processes "
            f"that hold live claims on them ({names}{f', and {more} more' if more > 0 else ''}); "
            f"their records appear in {out} when they finish",
            file=sys.stderr,
            flush=True,
        )
    if failures:
        lines = "\n".join(f"  {name}: {type(err).__name__}: {err}" for name, err in failures)
        raise RuntimeError(f"{len(failures)} of {len(pending)} runs failed:\n{lines}")
    return outcome


# --------------------------------------------------------------------------- results


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
_REPEAT_FIELDS = ("seed", *_LOCATION_FIELDS)


class SkippedRecordWarning(UserWarning):
    """:func:`load_results` skipped a JSON file that is not a readable run record."""


def config_id(config: ExperimentConfig) -> str:
    """A short hash of everything a run computes except its seed (10 hex digits).

    Runs with the same ``config_id`` are repeats of one configuration and may be averaged;
    it ignores the seed and the fields :func:`run_key` ignores (``root``, ``device``,
    ``num_threads``, ``quiet``, ``download``).
    """
    payload = {k: v for k, v in config.to_dict().items() if k not in _REPEAT_FIELDS}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _show(value: Any) -> str:
    """A config value as a label shows it: ``5``, ``0.0005``, ``none``, ``{"linkage":"average"}``."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return repr(value) if isinstance(value, float) else str(value)


def _method_labels(configs: dict[str, ExperimentConfig]) -> dict[str, str]:
    """``config_id -> method label``: the method name, or, where one (dataset, method, epsilon)
    has several configurations, the name with the fields that differ, ``dean [epochs=5]``."""
    groups: dict[tuple[str, str, float], list[str]] = {}
    for cid, cfg in configs.items():
        groups.setdefault((cfg.dataset, cfg.method, cfg.epsilon), []).append(cid)
    labels: dict[str, str] = {}
    for (_, method, _), ids in groups.items():
        if len(ids) == 1:
            labels[ids[0]] = method
            continue
        values = {cid: configs[cid].to_dict() for cid in ids}
        differing = [
            f.name
            for f in dataclasses.fields(ExperimentConfig)
            if f.name not in _REPEAT_FIELDS
            and len({json.dumps(v[f.name], sort_keys=True) for v in values.values()}) > 1
        ]
        for cid in ids:
            shown = ", ".join(f"{name}={_show(values[cid][name])}" for name in differing)
            labels[cid] = f"{method} [{shown}]"
    return labels


def _record_rows(result: RunResult, path: Path, cid: str) -> list[dict[str, Any]]:
    """The rows of one run in :func:`load_results`; ``ValueError`` if a step is malformed."""
    cfg = result.config
    n0 = result.steps[0].n_labels if result.steps else 0
    try:
        return [
            {
                "dataset": cfg.dataset,
                "strategy": cfg.strategy,
                "denoise": cfg.denoise,
                "method": cfg.method,
                "epsilon": cfg.epsilon,
                "seed": cfg.seed,
                "step": int(s.step),
                "n_labels": int(s.n_labels),
                "n_acquired": int(s.n_labels) - int(n0),
                "test_accuracy": float(s.test_accuracy),
                "sigma": float(s.sigma),
                "beta": math.nan if s.beta is None else float(s.beta),
                "wall_time": float(s.wall_time),
                "run": path.stem,
                "config_id": cid,
            }
            for s in result.steps
        ]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} has a malformed step ({err})") from None


def load_results(out_dir: str | os.PathLike[str]):
    """Every run JSON in ``out_dir`` as a tidy ``pandas.DataFrame``: one row per run x step.

    Columns: :data:`RESULT_COLUMNS`. ``method`` is ``strategy`` or ``strategy+denoise``;
    ``n_acquired`` counts labels beyond the initial set; ``beta`` is NaN where undefined;
    ``run`` is the file stem; ``config_id`` (:func:`config_id`) is equal for runs that differ
    only in their seed (and where they ran).

    Runs of different configurations are never mixed: where one (dataset, method, epsilon)
    has runs of several configurations (say ``dean`` with 50 and with 5 epochs), their
    ``method`` is labelled with the fields that differ (``dean [epochs=5]``,
    ``dean [epochs=50]``), so every table and figure shows them apart.

    Temporary files of an interrupted write are ignored; a file that is not a readable run
    record (truncated, not JSON, JSON without ``config``) is skipped with a
    :class:`SkippedRecordWarning` naming it.
    """
    import pandas as pd

    folder = Path(out_dir)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"results folder {folder} {what}")
    rows: list[dict[str, Any]] = []
    configs: dict[str, ExperimentConfig] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            result = load_run(path)
            cid = config_id(result.config)
            rows += _record_rows(result, path, cid)
        except (OSError, ValueError) as err:
            warnings.warn(f"{err}; skipped it", SkippedRecordWarning, stacklevel=2)
            continue
        configs.setdefault(cid, result.config)
    labels = _method_labels(configs)
    for row in rows:
        row["method"] = labels[row["config_id"]]
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
    missing = [c for c in [*keys, value] if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; pass the frame of load_results")
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
    missing = [c for c in ("dataset", "epsilon", "method", "step", "sigma") if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; pass the frame of load_results")
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


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, typed value)`` for an :class:`ExperimentConfig` field.

    The value is converted to the field's type; ``none``/``null`` gives ``None`` where the
    field allows it; booleans accept true/false/yes/no/1/0.
    """
    if "=" not in text:
        raise ValueError(f"override must look like key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    hints = typing.get_type_hints(ExperimentConfig)
    if key not in hints:
        raise ValueError(f"unknown override key {key!r}; known fields: {sorted(hints)}")
    hint = hints[key]
    optional = False
    base = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next(a for a in args if a is not type(None))
    if optional and raw.lower() in ("none", "null", ""):
        return key, None
    if base is dict or typing.get_origin(base) is dict:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"override {key} needs a JSON object, got {raw!r}") from err
        if not isinstance(value, dict):
            raise ValueError(f"override {key} needs a JSON object, got {raw!r}")
        return key, value
    try:
        if base is bool:
            low = raw.lower()
            if low in ("true", "yes", "1", "on"):
                return key, True
            if low in ("false", "no", "0", "off"):
                return key, False
            raise ValueError(raw)
        if base is int:
            return key, int(raw)
        if base is float:
            return key, float(raw)
    except ValueError as err:
        kind = getattr(base, "__name__", str(base))
        raise ValueError(f"override {key} needs a {kind} value, got {raw!r}") from err
    return key, raw
