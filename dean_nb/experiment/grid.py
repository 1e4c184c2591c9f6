"""Grids of runs: every combination of strategies, noise levels and seeds, resumable and shared.

Chapter "Experiments". A grid (:func:`make_grid`) is a list of configurations;
:func:`run_grid` computes each one not yet on disk and writes its record to its own JSON file
(:func:`result_path`, named by :func:`dean_nb.experiment.config.run_key`) as soon as it
finishes, so a killed grid resumes and loses nothing. Any :class:`concurrent.futures.Executor`
runs a grid, including Dask's (``distributed.Client(...).get_executor()``);
:func:`default_executor` is a process pool. Several processes, on one machine or sharing the
folder over NFS, can run one grid together and compute every run once
(:mod:`dean_nb.experiment.locks`); a killed run resumes from its last finished step
(:func:`checkpoint_path`, :func:`dean_nb.experiment.loop.run_active_learning`).
:func:`dean_nb.analysis.results.load_results` reads the folder back.

How :func:`run_grid` shares a folder and survives kills, interrupts and failures:

* **Shared work.** Several ``run_grid`` calls (processes on one machine, or machines sharing the
  folder) can work on one ``out_dir`` at once: each run is computed once. A process claims a
  run before computing it (a lock file beside its record, refreshed by a heartbeat; claims of
  dead owners are reclaimed, and a record is written once: the rules, NFS included, are in
  :mod:`dean_nb.experiment.locks`). A run claimed by a live owner is skipped (and tried once
  more at the end); the runs still claimed by others then are reported on stderr and in
  :attr:`GridPaths.left_to_others`. Results written before these rules (no lock files) are
  read as usual.
* **Per-step checkpoints.** Each run keeps its finished steps in ``.<run_key>.partial.json``
  (:func:`checkpoint_path`, written atomically after every step); a killed run resumes from its
  last finished step, and on the same machine the resumed record equals an uninterrupted one
  (see :func:`dean_nb.experiment.loop.run_active_learning`). The checkpoint is removed once the
  record is written. Temporary files left by a writer killed mid-write are removed by the next
  ``run_grid`` on the folder (only those whose pid is gone on this host, or older than
  ``stale_after``).
* **Interrupts and failures.** With an executor, this (parent) process claims and writes; it
  takes claims just before submitting, for as many runs as the executor has workers. A failed
  run releases its claim (its checkpoint stays for the next attempt); on an interrupt
  (``KeyboardInterrupt`` included) queued runs are cancelled, the workers of an own process
  pool are stopped, and every claim is released before the exception propagates.
* **Executors.** Results come back to this process, which writes them, so workers need no
  shared file system; workers write the per-step checkpoint themselves where the results
  folder exists for them (a ``ProcessPoolExecutor``, or Dask workers on the shared file
  system). A Dask worker on which the folder does not exist runs without a checkpoint, so a run
  lost with its worker restarts from step 0 (a folder of the same name that is another
  machine's local disk only helps retries that land on that machine again). Runs in *threads*
  of one process share torch's global RNG (dropout masks are drawn from it), so a pool of
  several threads gives valid but not bit-reproducible runs; processes (and Dask workers with
  one thread) reproduce the inline results exactly.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dean_nb.experiment.checkpoint import partial_path
from dean_nb.experiment.config import ExperimentConfig, run_key, split_method
from dean_nb.experiment.locks import (
    DEFAULT_STALE_AFTER,
    RunLock,
    RunLockLost,
    RunLocks,
    remove_stale_leftovers,
)
from dean_nb.experiment.loop import check_import_paths, run_active_learning
from dean_nb.experiment.records import RunResult, StepRecord, atomic_write_json, load_run
from dean_nb.validation import check_float_range

__all__ = [
    "GridPaths",
    "checkpoint_path",
    "dask_executor",
    "default_executor",
    "load_grid",
    "make_grid",
    "result_path",
    "run_grid",
]


def make_grid(
    base: ExperimentConfig,
    strategies: Sequence[str],
    epsilons: Sequence[float],
    denoise_options: Sequence[bool] = (False,),
    seeds: Sequence[int] = (0,),
) -> list[ExperimentConfig]:
    """Every combination of strategy x epsilon x denoise x seed on top of ``base``.

    A strategy written ``"name+denoise"`` runs with denoising only (whatever
    ``denoise_options`` says), ``"name+forward"`` with forward correction only, so ``["dean", "dean+denoise", "bald"]`` with
    ``denoise_options=(False,)`` gives DeAn with and without the channel and plain BALD.
    Duplicates are dropped; the order is epsilon, seed, strategy, denoise.
    """
    if not strategies or not epsilons or not denoise_options or not seeds:
        raise ValueError("strategies, epsilons, denoise_options and seeds must be non-empty")
    parsed: list[tuple[str, tuple[bool | str, ...]]] = []
    for name in strategies:
        base_name, denoise = split_method(name)
        if denoise is None:
            parsed.append((base_name, tuple(bool(d) for d in denoise_options)))
        else:
            parsed.append((base_name, (denoise,)))
    configs: list[ExperimentConfig] = []
    seen: set[tuple] = set()
    for eps in epsilons:
        for seed in seeds:
            for name, denoises in parsed:
                for denoise in denoises:
                    key = (float(eps), int(seed), name, denoise)
                    if key in seen:
                        continue
                    seen.add(key)
                    configs.append(
                        base.replace(
                            strategy=name, epsilon=float(eps), seed=int(seed), denoise=denoise
                        )
                    )
    return configs


def result_path(config: ExperimentConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`run_grid` writes (and looks for) a run's JSON file."""
    return Path(out_dir) / f"{run_key(config)}.json"


def load_grid(
    configs: Iterable[ExperimentConfig], out_dir: str | os.PathLike[str]
) -> dict[str, RunResult]:
    """The records of a grid's runs in ``out_dir``: ``{file stem: RunResult}``, in grid order.

    The file name carries :func:`dean_nb.experiment.config.run_key`, a hash of everything the
    run computes, so a record is found only if it was made with the configuration as it is now.

    Raises:
        FileNotFoundError: a run of the grid has no record there (names the first three).
    """
    paths = [result_path(c, out_dir) for c in configs]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} records missing in {out_dir}, e.g. {missing[:3]}"
        )
    return {p.stem: load_run(p) for p in paths}


def checkpoint_path(config: ExperimentConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`run_grid` keeps a run's finished steps until its record is written.

    ``.<run_key>.partial.json`` beside the record
    (:func:`dean_nb.experiment.checkpoint.partial_path`; hidden, so
    :func:`dean_nb.analysis.results.load_results` skips it).
    """
    return partial_path(result_path(config, out_dir))


def _execute(
    config_dict: dict[str, Any],
    checkpoint: str | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> dict[str, Any]:
    """Run one configuration; what an executor's worker calls (top level, so it pickles).

    ``checkpoint`` is used only where its folder exists: a Dask worker without the grid's
    file system runs without one (and restarts a lost run from step 0).
    """
    config = ExperimentConfig.from_dict(config_dict)
    if checkpoint is not None and not Path(checkpoint).parent.is_dir():
        checkpoint = None
    return run_active_learning(config, checkpoint=checkpoint, on_step=on_step).to_dict()


def _limit_threads(n_threads: int) -> None:
    """Worker initialiser: split the cores between processes instead of oversubscribing."""
    torch.set_num_threads(max(1, n_threads))


def default_executor(max_workers: int | None = None) -> cf.Executor:
    """A ``ProcessPoolExecutor`` (spawned workers; torch threads split between them).

    Its workers are started at once with SIGINT blocked (a blocked signal stays blocked in
    the processes Python starts, and a pool starts its workers on ``submit``): a Ctrl-C in
    the terminal, sent to the whole process group, then reaches only the calling process,
    instead of every worker printing its own ``KeyboardInterrupt`` traceback. In the calling
    process the signal is only held back while the workers start: a Ctrl-C in that moment
    raises ``KeyboardInterrupt`` as soon as they have (the pool is shut down first). Where
    signals cannot be blocked (Windows) SIGINT is ignored for that moment instead. Whoever
    owns the pool stops its workers on a later interrupt; :func:`run_grid` does for the pool
    it makes.
    """
    cpus = os.cpu_count() or 1
    workers = max(1, min(max_workers or cpus, cpus))
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_threads,
        initargs=(max(1, cpus // workers),),
    )
    if threading.current_thread() is not threading.main_thread():
        return pool  # only the main thread may set signal handlers; workers start on demand
    try:
        with _sigint_held_back():
            for _ in range(workers):
                pool.submit(os.getpid)  # each submit starts a worker while none is idle
    except KeyboardInterrupt:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return pool


def dask_executor(scheduler: str, workers: int) -> tuple[cf.Executor, list[Callable[[], None]]]:
    """``(executor, closers)`` of a Dask cluster: ``scheduler`` is an address
    (``tcp://host:8786``) or ``"local"``, a ``LocalCluster`` of ``workers`` one-thread
    processes. Call the closers, in order, when the grid is done.

    Raises:
        ImportError: the ``distributed`` package is missing (the message says how to install it).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(
            "--dask-scheduler needs the 'distributed' package (pip install distributed)"
        ) from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
        return client.get_executor(), [client.close, cluster.close]
    client = Client(scheduler)
    return client.get_executor(), [client.close]


@contextlib.contextmanager
def _sigint_held_back() -> Iterator[None]:
    """Block SIGINT (ignore it where blocking is not available) for the block's duration.

    A SIGINT that arrives meanwhile is delivered when the block ends (blocked, not ignored).
    The mask covers this thread (and the processes it starts); another thread of the process
    (OpenMP's, a test runner's) may still take the signal, so a handler records it meanwhile
    and it is raised again, under the caller's own handler, when the block ends.
    """
    if hasattr(signal, "pthread_sigmask"):
        caught: list[int] = []
        previous_handler = signal.signal(signal.SIGINT, lambda signum, _: caught.append(signum))
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)  # a pending one: recorded
            signal.signal(signal.SIGINT, previous_handler)
        if caught:
            signal.raise_signal(signal.SIGINT)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _executor_slots(executor: cf.Executor, max_workers: int | None) -> int:
    """How many runs an executor computes at once (claims are taken that far ahead)."""
    n = getattr(executor, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    client = getattr(executor, "_client", None)  # distributed's ClientExecutor
    if client is not None:
        with contextlib.suppress(Exception):
            n = sum(client.nthreads().values())
            if n > 0:
                return int(n)
    return max(1, max_workers or os.cpu_count() or 1)


def _stop_workers(executor: cf.Executor) -> None:
    """On an interrupt, end an own process pool's workers instead of waiting for their runs."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


class GridPaths(list):
    """What :func:`run_grid` returns: every configuration's record path, in input order.

    A ``list`` of :class:`~pathlib.Path`, plus what this call did with them:

    Attributes:
        computed: records this process computed and wrote.
        found: records already there, or finished by another process during this call.
        left_to_others: runs another live process had claimed when this one finished; their
            records appear when those processes finish (run the grid again to check).
    """

    def __init__(self, paths: Iterable[Path] = ()) -> None:
        super().__init__(paths)
        self.computed: list[Path] = []
        self.found: list[Path] = []
        self.left_to_others: list[Path] = []


def run_grid(
    configs: Iterable[ExperimentConfig],
    out_dir: str | os.PathLike[str],
    executor: cf.Executor | None = None,
    progress: bool = True,
    *,
    max_workers: int | None = None,
    command: str | None = None,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> GridPaths:
    """Run every configuration not yet on disk; one JSON file per run, written on completion.

    Several ``run_grid`` calls (processes, or machines sharing the folder) can work on one
    ``out_dir`` at once and share the work: each run is computed once. How, and what happens
    on kills, interrupts and failures: the module docstring and :mod:`dean_nb.experiment.locks`.

    Args:
        configs: the runs (e.g. from :func:`make_grid`). Duplicates run once.
        out_dir: results folder; created if missing. A run whose file
            (:func:`result_path`) exists is skipped, so re-running a killed grid only runs
            what is missing, and never rewrites a finished file.
        executor: any :class:`concurrent.futures.Executor`: a ``ProcessPoolExecutor``, a
            ``ThreadPoolExecutor``, or Dask's ``distributed.Client(...).get_executor()``
            (which checkpoints each kind writes, and why threads are not bit-reproducible:
            the module docstring). ``None``: runs inline when ``max_workers == 1`` or only
            one run is pending, else a :func:`default_executor` (closed afterwards).
        progress: a progress bar over runs (per-run bars are silenced under an executor).
        max_workers: for the default executor.
        command: the command line that launched the grid, stored in every record's
            provenance (the CLI passes its own), so a record says how to make it again.
        stale_after: seconds without a heartbeat after which another process's claim counts
            as abandoned (same for every process on the folder; default 5 minutes).

    Returns:
        A :class:`GridPaths`: the JSON paths of every configuration, in input order (finished
        before, now, or, for :attr:`GridPaths.left_to_others`, still being computed by other
        processes).

    Raises:
        ValueError: before any run, a ``dataset`` or ``model`` import path of a pending run
            that does not import or whose function returns something else
            (:func:`dean_nb.experiment.loop.check_import_paths`).
        RuntimeError: after every other run has finished and been written, if some runs
            failed; the message names them and their errors.
    """
    check_float_range("stale_after", stale_after, 0.0, math.inf, low_inclusive=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unique = _unique_configs(configs, out)
    outcome = GridPaths(unique)
    remove_stale_leftovers(out, stale_after)
    pending = [(p, c) for p, c in unique.items() if not p.exists()]
    outcome.found = [p for p in unique if p.exists()]
    if not pending:
        return outcome
    check_import_paths(c for _, c in pending)  # a bad data set or model: before any run
    work = _GridRun(unique, pending, outcome, command, progress, stale_after)
    try:
        if executor is None and (max_workers == 1 or len(pending) == 1):
            work.run_inline()
        else:
            work.run_with_executor(executor, max_workers)
    finally:
        work.close()  # releases the claims of runs not finished (interrupts included)
    work.settle_busy(out)
    _raise_failures(work.failures, len(pending))
    return outcome


def _unique_configs(configs: Iterable[ExperimentConfig], out: Path) -> dict[Path, ExperimentConfig]:
    """``{record path: config}`` in input order, the first of duplicates kept; checks types."""
    unique: dict[Path, ExperimentConfig] = {}
    for config in configs:
        if not isinstance(config, ExperimentConfig):
            raise TypeError(f"configs must hold ExperimentConfig, got {type(config).__name__}")
        unique.setdefault(result_path(config, out), config)
    return unique


class _GridRun:
    """The pending runs of one :func:`run_grid` call: claims, progress, records, failures."""

    def __init__(
        self,
        unique: dict[Path, ExperimentConfig],
        pending: list[tuple[Path, ExperimentConfig]],
        outcome: GridPaths,
        command: str | None,
        progress: bool,
        stale_after: float,
    ) -> None:
        self.unique = unique
        self.pending = pending
        self.outcome = outcome
        self.command = command
        self.bar = tqdm(total=len(pending), desc="runs", initial=0) if progress else None
        self.failures: list[tuple[str, BaseException]] = []
        self.claims = RunLocks(stale_after)
        self.busy: list[tuple[Path, ExperimentConfig]] = []

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def claim(self, path: Path) -> RunLock | None:
        """RunLock a run; ``None`` (and the run accounted for) when it is done or busy."""
        status, held = self.claims.acquire(path)
        if status == "done":
            self.outcome.found.append(path)
            self.tick()
        elif status == "busy":
            self.busy.append((path, self.unique[path]))
        return held

    def jobs(self) -> Iterator[tuple[Path, ExperimentConfig]]:
        """The pending runs, then once more those that were busy (their owner may be gone)."""
        yield from self.pending
        retry = list(self.busy)
        self.busy.clear()
        yield from retry

    def finish(self, path: Path, payload: dict[str, Any]) -> None:
        """Write a run's record (unless another process did first) and drop its checkpoint."""
        if self.command is not None:
            payload.setdefault("provenance", {})["command"] = self.command
        try:
            atomic_write_json(path, payload, overwrite=False)
        except FileExistsError:
            self.outcome.found.append(path)  # another process wrote it first: its record stays
        else:
            self.outcome.computed.append(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial_path(path))
        self.tick()

    def run_inline(self) -> None:
        """Compute the runs one after the other in this process."""
        for path, config in self.jobs():
            held = self.claim(path)
            if held is None:
                continue
            try:
                self.finish(
                    path, _execute(config.to_dict(), os.fspath(partial_path(path)), held.check)
                )
            except RunLockLost:
                self.busy.append((path, config))
            except Exception as err:  # keep going: the other runs are worth having
                self.failures.append((path.stem, err))
            finally:
                self.claims.release(held)

    def run_with_executor(self, executor: cf.Executor | None, max_workers: int | None) -> None:
        """Compute the runs on ``executor`` (``None``: an own :func:`default_executor`)."""
        own = executor is None
        if own:
            executor = default_executor(max_workers)
        slots = _executor_slots(executor, max_workers)
        futures: dict[cf.Future, tuple[Path, RunLock]] = {}
        queue = self.jobs()
        interrupted = True
        try:
            self._submit_more(executor, futures, queue, slots)
            while futures:
                finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    path, held = futures.pop(future)
                    try:
                        self.finish(path, future.result())
                    except Exception as err:
                        self.failures.append((path.stem, err))
                    finally:
                        self.claims.release(held)
                self._submit_more(executor, futures, queue, slots)
            interrupted = False
        finally:
            for future in futures:
                future.cancel()
            if own:
                if interrupted:
                    _stop_workers(executor)
                executor.shutdown(wait=True, cancel_futures=True)

    def _submit_more(
        self,
        executor: cf.Executor,
        futures: dict[cf.Future, tuple[Path, RunLock]],
        queue: Iterator[tuple[Path, ExperimentConfig]],
        slots: int,
    ) -> None:
        """Claim and submit runs from ``queue`` until ``slots`` runs are in flight."""
        while len(futures) < slots:
            job = next(queue, None)
            if job is None:
                return
            path, config = job
            held = self.claim(path)
            if held is None:
                continue
            try:
                future = executor.submit(
                    _execute,
                    config.replace(quiet=True).to_dict(),
                    os.fspath(partial_path(path)),
                )
            except BaseException:
                self.claims.release(held)
                raise
            futures[future] = (path, held)

    def close(self) -> None:
        """Release every claim still held and close the progress bar."""
        self.claims.close()
        if self.bar is not None:
            self.bar.close()

    def settle_busy(self, out: Path) -> None:
        """Sort the runs other processes held into found and left to others; report the latter."""
        outcome = self.outcome
        outcome.left_to_others = [p for p, _ in self.busy if not p.exists()]
        outcome.found += [p for p, _ in self.busy if p.exists()]
        if outcome.left_to_others:
            names = ", ".join(p.stem for p in outcome.left_to_others[:5])
            more = len(outcome.left_to_others) - 5
            print(
                f"{len(outcome.left_to_others)} of {len(self.pending)} runs left to other "
                f"processes that hold live claims on them ({names}"
                f"{f', and {more} more' if more > 0 else ''}); "
                f"their records appear in {out} when they finish",
                file=sys.stderr,
                flush=True,
            )


def _raise_failures(failures: list[tuple[str, BaseException]], n_pending: int) -> None:
    """Raise one ``RuntimeError`` naming every failed run and its error, if any failed."""
    if failures:
        lines = "\n".join(f"  {name}: {type(err).__name__}: {err}" for name, err in failures)
        raise RuntimeError(f"{len(failures)} of {n_pending} runs failed:\n{lines}")
