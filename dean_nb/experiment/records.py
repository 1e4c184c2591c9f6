"""Run records: what a run measured and chose, written once and read back.

Chapter "Experiments". A :class:`RunResult` is one finished run (its
:class:`~dean_nb.experiment.config.ExperimentConfig`, one :class:`StepRecord` per step, the initial set,
the oracle's channel) plus its :func:`provenance`: versions, commit, date, host, device and the
kind of CPU, which says where the record can be re-made exactly (:mod:`dean_nb.experiment.replay`).

Records are JSON files. :func:`atomic_write_json` writes a file so that it is either absent or
complete (a temporary file in the same folder, then a rename, or a hard link that never
replaces an existing record); :func:`load_run` reads one back and names the file and the reason
when it is not a run record. The loop's checkpoints (:mod:`dean_nb.experiment.loop`) are written the same
way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import json
import math
import os
import platform
import re
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dean_nb import __version__
from dean_nb.experiment.config import ExperimentConfig

__all__ = [
    "RunResult",
    "StepRecord",
    "atomic_write_json",
    "load_run",
    "local_writer_pid",
    "provenance",
]


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
            denoising (with ``denoise="forward"``, the step's anchor-point estimate), else
            ``None``.
        wall_time: seconds the step took (training, evaluation, sigma, selection).
        relabelled: the labelled images this step asked about again (indices into the
            training set), in the order chosen; ``None`` (left out of the JSON) when the
            strategy re-labels nothing, as every record before re-labelling existed.
        relabel_answers: the oracle's new answers for ``relabelled``.
        n_images: the number of distinct images the step's model trained on, where it
            differs from ``n_labels`` (re-labelled images count once here, once per answer
            there); ``None`` (left out) otherwise.

    ``n_labels`` counts labels paid for: the initial labels and every answer since, so runs
    that re-label and runs that do not are compared at an equal number of answers.
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
    relabelled: list[int] | None = None
    relabel_answers: list[int] | None = None
    n_images: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``inf`` beta is written as the string ``"inf"``; the re-labelling
        fields are left out when ``None``, so a run that re-labels nothing is written as
        before they existed)."""
        data = dataclasses.asdict(self)
        data["beta"] = _float_to_json(self.beta)
        for name in ("relabelled", "relabel_answers", "n_images"):
            if data[name] is None:
                del data[name]
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
        provenance: package and torch versions, git commit, date, host, device (and, from
            the loop, ``resumed_from_step`` for a resumed run and ``labeller`` for a run
            answered by a labeller other than the simulated oracle:
            :func:`dean_nb.experiment.labellers.recorded_labeller`).
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
        return atomic_write_json(Path(path), self.to_dict())


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


# --------------------------------------------------------------------------- atomic writes


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it

# This machine's name as it appears in temporary file names (no path separators or "~").
_HOST_TAG = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
# A temporary file of atomic_write_json: .<target>~<host>~<pid>~<random>.tmp
_TMP_NAME = re.compile(r"^\..+~(?P<host>[A-Za-z0-9._-]+)~(?P<pid>\d+)~[^~]*\.tmp$")


def atomic_write_json(path: Path, payload: dict[str, Any], *, overwrite: bool = True) -> Path:
    """Write JSON so that ``path`` is either absent or complete (tmp file + rename).

    With ``overwrite=False`` an existing ``path`` is never replaced: the complete temporary
    file is hard-linked to ``path`` (``link`` fails when the name exists, atomically, NFS
    included) and ``FileExistsError`` is raised when another writer got there first. On file
    systems without hard links it falls back to check-then-rename (a narrow race).

    The temporary file is ``.<name>~<host>~<pid>~<random>.tmp`` in the same folder, so that
    :func:`dean_nb.experiment.grid.run_grid` can tell a killed writer's leftover from a live writer's
    file (:func:`local_writer_pid`).
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


def local_writer_pid(name: str) -> int | None:
    """The pid of the process on this machine that writes the temporary file ``name`` of
    :func:`atomic_write_json`; ``None`` when ``name`` is not such a file or another machine
    writes it."""
    match = _TMP_NAME.match(name)
    if match is None or match["host"] != _HOST_TAG:
        return None
    return int(match["pid"])
