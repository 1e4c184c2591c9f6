"""The command line (``python -m dean_nb``): run + report end to end, and clear errors."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from dean_nb import experiment, strategies
from dean_nb.__main__ import build_parser, main, parse_epsilons, parse_seeds

TINY = ["--override", "epochs=2", "n_steps=1", "acquisition_size=10", "n_mc_samples=3"]


def _no_compute(config, **kwargs):
    raise AssertionError("a run started although the command should have been refused")


def test_run_then_report_end_to_end(tmp_path, capsys):
    out = tmp_path / "results"
    argv = [
        "run",
        "--dataset",
        "digits",
        "--preset",
        "quick",
        "--strategies",
        "random,dean+denoise",
        "--epsilons",
        "0,0.3",
        "--seeds",
        "0-1",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        *TINY,
    ]
    assert main(argv) == 0
    files = sorted(out.glob("*.json"))
    assert len(files) == 2 * 2 * 2
    run = json.loads(files[0].read_text())
    assert run["config"]["epochs"] == 2 and run["config"]["device"] == "cpu"
    # provenance says how to make the record again, and where and when it was made
    assert run["provenance"]["command"] == shlex.join(["python", "-m", "dean_nb", *argv])
    assert {"git_commit", "date", "hostname", "torch", "device", "cpu", "cpu_capability"} <= set(
        run["provenance"]
    )
    assert run["provenance"]["cpu"] and run["provenance"]["cpu_capability"]
    assert all(step["wall_time"] > 0 for step in run["steps"])
    assert {json.loads(f.read_text())["config"]["denoise"] for f in files} == {False, True}
    printed = capsys.readouterr().out
    assert "8 runs (0 already" in printed

    # the same command again finds everything done
    assert main(argv) == 0
    assert "8 runs (8 already" in capsys.readouterr().out

    report_dir = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report_dir)]) == 0
    table = capsys.readouterr().out
    assert "mean ± std over up to 2 seeds" in table
    assert "dean+denoise" in table and "random" in table
    assert " ± " in table  # two seeds give a std
    for name in ("learning_curves_digits.png", "uncertainty_digits.png"):
        data = (report_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    summary = (report_dir / "summary.csv").read_text().splitlines()
    assert summary[0] == "dataset,strategy,denoise,method,epsilon,n_labels,mean,std,n"
    assert len(summary) == 1 + 2 * 2 * 2  # methods x epsilons x label counts
    assert (report_dir / "uncertainty.csv").exists()


def test_denoise_both_doubles_the_grid(tmp_path, capsys):
    argv = ["run", "--strategies", "random", "--denoise", "both", "--seeds", "0,3"]
    argv += ["--out", str(tmp_path), "--quiet", *TINY]
    assert main(argv) == 0
    configs = [json.loads(f.read_text())["config"] for f in tmp_path.glob("*.json")]
    assert sorted((c["seed"], c["denoise"]) for c in configs) == [
        (0, False),
        (0, True),
        (3, False),
        (3, True),
    ]


def test_help_explains_every_flag(capsys):
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--preset",
        "--strategies",
        "--epsilons",
        "--denoise",
        "--seeds",
        "--out",
        "--root",
        "--device",
        "--workers",
        "--dask-scheduler",
        "--override",
        "--quiet",
    ):
        assert flag in text
    assert main(["report", "--help"]) == 0
    assert "--out" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--strategies", "dean,magic"],
            "unknown strategy 'magic'; choose from " + ", ".join(strategies.available()),
        ),
        (["--epsilons", "0,1.2"], "bad epsilon '1.2'"),
        (["--epsilons", "0,1.2"], "must lie in [0, 1)"),
        (["--epsilons", "0,abc"], "numbers in [0, 1)"),
        (["--seeds", "4-0"], "bad seed range '4-0'"),
        (["--seeds", "a-b"], "use e.g. 0-4 or 0,2,5"),
        (["--seeds", "0,,2"], "empty item"),
        (["--denoise", "maybe"], "invalid choice: 'maybe'"),
        (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["--override", "epoch=3"], "unknown override key 'epoch'"),
        (["--override", "epochs=lots"], "epochs needs a int"),
        (["--override", "epochs"], "key=value"),
        (["--preset", "paper"], "no 'paper' preset for dataset 'digits'"),
        (["--override", "acquisition_size=0"], "acquisition_size must lie in [1"),
        (["--workers", "0"], "--workers must be >= 1"),
        # finite ranges, no booleans for numbers, strategy options checked: before any compute
        (["--override", "beta_scale=inf"], "beta_scale must lie in (0.0, inf), got inf"),
        (["--override", "lr=inf"], "lr must lie in (0.0, inf), got inf"),
        (["--override", "weight_decay=inf"], "weight_decay must lie in [0.0, inf), got inf"),
        (["--override", "lr=nan"], "lr must lie in (0.0, inf), got nan"),
        (
            ["--override", 'strategy_options={"linkage": "ward"}'],
            "linkage must be one of single, average, complete; got 'ward'",
        ),
        (
            ["--override", 'strategy_options={"foo": 1}'],
            "strategy 'dean' got unknown option(s) foo; its options are: beta_kind, beta_scale, "
            "n_clusters, linkage",
        ),
        (
            ["--strategies", "random", "--override", 'strategy_options={"foo": 1}'],
            "strategy 'random' got unknown option(s) foo; its options are: (none)",
        ),
        (
            [
                "--strategies",
                "batchbald",
                "--override",
                'strategy_options={"n_joint_samples": true}',
            ],
            "n_joint_samples must be an integer, got the boolean True",
        ),
    ],
)
def test_bad_input_gives_a_clear_error(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiment, "run_active_learning", _no_compute)
    code = main(["run", "--out", str(tmp_path), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert message in err, err
    assert not list(tmp_path.glob("*.json"))


def test_report_on_a_missing_or_empty_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 1
    assert "no run files" in capsys.readouterr().err


def test_value_parsers():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    assert parse_epsilons("0, 0.1,0.3") == [0.0, 0.1, 0.3]
    parser = build_parser()
    args = parser.parse_args(["run", "--strategies", "DEAN,bald+denoise"])
    assert args.strategies == ["dean", "bald+denoise"]


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "dean_nb", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0
    assert "run" in proc.stdout and "report" in proc.stdout
