"""Grids that share a results folder share the work (dean_nb.experiment.locks,
dean_nb.experiment.grid.run_grid).

Properties: two `python -m dean_nb run` processes on one --out compute every run exactly once;
a run killed by SIGKILL resumes from its checkpoint through the CLI and gives the record of an
uninterrupted run; a claim of a dead owner is reclaimed (same host: pid gone; any host: stale
heartbeat), exactly once when several reclaim at the same time; a live claim is skipped and
reported; a record is never overwritten; claims are released when a run fails or the grid is
interrupted; a killed writer's temporary files are removed by the next grid, a live one's kept.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dean_nb.experiment import checkpoint, grid, locks, records
from dean_nb.experiment.config import ExperimentConfig
from dean_nb.experiment.grid import make_grid, result_path, run_grid
from dean_nb.experiment.loop import run_active_learning

ROOT = Path(__file__).resolve().parents[1]
CLI_OVERRIDES = ["epochs=2", "n_steps=2", "acquisition_size=10", "n_mc_samples=3"]


@pytest.fixture
def two_runs(tiny):
    """``two_runs(n_seeds=1, **overrides)``: random and entropy at epsilon 0, TINY-sized."""

    def make(n_seeds: int = 1, **overrides) -> list[ExperimentConfig]:
        return make_grid(
            tiny(**overrides), ["random", "entropy"], [0.0], (False,), list(range(n_seeds))
        )

    return make


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def write_lock(record: Path, **info) -> Path:
    lock = locks.lock_path(record)
    lock.write_text(json.dumps({"token": "theirs", "started": "2024-01-01T00:00:00", **info}))
    return lock


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists
    return proc.pid


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- the CLI

# Imported at start-up by the CLI processes of these tests (PYTHONPATH): counts every
# computation of a run, and makes the processes meet before their first run (so they
# certainly overlap) or stops one in the middle of a checkpoint write (so it can be killed).
HOOK = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path

    if os.environ.get("DEAN_TEST_MARKS"):
        from dean_nb.experiment import checkpoint, loop, records
        from dean_nb.experiment.config import run_key

        marks = Path(os.environ["DEAN_TEST_MARKS"])
        parties = int(os.environ.get("DEAN_TEST_PARTIES", "1"))
        kill_at = int(os.environ.get("DEAN_TEST_STOP_AT", "0"))
        real_run, real_write, first = loop._run, records.atomic_write_json, [True]

        def _run(config, *args, **kwargs):
            with open(marks / "computed.txt", "a") as fh:
                fh.write(f"{run_key(config)} {os.getpid()}\\n")
            if first[0]:
                first[0] = False
                (marks / f"ready.{os.getpid()}").touch()
                deadline = time.time() + 120
                while len(list(marks.glob("ready.*"))) < parties and time.time() < deadline:
                    time.sleep(0.02)
            return real_run(config, *args, **kwargs)

        def _write(path, payload, **kwargs):
            if path.name.endswith(".partial.json") and len(payload["steps"]) == kill_at:
                def dump(obj, fh, **kw):  # half the file, then wait to be killed
                    text = json.dumps(obj, **kw)
                    fh.write(text[: len(text) // 2])
                    fh.flush()
                    (marks / "stopped").touch()
                    time.sleep(600)
                records.json.dump = dump
            return real_write(path, payload, **kwargs)

        loop._run, records.atomic_write_json = _run, _write
        checkpoint.atomic_write_json = _write
    """
)


def cli(out: Path, strategies: str, seeds: str, overrides=CLI_OVERRIDES) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dean_nb",
        "run",
        "--dataset",
        "digits",
        "--preset",
        "quick",
        "--strategies",
        strategies,
        "--seeds",
        seeds,
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        "--override",
        *overrides,
    ]


def hooked_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(hook), str(ROOT)])
    env["DEAN_TEST_MARKS"] = str(marks)
    env.update(extra)
    return env


def test_two_cli_processes_on_one_folder_compute_every_run_once(tmp_path):
    out = tmp_path / "results"
    command = cli(out, "random,entropy", "0-1")
    env = hooked_env(tmp_path, DEAN_TEST_PARTIES="2")
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs

    computed = (tmp_path / "marks" / "computed.txt").read_text().split("\n")[:-1]
    keys = [line.split()[0] for line in computed]
    records = sorted(out.glob("*.json"))
    assert len(records) == 4
    assert sorted(keys) == sorted(p.stem for p in records)  # each run computed exactly once
    # both processes met before their first run, so both computed (the work was shared)
    assert {line.split()[1] for line in computed} == {str(proc.pid) for proc in procs}
    assert hidden(out) == []  # no lock, checkpoint or temporary file left
    # each process reports what it computed; together, every run once
    per_process = {str(proc.pid): 0 for proc in procs}
    for line in computed:
        per_process[line.split()[1]] += 1
    for proc, (stdout, _) in zip(procs, outputs, strict=True):
        summary = re.search(r"^\d+ results in .* \((\d+) computed now\)$", stdout, re.M)
        assert summary, stdout
        assert int(summary.group(1)) == per_process[str(proc.pid)]


def test_a_run_killed_by_sigkill_resumes_through_the_cli(tmp_path, steps_without_times):
    out = tmp_path / "results"
    overrides = ["epochs=2", "n_steps=3", "acquisition_size=10", "n_mc_samples=3"]
    command = cli(out, "dean+denoise", "0", overrides)
    env = hooked_env(tmp_path, DEAN_TEST_STOP_AT="3")  # stop while checkpointing step 2
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stopped = tmp_path / "marks" / "stopped"
    deadline = time.time() + 240
    while not stopped.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()

    config = ExperimentConfig.preset(
        "digits", "quick", strategy="dean", denoise=True, epochs=2, n_steps=3,
        acquisition_size=10, n_mc_samples=3, device="cpu", quiet=True,
    )  # fmt: skip
    record = result_path(config, out)
    partial = checkpoint.partial_path(record)
    lock = locks.lock_path(record)
    assert not record.exists()
    saved = json.loads(partial.read_text())["steps"]
    assert [s["step"] for s in saved] == [0, 1]
    assert json.loads(lock.read_text())["pid"] == proc.pid
    leftovers = [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and f"~{proc.pid}~" in leftovers[0].name

    # the same command again, as a user retypes it (no hook): reclaims, resumes, cleans up
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert hidden(out) == []
    resumed = json.loads(record.read_text())
    assert resumed["provenance"]["resumed_from_step"] == 2
    assert [s["wall_time"] for s in resumed["steps"][:2]] == [s["wall_time"] for s in saved]
    uninterrupted = run_active_learning(config).to_dict()
    assert steps_without_times(resumed) == steps_without_times(uninterrupted)
    assert resumed["config"] == uninterrupted["config"]


# --------------------------------------------------------------------------- claims


def test_a_claim_of_a_dead_pid_on_this_host_is_reclaimed(tmp_path, dead_pid, two_runs):
    configs = two_runs()[:1]
    record = result_path(configs[0], tmp_path)
    write_lock(record, host=socket.gethostname(), pid=dead_pid)
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert paths.computed == [record] and paths.left_to_others == []
    assert record.exists() and hidden(tmp_path) == []


def test_a_live_claim_is_skipped_and_reported(tmp_path, live_pid, capsys, two_runs):
    configs = two_runs()
    locked = result_path(configs[0], tmp_path)
    lock = write_lock(locked, host=socket.gethostname(), pid=live_pid)
    before = lock.read_bytes()
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert paths == [result_path(c, tmp_path) for c in configs]
    assert paths.left_to_others == [locked] and paths.computed == [paths[1]]
    assert not locked.exists() and paths[1].exists()
    assert lock.read_bytes() == before  # the owner's claim is untouched
    assert f"1 of 2 runs left to other processes that hold live claims on them ({locked.stem})" in (
        capsys.readouterr().err
    )


def test_claims_of_other_hosts_expire_with_their_heartbeat(tmp_path, two_runs):
    configs = two_runs()[:1]
    record = result_path(configs[0], tmp_path)
    # pid 1 exists here, but the claim is another host's: only its heartbeat counts
    lock = write_lock(record, host="another-host.example", pid=1)
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False, stale_after=60)
    assert paths.left_to_others == [record] and not record.exists()
    past = time.time() - 61
    os.utime(lock, (past, past))
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False, stale_after=60)
    assert paths.computed == [record] and hidden(tmp_path) == []


def test_a_held_claim_has_a_heartbeat(tmp_path):
    record = tmp_path / "run.json"
    held = locks.RunLocks(stale_after=0.5)  # heartbeat every 0.05 s
    try:
        status, claim = held.acquire(record)
        assert status == "claimed"
        past = time.time() - 100
        os.utime(claim.lock, (past, past))
        time.sleep(0.5)
        assert time.time() - claim.lock.stat().st_mtime < 0.4
        info = json.loads(claim.lock.read_text())
        assert (info["host"], info["pid"], info["token"]) == (
            socket.gethostname(),
            os.getpid(),
            claim.token,
        )
        # a second claimer in this process sees the claim as live
        assert held.acquire(record) == ("busy", None)
    finally:
        held.close()
    assert not claim.lock.exists()


@pytest.mark.parametrize("host", ["this", "other"])
def test_concurrent_reclaimers_of_one_stale_lock_have_one_winner(tmp_path, dead_pid, host):
    record = tmp_path / "run.json"
    n_threads, rounds = 6, 25
    for _ in range(rounds):
        lock = write_lock(
            record, host=socket.gethostname() if host == "this" else "elsewhere", pid=dead_pid
        )
        if host == "other":
            past = time.time() - 100
            os.utime(lock, (past, past))
        barrier = threading.Barrier(n_threads)
        results: list[tuple[str, object]] = []

        def reclaim(barrier=barrier, results=results):
            barrier.wait()
            results.append(locks._try_lock(record, 10.0))

        threads = [threading.Thread(target=reclaim) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [token for status, token in results if status == "claimed"]
        assert len(winners) == 1, results
        assert json.loads(lock.read_text())["token"] == winners[0]
        locks._release_lock(lock, winners[0])
        assert hidden(tmp_path) == []


def test_a_finished_record_is_never_overwritten(tmp_path, monkeypatch, two_runs):
    target = tmp_path / "run.json"
    records.atomic_write_json(target, {"first": True}, overwrite=False)
    with pytest.raises(FileExistsError):
        records.atomic_write_json(target, {"second": True}, overwrite=False)
    assert json.loads(target.read_text()) == {"first": True}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]

    # another process finishes the run while this one computes it: its record stays
    configs = two_runs()[:1]
    record = result_path(configs[0], tmp_path)
    real = grid._execute

    def racing(config_dict, *args, **kwargs):
        payload = real(config_dict, *args, **kwargs)
        record.write_text(json.dumps({**payload, "provenance": {"writer": "other"}}))
        return payload

    monkeypatch.setattr(grid, "_execute", racing)
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert paths.found == [record] and paths.computed == []
    assert json.loads(record.read_text())["provenance"] == {"writer": "other"}


@pytest.mark.parametrize("mode", ["inline", "threads"])
@pytest.mark.parametrize("error", [KeyboardInterrupt, FloatingPointError])
def test_failed_or_interrupted_runs_release_their_claims(
    tmp_path, monkeypatch, mode, error, two_runs
):
    configs = two_runs(n_seeds=2)
    seen_locks: list[dict] = []

    def run(config_dict, *args, **kwargs):
        config = ExperimentConfig.from_dict(config_dict)
        # claimed before it runs (with an executor: before it was submitted)
        lock = locks.lock_path(result_path(config, tmp_path))
        seen_locks.append(json.loads(lock.read_text()))
        if config.strategy == "entropy" and config.seed == 0:
            raise error("boom")
        return {"config": config_dict, "steps": [], "provenance": {}}

    monkeypatch.setattr(grid, "_execute", run)
    expected = KeyboardInterrupt if error is KeyboardInterrupt else RuntimeError
    with pytest.raises(expected):
        if mode == "inline":
            run_grid(configs, tmp_path, max_workers=1, progress=False)
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                run_grid(configs, tmp_path, executor=pool, progress=False)
    assert seen_locks and {(d["host"], d["pid"]) for d in seen_locks} == {
        (socket.gethostname(), os.getpid())
    }
    assert hidden(tmp_path) == []  # no claim left behind
    assert not result_path(configs[1], tmp_path).exists()
    if error is not KeyboardInterrupt:  # a failure does not stop the other runs
        assert len(list(tmp_path.glob("*.json"))) == 3


# --------------------------------------------------------------------------- leftovers


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path, dead_pid, live_pid, two_runs):
    configs = two_runs()[:1]
    run_grid(configs, tmp_path, max_workers=1, progress=False)
    record = result_path(configs[0], tmp_path)
    host = records._HOST_TAG
    files = {  # name: (what it is, old, kept by the next grid)
        f".{record.name}~{host}~{dead_pid}~abc.tmp": ("killed writer, this host", False, False),
        f".{record.name}~{host}~{live_pid}~abc.tmp": ("live writer, this host", False, True),
        f".{record.name}~elsewhere~{dead_pid}~abc.tmp": ("other host, fresh", False, True),
        f".{record.name}~elsewhere~{live_pid}~def.tmp": ("other host, old", True, False),
        f".{record.name}.x1y2z3.tmp": ("old naming, fresh", False, True),
        f".{record.name}.a1b2c3.tmp": ("old naming, old", True, False),
        f".{record.stem}.partial.json": ("checkpoint of a finished run", False, False),
        f".{record.stem}.lock.reclaim": ("a killed reclaimer's mutex", True, False),
        f".{record.stem}x.lock.reclaim": ("a live reclaimer's mutex", False, True),
    }
    old = time.time() - 3600
    for name, (_, is_old, _) in files.items():
        (tmp_path / name).write_text("{")
        if is_old:
            os.utime(tmp_path / name, (old, old))
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False, stale_after=60)
    assert paths.found == [record] and paths.computed == []
    assert hidden(tmp_path) == sorted(n for n, (_, _, keep) in files.items() if keep)
    assert record.exists()
