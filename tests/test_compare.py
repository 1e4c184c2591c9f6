"""Paired gaps between methods and the paper's claims (``dean_nb.compare``), and ``report``."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from dean_nb import compare
from dean_nb.__main__ import main
from dean_nb.experiment import ExperimentConfig, RunResult, StepRecord, load_results


def frame(accuracy: dict[tuple[str, float, int], list[float]], acquired=(0, 200, 400)):
    """A load_results-like frame: (method, epsilon, seed) -> accuracy per step."""
    rows = [
        {
            "dataset": "toy",
            "method": method,
            "epsilon": eps,
            "seed": seed,
            "n_acquired": n,
            "test_accuracy": acc,
        }
        for (method, eps, seed), accs in accuracy.items()
        for n, acc in zip(acquired, accs, strict=True)
    ]
    return pd.DataFrame(rows)


def test_paired_gap_is_the_mean_and_stderr_of_per_seed_differences():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.8, size=5)
    diffs = np.array([0.01, 0.03, -0.02, 0.04, 0.02])
    data = {}
    for seed in range(5):
        data["random", 0.0, seed] = [0.5, base[seed], 0.9]
        data["dean", 0.0, seed] = [0.5, base[seed] + diffs[seed], 0.9]
    gap = compare.paired_gap(
        frame(data), method="dean", baselines=("random",), epsilon=0.0, n_acquired=200
    )
    assert gap.n_seeds == 5 and gap.baseline == "random"
    assert gap.n_better == 4  # one negative difference
    assert gap.mean == pytest.approx(diffs.mean())
    assert gap.stderr == pytest.approx(diffs.std(ddof=1) / math.sqrt(5))
    # the std of the per-seed gap is far below the spread of the accuracies themselves
    assert gap.stderr < base.std(ddof=1)


def test_only_seeds_both_methods_have_are_paired_and_the_best_baseline_counts():
    data = {
        ("dean", 0.3, 0): [0.5, 0.70, 0.9],
        ("dean", 0.3, 1): [0.5, 0.72, 0.9],
        ("bald", 0.3, 0): [0.5, 0.60, 0.9],
        ("bald", 0.3, 1): [0.5, 0.62, 0.9],
        ("entropy", 0.3, 0): [0.5, 0.69, 0.9],
        ("entropy", 0.3, 1): [0.5, 0.69, 0.9],
        ("entropy", 0.3, 7): [0.5, 0.10, 0.9],  # a seed dean lacks: not paired
        ("dean", 0.0, 0): [0.5, 0.99, 0.9],  # another noise level: ignored
    }
    df = frame(data)
    gap = compare.paired_gap(
        df, method="dean", baselines=("bald", "entropy"), epsilon=0.3, n_acquired=200
    )
    # entropy's mean over its seeds (0.49) is below bald's (0.61), so bald is the baseline
    assert gap.baseline == "bald"
    assert gap.n_seeds == 2 and gap.mean == pytest.approx(0.10)
    gap = compare.paired_gap(df, method="dean", baselines=("entropy",), epsilon=0.3, n_acquired=200)
    assert gap.n_seeds == 2 and gap.mean == pytest.approx(0.02)


def test_missing_records_give_no_gap_and_a_not_measured_verdict():
    df = frame({("random", 0.0, 0): [0.5, 0.6, 0.7]})
    gap = compare.paired_gap(df, method="dean", baselines=("random",), epsilon=0.0, n_acquired=200)
    assert gap.n_seeds == 0 and math.isnan(gap.mean)
    assert compare.verdict(gap, -0.01) == "not measured"
    gap = compare.paired_gap(df, method="random", baselines=("bald",), epsilon=0.0, n_acquired=200)
    assert gap.n_seeds == 0 and gap.baseline == "bald"


@pytest.mark.parametrize(
    "mean, stderr, n, expected",
    [
        (0.02, 0.001, 5, "yes"),
        (-0.05, 0.001, 5, "no"),
        (0.02, 0.001, 2, "yes (tentative)"),  # too few seeds
        (-0.005, 0.004, 5, "yes (tentative)"),  # threshold -0.01 within 2 stderr
        (-0.015, 0.004, 5, "no (tentative)"),
        (0.02, math.nan, 1, "yes (tentative)"),
    ],
)
def test_verdict(mean, stderr, n, expected):
    gap = compare.PairedGap("dean", "random", 0.0, 200, mean, stderr, n)
    assert compare.verdict(gap, -0.01) == expected


def test_paper_claims_reproduce_the_papers_mnist_gaps():
    claims = compare.paper_claims(200, 1000)
    gaps = [compare.paper_gap(c) for c in claims]
    assert np.allclose(gaps, [-0.001, 0.004, 0.001, -0.002, 0.053], atol=1e-9)
    assert [c.threshold for c in claims] == [-0.01] * 4 + [0.01]
    # the paper has no number at other points: NaN, not a wrong gap
    assert all(math.isnan(compare.paper_gap(c)) for c in compare.paper_claims(100, 500))
    assert math.isnan(compare.paper_gap(compare.paper_claims(200, 1000, noisy_epsilon=0.1)[1]))


def test_claims_table_holds_every_claim():
    data = {}
    for seed in range(3):
        for method, acc in (("random", 0.70), ("dean", 0.71), ("bald", 0.65), ("entropy", 0.66)):
            for eps in (0.0, 0.3):
                data[method, eps, seed] = [0.5, acc + 0.001 * seed, acc + 0.1]
        data["dean+denoise", 0.3, seed] = [0.5, 0.7, 0.9 + 0.001 * seed]
    table = compare.claims_table(frame(data), compare.paper_claims(200, 400))
    assert len(table) == 5 and (table["n_seeds"] == 3).all()
    assert table["gap"].to_numpy() == pytest.approx([0.01, 0.01, 0.05, 0.05, 0.091])
    assert list(table["verdict"]) == ["yes"] * 5  # 3 seeds that agree: settled
    # the paper reports 200 acquired labels but no 400-label point
    assert list(table["paper_verdict"]) == ["yes", "yes", "", "", ""]
    text = compare.format_claims(table).to_string(index=False)
    assert "+0.091 ± 0.001" in text and "n/a" in text and "3/3" in text
    assert (table["n_better"] == 3).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: compare.paper_claims(200, 1000, margin=1.5), "margin must lie in [0, 1)"),
        (lambda: compare.paper_claims(200, 1000, noisy_epsilon=0.0), "noisy_epsilon must lie"),
        (
            lambda: compare.Claim("x", 0.0, 200, "dean", (), 0.0),
            "baselines must name at least one method",
        ),
        (
            lambda: compare.paired_gap(
                pd.DataFrame({"seed": [0]}),
                method="dean",
                baselines=("random",),
                epsilon=0.0,
                n_acquired=200,
            ),
            "df lacks column(s)",
        ),
        (
            lambda: compare.paired_gap(
                pd.concat(
                    [
                        frame({("dean", 0.0, 0): [0.5, 0.6, 0.7]}),
                        frame({("dean", 0.0, 0): [0.5, 0.6, 0.7]}).assign(dataset="other"),
                    ]
                ),
                method="dean",
                baselines=("random",),
                epsilon=0.0,
                n_acquired=200,
            ),
            "several datasets",
        ),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def write_records(folder, accuracy):
    """Run records on disk, as ``run`` writes them, with the given accuracies per step."""
    for (strategy, denoise, eps, seed), accs in accuracy.items():
        config = ExperimentConfig.preset(
            "digits", "quick", strategy=strategy, denoise=denoise, epsilon=eps, seed=seed
        )
        steps = [
            StepRecord(step=i, n_labels=20 + 50 * i, test_accuracy=a, sigma=0.2)
            for i, a in enumerate(accs)
        ]
        RunResult(config, steps).to_json(folder / f"{config.method}_{eps}_{seed}.json")


def test_report_prints_and_saves_the_claims(tmp_path, capsys):
    records = {}
    for seed in range(3):
        for strategy, denoise, acc in (
            ("random", False, 0.80),
            ("bald", False, 0.78),
            ("entropy", False, 0.79),
            ("dean", False, 0.82),
            ("dean", True, 0.85),
        ):
            for eps in (0.0, 0.3):
                records[strategy, denoise, eps, seed] = [0.5, acc, acc + 0.01 * seed]
    write_records(tmp_path, records)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "the paper's claims as paired gaps" in printed
    saved = pd.read_csv(tmp_path / "report" / "claims_digits.csv")
    assert list(saved["n_acquired"]) == [50, 50, 100, 100, 100]  # first and last acquisition
    assert saved["gap"].to_numpy() == pytest.approx([0.02, 0.02, 0.03, 0.03, 0.03])
    expected = compare.claims_table(load_results(tmp_path), compare.paper_claims(50, 100))
    assert compare.format_claims(expected).to_string(index=False) in printed
    # --early/--late pick other points; a bad margin is named
    assert main(["report", str(tmp_path), "--out", str(tmp_path), "--late", "50"]) == 0
    assert list(pd.read_csv(tmp_path / "claims_digits.csv")["n_acquired"]) == [50] * 5
    assert main(["report", str(tmp_path), "--margin", "2"]) == 2
    assert "margin must lie in [0, 1)" in capsys.readouterr().err


def test_report_without_dean_prints_no_claims(tmp_path, capsys):
    write_records(tmp_path, {("random", False, 0.0, 0): [0.5, 0.6]})
    assert main(["report", str(tmp_path)]) == 0
    assert "claims" not in capsys.readouterr().out
    assert not list(tmp_path.glob("claims_*.csv"))
    assert main(["report", str(tmp_path), "--margin", "-0.5"]) == 2  # checked with or without DeAn
    assert "--margin must lie in [0, 1), got -0.5" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--early", "0"]) == 2
    assert "--early must be a number of acquired labels >= 1, got 0" in capsys.readouterr().err


def test_an_empty_frame_has_no_gap():
    empty = pd.DataFrame(
        columns=["dataset", "method", "epsilon", "seed", "n_acquired", "test_accuracy"]
    )
    gap = compare.paired_gap(empty, method="dean", baselines=("random",), epsilon=0, n_acquired=1)
    assert gap.n_seeds == 0
    assert (compare.claims_table(empty, compare.paper_claims(200, 1000))["n_seeds"] == 0).all()
