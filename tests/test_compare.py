"""Results (``dean_nb.analysis.results``): the tidy frame, its tables, paired gaps and the paper's claims.

Properties: a results folder loads into one row per run x step and its tables hold the mean,
std and count over seeds; runs that differ in anything but the seed (and where they ran) are
never averaged together: :func:`load_results` labels them apart and every table keeps them
apart; frames that would mix them are refused; the committed records need no label (their
tables are the ones the chapters print); a truncated or foreign JSON file is skipped with a
warning naming it. Runs in memory, named by the caller (:func:`runs_frame`), give the frame
:func:`load_results` gives for the same records, and bad input is named. Paired gaps are the mean and standard error of per-seed differences, and
``report`` prints and saves the paper's claims.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dean_nb.analysis import claims, results
from dean_nb.analysis.results import (
    RESULT_COLUMNS,
    SkippedRecordWarning,
    config_id,
    format_summary,
    load_results,
    runs_frame,
    summary_table,
    uncertainty_table,
)
from dean_nb.cli import main
from dean_nb.experiment.config import ExperimentConfig, method_label, split_method
from dean_nb.experiment.presets import preset_of
from dean_nb.experiment.records import RunResult, StepRecord, load_run

BOOK_RESULTS = Path(__file__).resolve().parents[1] / "book" / "results"


# --------------------------------------------------------------------------- the tidy frame


def test_load_results_and_summary_table(tmp_path, fake_results):
    fake_results(tmp_path)
    (tmp_path / ".digits_x.json.abc.tmp").write_text('{"trunc')  # a killed write's leftover
    df = load_results(tmp_path)
    assert len(df) == 2 * 2 * 3 * 3
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert df["beta"].isna().sum() == 2 * 3 * 3  # random has no beta
    assert np.isinf(df["beta"]).sum() == 2 * 3  # dean's last step: beta = inf round-trips

    summary = summary_table(df)
    assert len(summary) == 2 * 2 * 3
    row = summary[
        (summary.strategy == "dean") & (summary.epsilon == 0.3) & (summary.n_labels == 60)
    ]
    assert row["n"].item() == 3
    expected = [0.5 + 0.2 + 0.01 * s + 0.05 for s in range(3)]
    assert row["mean"].item() == pytest.approx(np.mean(expected))
    assert row["std"].item() == pytest.approx(np.std(expected, ddof=1))

    table = format_summary(summary)
    assert table.shape == (4, 3)
    assert table.loc[("digits", 0.3, "dean"), 60] == "76.00 ± 1.00"
    sigma = uncertainty_table(df)
    assert sigma.shape == (4, 3)
    assert sigma.loc[("digits", 0.0, "random"), 1] == pytest.approx(0.3)


def test_config_id_ignores_the_seed_and_location_only(quick):
    base = quick()
    same = [
        base.replace(seed=4),
        base.replace(device="cpu", root="/x", num_threads=3, quiet=True, download=True),
    ]
    assert {config_id(c) for c in same} == {config_id(base)}
    for change in ({"epochs": 5}, {"epsilon": 0.1}, {"strategy_options": {"linkage": "average"}}):
        assert config_id(base.replace(**change)) != config_id(base), change


def test_runs_of_two_configurations_are_reported_apart(tmp_path, write_record):
    # the case: dean at seed 0, and dean at seed 0 with epochs=5, in one folder
    write_record(tmp_path, 0.9, strategy="dean", seed=0)
    write_record(tmp_path, 0.2, strategy="dean", seed=0, epochs=5)
    write_record(tmp_path, 0.5, strategy="random", seed=0)
    write_record(tmp_path, 0.7, strategy="random", seed=1)
    df = load_results(tmp_path)
    assert set(df["method"]) == {"dean [epochs=50]", "dean [epochs=5]", "random"}
    assert df.groupby("method")["config_id"].nunique().eq(1).all()

    summary = summary_table(df)
    assert list(summary.columns) == [
        *("dataset", "strategy", "denoise", "method", "epsilon", "n_labels"),
        *("mean", "std", "n"),
    ]
    at = summary.set_index(["method", "n_labels"])
    assert at.loc[("dean [epochs=50]", 20), "mean"] == pytest.approx(0.9)
    assert at.loc[("dean [epochs=5]", 20), "mean"] == pytest.approx(0.2)
    assert at.loc[("dean [epochs=5]", 20), "n"] == 1
    # the repeats of one configuration are still averaged
    assert at.loc[("random", 40), "mean"] == pytest.approx(0.6)
    assert at.loc[("random", 40), "n"] == 2
    table = format_summary(summary)
    assert table.loc[("digits", 0.0, "dean [epochs=5]"), 20] == "20.00"
    assert table.loc[("digits", 0.0, "dean [epochs=50]"), 20] == "90.00"
    assert uncertainty_table(df).shape[0] == 3


def test_labels_name_every_differing_field_and_only_where_needed(tmp_path, write_record):
    write_record(tmp_path, 0.9, strategy="dean")
    write_record(tmp_path, 0.8, strategy="dean", lr=5e-4, strategy_options={"linkage": "average"})
    write_record(tmp_path, 0.7, strategy="dean", epsilon=0.3)  # alone at its noise level
    df = load_results(tmp_path)
    labels = set(df.loc[df["epsilon"] == 0.0, "method"])
    assert labels == {
        "dean [strategy_options={}, lr=0.001]",
        'dean [strategy_options={"linkage":"average"}, lr=0.0005]',
    }
    assert set(df.loc[df["epsilon"] == 0.3, "method"]) == {"dean"}


def test_labels_against_a_reference_keep_its_runs_plain(tmp_path, write_record, quick):
    # a chapter's folder: its preset's grid, plus ablations of one method sharing the folder
    write_record(tmp_path, 0.9, strategy="dean")
    write_record(tmp_path, 0.8, strategy="dean", epsilon=0.3)
    write_record(tmp_path, 0.7, strategy="bald")
    write_record(tmp_path, 0.6, strategy="dean", strategy_options={"beta": 10.0})
    write_record(tmp_path, 0.5, strategy="dean", beta_scale=1.0)
    write_record(tmp_path, 0.4, strategy="dean", epsilon=0.3, noise="pairflip")
    write_record(tmp_path, 0.3, strategy="dean", epsilon=0.3, beta_scale=1.0, noise="pairflip")
    df = load_results(tmp_path, reference=quick())
    by_label = df.groupby(["epsilon", "method"])["test_accuracy"].first().to_dict()
    assert by_label == {
        (0.0, "bald"): 0.7,
        (0.0, "dean"): 0.9,
        (0.0, 'dean [strategy_options={"beta":10.0}]'): 0.6,
        (0.0, "dean [beta_scale=1.0]"): 0.5,
        (0.3, "dean"): 0.8,
        (0.3, "dean [noise=pairflip]"): 0.4,
        (0.3, "dean [noise=pairflip, beta_scale=1.0]"): 0.3,
    }
    # one label at one noise level, one configuration; the reference changes labels, not rows
    assert df.groupby(["epsilon", "method"])["config_id"].nunique().eq(1).all()
    plain = load_results(tmp_path)
    assert plain.drop(columns="method").equals(df.drop(columns="method"))
    # label_against names a configuration as the frame will, before any run exists
    ref = quick()
    assert results.label_against(quick(strategy="dean", beta_scale=1.0), ref) == (
        "dean [beta_scale=1.0]"
    )
    assert results.label_against(quick(strategy="bald", epsilon=0.3, denoise=True), ref) == (
        "bald+denoise"
    )
    # a reference of another dataset or seed labels the same way: those are columns
    other = load_results(tmp_path, reference=quick(seed=7, device="cpu"))
    assert other["method"].equals(df["method"])


def test_a_frame_mixing_configurations_is_refused(tmp_path, write_record):
    write_record(tmp_path / "a", 0.9, strategy="dean")
    write_record(tmp_path / "b", 0.2, strategy="dean", epochs=5)
    mixed = pd.concat([load_results(tmp_path / "a"), load_results(tmp_path / "b")])
    with pytest.raises(ValueError, match=r"several configurations .*digits dean at epsilon 0"):
        summary_table(mixed)
    # a frame without config_id (built by hand) is summarised as before
    assert len(summary_table(mixed.drop(columns="config_id"))) == 2


def test_paired_gaps_never_pair_two_configurations(tmp_path, write_record):
    write_record(tmp_path, 0.9, strategy="dean", seed=0)
    write_record(tmp_path, 0.2, strategy="dean", seed=0, epochs=5)
    write_record(tmp_path, 0.5, strategy="random", seed=0)
    df = load_results(tmp_path)
    gap = claims.paired_gap(df, method="dean", baselines=["random"], epsilon=0.0, n_acquired=20)
    assert gap.n_seeds == 0  # "dean" is ambiguous here: not measured, rather than averaged
    labelled = claims.paired_gap(
        df, method="dean [epochs=5]", baselines=["random"], epsilon=0.0, n_acquired=20
    )
    assert labelled.mean == pytest.approx(0.2 - 0.5)


@pytest.mark.parametrize(
    "name, text, reason",
    [
        ("truncated.json", '{"config": {"dataset": "dig', "is not valid JSON"),
        ("list.json", "[1, 2, 3]", "a JSON list, not an object"),
        ("foreign.json", '{"name": "something else"}', "no 'config' or 'steps' key"),
        ("nosteps.json", '{"config": {}}', "no 'steps' key"),
        ("badconfig.json", '{"config": {"bogus": 1}, "steps": []}', "unknown ExperimentConfig"),
        ("badsteps.json", '{"config": {}, "steps": [{"step": 0}]}', "not a valid run record"),
        ("badvalue.json", None, "malformed step"),
        ("binary.json", b"\xff\xfe\x00", "is not valid JSON"),
    ],
)
def test_a_stray_json_file_is_skipped_with_a_warning_naming_it(
    tmp_path, write_record, name, text, reason
):
    good = write_record(tmp_path, 0.9, strategy="random")
    stray = tmp_path / name
    if text is None:  # a record whose accuracy is not a number
        data = json.loads(good.read_text())
        data["steps"][0]["test_accuracy"] = "high"
        text = json.dumps(data)
    if isinstance(text, bytes):
        stray.write_bytes(text)
    else:
        stray.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_results(tmp_path)
    assert len(caught) == 1 and caught[0].category is SkippedRecordWarning
    message = str(caught[0].message)
    assert str(stray) in message and reason in message and message.endswith("skipped it")
    assert set(df["run"]) == {good.stem}
    if name != "badvalue.json":  # load_run says the same, as an error
        with pytest.raises(ValueError, match=reason):
            load_run(stray)


def _by_run(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in one row order, whatever order its runs came in."""
    return df.sort_values(["run", "step"], kind="stable").reset_index(drop=True)


def _read_named(folder: Path, label) -> dict[str, list[RunResult]]:
    """Every record of ``folder``, read with :func:`load_run`, under ``label(path, result)``."""
    named: dict[str, list[RunResult]] = {}
    for path in sorted(folder.glob("*.json")):
        result = load_run(path)
        named.setdefault(label(path, result), []).append(result)
    return named


@pytest.mark.parametrize("folder", ["digits-quick/epochs20", "several configurations"])
def test_runs_frame_is_the_frame_load_results_gives_the_same_records(
    tmp_path, fake_results, write_record, folder
):
    if folder == "several configurations":  # load_results labels two of them apart
        folder = tmp_path
        fake_results(folder)
        write_record(folder, 0.2, strategy="dean", seed=0, epochs=5)
    else:
        folder = BOOK_RESULTS / folder
        if not any(folder.glob("*.json")):
            pytest.skip(f"no committed records in {folder}")
    on_disk = load_results(folder)
    label_of = dict(zip(on_disk["run"], on_disk["method"], strict=False))
    # named as load_results labels them: the same frame, row for row once sorted
    named = _read_named(folder, lambda path, _: label_of[path.stem])
    in_memory = runs_frame(named)
    assert list(in_memory.columns) == list(RESULT_COLUMNS)
    assert in_memory.dtypes.equals(on_disk.dtypes)
    pd.testing.assert_frame_equal(_by_run(in_memory), _by_run(on_disk))
    # named by their plain method: equal but for the method where load_results labels apart
    plain = runs_frame(_read_named(folder, lambda _, result: result.config.method))
    plain, on_disk = _by_run(plain), _by_run(on_disk)
    others = [c for c in RESULT_COLUMNS if c != "method"]
    pd.testing.assert_frame_equal(plain[others], on_disk[others])
    assert (plain["method"] == _plain(on_disk)).all()
    differs = plain["method"] != on_disk["method"]
    assert differs.any() == (folder == tmp_path)
    assert on_disk.loc[differs, "method"].str.fullmatch(r"dean \[epochs=\d+\]").all()


def test_runs_frame_names_runs_as_given_and_in_the_given_order(tmp_path, fake_results):
    fake_results(tmp_path)
    runs = [load_run(p) for p in sorted(tmp_path.glob("*.json"))]
    dean = [r for r in runs if r.config.strategy == "dean" and r.config.epsilon == 0.0]
    one = next(r for r in runs if r.config.strategy == "random")
    df = runs_frame({"mine": iter(dean), "one random run": one})  # any iterable, or one run
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert list(df["method"]) == ["mine"] * 3 * 3 + ["one random run"] * 3
    assert list(df["seed"]) == [r.config.seed for r in dean for _ in range(3)] + [0] * 3
    stems = {p.stem for p in tmp_path.glob("*.json")}
    assert set(df["run"]) <= stems and df["run"].nunique() == 3 + 1  # the record's file stem
    assert df.loc[df["method"] == "mine", "config_id"].nunique() == 1
    assert df["beta"].isna().sum() == 3  # random has no beta
    summary = summary_table(df)
    assert set(summary["method"]) == {"mine", "one random run"}
    assert summary.loc[summary["method"] == "mine", "n"].eq(3).all()


@pytest.mark.parametrize(
    "named, error, message",
    [
        ([("dean", None)], TypeError, "named_runs must be a mapping"),
        ({}, ValueError, "named_runs is empty"),
        ({1: "run"}, TypeError, "named_runs' keys must be method names"),
        ({"": "run"}, ValueError, "named_runs has an empty name"),
        ({"dean": "a path.json"}, TypeError, r"named_runs\['dean'\] must be a RunResult"),
        ({"dean": {"seed": 0}}, TypeError, r"named_runs\['dean'\] must be a RunResult"),
        ({"dean": 3}, TypeError, r"named_runs\['dean'\] must be a RunResult"),
        ({"dean": []}, ValueError, r"named_runs\['dean'\] holds no runs"),
        ({"dean": ["run", 3]}, TypeError, r"named_runs\['dean'\]\[1\] must be a RunResult"),
    ],
)
def test_runs_frame_names_bad_input(tmp_path, write_record, named, error, message):
    run = load_run(write_record(tmp_path, 0.9, strategy="dean"))

    def fill(value):  # "run" stands for a real RunResult
        if value == "run":
            return run
        return [fill(v) for v in value] if isinstance(value, list) else value

    if isinstance(named, dict):
        named = {name: fill(value) for name, value in named.items()}
    with pytest.raises(error, match=message):
        runs_frame(named)


def test_runs_frame_names_a_malformed_step(tmp_path, write_record):
    run = load_run(write_record(tmp_path, 0.9, strategy="dean"))
    run.steps[1].test_accuracy = "high"
    with pytest.raises(ValueError, match=r"named_runs\['dean'\]\[0\] has a malformed step"):
        runs_frame({"dean": [run]})


def _plain(df: pd.DataFrame) -> list[str]:
    """The plain method name of each row of a :func:`load_results` frame: its label without
    the bracket of differing fields, checked against the row's strategy and denoising (the
    frame's ``denoise`` is a bool, so the label alone tells the layer from forward correction)."""
    names = df["method"].str.replace(r" \[.+\]$", "", regex=True)
    for name, strategy, denoise in zip(names, df["strategy"], df["denoise"], strict=True):
        base, kind = split_method(name)
        assert base == strategy and bool(kind) == denoise, (name, strategy, denoise)
        assert name == method_label(strategy, kind or False)
    return list(names)


def test_the_committed_records_label_only_what_differs_from_their_preset():
    # the chapters read each folder against its dataset's preset (chapters 6 and 7 share
    # fashion-mnist's, which also holds ablations): the preset's own runs keep their plain
    # names, so the chapters' tables are the ones they printed before config_id existed, a
    # plain name never stands for two configurations, and every other run names what differs
    folders = [p for p in BOOK_RESULTS.glob("**/") if any(p.glob("*.json"))]
    if not folders:
        pytest.skip(f"no committed records under {BOOK_RESULTS}")
    for folder in folders:
        df = load_results(folder)
        if (df["method"] == _plain(df)).all():  # one protocol: no reference needed
            plain_runs = [df]
        else:
            plain_runs = []
            # a folder is one network: its reference is the preset on that network
            networks = {
                ExperimentConfig.from_dict(json.loads(p.read_text())["config"]).conv_dropout
                for p in folder.glob("*.json")
            }
            assert len(networks) == 1, (folder, networks)
            (network,) = networks
            for dataset in df["dataset"].unique():
                reference = ExperimentConfig.preset(
                    dataset, preset_of(dataset), conv_dropout=network
                )
                labelled = load_results(folder, reference=reference)
                labelled = labelled[labelled["dataset"] == dataset]
                is_plain = labelled["method"] == _plain(labelled)
                assert is_plain.any(), (folder, dataset)
                ids = labelled[is_plain].groupby(["method", "epsilon"])["config_id"].nunique()
                assert (ids == 1).all(), (folder, dataset, ids[ids > 1])
                others = labelled.loc[~is_plain, "method"]
                assert others.str.fullmatch(r"\S+ \[.+=.+\]").all(), folder
                plain_runs.append(labelled[is_plain])
        for runs in plain_runs:
            summary = summary_table(runs)
            assert list(summary.columns)[-3:] == ["mean", "std", "n"], folder
            assert "config_id" not in summary.columns


# --------------------------------------------------------------------------- paired gaps and claims


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
    gap = claims.paired_gap(
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
    gap = claims.paired_gap(
        df, method="dean", baselines=("bald", "entropy"), epsilon=0.3, n_acquired=200
    )
    # entropy's mean over its seeds (0.49) is below bald's (0.61), so bald is the baseline
    assert gap.baseline == "bald"
    assert gap.n_seeds == 2 and gap.mean == pytest.approx(0.10)
    gap = claims.paired_gap(df, method="dean", baselines=("entropy",), epsilon=0.3, n_acquired=200)
    assert gap.n_seeds == 2 and gap.mean == pytest.approx(0.02)


def test_missing_records_give_no_gap_and_a_not_measured_verdict():
    df = frame({("random", 0.0, 0): [0.5, 0.6, 0.7]})
    gap = claims.paired_gap(df, method="dean", baselines=("random",), epsilon=0.0, n_acquired=200)
    assert gap.n_seeds == 0 and math.isnan(gap.mean)
    assert claims.verdict(gap, -0.01) == "not measured"
    gap = claims.paired_gap(df, method="random", baselines=("bald",), epsilon=0.0, n_acquired=200)
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
    gap = claims.PairedGap("dean", "random", 0.0, 200, mean, stderr, n)
    assert claims.verdict(gap, -0.01) == expected


def test_paper_claims_reproduce_the_papers_mnist_gaps():
    paper = claims.paper_claims(200, 1000)
    gaps = [claims.paper_gap(c) for c in paper]
    # the paper's Table 2: DeAn - random at 200, DeAn - best of BALD/entropy at 1000, and the layer
    assert np.allclose(gaps, [0.0041, 0.0008, 0.0012, 0.0009, 0.0532], atol=1e-9)
    assert [c.threshold for c in paper] == [-0.01] * 4 + [0.01]
    # the paper has no number at other points: NaN, not a wrong gap
    assert all(math.isnan(claims.paper_gap(c)) for c in claims.paper_claims(100, 500))
    assert math.isnan(claims.paper_gap(claims.paper_claims(200, 1000, noisy_epsilon=0.2)[1]))
    at_01 = claims.paper_claims(200, 1000, noisy_epsilon=0.1)
    assert math.isclose(claims.paper_gap(at_01[1]), 0.8345 - 0.8187, abs_tol=1e-9)


def test_claims_table_holds_every_claim():
    data = {}
    for seed in range(3):
        for method, acc in (("random", 0.70), ("dean", 0.71), ("bald", 0.65), ("entropy", 0.66)):
            for eps in (0.0, 0.3):
                data[method, eps, seed] = [0.5, acc + 0.001 * seed, acc + 0.1]
        data["dean+denoise", 0.3, seed] = [0.5, 0.7, 0.9 + 0.001 * seed]
    table = claims.claims_table(frame(data), claims.paper_claims(200, 400))
    assert len(table) == 5 and (table["n_seeds"] == 3).all()
    assert table["gap"].to_numpy() == pytest.approx([0.01, 0.01, 0.05, 0.05, 0.091])
    assert list(table["verdict"]) == ["yes"] * 5  # 3 seeds that agree: settled
    # the paper reports 200 acquired labels but no 400-label point
    assert list(table["paper_verdict"]) == ["yes", "yes", "", "", ""]
    text = claims.format_claims(table).to_string(index=False)
    assert "+0.091 ± 0.001" in text and "n/a" in text and "3/3" in text
    assert (table["n_better"] == 3).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: claims.paper_claims(200, 1000, margin=1.5), "margin must lie in [0, 1)"),
        (lambda: claims.paper_claims(200, 1000, noisy_epsilon=0.0), "noisy_epsilon must lie"),
        (
            lambda: claims.Claim("x", 0.0, 200, "dean", (), 0.0),
            "baselines must name at least one method",
        ),
        (
            lambda: claims.paired_gap(
                pd.DataFrame({"seed": [0]}),
                method="dean",
                baselines=("random",),
                epsilon=0.0,
                n_acquired=200,
            ),
            "df lacks column(s)",
        ),
        (
            lambda: claims.paired_gap(
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
    expected = claims.claims_table(load_results(tmp_path), claims.paper_claims(50, 100))
    assert claims.format_claims(expected).to_string(index=False) in printed
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
    gap = claims.paired_gap(empty, method="dean", baselines=("random",), epsilon=0, n_acquired=1)
    assert gap.n_seeds == 0
    assert (claims.claims_table(empty, claims.paper_claims(200, 1000))["n_seeds"] == 0).all()
