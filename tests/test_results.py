"""Reading a results folder never mixes configurations and never fails on a stray file.

Properties: runs that differ in anything but the seed (and where they ran) are never averaged
together: :func:`load_results` labels them apart and every table keeps them apart; frames that
would mix them are refused; the committed records need no label (their tables are the ones
the chapters print); a truncated or foreign JSON file is skipped with a warning naming it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from dean_nb import compare, experiment
from dean_nb.experiment import (
    ExperimentConfig,
    RunResult,
    SkippedRecordWarning,
    StepRecord,
    config_id,
    format_summary,
    load_results,
    result_path,
    summary_table,
    uncertainty_table,
)

BOOK_RESULTS = Path(__file__).resolve().parents[1] / "book" / "results"


def quick(**overrides) -> ExperimentConfig:
    return ExperimentConfig.preset("digits", "quick", **overrides)


def write_run(folder, accuracy: float, **overrides) -> Path:
    """A two-step record with test accuracy ``accuracy`` at both steps (no training)."""
    config = quick(**overrides)
    steps = [
        StepRecord(step=t, n_labels=20 + 20 * t, test_accuracy=accuracy, sigma=0.3, wall_time=0.1)
        for t in range(2)
    ]
    return RunResult(config=config, steps=steps).to_json(result_path(config, folder))


def test_config_id_ignores_the_seed_and_location_only():
    base = quick()
    same = [
        base.replace(seed=4),
        base.replace(device="cpu", root="/x", num_threads=3, quiet=True, download=True),
    ]
    assert {config_id(c) for c in same} == {config_id(base)}
    for change in ({"epochs": 5}, {"epsilon": 0.1}, {"strategy_options": {"linkage": "average"}}):
        assert config_id(base.replace(**change)) != config_id(base), change


def test_runs_of_two_configurations_are_reported_apart(tmp_path):
    # the case: dean at seed 0, and dean at seed 0 with epochs=5, in one folder
    write_run(tmp_path, 0.9, strategy="dean", seed=0)
    write_run(tmp_path, 0.2, strategy="dean", seed=0, epochs=5)
    write_run(tmp_path, 0.5, strategy="random", seed=0)
    write_run(tmp_path, 0.7, strategy="random", seed=1)
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


def test_labels_name_every_differing_field_and_only_where_needed(tmp_path):
    write_run(tmp_path, 0.9, strategy="dean")
    write_run(tmp_path, 0.8, strategy="dean", lr=5e-4, strategy_options={"linkage": "average"})
    write_run(tmp_path, 0.7, strategy="dean", epsilon=0.3)  # alone at its noise level
    df = load_results(tmp_path)
    labels = set(df.loc[df["epsilon"] == 0.0, "method"])
    assert labels == {
        "dean [strategy_options={}, lr=0.001]",
        'dean [strategy_options={"linkage":"average"}, lr=0.0005]',
    }
    assert set(df.loc[df["epsilon"] == 0.3, "method"]) == {"dean"}


def test_a_frame_mixing_configurations_is_refused(tmp_path):
    import pandas as pd

    write_run(tmp_path / "a", 0.9, strategy="dean")
    write_run(tmp_path / "b", 0.2, strategy="dean", epochs=5)
    mixed = pd.concat([load_results(tmp_path / "a"), load_results(tmp_path / "b")])
    with pytest.raises(ValueError, match=r"several configurations .*digits dean at epsilon 0"):
        summary_table(mixed)
    # a frame without config_id (built by hand) is summarised as before
    assert len(summary_table(mixed.drop(columns="config_id"))) == 2


def test_paired_gaps_never_pair_two_configurations(tmp_path):
    write_run(tmp_path, 0.9, strategy="dean", seed=0)
    write_run(tmp_path, 0.2, strategy="dean", seed=0, epochs=5)
    write_run(tmp_path, 0.5, strategy="random", seed=0)
    df = load_results(tmp_path)
    gap = compare.paired_gap(df, method="dean", baselines=["random"], epsilon=0.0, n_acquired=20)
    assert gap.n_seeds == 0  # "dean" is ambiguous here: not measured, rather than averaged
    labelled = compare.paired_gap(
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
def test_a_stray_json_file_is_skipped_with_a_warning_naming_it(tmp_path, name, text, reason):
    good = write_run(tmp_path, 0.9, strategy="random")
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
            experiment.load_run(stray)


def test_the_committed_records_need_no_label():
    # so the chapters' tables (summary_table, format_summary, uncertainty_table) are the ones
    # they printed before config_id existed: same rows, same columns, same values
    folders = [p for p in BOOK_RESULTS.glob("**/") if any(p.glob("*.json"))]
    if not folders:
        pytest.skip(f"no committed records under {BOOK_RESULTS}")
    for folder in folders:
        df = load_results(folder)
        plain = [
            experiment.method_label(s, d)
            for s, d in zip(df["strategy"], df["denoise"], strict=True)
        ]
        assert list(df["method"]) == plain, folder
        summary = summary_table(df)
        assert list(summary.columns)[-3:] == ["mean", "std", "n"], folder
        assert "config_id" not in summary.columns
