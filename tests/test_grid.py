"""Grids (dean_nb.experiment.grid): every combination of a base configuration, run resumably.

Properties: a grid holds every combination once, each under its own run key; a killed grid
resumes without redoing or touching finished runs; a failed run loses no other and writes
nothing partial; any concurrent.futures executor (Dask's included) runs a grid with the inline
results. Folders shared by several processes are tested in ``test_claims.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from dean_nb.analysis.results import load_results
from dean_nb.experiment import grid
from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.experiment.grid import make_grid, result_path, run_grid


@pytest.fixture
def tiny_grid(tiny) -> list[ExperimentConfig]:
    return make_grid(tiny(), ["random", "dean+denoise"], [0.0, 0.3], (False,), [0])


def test_make_grid_and_run_keys(quick):
    configs = make_grid(quick(), ["dean", "dean+denoise", "bald"], [0, 0.3], (False,), [0, 1])
    assert len(configs) == 3 * 2 * 2
    assert {c.method for c in configs} == {"dean", "dean+denoise", "bald"}
    keys = {run_key(c) for c in configs}
    assert len(keys) == len(configs)
    both = make_grid(quick(), ["bald"], [0.1], (False, True), [0])
    assert [c.denoise for c in both] == [False, True]
    # where and how verbosely a run happens does not change its key; what it computes does
    c = configs[0]
    assert run_key(c.replace(quiet=True, device="cpu", root="/x")) == run_key(c)
    assert run_key(c.replace(epochs=3)) != run_key(c)
    assert run_key(c).startswith("digits_dean_eps0_seed0_")


def test_interrupted_grid_resumes_without_redoing_or_losing_runs(
    tmp_path, monkeypatch, tiny_grid, steps_without_times
):
    configs = tiny_grid
    paths = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert sorted(paths) == sorted(tmp_path.glob("*.json")) and len(paths) == 4
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}

    lost = paths[2]
    lost.unlink()  # as if the grid was killed before this run finished
    calls: list[ExperimentConfig] = []
    real = grid.run_active_learning

    def counting(config, **kwargs):
        calls.append(config)
        return real(config, **kwargs)

    monkeypatch.setattr(grid, "run_active_learning", counting)
    again = run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert again == paths
    assert [result_path(c, tmp_path) for c in calls] == [lost]
    for p in paths:
        if p != lost:
            assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p]
    # the rerun reproduces the lost run exactly (same seed, same selections)
    assert steps_without_times(lost.read_bytes()) == steps_without_times(before[lost][1])
    # nothing left to do
    calls.clear()
    run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert calls == []


def test_failed_run_does_not_lose_the_others_and_writes_nothing_partial(
    tmp_path, monkeypatch, tiny_grid
):
    configs = tiny_grid
    real = grid.run_active_learning

    def flaky(config, **kwargs):
        if config.strategy == "dean" and config.epsilon > 0:
            raise FloatingPointError("boom")
        return real(config, **kwargs)

    monkeypatch.setattr(grid, "run_active_learning", flaky)
    with pytest.raises(RuntimeError, match=r"1 of 4 runs failed:\n.*dean\+denoise_eps0.3.*boom"):
        run_grid(configs, tmp_path, max_workers=1, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in tmp_path.glob("*.json"))


def test_any_executor_runs_a_grid_with_the_same_results(tmp_path, tiny_grid, steps_without_times):
    configs = tiny_grid
    inline = run_grid(configs, tmp_path / "inline", max_workers=1, progress=False)
    # one worker thread: runs in threads share torch's global RNG (dropout), so only a
    # single-threaded worker (or processes) reproduces the inline results bit for bit
    with ThreadPoolExecutor(max_workers=1) as pool:
        threaded = run_grid(configs, tmp_path / "threads", executor=pool, progress=False)
    for a, b in zip(inline, threaded, strict=True):
        assert a.name == b.name
        assert steps_without_times(a.read_bytes()) == steps_without_times(b.read_bytes())


def test_dask_executor_runs_a_grid(tmp_path, tiny_grid, steps_without_times):
    distributed = pytest.importorskip("distributed")
    configs = tiny_grid[:2]
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        paths = run_grid(configs, tmp_path / "dask", executor=client.get_executor(), progress=False)
    inline = run_grid(configs, tmp_path / "inline", max_workers=1, progress=False)
    for a, b in zip(inline, paths, strict=True):
        assert steps_without_times(a.read_bytes()) == steps_without_times(b.read_bytes())
    df = load_results(tmp_path / "dask")
    assert len(df) == 2 * 2 and set(df["method"]) == {"random", "dean+denoise"}


def test_load_grid_reads_a_grid_in_order_and_names_missing_records(tmp_path, write_record):
    base = ExperimentConfig.preset("digits", "quick")
    configs = make_grid(base, ["random", "dean"], [0.0], seeds=[0, 1])
    for i, config in enumerate(configs):
        write_record(tmp_path, 0.5 + 0.1 * i, strategy=config.strategy, seed=config.seed)
    records = grid.load_grid(configs, tmp_path)
    assert list(records) == [run_key(c) for c in configs]  # grid order, keyed by file stem
    assert [r.config for r in records.values()] == configs
    assert [r.accuracies[0] for r in records.values()] == pytest.approx([0.5, 0.6, 0.7, 0.8])
    # a record made with another configuration (here: fewer epochs) is not one of the grid
    other = make_grid(base.replace(epochs=20), ["random"], [0.0], seeds=[0])
    with pytest.raises(FileNotFoundError, match="1 of 1 records missing"):
        grid.load_grid(other, tmp_path)
    with pytest.raises(FileNotFoundError, match="1 of 5"):
        grid.load_grid([*configs, *other], tmp_path)


# Run in a fresh process, as the CLI is: a test process may hold threads of its own (pytest-xdist's
# workers do), and a process-wide SIGINT can land on one of them and stop the test process itself.
CTRL_C_WHILE_WORKERS_START = """
import concurrent.futures as cf, os, signal
from dean_nb.experiment import grid
pools = []
real_submit = cf.ProcessPoolExecutor.submit
def submit_then_ctrl_c(self, fn, *args, **kwargs):
    future = real_submit(self, fn, *args, **kwargs)
    pools.append(self)
    os.kill(os.getpid(), signal.SIGINT)
    return future
cf.ProcessPoolExecutor.submit = submit_then_ctrl_c
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
try:
    grid.default_executor(1)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
try:
    real_submit(pools[0], os.getpid)
    print("still running")
except RuntimeError as err:
    print("shut down" if "shutdown" in str(err) else repr(err))
print("blocked:", sorted(signal.pthread_sigmask(signal.SIG_BLOCK, set())))
"""


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="needs POSIX signal masks")
def test_a_ctrl_c_while_the_workers_start_is_not_lost():
    """SIGINT is held back, not ignored, while default_executor starts its workers: it raises
    KeyboardInterrupt right after, the half-started pool is shut down, nothing stays blocked."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_WORKERS_START],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted", "shut down", "blocked: []"]
