"""Results: the tidy frame of a results folder, its tables, and comparing methods seed by seed.

Chapters 5 and 6 and ``python -m dean_nb report``. :func:`load_results` reads every run record
of a folder (:mod:`dean_nb.records`) into one tidy :class:`pandas.DataFrame`, one row per run x
step (:data:`RESULT_COLUMNS`); :func:`config_id` tells repeats of one configuration (which may
be averaged) from other configurations (which are labelled apart, never mixed).
:func:`summary_table` gives the paper's Table-2 view (mean +/- std test accuracy over seeds at
each number of labels), :func:`format_summary` its text cells, and :func:`uncertainty_table` the
Table-1 view (mean sigma per step).

The rest judges the paper's claims about its learning curves (Gupta et al. 2019, section 5 and
Fig. 2) on those records:

1. *cold start*: DeAn does no worse than random sampling after the first acquisition;
2. *later*: DeAn does no worse than the better of BALD and entropy at the end of the run;
3. *noise*: under a noisy oracle, DeAn trained through the denoising layer beats plain DeAn.

At a given seed every strategy starts from the same split, initial network and oracle answers
(the package draws them from the seed, not from the strategy), so two methods are compared on
the seeds both have: the gap is the mean of the per-seed differences and its standard error is
their sample std over sqrt(n), usually much smaller than the methods' own std bands.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import LOCATION_FIELDS, ExperimentConfig
from .noise import noise_label
from .records import RunResult, load_run
from .validation import check_columns

__all__ = [
    "PAPER_MNIST_ACCURACY",
    "PAPER_MNIST_SIGMA",
    "RESULT_COLUMNS",
    "Claim",
    "PairedGap",
    "SkippedRecordWarning",
    "claims_table",
    "config_id",
    "format_claims",
    "format_summary",
    "label_against",
    "load_results",
    "paired_gap",
    "paper_claims",
    "paper_gap",
    "settled_against",
    "summary_table",
    "uncertainty_table",
    "verdict",
]


# --------------------------------------------------------------------------- the tidy frame


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
_REPEAT_FIELDS = ("seed", *LOCATION_FIELDS)


class SkippedRecordWarning(UserWarning):
    """:func:`load_results` skipped a JSON file that is not a readable run record."""


def config_id(config: ExperimentConfig) -> str:
    """A short hash of everything a run computes except its seed (10 hex digits).

    Runs with the same ``config_id`` are repeats of one configuration and may be averaged;
    it ignores the seed and the fields :func:`run_key` ignores (``root``, ``device``,
    ``num_threads``, ``quiet``, ``download``).
    """
    payload = config.computed_fields()
    del payload["seed"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _show(name: str, field_value: Any) -> str:
    """A config value as a label shows it: ``5``, ``0.0005``, ``none``, ``{"linkage":"average"}``,
    a noise matrix by its hash (``matrix-1a2b3c4d``)."""
    if name == "noise":
        return noise_label(field_value)
    if field_value is None:
        return "none"
    if isinstance(field_value, dict):
        return json.dumps(field_value, sort_keys=True, separators=(",", ":"))
    return repr(field_value) if isinstance(field_value, float) else str(field_value)


# Fields that are columns of the frame of their own, never part of a method's label.
_COLUMN_FIELDS = ("dataset", "strategy", "denoise", "epsilon")


def label_against(config: ExperimentConfig, reference: ExperimentConfig) -> str:
    """The method label of ``config``'s runs in :func:`load_results` with ``reference``.

    The method name (``dean``, ``bald+denoise``) when ``config`` differs from ``reference``
    only in the grid's axes (strategy, denoise, epsilon, seed) and where it runs, else the name
    with the fields that differ and their values: ``dean [beta_scale=1.0]``,
    ``dean [strategy_options={"beta":10}]``, ``dean [noise=pairflip]``.
    """
    values, ref = dataclasses.asdict(config), dataclasses.asdict(reference)
    differing = [
        f.name
        for f in dataclasses.fields(ExperimentConfig)
        if f.name not in _REPEAT_FIELDS + _COLUMN_FIELDS
        and json.dumps(values[f.name], sort_keys=True) != json.dumps(ref[f.name], sort_keys=True)
    ]
    shown = ", ".join(f"{name}={_show(name, values[name])}" for name in differing)
    return f"{config.method} [{shown}]" if differing else config.method


def _method_labels(
    configs: dict[str, ExperimentConfig], reference: ExperimentConfig | None = None
) -> dict[str, str]:
    """``config_id -> method label``: the method name, or, where one (dataset, method, epsilon)
    has several configurations, the name with the fields that differ, ``dean [epochs=5]``.
    With a ``reference``, every label is relative to it instead (:func:`label_against`)."""
    if reference is not None:
        return {cid: label_against(cfg, reference) for cid, cfg in configs.items()}
    groups: dict[tuple[str, str, float], list[str]] = {}
    for cid, cfg in configs.items():
        groups.setdefault((cfg.dataset, cfg.method, cfg.epsilon), []).append(cid)
    labels: dict[str, str] = {}
    for (_, method, _), ids in groups.items():
        if len(ids) == 1:
            labels[ids[0]] = method
            continue
        values = {cid: dataclasses.asdict(configs[cid]) for cid in ids}  # every field
        differing = [
            f.name
            for f in dataclasses.fields(ExperimentConfig)
            if f.name not in _REPEAT_FIELDS
            and len({json.dumps(v[f.name], sort_keys=True) for v in values.values()}) > 1
        ]
        for cid in ids:
            shown = ", ".join(f"{name}={_show(name, values[cid][name])}" for name in differing)
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


def load_results(out_dir: str | os.PathLike[str], *, reference: ExperimentConfig | None = None):
    """Every run JSON in ``out_dir`` as a tidy ``pandas.DataFrame``: one row per run x step.

    Columns: :data:`RESULT_COLUMNS`. ``method`` is ``strategy`` or ``strategy+denoise``;
    ``n_acquired`` counts labels beyond the initial set; ``beta`` is NaN where undefined;
    ``run`` is the file stem; ``config_id`` (:func:`config_id`) is equal for runs that differ
    only in their seed (and where they ran).

    Runs of different configurations are never mixed: where one (dataset, method, epsilon)
    has runs of several configurations (say ``dean`` with 50 and with 5 epochs), their
    ``method`` is labelled with the fields that differ (``dean [epochs=5]``,
    ``dean [epochs=50]``), so every table and figure shows them apart; so are two oracle
    channels at one noise level (``dean [noise=pairflip]``, ``dean [noise=symmetric]``, a
    matrix by its hash, ``dean [noise=matrix-1a2b3c4d]``).

    With a ``reference`` configuration (say the preset a chapter is about), labels are relative
    to it instead: a run that differs from ``reference`` only in the grid's axes (strategy,
    denoise, epsilon, seed) and where it ran keeps its plain method name, and any other run is
    labelled with the fields in which it differs from ``reference`` (``dean [beta_scale=1.0]``,
    ``dean [noise=pairflip]``), whatever else the folder holds.

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
    labels = _method_labels(configs, reference)
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
    check_columns(df, [*keys, value])
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
    check_columns(df, ("dataset", "epsilon", "method", "step", "sigma"))
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


# ------------------------------------------------------------ paired gaps and the paper's claims

# Gupta et al. (2019), MNIST, b = 200 from 40 initial labels, mean of 20 runs, read from their
# curves (Fig. 2, 3; appendix Table 2 agrees to a few tenths): (epsilon, method) -> accuracy at
# {200, 1000} acquired labels.
PAPER_MNIST_ACCURACY: dict[tuple[float, str], dict[int, float]] = {
    (0.0, "random"): {200: 0.875, 1000: 0.952},
    (0.0, "bald"): {200: 0.800, 1000: 0.966},
    (0.0, "entropy"): {200: 0.780, 1000: 0.973},
    (0.0, "dean"): {200: 0.874, 1000: 0.974},
    (0.3, "random"): {200: 0.733, 1000: 0.830},
    (0.3, "bald"): {200: 0.697, 1000: 0.880},
    (0.3, "entropy"): {200: 0.682, 1000: 0.897},
    (0.3, "dean"): {200: 0.737, 1000: 0.895},
    (0.3, "dean+denoise"): {200: 0.779, 1000: 0.948},
}


# Gupta et al. (2019), Table 1, MNIST, epsilon = 0.3: the model uncertainty sigma at iterations
# t = 1..5, trained without ("regular") and with the denoising layer ("denoise").
PAPER_MNIST_SIGMA: dict[str, tuple[float, ...]] = {
    "regular": (0.25, 0.25, 0.21, 0.20, 0.19),
    "denoise": (0.25, 0.21, 0.15, 0.11, 0.10),
}


@dataclass(frozen=True)
class Claim:
    """One claim as a gap: ``method`` minus the best of ``baselines`` must reach ``threshold``.

    ``n_acquired`` counts labels beyond the initial set; ``threshold`` is in accuracy units
    (``-0.01``: "no worse, up to one point"; ``+0.01``: "better by at least one point").
    """

    name: str
    epsilon: float
    n_acquired: int
    method: str
    baselines: tuple[str, ...]
    threshold: float

    def __post_init__(self) -> None:
        if not self.baselines:
            raise ValueError("baselines must name at least one method")
        if self.n_acquired < 0:
            raise ValueError(f"n_acquired must be >= 0, got {self.n_acquired}")


@dataclass(frozen=True)
class PairedGap:
    """The gap ``method - baseline`` in test accuracy over the seeds both methods have.

    ``mean`` and ``stderr`` are NaN when no seed is paired; ``stderr`` is NaN for one seed.
    ``baseline`` is the baseline that was used (the best one, by mean accuracy);
    ``n_better`` counts the paired seeds on which ``method`` scored higher (a sign test's count).
    """

    method: str
    baseline: str
    epsilon: float
    n_acquired: int
    mean: float
    stderr: float
    n_seeds: int
    n_better: int = 0


_EMPTY = (math.nan, math.nan, 0)  # mean, stderr, n_seeds of a gap with no paired seed


def _check_frame(df) -> None:
    check_columns(df, ("epsilon", "n_acquired", "seed", "method", "test_accuracy"))


def paired_gap(
    df, *, method: str, baselines: Sequence[str], epsilon: float, n_acquired: int
) -> PairedGap:
    """Per-seed gap of ``method`` against the best of ``baselines`` at one point of the curves.

    Args:
        df: the frame of :func:`load_results` (one dataset).
        method: e.g. ``"dean"`` or ``"dean+denoise"``.
        baselines: candidate baselines; the one with the highest mean accuracy over its seeds
            at this point is used (those without records are skipped).
        epsilon: the noise level of the runs.
        n_acquired: labels acquired beyond the initial set.

    Returns:
        A :class:`PairedGap`; ``n_seeds == 0`` when ``method`` or every baseline lacks records
        there, or when they share no seed.
    """
    if not baselines:
        raise ValueError("baselines must name at least one method")
    _check_frame(df)
    if df.empty:
        return PairedGap(method, baselines[0], epsilon, n_acquired, *_EMPTY)
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        raise ValueError(
            f"df holds several datasets {sorted(df['dataset'].unique())}; pass one at a time"
        )
    at = df[df["epsilon"].sub(epsilon).abs().lt(1e-9) & (df["n_acquired"] == n_acquired)]
    acc = at.pivot_table(index="seed", columns="method", values="test_accuracy")
    present = [b for b in baselines if b in acc.columns]
    if method not in acc.columns or not present:
        return PairedGap(
            method, present[0] if present else baselines[0], epsilon, n_acquired, *_EMPTY
        )
    best = max(present, key=lambda b: acc[b].mean())
    diff = (acc[method] - acc[best]).dropna()
    n = len(diff)
    if n == 0:
        return PairedGap(method, best, epsilon, n_acquired, *_EMPTY)
    stderr = float(diff.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    n_better = int((diff > 0).sum())
    return PairedGap(method, best, epsilon, n_acquired, float(diff.mean()), stderr, n, n_better)


def verdict(gap: PairedGap, threshold: float, *, min_seeds: int = 3, n_stderr: float = 2.0) -> str:
    """``"yes"`` when ``gap.mean >= threshold``, else ``"no"``; ``" (tentative)"`` is added
    when fewer than ``min_seeds`` seeds are paired or the threshold lies within ``n_stderr``
    standard errors of the gap. ``"not measured"`` without paired seeds."""
    if gap.n_seeds == 0:
        return "not measured"
    word = "yes" if gap.mean >= threshold else "no"
    settled = settled_against(gap, threshold, min_seeds=min_seeds, n_stderr=n_stderr)
    return word if settled else f"{word} (tentative)"


def settled_against(
    gap: PairedGap, threshold: float, *, min_seeds: int = 3, n_stderr: float = 2.0
) -> bool:
    """Whether ``gap`` is clear of ``threshold``: at least ``min_seeds`` paired seeds and the
    threshold at least ``n_stderr`` standard errors from the gap's mean (the rule behind every
    ``(tentative)`` of :func:`verdict` and :func:`dean_nb.head_to_head.outcome`)."""
    return (
        gap.n_seeds >= min_seeds
        and not math.isnan(gap.stderr)
        and abs(gap.mean - threshold) >= n_stderr * gap.stderr
    )


def paper_claims(
    early: int, late: int, noisy_epsilon: float = 0.3, margin: float = 0.01
) -> list[Claim]:
    """The paper's three claims as five gaps (claims 1 and 2 at epsilon 0 and ``noisy_epsilon``).

    Args:
        early: acquired labels at which the cold start is judged (the paper's MNIST: 200).
        late: acquired labels at which the late phase and denoising are judged (MNIST: 1000).
        noisy_epsilon: the noise level of the noisy runs.
        margin: claims 1 and 2 ("no worse") allow a shortfall below ``margin``; claim 3
            ("pays off") needs a gain of at least ``margin``.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must lie in [0, 1), got {margin}")
    if not 0.0 < noisy_epsilon < 1.0:
        raise ValueError(f"noisy_epsilon must lie in (0, 1), got {noisy_epsilon}")
    cold, later = "1. cold start: DeAn vs Random", "2. later: DeAn vs best of BALD/Entropy"
    return [
        Claim(cold, 0.0, early, "dean", ("random",), -margin),
        Claim(cold, noisy_epsilon, early, "dean", ("random",), -margin),
        Claim(later, 0.0, late, "dean", ("bald", "entropy"), -margin),
        Claim(later, noisy_epsilon, late, "dean", ("bald", "entropy"), -margin),
        Claim(
            "3. noise: DeAn+denoise vs DeAn", noisy_epsilon, late, "dean+denoise", ("dean",), margin
        ),
    ]


def paper_gap(claim: Claim) -> float:
    """The claim's gap in the paper's MNIST means (:data:`PAPER_MNIST_ACCURACY`); NaN where
    the paper has no number for it (another noise level or number of labels)."""

    def acc(method: str) -> float:
        return PAPER_MNIST_ACCURACY.get((claim.epsilon, method), {}).get(claim.n_acquired, math.nan)

    baselines = [acc(b) for b in claim.baselines]
    if all(math.isnan(b) for b in baselines):
        return math.nan
    return acc(claim.method) - max(b for b in baselines if not math.isnan(b))


def claims_table(df, claims: Sequence[Claim], *, min_seeds: int = 3, n_stderr: float = 2.0):
    """One row per claim: the paired gap on ``df``, the paper's MNIST gap and both verdicts.

    Columns: ``claim, epsilon, n_acquired, baseline, gap, stderr, n_seeds, n_better, verdict,
    paper_gap, paper_verdict`` (numbers in accuracy units; ``paper_*`` NaN/"" where the paper
    has no number).
    """
    import pandas as pd

    rows = []
    for claim in claims:
        gap = paired_gap(
            df,
            method=claim.method,
            baselines=claim.baselines,
            epsilon=claim.epsilon,
            n_acquired=claim.n_acquired,
        )
        reference = paper_gap(claim)
        rows.append(
            {
                "claim": claim.name,
                "epsilon": claim.epsilon,
                "n_acquired": claim.n_acquired,
                "baseline": gap.baseline,
                "gap": gap.mean,
                "stderr": gap.stderr,
                "n_seeds": gap.n_seeds,
                "n_better": gap.n_better,
                "verdict": verdict(gap, claim.threshold, min_seeds=min_seeds, n_stderr=n_stderr),
                "paper_gap": reference,
                "paper_verdict": ""
                if math.isnan(reference)
                else ("yes" if reference >= claim.threshold else "no"),
            }
        )
    return pd.DataFrame(rows)


def format_claims(table):
    """Text view of :func:`claims_table`: gaps as signed fractions ``gap ± stderr``, and
    ``better`` as ``k/n``: the method scored higher on k of the n paired seeds."""

    def signed(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:+.3f}"

    def ours(row) -> str:
        if row["n_seeds"] == 0:
            return "n/a"
        return signed(row["gap"]) + ("" if math.isnan(row["stderr"]) else f" ± {row['stderr']:.3f}")

    columns = ["claim", "epsilon", "n_acquired", "baseline", "gap", "better", "verdict"]
    return table.assign(
        epsilon=table["epsilon"].map(lambda e: f"{e:g}"),
        gap=table.apply(ours, axis=1),
        better=table.apply(lambda row: f"{row['n_better']}/{row['n_seeds']}", axis=1),
        paper_gap=table["paper_gap"].map(signed),
    )[[*columns, "paper_gap", "paper_verdict"]]
