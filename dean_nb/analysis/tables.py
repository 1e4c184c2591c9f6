"""Tables of recorded runs beyond the paper's two: what chapters 5 and 6 print about a grid.

:mod:`dean_nb.analysis.results` holds the tidy frame (one row per run x step), the paper's Table-1 and
Table-2 views and the paired gaps of the paper's claims. This module builds the other tables
the results chapters show from the same inputs, so the chapters call them instead of carrying
their own pandas:

- :func:`protocol_table`: the sizes of one or more configurations side by side;
- :func:`mean_accuracy`: mean test accuracy over seeds, (epsilon, n_labels) x method;
- :func:`final_step_table`: mean +/- std at the largest budget, method x epsilon;
- :func:`best_methods`: the method with the highest mean accuracy at given budgets;
- :func:`paired_gaps`, :func:`format_gaps`: many seed-by-seed gaps and their text view;
- :func:`denoising_gains`: each strategy with and without the denoising layer, paired by seed;
- :func:`first_batch_balance`: classes in the first acquired batch of each run;
- :func:`seeds_per_method`, :func:`median_beta`: seed counts and DeAn's temperature per step;
- :func:`seeds_complete`: whether a grid is in (enough seeds of every method named), so a
  chapter judges a discussion only when its runs are all in;
- :func:`network_comparison`: the same grid on several networks, side by side.

Accuracies are fractions unless a function says ``percent``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from dean_nb.analysis.claims import PairedGap, paired_gap
from dean_nb.experiment.config import DENOISE_SUFFIX, ExperimentConfig
from dean_nb.experiment.records import RunResult
from dean_nb.validation import check_columns, check_int_range

__all__ = [
    "best_methods",
    "denoising_gains",
    "final_step_table",
    "first_batch_balance",
    "format_gaps",
    "mean_accuracy",
    "median_beta",
    "network_comparison",
    "paired_gaps",
    "protocol_table",
    "seeds_complete",
    "seeds_per_method",
]


def protocol_table(configs: Mapping[str, ExperimentConfig]):
    """The protocol sizes of each configuration: one column per ``configs`` key, one row per size.

    Rows: initial labels per class and in all, validation images, labels per acquisition
    ``b``, acquisitions, epochs, MC-dropout samples ``T``, pool subset per step (``None``: the
    whole pool), clusters ``N(b)`` and the temperature rule ``beta = f(sigma)``.
    """
    import pandas as pd

    def sizes(c: ExperimentConfig) -> dict[str, object]:
        return {
            "initial labels per class": c.initial_per_class,
            "initial labels": c.num_classes * c.initial_per_class,
            "validation images": c.validation_size,
            "labels per acquisition b": c.acquisition_size,
            "acquisitions": c.n_steps,
            "epochs per model": c.epochs,
            "MC-dropout samples T": c.n_mc_samples,
            "pool subset per step": c.pool_subset,
            "clusters N(b)": c.effective_n_clusters,
            "beta = f(sigma)": f"{c.beta_kind}, scale {c.beta_scale:g}",
        }

    return pd.DataFrame({name: sizes(c) for name, c in configs.items()})


def mean_accuracy(df):
    """Mean test accuracy over seeds: rows ``(epsilon, n_labels)``, one column per method."""
    check_columns(df, ("epsilon", "n_labels", "method", "test_accuracy"))
    return df.pivot_table(
        index=["epsilon", "n_labels"], columns="method", values="test_accuracy", aggfunc="mean"
    )


def _method_order(methods: Iterable[str], strategies: Sequence[str]) -> list[str]:
    """``strategies`` in their order, each followed by its ``+denoise`` method, where present."""
    present = set(methods)
    return [m for s in strategies for m in (s, s + DENOISE_SUFFIX) if m in present]


def final_step_table(summary, strategies: Sequence[str]):
    """Mean +/- std test accuracy (percent, one decimal) at the largest number of labels.

    Args:
        summary: :func:`dean_nb.analysis.results.summary_table` of one dataset.
        strategies: the row order; each strategy is followed by its ``+denoise`` method, and
            methods of other strategies are left out.

    Returns:
        A frame of text cells ``"93.1 ± 1.0"``: one row per method, one column ``eps = e`` per
        noise level (columns named ``epsilon``); ``""`` where a method did not run.
    """
    check_columns(summary, ("method", "epsilon", "n_labels", "mean", "std"))
    last = summary[summary["n_labels"] == summary["n_labels"].max()]
    cells = last.assign(
        cell=[
            f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(last["mean"], last["std"], strict=True)
        ]
    )
    wide = cells.pivot(index="method", columns="epsilon", values="cell").fillna("")
    order = _method_order(wide.index, strategies)
    return wide.loc[order].rename(columns=lambda e: f"eps = {e:g}")


def best_methods(summary, n_labels: Iterable[int]):
    """The method with the highest mean accuracy per (epsilon, number of labels).

    Returns a frame with one row per (epsilon, n_labels) in ``n_labels``, in that order, and
    columns ``epsilon, n_labels, method, mean``; ties go to the method first in ``summary``.
    """
    check_columns(summary, ("method", "epsilon", "n_labels", "mean"))
    at = summary[summary["n_labels"].isin(list(n_labels))]
    best = (
        at.sort_values("mean", ascending=False, kind="stable")
        .groupby(["epsilon", "n_labels"])
        .head(1)
        .sort_values(["epsilon", "n_labels"])
    )
    return best[["epsilon", "n_labels", "method", "mean"]].reset_index(drop=True)


def paired_gaps(
    df, quoted: Iterable[tuple[float, int, str, str]]
) -> dict[tuple[float, str], PairedGap]:
    """Seed-by-seed gaps ``method - baseline`` (:func:`dean_nb.analysis.claims.paired_gap`), many at once.

    Args:
        df: the frame of :func:`dean_nb.analysis.results.load_results` (one dataset).
        quoted: ``(epsilon, n_acquired, method, baseline)`` per gap.

    Returns:
        ``{(epsilon, n_acquired, "method - baseline"): PairedGap}`` in the order of ``quoted``.

    Raises:
        ValueError: ``quoted`` names one gap twice.
    """
    gaps: dict[tuple[float, int, str], PairedGap] = {}
    for eps, n_acquired, method, baseline in quoted:
        key = (float(eps), int(n_acquired), f"{method} - {baseline}")
        if key in gaps:
            raise ValueError(f"gap {key} quoted twice")
        gaps[key] = paired_gap(
            df, method=method, baselines=(baseline,), epsilon=eps, n_acquired=n_acquired
        )
    return gaps


def format_gaps(gaps: Mapping[tuple[float, int, str], PairedGap]):
    """Text view of :func:`paired_gaps`: columns ``ε, acquired, gap, points, better``.

    ``points`` is ``"+1.0 ± 0.3"``: the mean gap and its standard error in accuracy points;
    ``better`` is ``k/n``, the first method scored higher on k of the n paired seeds.
    """
    import pandas as pd

    rows = [
        {
            "ε": eps,
            "acquired": g.n_acquired,
            "gap": name,
            "points": f"{100 * g.mean:+.1f} ± {100 * g.stderr:.1f}",
            "better": f"{g.n_better}/{g.n_seeds}",
        }
        for (eps, _, name), g in gaps.items()
    ]
    return pd.DataFrame(rows, columns=["ε", "acquired", "gap", "points", "better"])


def denoising_gains(df, strategies: Sequence[str], epsilon: float, n_acquired: int):
    """Each strategy with and without the denoising layer at one point of the curves.

    Args:
        df: the frame of :func:`dean_nb.analysis.results.load_results` (one dataset).
        strategies: rows, in order; each needs runs with and without ``+denoise``.
        epsilon: the noise level; n_acquired: labels acquired beyond the initial set.

    Returns:
        Rows per strategy, columns ``with, without`` (mean accuracy over seeds, percent),
        ``gain, s.e.`` (the paired gap ``with - without`` and its standard error, percent) and
        ``seeds improved`` (text ``"k of n"``).
    """
    import pandas as pd

    check_columns(df, ("epsilon", "n_acquired", "method", "test_accuracy"))
    at = df[df["epsilon"].sub(epsilon).abs().lt(1e-9) & (df["n_acquired"] == n_acquired)]
    means = at.groupby("method")["test_accuracy"].mean()
    rows = {}
    for s in strategies:
        g = paired_gap(
            df, method=s + DENOISE_SUFFIX, baselines=(s,), epsilon=epsilon, n_acquired=n_acquired
        )
        rows[s] = {
            "with": 100 * means.get(s + DENOISE_SUFFIX, float("nan")),
            "without": 100 * means.get(s, float("nan")),
            "gain": 100 * g.mean,
            "s.e.": 100 * g.stderr,
            "seeds improved": f"{g.n_better} of {g.n_seeds}",
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def first_batch_balance(runs: Iterable[RunResult]):
    """Class balance of the first acquired batch, averaged over the runs of each method.

    Returns a frame indexed by ``(epochs, method)`` with columns ``classes`` (the number of
    classes among the batch's true labels) and ``largest class`` (the size of its largest
    class), each the mean over the runs.
    """
    import pandas as pd

    rows = []
    for run in runs:
        counts = Counter(run.steps[0].true_labels)
        rows.append(
            {
                "method": run.config.method,
                "epochs": run.config.epochs,
                "classes": len(counts),
                "largest class": max(counts.values()),
            }
        )
    if not rows:
        raise ValueError("no runs given")
    return pd.DataFrame(rows).groupby(["epochs", "method"]).mean()


def seeds_per_method(df):
    """How many seeds each method has at each noise level: rows ``epsilon``, columns methods
    (0 where a method has none)."""
    check_columns(df, ("epsilon", "method", "seed"))
    return df.groupby(["epsilon", "method"])["seed"].nunique().unstack("method", fill_value=0)


def seeds_complete(
    df, methods: Iterable[str], epsilons: Iterable[float], *, n_seeds: int = 5
) -> bool:
    """Whether every one of ``methods`` has at least ``n_seeds`` seeds at every one of
    ``epsilons`` in ``df`` (a method or noise level without records has none)."""
    check_int_range("n_seeds", n_seeds, low=1)
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method labels, not the string {methods!r}")
    seeds = seeds_per_method(df)
    return all(
        method in seeds.columns and eps in seeds.index and seeds.loc[eps, method] >= n_seeds
        for method in methods
        for eps in epsilons
    )


def median_beta(df, strategy: str = "dean"):
    """Median over seeds of ``beta = f(sigma)`` per selection, for one strategy's runs.

    Rows ``(epsilon, method)`` (with and without ``+denoise``), columns the steps that made a
    selection (the last step selects nothing and is dropped).
    """
    check_columns(df, ("strategy", "epsilon", "method", "step", "beta"))
    betas = df[df["strategy"] == strategy].pivot_table(
        index=["epsilon", "method"], columns="step", values="beta", aggfunc="median"
    )
    return betas.dropna(axis=1, how="all")


def network_comparison(frames: Mapping[str, object], quoted: Iterable[tuple[float, int, str, str]]):
    """The same grid made on several networks: one row per network, for the text to compare.

    Args:
        frames: ``{network name: frame of load_results}``, each holding the quoted methods.
        quoted: ``(epsilon, n_acquired, method, baseline)`` per gap, as :func:`paired_gaps`.

    Returns:
        A frame indexed by network name: ``sigma_0``, the mean step-0 sigma of the runs without
        the denoising layer; ``beta_0``, DeAn's median beta at its first selection (NaN without
        DeAn runs); then one column per quoted gap, ``"dean - random, ε=0, +20"``, holding the
        text ``"+1.0 ± 0.3"`` of :func:`format_gaps` (mean and standard error, in points).
    """
    import pandas as pd

    quoted = list(quoted)
    rows = {}
    for name, df in frames.items():
        check_columns(df, ("step", "sigma", "denoise", "strategy", "beta"))
        plain_start = df[(df["step"] == 0) & ~df["denoise"]]
        dean_start = plain_start[plain_start["strategy"] == "dean"]["beta"]
        row = {
            "sigma_0": round(plain_start["sigma"].mean(), 3),
            "beta_0": round(dean_start.median(), 2),
        }
        for (eps, n_acquired, gap_name), g in paired_gaps(df, quoted).items():
            label = f"{gap_name}, ε={eps:g}, +{n_acquired}"
            row[label] = f"{100 * g.mean:+.1f} ± {100 * g.stderr:.1f}"
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
