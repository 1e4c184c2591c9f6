"""The command line (``python -m dean_nb``): run + report end to end, and clear errors."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dean_nb import strategies
from dean_nb.cli import build_parser, grid_of_command, main, parse_epsilons, parse_seeds
from dean_nb.experiment import grid
from dean_nb.experiment.grid import result_path
from dean_nb.problem.oracle import pairflip_channel

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
        "--noise",
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
        (["--noise", "pair"], "noise must be one of symmetric, pairflip, or the path of a JSON"),
        (["--noise", "no/such/T.json"], "noise file no/such/T.json does not exist"),
        (["--noise", "pairflip", "--override", "epsilon=1"], "epsilon must lie in [0.0, 1.0)"),
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
            "n_clusters, linkage, beta",
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
    monkeypatch.setattr(grid, "run_active_learning", _no_compute)
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


# --------------------------------------------------------------------------- as a user types it

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m dean_nb ARGS`` in the checkout, as typed in a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "dean_nb", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_an_infinite_beta_scale_is_refused_before_any_compute(tmp_path):
    out = tmp_path / "results"
    proc = cli("run", "--strategies", "random", "--out", str(out), "--override", "beta_scale=inf")
    assert proc.returncode == 2
    assert "beta_scale must lie in (0.0, inf), got inf" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "runs (" not in proc.stdout  # refused before the grid was even counted
    assert not list(tmp_path.glob("**/*.json"))


def test_out_naming_a_file_is_one_line_and_exit_2(tmp_path):
    target = tmp_path / "results"
    target.write_text("my notes")
    proc = cli("run", "--strategies", "random", "--out", str(target), "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"python -m dean_nb: error: --out {target} is a file, not a folder"
    ]
    assert proc.stdout == "" and target.read_text() == "my notes"


@pytest.mark.parametrize("kind", ["below a file", "read-only"])
def test_an_unwritable_out_is_found_before_any_compute(kind, tmp_path, capsys, monkeypatch):
    if kind == "below a file":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "results"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        out = tmp_path / "locked"
        out.mkdir()
        out.chmod(0o500)
    monkeypatch.setattr(grid, "run_active_learning", _no_compute)
    assert main(["run", "--strategies", "random", "--out", str(out), "--quiet", *TINY]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"python -m dean_nb: error: --out {out} is not a writable folder "
        + ("(Not a directory)" if kind == "below a file" else "(Permission denied)")
    ]
    assert captured.out == ""


def test_report_path_errors_are_one_line(tmp_path, capsys, write_record):
    proc = cli("report", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"python -m dean_nb: error: results folder {tmp_path / 'nope'} does not exist"
    ]
    (tmp_path / "a_file").write_text("")
    assert main(["report", str(tmp_path / "a_file")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"python -m dean_nb: error: results folder {tmp_path / 'a_file'} is a file, not a folder"
    ]
    write_record(tmp_path / "runs", 0.5, strategy="random")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "a_file")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"python -m dean_nb: error: --out {tmp_path / 'a_file'} is a file, not a folder"
    ]


def test_report_skips_stray_json_files_with_one_line_each(tmp_path, write_record):
    write_record(tmp_path, 0.5, strategy="random")
    (tmp_path / "truncated.json").write_text('{"config": {"dataset": "dig')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "notes.json").write_text('{"author": "me"}')
    proc = cli("report", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    warnings_ = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings_) == 3, proc.stderr
    for line, name in zip(warnings_, ("list.json", "notes.json", "truncated.json"), strict=True):
        assert line.startswith(f"warning: {tmp_path / name} is not") and line.endswith(
            "; skipped it"
        )
    assert "random" in proc.stdout and "50.00" in proc.stdout


def test_report_never_averages_two_configurations(tmp_path, capsys, write_record):
    # the case: a dean seed-0 run, and one with --override epochs=5, in one folder
    write_record(tmp_path, 0.9, strategy="dean", seed=0)
    write_record(tmp_path, 0.2, strategy="dean", seed=0, epochs=5)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    text = capsys.readouterr().out
    assert "mean ± std over up to 1 seeds" in text and " ± " not in text.split("seeds", 1)[1]
    assert "dean [epochs=5]" in text and "dean [epochs=50]" in text
    assert "note: runs of several configurations" in text
    rows = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert sum("dean [epochs=5]" in r for r in rows) == 2  # its two label counts
    assert all(r.endswith(",1") for r in rows[1:])  # every row holds one run


def test_report_names_the_noise_models_plainly(tmp_path, capsys, write_record):
    # the layer and forward correction are the grid's denoise axis, not a configuration apart
    for denoise, acc in ((False, 0.5), (True, 0.6), ("forward", 0.7)):
        write_record(tmp_path, acc, strategy="dean", seed=0, epsilon=0.3, denoise=denoise)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    assert "note: runs of several configurations" not in capsys.readouterr().out
    labels = {row.split(",")[3] for row in (tmp_path / "report" / "summary.csv").open()}
    assert labels == {"method", "dean", "dean+denoise", "dean+forward"}


def test_report_against_the_preset_keeps_the_preset_plain(tmp_path, capsys, write_record):
    # a chapter's folder: the preset's dean and random, and an ablation of dean beside them
    write_record(tmp_path, 0.9, strategy="dean", seed=0)
    write_record(tmp_path, 0.5, strategy="random", seed=0)
    write_record(tmp_path, 0.2, strategy="dean", seed=0, beta_scale=1.0)
    (tmp_path / "notes.json").write_text('{"author": "me"}')  # warned once, not per reading
    argv = ["report", str(tmp_path), "--out", str(tmp_path / "report")]
    assert main([*argv, "--against-preset"]) == 0
    text, err = capsys.readouterr()
    assert err.count("warning:") == 1 and "notes.json" in err
    labels = {row.split(",")[3] for row in (tmp_path / "report" / "summary.csv").open()}
    assert labels == {"method", "dean", "random", "dean [beta_scale=1.0]"}
    assert "the paper's claims as paired gaps" in text  # they are judged on plain "dean"
    assert main(argv) == 0  # without the flag, both dean configurations carry a label
    assert "the paper's claims" not in capsys.readouterr().out
    labels = {row.split(",")[3] for row in (tmp_path / "report" / "summary.csv").open()}
    assert labels == {"method", "random", "dean [beta_scale=0.25]", "dean [beta_scale=1.0]"}


def test_noise_flag_runs_the_pairflip_and_matrix_channels_end_to_end(tmp_path, capsys):
    argv = ["run", "--strategies", "random", "--out", str(tmp_path), "--quiet", *TINY]
    assert main([*argv, "--noise", "pairflip", "--epsilons", "0.3"]) == 0
    (path,) = tmp_path.glob("*.json")
    assert path.name.startswith("digits_random_pairflip-eps0.3_seed0_")
    record = json.loads(path.read_text())
    assert record["config"]["noise"] == "pairflip" and record["config"]["epsilon"] == 0.3
    assert record["true_channel"] == pairflip_channel(10, 0.3).tolist()
    for step in record["steps"]:
        for noisy, true in zip(step["noisy_labels"], step["true_labels"], strict=True):
            assert noisy in (true, (true + 1) % 10)
    path.unlink()

    # a matrix file: the record holds the matrix (its epsilon the flip rate), not the path
    matrix = (0.75 * torch.eye(10) + 0.25 * torch.eye(10).roll(3, dims=0)).tolist()
    channel = tmp_path / "channels" / "T.json"
    channel.parent.mkdir()
    channel.write_text(json.dumps(matrix))
    assert main([*argv, "--noise", str(channel)]) == 0
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["config"]["noise"] == record["true_channel"] == matrix
    assert record["config"]["epsilon"] == 0.25 and "_matrix-" in path.name
    capsys.readouterr()
    # the same matrix in another file is the same run; a matrix and a noise level disagree
    copy = tmp_path / "channels" / "copy.json"
    copy.write_text(json.dumps(matrix, indent=2))
    assert main([*argv, "--noise", str(copy)]) == 0
    assert "1 runs (1 already" in capsys.readouterr().out
    assert main([*argv, "--noise", str(copy), "--epsilons", "0,0.3"]) == 2
    assert "epsilon must be 0 or 0.25 with a noise matrix" in capsys.readouterr().err


def test_minus_zero_epsilon_finds_the_runs_of_zero(tmp_path, capsys):
    argv = ["run", "--strategies", "random", "--out", str(tmp_path), "--quiet", *TINY]
    assert main([*argv, "--epsilons", "0"]) == 0
    assert "1 runs (0 already" in capsys.readouterr().out
    assert main([*argv, "--epsilons=-0"]) == 0
    assert "1 runs (1 already" in capsys.readouterr().out
    assert len(list(tmp_path.glob("*.json"))) == 1


def _live_processes_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies waiting for a reaper excluded)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_cleanly_with_one_line_and_exit_130(workers, tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "dean_nb", "run", "--strategies", "random,dean"]
    command += ["--seeds", "0-3", "--out", str(out), "--workers", workers, "--quiet"]
    command += ["--override", "epochs=50", "n_steps=3"]  # minutes: still running at Ctrl-C
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # a terminal's job gets Ctrl-C even when pytest runs as a background job (SIGINT
        # ignored, which Python would otherwise pass on to the CLI)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("8 runs (0 already"), first
        time.sleep(2.0)  # inside the grid: runs (and with --workers 2, workers) started
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "Traceback" not in rest + err
    lines = [line for line in (rest + err).splitlines() if line.strip()]
    assert len(lines) == 1, rest + err
    finished = len(list(out.glob("[!.]*.json")))  # not a killed run's .partial.json
    assert lines[0] == (
        f"interrupted: {finished} more runs finished, {finished} of 8 are in {out}; "
        f"run the same command again to resume the other {8 - finished}"
    )
    time.sleep(0.5)
    assert _live_processes_in_group(proc.pid) == []  # no worker left running


def test_grid_of_command_is_the_grid_run_computes(tmp_path, capsys, monkeypatch):
    words = ["--strategies", "random,dean+denoise", "--epsilons", "0,0.3", "--seeds", "0-2"]
    words += ["--denoise", "both", "--override", "epochs=3", "--quiet"]
    configs = grid_of_command(["run", *words])
    # random with and without the layer, dean with it only: 3 methods x 2 eps x 3 seeds
    assert len(configs) == 3 * 2 * 3
    methods = ("random", "random+denoise", "dean+denoise")
    assert {(c.method, c.epsilon, c.seed) for c in configs} == {
        (m, e, s) for m in methods for e in (0, 0.3) for s in (0, 1, 2)
    }
    assert all(c.epochs == 3 and c.quiet for c in configs)
    # the same words as one shell line, with or without the program, give the same grid
    line = " ".join(["python -m dean_nb run", *words])
    assert grid_of_command(line) == configs
    assert grid_of_command(line.removeprefix("python -m dean_nb ")) == configs
    # and `run` itself counts exactly these runs, all of them found in --out
    for config in configs:
        result_path(config, tmp_path).write_text("{}")
    monkeypatch.setattr("dean_nb.cli.run_grid", lambda *args, **kwargs: grid.GridPaths())
    assert main(["run", *words, "--out", str(tmp_path)]) == 0
    assert f"{len(configs)} runs ({len(configs)} already" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    ["report results", "run --strategies nonsense", "run --epsilons 1.5", "run --override nope=1"],
)
def test_grid_of_command_refuses_what_run_refuses(command):
    with pytest.raises(ValueError):
        grid_of_command(command)
