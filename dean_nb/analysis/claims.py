"""The paper's claims, judged seed by seed on a results frame.

This module judges the paper's claims about its learning curves (Gupta et al. 2019, section 5 and
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

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dean_nb.validation import check_columns

__all__ = [
    "PAPER_MNIST_ACCURACY",
    "PAPER_MNIST_SIGMA",
    "Claim",
    "PairedGap",
    "claims_table",
    "format_claims",
    "paired_gap",
    "paper_claims",
    "paper_gap",
    "settled_against",
    "verdict",
]


# Gupta et al. (2019), appendix Table 2, MNIST, b = 200 from 40 initial labels, mean of 20
# runs: (epsilon, method) -> test accuracy at {200, 1000} acquired labels (the figures plot the
# same means).
PAPER_MNIST_ACCURACY: dict[tuple[float, str], dict[int, float]] = {
    (0.0, "random"): {200: 0.8719, 1000: 0.9517},
    (0.0, "bald"): {200: 0.8003, 1000: 0.9700},
    (0.0, "entropy"): {200: 0.7769, 1000: 0.9728},
    (0.0, "dean"): {200: 0.8760, 1000: 0.9740},
    (0.1, "random"): {200: 0.8187, 1000: 0.9194},
    (0.1, "bald"): {200: 0.7613, 1000: 0.9496},
    (0.1, "entropy"): {200: 0.7428, 1000: 0.9573},
    (0.1, "dean"): {200: 0.8345, 1000: 0.9581},
    (0.1, "dean+denoise"): {200: 0.8488, 1000: 0.9687},
    (0.3, "random"): {200: 0.7310, 1000: 0.8266},
    (0.3, "bald"): {200: 0.6954, 1000: 0.8797},
    (0.3, "entropy"): {200: 0.6811, 1000: 0.8937},
    (0.3, "dean"): {200: 0.7318, 1000: 0.8946},
    (0.3, "dean+denoise"): {200: 0.7781, 1000: 0.9478},
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
    ``(tentative)`` of :func:`verdict` and :func:`dean_nb.analysis.head_to_head.outcome`)."""
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
