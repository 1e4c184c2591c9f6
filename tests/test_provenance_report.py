"""Provenance of run records as tables (``dean_nb.analysis.provenance_report``).

Properties: a commit is shortened to ten hex digits and keeps its ``-dirty`` mark; a machine
is named even where an old record lacks fields; the frame has one row per record with the
run's total wall time; the per-version summary counts every record once; wall times are
means per machine and step; a command split one flag per line joins back to itself.
"""

from __future__ import annotations

import pytest

from dean_nb.analysis import provenance_report as pr
from dean_nb.analysis.results import load_results
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.grid import result_path
from dean_nb.experiment.records import RunResult, StepRecord


def record(seed: int, walls, **prov) -> RunResult:
    config = ExperimentConfig.preset("digits", "quick", strategy="random", seed=seed)
    steps = [
        StepRecord(step=t, n_labels=20 + 20 * t, test_accuracy=0.5, sigma=0.3, wall_time=w)
        for t, w in enumerate(walls)
    ]
    base = {"command": f"python -m dean_nb run --seeds {seed}", "git_commit": "a" * 40}
    base.update(date="2026-12-01T08:28:13", hostname="vm", device="cpu")
    return RunResult(config=config, steps=steps, provenance={**base, **prov})


@pytest.mark.parametrize(
    ("commit", "short"),
    [("0123456789abcdef" * 2, "0123456789"), ("f" * 40 + "-dirty", "f" * 10 + "-dirty")],
)
def test_short_commit_keeps_ten_digits_and_the_dirty_mark(commit, short):
    assert pr.short_commit(commit) == short
    assert pr.short_commit(None) == pr.short_commit("") == "unknown"


def test_machine_name_names_what_an_old_record_lacks():
    assert pr.machine_name({"hostname": "vm", "device": "cpu", "cpu_capability": "AVX512"}) == (
        "vm, cpu, AVX512"
    )
    assert pr.machine_name({}) == "?, ?, cpu type not recorded"
    assert pr.machine_name({"device": "cuda", "device_name": "H200"}).split(", ")[1] == "H200"


def test_frame_summary_and_wall_times(tmp_path):
    runs = {
        "a": record(0, [60.0, 120.0], cpu_capability="AVX512"),
        "b": record(1, [30.0, 30.0], cpu_capability="AVX512", git_commit="b" * 40 + "-dirty"),
        "c": record(2, [10.0, 20.0]),
    }
    prov = pr.provenance_frame(runs)
    assert list(prov["run"]) == ["a", "b", "c"]
    assert list(prov["minutes"]) == pytest.approx([3.0, 1.0, 0.5])
    assert prov.loc[1, "commit"] == "b" * 10 + "-dirty"
    assert prov.loc[0, "date"] == "2026-12-01 08:28"
    summary = pr.version_summary(prov)
    assert summary["records"].sum() == len(runs)  # every record counted once
    assert summary.loc[("a" * 10, "vm, cpu, AVX512"), "minutes_per_run"] == pytest.approx(3.0)

    stems = {}
    for run in runs.values():
        stems[result_path(run.config, tmp_path).stem] = run
        run.to_json(result_path(run.config, tmp_path))
    df = load_results(tmp_path)
    wall = pr.wall_time_by_machine(df, pr.provenance_frame(stems))
    assert wall.loc[("vm, cpu, AVX512", "random"), 0] == pytest.approx((60 + 30) / 2)
    assert wall.loc[("vm, cpu, cpu type not recorded", "random"), 1] == pytest.approx(20.0)


@pytest.mark.parametrize(
    "command",
    [
        "python -m dean_nb run --dataset digits --seeds 0-4 --out book/results",
        "python -m dean_nb report results",
    ],
)
def test_format_command_is_one_flag_per_line_and_joins_back(command):
    text = pr.format_command(command)
    lines = text.split(" \\\n")
    assert lines[0] == command.split(" --")[0]
    assert all(line.startswith("    --") for line in lines[1:])
    assert len(lines) == command.count(" --") + 1
    assert text.replace(" \\\n    --", " --") == command
