"""What one active-learning run is: :class:`ExperimentConfig`, its presets, its identity.

Chapter "Experiments". A configuration names everything that fixes a run (dataset, strategy,
noise, protocol sizes, seed) and where it happens (data folder, device, threads). Every field is
validated when the configuration is built, and the strategy is built once with its options, so
a bad value is refused before any training; the loop (:mod:`dean_nb.experiment.loop`) and the grid runner
(:mod:`dean_nb.experiment.grid`) trust a built configuration.

:data:`PRESETS` holds the named protocols (``quick`` on the embedded ``digits``, ``medium`` on
Fashion-MNIST, ``paper`` on the paper's datasets). :meth:`ExperimentConfig.computed_fields` are
the fields that change what a run computes (all but :data:`LOCATION_FIELDS`); :func:`run_key`
hashes them into a run's stable file stem. :func:`method_label` is how tables and plots name a
strategy (``dean+denoise``), and :func:`parse_override` reads a ``key=value`` override of the
command line into a field's type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dean_nb.experiment.presets import PRESETS
from dean_nb.learner.models import CONV_DROPOUTS
from dean_nb.problem.datasets import DATASETS, NUM_CLASSES, load_dataset
from dean_nb.problem.noise import (
    DEFAULT_NOISE,
    flip_rate,
    noise_channel,
    noise_label,
    resolve_noise,
)
from dean_nb.validation import check_float_range, check_int_range, is_import_path

__all__ = [
    "DENOISE_CHOICES",
    "DENOISE_SUFFIX",
    "FORWARD_SUFFIX",
    "LEGACY_CONV_DROPOUT",
    "LOCATION_FIELDS",
    "ExperimentConfig",
    "file_label",
    "method_label",
    "parse_override",
    "run_key",
    "split_method",
]


#: Suffix of a strategy name in :func:`dean_nb.experiment.grid.make_grid` (and the CLI) that switches
#: denoising on.
DENOISE_SUFFIX = "+denoise"

#: Suffix of a strategy name that trains it with forward correction through an estimated
#: channel (``denoise="forward"``).
FORWARD_SUFFIX = "+forward"

#: The values of ``ExperimentConfig.denoise``: no noise model, the paper's learned layer
#: (``True``), or forward correction through a channel estimated at every step.
DENOISE_CHOICES: tuple[bool | str, ...] = (False, True, "forward")


#: The ``conv_dropout`` of every configuration written before the field existed: a stored
#: config without it is element-wise, and an element-wise config is stored without it.
LEGACY_CONV_DROPOUT = "element"


#: Fields of :class:`ExperimentConfig` that say where or how verbosely a run happens, not what
#: it computes: they are left out of the run key, so a grid resumes on another machine or device.
LOCATION_FIELDS: tuple[str, ...] = ("root", "device", "num_threads", "quiet", "download")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one active-learning run (one strategy, one noise level, one seed).

    The defaults are the ``quick`` preset on the embedded ``digits`` data (seconds on a CPU);
    :meth:`preset` gives the paper's protocol for each dataset.

    Attributes:
        dataset: one of :data:`dean_nb.problem.datasets.DATASETS`, or the import path
            ``package.module:function`` of a function returning one's own data
            (:func:`dean_nb.problem.datasets.dataset_from_path`). Only its syntax is checked
            here (a record of a data set this process cannot import still reads); a run
            imports it before it starts. Its presets are those of the preset's first data set.
        model: ``None``, the data set's own network (for an import-path data set:
            :func:`dean_nb.learner.models.default_model`), or the import path of a factory
            ``(num_classes, input_shape, seed) -> nn.Module``
            (:func:`dean_nb.learner.models.model_from_path`). Left out of the dict when
            ``None``, so the records made before the field keep their keys.
        root: data folder for the torchvision datasets (``None``: :func:`dean_nb.problem.datasets.resolve_root`).
        download: let torchvision fetch missing files into ``root``.
        strategy: a name of :func:`dean_nb.strategies.available`.
        strategy_options: extra keyword options of the strategy (see its class in
            :mod:`dean_nb.strategies`), e.g. ``{"linkage": "average"}`` for ``dean`` or
            ``{"n_joint_samples": 200}`` for ``batchbald``. For ``dean`` they override the
            ``beta_kind``/``beta_scale``/``n_clusters`` fields. JSON values only. The
            strategy is built with them when the config is, so an unknown option or an
            invalid value is refused then, not at the first acquisition.
        epsilon: oracle noise, the flip probability of the channel, in [0, 1). With a matrix
            ``noise`` it is the matrix's flip probability ``1 - trace(T) / K``
            (:func:`dean_nb.problem.noise.flip_rate`), set from the matrix: leave it at 0 or give
            that value.
        noise: the oracle's channel (:mod:`dean_nb.problem.noise`): ``"symmetric"`` (eq. 1, the
            paper's), ``"pairflip"`` (class ``j`` answered ``j + 1 mod K`` with probability
            ``epsilon``), or a K x K column-stochastic matrix ``T[i][j] = p(y'=i | y=j)``,
            given as a list of lists or as the path of a JSON file (``*.json``) holding one.
            A file is read and checked when the configuration is built and the matrix kept
            in its place, so the run key and the record depend on the entries, not the path.
        denoise: ``True``: train through a learned noisy-channel layer (section 4, Algorithm
            2); ``"forward"``: forward correction (Patrini et al. 2017): every step after the
            first trains a plain model, estimates the channel from its anchor points
            (:func:`dean_nb.learner.forward.anchor_channel`) and trains the step's model again
            through that fixed estimate (step 0 has only the clean initial labels: one plain
            model, the identity recorded as its channel); ``False``: neither.
        oracle_memory: the share of images whose answer repeats when asked again, in
            ``[0, 1]`` (:class:`dean_nb.problem.oracle.RelabellingOracle`): 1, the paper's
            resolute noise and the default, repeats every answer; 0 draws a fresh answer from
            the channel at every query. Only re-labelling strategies ask again.
        relabel_folds: how the re-labelling strategies see the acquired images: 0 (the
            default), the step model's own MC-dropout predictions; ``k >= 2``, out-of-sample
            predictions by ``k``-fold cross-validation
            (:func:`dean_nb.experiment.step_model.out_of_fold_probs`; ``k`` more trainings a
            step), as ActiveLab assumes.
        conv_dropout: how the network drops its convolutional maps
            (:data:`dean_nb.learner.models.CONV_DROPOUTS`): ``"channel"``, whole maps, as the authors'
            code does (the default); ``"element"``, single activations, as the records made
            before this field existed (chapter 6's ablation).
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
        batch_size: training minibatch size (``None``: the :class:`dean_nb.learner.training.TrainConfig` default).
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
    noise: str | list[list[float]] = DEFAULT_NOISE
    denoise: bool | str = False
    oracle_memory: float = 1.0
    relabel_folds: int = 0
    conv_dropout: str = "channel"
    model: str | None = None
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
        if not (self.dataset in DATASETS or is_import_path(self.dataset)):
            raise ValueError(
                f"dataset must be one of {', '.join(DATASETS)}, or an import path "
                f"'package.module:function' of one's own data; got {self.dataset!r}"
            )
        if self.model is not None and not is_import_path(self.model):
            raise ValueError(
                "model must be None or an import path 'package.module:function' of a factory "
                f"(num_classes, input_shape, seed) -> nn.Module; got {self.model!r}"
            )
        _check_strategy_name(self.strategy)
        self._check_flags()
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
        self._check_noise()
        self._check_int("initial_per_class", 1)
        self._check_int("validation_size", 1)
        self._check_int("acquisition_size", 1)
        self._check_int("n_steps", 0)
        self._check_int("epochs", 1)
        self._check_int("n_mc_samples", 2)
        self._check_int("n_clusters", 1, optional=True)
        self._check_int("relabel_folds", 0)
        if self.relabel_folds == 1:
            raise ValueError("relabel_folds must be 0 (no cross-validation) or at least 2, got 1")
        if self.conv_dropout not in CONV_DROPOUTS:
            raise ValueError(
                f"conv_dropout must be one of {', '.join(CONV_DROPOUTS)}; got {self.conv_dropout!r}"
            )
        from dean_nb.strategies import annealing  # the algorithms load only to build one

        annealing.check_beta_kind(self.beta_kind)
        annealing.check_beta_scale(self.beta_scale)
        inf = math.inf
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
        check_float_range("oracle_memory", self.oracle_memory, 0.0, 1.0)  # before the float()
        for name in ("epsilon", "beta_scale", "lr", "weight_decay", "oracle_memory"):
            object.__setattr__(self, name, float(getattr(self, name)) + 0.0)
        self._check_strategy_options()

    def _check_flags(self) -> None:
        """``download`` and ``quiet`` are booleans; ``denoise`` a boolean or ``"forward"``."""
        if self.denoise != "forward":
            if not isinstance(self.denoise, (bool, np.bool_)):
                error = ValueError if isinstance(self.denoise, str) else TypeError
                raise error(f"denoise must be True, False or 'forward', got {self.denoise!r}")
            object.__setattr__(self, "denoise", bool(self.denoise))
        for name in ("download", "quiet"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))

    def _check_noise(self) -> None:
        """Resolve ``noise`` (a file is read into its matrix) and check ``epsilon`` against it:
        in [0, 1) for a named channel; for a matrix 0 or its flip rate, which it becomes."""
        noise = resolve_noise(self.noise, self._noise_classes())
        object.__setattr__(self, "noise", noise)
        if isinstance(noise, str):
            check_float_range("epsilon", self.epsilon, 0.0, 1.0, high_inclusive=False)
            return
        given = check_float_range("epsilon", self.epsilon, 0.0, 1.0)
        rate = round(flip_rate(noise), 12) + 0.0  # 0.2, not 0.19999999999999996
        if given != 0.0 and not math.isclose(given, rate, rel_tol=0.0, abs_tol=1e-9):
            raise ValueError(
                f"epsilon must be 0 or {rate:.12g} with a noise matrix: a matrix's epsilon is "
                f"its flip rate 1 - trace(T) / K, taken from the matrix; got {given}"
            )
        object.__setattr__(self, "epsilon", rate)

    def _noise_classes(self) -> int:
        """K for the noise check: a built-in's; for an import path (not imported here) the
        size of a matrix channel, checked against the data when a run starts
        (:func:`dean_nb.experiment.loop.check_import_paths`); a named channel needs none."""
        if self.dataset in NUM_CLASSES:
            return NUM_CLASSES[self.dataset]
        noise = os.fspath(self.noise) if isinstance(self.noise, os.PathLike) else self.noise
        if isinstance(noise, str) and noise.lower().endswith(".json"):
            try:
                with open(noise, encoding="utf-8") as handle:
                    noise = json.load(handle)
            except (OSError, ValueError):
                return 0  # resolve_noise names the file and the problem
        return len(noise) if isinstance(noise, list | tuple | np.ndarray | torch.Tensor) else 0

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
        try:
            _strategies().get(self.strategy, **self.strategy_kwargs(self.effective_n_clusters))
        except (TypeError, ValueError) as err:
            raise type(err)(f"strategy_options of {self.strategy!r}: {err}") from None

    # -- derived ------------------------------------------------------------------------

    @property
    def effective_n_clusters(self) -> int:
        """``n_clusters``, or ``5 b`` (the paper's ``N(b) = floor(5 b)``) when unset."""
        if self.n_clusters is not None:
            return self.n_clusters
        from dean_nb.strategies.annealing import default_n_clusters

        return default_n_clusters(self.acquisition_size)

    def strategy_kwargs(self, n_candidates: int) -> dict[str, Any]:
        """Keyword options of :func:`dean_nb.strategies.get` for a step with ``n_candidates``
        pool images: DeAn's come from ``beta_kind``, ``beta_scale`` and the cluster count
        (capped at ``n_candidates``), then ``strategy_options`` override them."""
        options: dict[str, Any] = {}
        if self.strategy == "dean":
            options = {
                "beta_kind": self.beta_kind,
                "beta_scale": self.beta_scale,
                "n_clusters": min(self.effective_n_clusters, n_candidates),
            }
        return {**options, **self.strategy_options}

    def computed_fields(self) -> dict[str, Any]:
        """The fields that change what a run computes: every field but :data:`LOCATION_FIELDS`
        (what :func:`run_key` hashes, and what a checkpoint must match to be resumed).

        ``noise`` is left out when it is the default (see :meth:`to_dict`), so the runs
        recorded before the field existed keep their keys.
        """
        return {k: v for k, v in self.to_dict().items() if k not in LOCATION_FIELDS}

    @property
    def num_classes(self) -> int:
        """K: a built-in data set's; an import-path data set is loaded (once per process)."""
        if self.dataset in NUM_CLASSES:
            return NUM_CLASSES[self.dataset]
        return load_dataset(self.dataset).num_classes

    def oracle_channel(self) -> torch.Tensor:
        """The oracle's channel ``T`` of this run, float64 ``(K, K)``, ``T[i, j] = p(y'=i | y=j)``."""
        return noise_channel(self.noise, self.num_classes, self.epsilon)

    @property
    def method(self) -> str:
        """A display name: the strategy, with ``+denoise`` when denoising (e.g. ``dean+denoise``)."""
        return method_label(self.strategy, self.denoise)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field, but five that records written before them lack:
        ``noise`` when it is the default ``"symmetric"``, ``conv_dropout`` when it is
        ``"element"`` (every network before the field existed), ``oracle_memory`` when it is
        1, ``relabel_folds`` when it is 0 and ``model`` when it is ``None``. Those records read back unchanged, with the same run keys (:meth:`from_dict`
        fills them in)."""
        fields = dataclasses.asdict(self)
        if fields["model"] is None:
            del fields["model"]
        if fields["noise"] == DEFAULT_NOISE:
            del fields["noise"]
        if fields["conv_dropout"] == LEGACY_CONV_DROPOUT:
            del fields["conv_dropout"]
        for name, default in (("oracle_memory", 1.0), ("relabel_folds", 0)):
            if fields[name] == default:
                del fields[name]
        return fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``. Missing ones take
        defaults, but a missing ``conv_dropout`` is ``"element"``: the record predates it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown ExperimentConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**{"conv_dropout": LEGACY_CONV_DROPOUT, **data})

    # -- presets --------------------------------------------------------------------------

    @classmethod
    def preset(cls, dataset: str, preset: str = "quick", **overrides: Any) -> ExperimentConfig:
        """The configuration of a named preset for a dataset, with ``overrides`` applied.

        ``quick`` exists for ``digits`` (CPU, seconds per run), ``medium`` for
        ``fashion-mnist``, ``paper`` for ``mnist``, ``emnist``, ``cifar10``,
        ``svhn`` and ``cifar100`` (the paper's protocol; a GPU). See :data:`PRESETS`. An
        import-path data set takes any preset's sizes (those of its first data set: ``quick``
        gives ``digits``'), every one overridable.
        """
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
        table = PRESETS[preset]
        if is_import_path(dataset):
            table = {dataset: next(iter(table.values()))}
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


def _strategies() -> types.ModuleType:
    """The strategy registry, imported when a configuration is built, not when this module is
    (a record or a config can be read without the algorithms)."""
    from dean_nb import strategies

    return strategies


def _check_strategy_name(name: str) -> str:
    names = tuple(_strategies().available())
    if name not in names:
        raise ValueError(f"strategy must be one of {', '.join(names)}; got {name!r}")
    return name


def method_label(strategy: str, denoise: bool | str) -> str:
    """``"dean"``, ``"dean+denoise"`` or ``"dean+forward"``: how tables and plots name a
    strategy."""
    if denoise == "forward":
        return f"{strategy}{FORWARD_SUFFIX}"
    return f"{strategy}{DENOISE_SUFFIX}" if denoise else strategy


def split_method(name: str) -> tuple[str, bool | str | None]:
    """The inverse of :func:`method_label`: ``"dean+denoise"`` -> ``("dean", True)``,
    ``"dean+forward"`` -> ``("dean", "forward")``, ``"dean"`` -> ``("dean", None)`` (no
    suffix: the grid's ``denoise_options`` decide)."""
    if name.endswith(DENOISE_SUFFIX):
        return name[: -len(DENOISE_SUFFIX)], True
    if name.endswith(FORWARD_SUFFIX):
        return name[: -len(FORWARD_SUFFIX)], "forward"
    return name, None


def file_label(dataset: str) -> str:
    """A data set's name as file names carry it: a built-in's unchanged, an import path's
    ``:`` (and any other character a file name should not hold) as ``-``."""
    return re.sub(r"[^A-Za-z0-9.+-]", "-", dataset)


def run_key(config: ExperimentConfig) -> str:
    """A stable file stem for a run: readable fields plus a short hash of the full config.

    ``digits_dean+denoise_eps0.3_seed2_1a2b3c4d`` (an import-path data set
    ``mypkg.data:load`` as ``mypkg.data-load``); a channel other than the symmetric one is
    named before the noise level (``digits_dean_pairflip-eps0.3_seed2_...``,
    ``digits_dean_matrix-5e6f7a8b-eps0.12_seed2_...``). The hash covers every field that
    changes what is computed (:meth:`ExperimentConfig.computed_fields`: not ``root``,
    ``device``, ``num_threads``, ``quiet``, ``download``), a matrix channel by its entries.
    Records (:func:`dean_nb.experiment.grid.result_path`) and checkpoints are named by it.
    """
    payload = config.computed_fields()
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
    channel = "" if config.noise == DEFAULT_NOISE else f"{noise_label(config.noise)}-"
    dataset = file_label(config.dataset)
    return f"{dataset}_{config.method}_{channel}eps{config.epsilon:g}_seed{config.seed}_{digest}"


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
            if key == "denoise" and low == "forward":
                return key, "forward"
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
