"""Tables of recorded runs (``dean_nb.analysis.tables``), on synthetic tidy frames with known values.

Properties: every table is a view of the same per-seed accuracies: the final-step cells are
the summary's mean and std, the best method has the largest mean, a paired gap is the mean of
per-seed differences and flips sign with its arguments, a denoising gain is the paired gap of
a strategy with and without the layer, and counts (seeds, classes) are what was recorded.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dean_nb.analysis import tables
from dean_nb.analysis.claims import paired_gap
from dean_nb.analysis.results import summary_table
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.problem.datasets import NUM_CLASSES

STRATEGIES = ("random", "bald", "dean")
EPSILONS = (0.0, 0.3)
N_LABELS = (20, 40, 60)


def tidy(seed: int = 0, seeds=range(4), denoise=("random", "dean")) -> pd.DataFrame:
    """A tidy frame like ``load_results``: random accuracies per method, epsilon, seed, step."""
    rng = np.random.default_rng(seed)
    methods = [*STRATEGIES, *(s + "+denoise" for s in denoise)]
    rows = []
    for method in methods:
        strategy = method.removesuffix("+denoise")
        for eps in EPSILONS:
            for s in seeds:
                for step, n in enumerate(N_LABELS):
                    rows.append(
                        {
                            "dataset": "digits",
                            "strategy": strategy,
                            "denoise": method.endswith("+denoise"),
                            "method": method,
                            "epsilon": eps,
                            "seed": s,
                            "step": step,
                            "n_labels": n,
                            "n_acquired": n - N_LABELS[0],
                            "test_accuracy": float(rng.uniform(0.5, 1.0)),
                            "sigma": float(rng.uniform(0.0, 0.5)),
                            "beta": float(rng.uniform(1, 50)) if step < 2 else math.nan,
                            "run": f"{method}_{eps}_{s}",
                        }
                    )
    return pd.DataFrame(rows)


def at(df, method, eps, n_labels):
    sel = df[(df["method"] == method) & (df["epsilon"] == eps) & (df["n_labels"] == n_labels)]
    return sel.set_index("seed")["test_accuracy"]


@pytest.mark.parametrize("seed", range(3))
def test_mean_accuracy_is_the_mean_over_seeds(seed):
    df = tidy(seed)
    mean = tables.mean_accuracy(df)
    for method in mean.columns:
        for eps, n in mean.index:
            assert mean.loc[(eps, n), method] == pytest.approx(at(df, method, eps, n).mean())


@pytest.mark.parametrize("seed", range(3))
def test_final_step_cells_are_the_summary_at_the_largest_budget(seed):
    df = tidy(seed)
    final = tables.final_step_table(summary_table(df), ("dean", "random"))
    # the order: each strategy then its +denoise; bald (not asked for) is left out
    assert list(final.index) == ["dean", "dean+denoise", "random", "random+denoise"]
    assert list(final.columns) == ["eps = 0", "eps = 0.3"]
    for method in final.index:
        for eps, column in zip(EPSILONS, final.columns, strict=True):
            acc = at(df, method, eps, N_LABELS[-1])
            mean, std = (float(x) for x in final.loc[method, column].split(" ± "))
            assert mean == pytest.approx(100 * acc.mean(), abs=0.05)
            assert std == pytest.approx(100 * acc.std(ddof=1), abs=0.05)


def test_final_step_leaves_cells_empty_where_a_method_did_not_run():
    df = tidy()
    df = df[~((df["method"] == "dean+denoise") & (df["epsilon"] == 0.0))]
    final = tables.final_step_table(summary_table(df), ("dean",))
    assert final.loc["dean+denoise", "eps = 0"] == ""
    assert final.loc["dean+denoise", "eps = 0.3"] != ""


@pytest.mark.parametrize("seed", range(3))
def test_best_method_has_the_largest_mean(seed):
    df = tidy(seed)
    summary = summary_table(df)
    best = tables.best_methods(summary, [40, 60])
    assert list(zip(best["epsilon"], best["n_labels"], strict=True)) == [
        (e, n) for e in EPSILONS for n in (40, 60)
    ]
    for _, row in best.iterrows():
        here = summary[
            (summary["epsilon"] == row["epsilon"]) & (summary["n_labels"] == row["n_labels"])
        ]
        assert row["mean"] == here["mean"].max()
        assert row["method"] == here.loc[here["mean"].idxmax(), "method"]


@pytest.mark.parametrize("seed", range(3))
def test_paired_gaps_are_per_seed_differences_and_flip_sign(seed):
    df = tidy(seed)
    quoted = [(0.3, 20, "dean", "random"), (0.3, 20, "random", "dean"), (0.0, 40, "bald", "dean")]
    gaps = tables.paired_gaps(df, quoted)
    assert list(gaps) == [
        (0.3, 20, "dean - random"),
        (0.3, 20, "random - dean"),
        (0.0, 40, "bald - dean"),
    ]
    ab, ba = gaps[0.3, 20, "dean - random"], gaps[0.3, 20, "random - dean"]
    diff = at(df, "dean", 0.3, 40) - at(df, "random", 0.3, 40)
    assert ab.mean == pytest.approx(diff.mean())
    assert ab.stderr == pytest.approx(diff.std(ddof=1) / math.sqrt(len(diff)))
    assert ab.mean == pytest.approx(-ba.mean) and ab.stderr == pytest.approx(ba.stderr)
    assert ab.n_better + ba.n_better == ab.n_seeds == 4  # no ties in random floats
    text = tables.format_gaps(gaps)
    assert list(text.columns) == ["ε", "acquired", "gap", "points", "better"]
    assert text.loc[0, "points"] == f"{100 * ab.mean:+.1f} ± {100 * ab.stderr:.1f}"
    assert text.loc[0, "better"] == f"{ab.n_better}/4" and text.loc[0, "acquired"] == 20


def test_paired_gaps_refuse_a_gap_quoted_twice():
    with pytest.raises(ValueError, match="twice"):
        tables.paired_gaps(tidy(), [(0.0, 20, "dean", "random")] * 2)


@pytest.mark.parametrize("seed", range(3))
def test_denoising_gain_is_the_paired_gap_with_and_without_the_layer(seed):
    df = tidy(seed)
    gains = tables.denoising_gains(df, ("random", "dean"), 0.3, 40)
    assert list(gains.index) == ["random", "dean"]
    for s in gains.index:
        gap = paired_gap(df, method=s + "+denoise", baselines=(s,), epsilon=0.3, n_acquired=40)
        assert gains.loc[s, "gain"] == pytest.approx(100 * gap.mean)
        assert gains.loc[s, "s.e."] == pytest.approx(100 * gap.stderr)
        # every seed is paired, so the gain is also the difference of the means
        assert gains.loc[s, "gain"] == pytest.approx(gains.loc[s, "with"] - gains.loc[s, "without"])
        assert gains.loc[s, "seeds improved"] == f"{gap.n_better} of 4"


def run(method: str, epochs: int, labels: list[int]):
    """What ``first_batch_balance`` reads of a RunResult."""
    config = SimpleNamespace(method=method, epochs=epochs)
    return SimpleNamespace(config=config, steps=[SimpleNamespace(true_labels=labels)])


def test_first_batch_balance_counts_classes_and_the_largest_class():
    rng = np.random.default_rng(0)
    runs = [run("bald", 20, [1] * 9 + [2] * 11), run("bald", 20, [0, 1, 2, 3] * 5)]
    runs += [run("dean", 50, list(rng.integers(0, 10, size=20))) for _ in range(5)]
    balance = tables.first_batch_balance(runs)
    assert balance.loc[(20, "bald"), "classes"] == (2 + 4) / 2
    assert balance.loc[(20, "bald"), "largest class"] == (11 + 5) / 2
    dean = balance.loc[(50, "dean")]
    # a batch of 20 over k classes has a largest class of at least 20 / k
    assert 1 <= dean["classes"] <= 10 and dean["largest class"] >= 20 / dean["classes"]
    with pytest.raises(ValueError):
        tables.first_batch_balance([])


def test_seeds_per_method_counts_and_fills_zero():
    df = tidy(seeds=range(3))
    df = df[~((df["method"] == "bald") & (df["epsilon"] == 0.3) & (df["seed"] > 0))]
    df = df[~((df["method"] == "dean+denoise") & (df["epsilon"] == 0.0))]
    seeds = tables.seeds_per_method(df)
    assert seeds.loc[0.3, "bald"] == 1 and seeds.loc[0.0, "bald"] == 3
    assert seeds.loc[0.0, "dean+denoise"] == 0 and seeds.loc[0.3, "dean+denoise"] == 3


def test_seeds_complete_needs_every_method_at_every_noise_level():
    df = tidy(seeds=range(5))
    assert tables.seeds_complete(df, ["dean", "bald"], [0.0, 0.3])
    assert not tables.seeds_complete(df, ["dean", "bald"], [0.0, 0.3], n_seeds=6)
    fewer = df[~((df["method"] == "bald") & (df["epsilon"] == 0.3) & (df["seed"] == 4))]
    assert not tables.seeds_complete(fewer, ["dean", "bald"], [0.0, 0.3])
    assert tables.seeds_complete(fewer, ["dean", "bald"], [0.0])
    assert tables.seeds_complete(fewer, ["bald"], [0.3], n_seeds=4)
    assert not tables.seeds_complete(df, ["dean", "badge"], [0.0])  # no badge records
    assert not tables.seeds_complete(df, ["dean"], [0.1])  # no records at 0.1
    with pytest.raises(TypeError, match="methods"):
        tables.seeds_complete(df, "dean", [0.0])
    with pytest.raises(ValueError, match="n_seeds"):
        tables.seeds_complete(df, ["dean"], [0.0], n_seeds=0)


def test_median_beta_is_the_median_over_seeds_of_the_selecting_steps():
    df = tidy(seeds=range(5))
    betas = tables.median_beta(df)
    assert list(betas.index) == [
        (0.0, "dean"),
        (0.0, "dean+denoise"),
        (0.3, "dean"),
        (0.3, "dean+denoise"),
    ]
    assert list(betas.columns) == [0, 1]  # the last step selects nothing: no beta
    sel = df[(df["method"] == "dean") & (df["epsilon"] == 0.3) & (df["step"] == 1)]
    assert betas.loc[(0.3, "dean"), 1] == pytest.approx(sel["beta"].median())


def test_protocol_table_puts_configurations_side_by_side():
    quick = ExperimentConfig.preset("digits", "quick")
    mnist = ExperimentConfig.preset("mnist", "paper")
    table = tables.protocol_table({"quick": quick, "paper": mnist})
    assert list(table.columns) == ["quick", "paper"]
    for name, c in (("quick", quick), ("paper", mnist)):
        col = table[name]
        assert col["initial labels"] == NUM_CLASSES[c.dataset] * col["initial labels per class"]
        assert col["labels per acquisition b"] == c.acquisition_size
        assert col["acquisitions"] == c.n_steps and col["epochs per model"] == c.epochs
        assert col["clusters N(b)"] == c.effective_n_clusters
