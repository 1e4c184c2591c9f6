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
import socket
import subprocess
import tempfile
import time
import types
import typing
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
    "RunResult",
    "SkippedRecordWarning",
    "StepRecord",
    "config_id",
    "format_summary",
    "load_results",
    "load_run",
    "make_grid",
    "method_label",
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
) -> RunResult:
    """One active-learning run (Algorithm 1; Algorithm 2 when ``epsilon > 0``/``denoise``).

    Args:
        config: the run (dataset, strategy, noise, protocol sizes, seed, device).
        progress: show a progress bar over steps; ``None`` means ``not config.quiet``.
        on_step: called with each :class:`StepRecord` as soon as it is complete (live
            plots in a notebook, logging).

    Returns:
        A :class:`RunResult` with ``n_steps + 1`` step records. The test accuracy of step 0 is
        the initial model's; the last step selects nothing.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    show = (not config.quiet) if progress is None else bool(progress)
    with torch_threads(config.num_threads):
        return _run(config, show, on_step)


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
    config: ExperimentConfig, show: bool, on_step: Callable[[StepRecord], None] | None
) -> RunResult:
    """The body of :func:`run_active_learning` (see there)."""
    from . import scoring, strategies, training
    from .data import make_split
    from .oracle import NoisyOracle, symmetric_channel

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

    # The oracle answers every training image once, up front (common random numbers across
    # strategies); only acquired indices ever read these answers.
    true_channel = symmetric_channel(k, config.epsilon)
    oracle = NoisyOracle(true_channel, seed=purpose_seed(seed, "oracle"))
    oracle_answers = oracle.label(data.y_train)  # (N,) on the CPU

    labelled = split.initial.clone()  # (L,) indices into x_train
    labels = data.y_train[labelled].clone()  # (L,) labels the model trains on
    pool = split.pool.clone()  # (P,) remaining pool indices

    steps: list[StepRecord] = []
    bar = _progress_bar(config.n_steps + 1, show, f"{config.method} eps={config.epsilon:g}")
    try:
        for step in range(config.n_steps + 1):
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
                noisy = oracle_answers[chosen]
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
            if bar is not None:
                bar.set_postfix(acc=f"{record.test_accuracy:.3f}", sigma=f"{record.sigma:.3f}")
                bar.update(1)
            if on_step is not None:
                on_step(record)
    finally:
        if bar is not None:
            bar.close()

    return RunResult(
        config=config,
        steps=steps,
        initial_indices=split.initial.tolist(),
        true_channel=true_channel.tolist(),
        provenance=provenance(device),
    )


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


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write JSON so that ``path`` is either absent or complete (tmp file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide records from other users
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _execute(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration; what an executor's worker calls (top level, so it pickles)."""
    return run_active_learning(ExperimentConfig.from_dict(config_dict)).to_dict()


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


def run_grid(
    configs: Iterable[ExperimentConfig],
    out_dir: str | os.PathLike[str],
    executor: cf.Executor | None = None,
    progress: bool = True,
    *,
    max_workers: int | None = None,
    command: str | None = None,
) -> list[Path]:
    """Run every configuration not yet on disk; one JSON file per run, written on completion.

    Args:
        configs: the runs (e.g. from :func:`make_grid`). Duplicates run once.
        out_dir: results folder; created if missing. A run whose file
            (:func:`result_path`) exists is skipped, so re-running a killed grid only runs
            what is missing, and never rewrites a finished file.
        executor: any :class:`concurrent.futures.Executor`: a ``ProcessPoolExecutor``, a
            ``ThreadPoolExecutor``, or Dask's ``distributed.Client(...).get_executor()``.
            Results come back to this process, which writes them, so workers need no shared
            file system. Runs in *threads* of one process share torch's global RNG (dropout
            masks are drawn from it), so a pool of several threads gives valid but not
            bit-reproducible runs; processes (and Dask workers with one thread) reproduce
            the inline results exactly. ``None``: runs inline when ``max_workers == 1`` or only one run is
            pending, else a :func:`default_executor` (closed afterwards).
        progress: a progress bar over runs (per-run bars are silenced under an executor).
        max_workers: for the default executor.
        command: the command line that launched the grid, stored in every record's
            provenance (the CLI passes its own), so a record says how to make it again.

    Returns:
        The JSON paths of every configuration, in input order (finished before or now).

    Raises:
        RuntimeError: after every other run has finished and been written, if some runs
            failed; the message names them and their errors.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unique: dict[Path, ExperimentConfig] = {}
    for config in configs:
        if not isinstance(config, ExperimentConfig):
            raise TypeError(f"configs must hold ExperimentConfig, got {type(config).__name__}")
        unique.setdefault(result_path(config, out), config)
    paths = list(unique)
    pending = [(p, c) for p, c in unique.items() if not p.exists()]
    if not pending:
        return paths

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc="runs", initial=0)
    failures: list[tuple[str, BaseException]] = []

    def done(path: Path, payload: dict[str, Any]) -> None:
        if command is not None:
            payload.setdefault("provenance", {})["command"] = command
        _atomic_write_json(path, payload)
        if bar is not None:
            bar.update(1)

    try:
        inline = executor is None and (max_workers == 1 or len(pending) == 1)
        if inline:
            for path, config in pending:
                try:
                    done(path, _execute(config.to_dict()))
                except Exception as err:  # keep going: the other runs are worth having
                    failures.append((path.stem, err))
        else:
            own = executor is None
            pool = default_executor(max_workers) if own else executor
            try:
                futures = {
                    pool.submit(_execute, config.replace(quiet=True).to_dict()): path
                    for path, config in pending
                }
                for future in cf.as_completed(futures):
                    path = futures[future]
                    try:
                        done(path, future.result())
                    except Exception as err:
                        failures.append((path.stem, err))
            finally:
                if own:
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        lines = "\n".join(f"  {name}: {type(err).__name__}: {err}" for name, err in failures)
        raise RuntimeError(f"{len(failures)} of {len(pending)} runs failed:\n{lines}")
    return paths


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
