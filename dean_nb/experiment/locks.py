"""Processes that share a results folder: claims on runs, heartbeats, stale leftovers.

Chapter "Experiments" and the README's "Shared folders and killed runs". Several
:func:`dean_nb.experiment.grid.run_grid` calls (processes on one machine, or machines sharing
the folder over NFS) compute every run once: a process claims a run by creating
``.<run_key>.lock`` beside its record with ``O_CREAT | O_EXCL`` (:class:`RunLocks`), a daemon
thread refreshes the lock's modification time while the run computes (the heartbeat), and a
claim whose owner died is reclaimed: on the same host as soon as its pid is gone, from any host
once its heartbeat is older than the staleness timeout (:data:`DEFAULT_STALE_AFTER`), judged on
the file system's own clock. :func:`remove_stale_leftovers` removes what killed processes left
in the folder.

The rules, in detail:

* **Claims.** Before computing a run, a process claims it by creating ``.<run_key>.lock``
  beside the record with ``O_CREAT | O_EXCL`` (host, pid, start time and a random token
  inside). A thread refreshes the mtime of every held lock every ``min(30 s, stale_after /
  10)``: the heartbeat.
* **Dead owners.** A claim is reclaimed when its owner is dead: on the same host as soon as its
  pid no longer exists; on any host when its heartbeat is older than ``stale_after`` seconds.
  Reclaimers take turns through an ``O_EXCL`` mutex (``.<run_key>.lock.reclaim``, held for
  microseconds), remove the lock only if it is still the one judged stale (same inode, token
  and mtime), and then claim with ``O_EXCL`` like anyone else, so two reclaimers cannot both
  win.
* **Records are written once.** The record is checked again after claiming, and written by
  hard-linking a complete temporary file to its name, which fails if the name exists: a
  finished record is never replaced, even by a process whose stale-judged claim was taken over
  (it finds the record there and drops its copy).

On NFS: ``O_EXCL`` creation and ``link`` are atomic on the server for NFSv3 and later with a
modern Linux client (NFSv2, or very old clients, do not guarantee ``O_EXCL``), and a
retransmitted ``link`` is recognised by its link count; ``rename`` is atomic. Staleness is
judged against the file system's own clock (a probe file's mtime, which an NFS server stamps,
as it stamps ``utime`` heartbeats), so clock skew between clients does not matter; file systems
that take mtimes from the client clock (some FUSE mounts) need clocks synchronised well within
``stale_after``. The pid test only applies to claims from the same host name: give machines
(and containers sharing a folder) distinct host names. ``stale_after`` must exceed the longest
pause of a live process (a suspended process, a hung mount) or its run is computed twice; the
record is still written once.

This module names a record's lock (:func:`lock_path`); its checkpoint is
:func:`dean_nb.experiment.checkpoint.partial_path`, and the temporary files of a write are
:func:`dean_nb.experiment.records.atomic_write_json`'s.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dean_nb.experiment.records import StepRecord, local_writer_pid

__all__ = [
    "DEFAULT_STALE_AFTER",
    "RunLock",
    "RunLockLost",
    "RunLocks",
    "lock_path",
    "remove_stale_leftovers",
]


#: Seconds without a heartbeat after which :func:`dean_nb.experiment.grid.run_grid` takes a claim as
#: abandoned.
DEFAULT_STALE_AFTER = 300.0


#: This machine's name as locks record it.
_HOST = socket.gethostname()


# Tokens of the claims this process holds (a lock naming this pid is live only if listed).
_LIVE_TOKENS: set[str] = set()


def lock_path(record: Path) -> Path:
    """The lock of a run's record: ``.<run_key>.lock`` beside it."""
    return record.with_name(f".{record.stem}.lock")


class RunLockLost(Exception):
    """Another process took over this run's claim (ours had been judged stale)."""


@dataclass
class RunLock:
    """A run this process holds: its record's path and the random token in its lock.

    ``lost`` turns true when the heartbeat finds the lock taken over by another process;
    :meth:`check`, passed to the loop as its ``on_step``, then stops the run.
    """

    record: Path
    token: str
    lost: bool = False
    misses: int = 0

    @property
    def lock(self) -> Path:
        return lock_path(self.record)

    def check(self, _step: StepRecord | None = None) -> None:
        """Raise :class:`RunLockLost` when the heartbeat found the claim taken over."""
        if self.lost:
            raise RunLockLost(self.record.stem)


def _pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would terminate it; rely on the heartbeat instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    with contextlib.suppress(OSError, IndexError):
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        if stat_line.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


def _fs_now(folder: Path) -> float:
    """The current time by the clock that stamps files in ``folder``.

    An NFS server stamps the files (and ``utime(None)`` heartbeats) with its own clock, so
    ages measured against a probe file are immune to clock skew between client machines.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".dean_nb-clock~", suffix=".probe", dir=folder)
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)


def _read_lock(lock: Path) -> tuple[dict[str, Any] | None, os.stat_result]:
    """A lock's JSON (``None`` while empty or unreadable) and its stat; raises if missing."""
    with open(lock, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read()
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, st
    return (info if isinstance(info, dict) else None), st


def _owner_alive(
    info: dict[str, Any] | None, st: os.stat_result, now: float, stale_after: float
) -> bool:
    """Whether a lock's owner may still be computing its run.

    Dead when its heartbeat (the lock's mtime) is older than ``stale_after``, whoever owns it;
    on this machine also as soon as its pid is gone (or, for this very process, when the
    claim is not one it holds).
    """
    if now - st.st_mtime >= stale_after:
        return False
    if info is None:  # created a moment ago, its JSON not yet written
        return True
    pid = info.get("pid")
    if info.get("host") == _HOST and isinstance(pid, int):
        if pid == os.getpid():
            return info.get("token") in _LIVE_TOKENS
        return _pid_exists(pid)
    return True


def _create_lock(lock: Path, record: Path, token: str) -> None:
    """``O_CREAT | O_EXCL`` the lock (``FileExistsError`` if it exists) and write its JSON."""
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    info = {
        "host": _HOST,
        "pid": os.getpid(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "token": token,
        "run": record.stem,
    }
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _try_lock(record: Path, stale_after: float) -> tuple[str, Any]:
    """Lock one run: ``("claimed", token)``, ``("busy", lock info)`` or ``("done", None)``.

    Every claim is an ``O_EXCL`` creation of the lock. A stale lock is removed by one
    reclaimer at a time (:func:`_remove_stale_lock`), and only if it is still the very
    lock judged stale; the reclaimer then competes for the ``O_EXCL`` creation like anyone
    else, so there is never more than one winner.
    """
    lock = lock_path(record)
    info: Any = None
    for _ in range(100):
        if record.exists():
            return "done", None
        token = uuid.uuid4().hex
        _LIVE_TOKENS.add(token)  # before the file exists: a reader in this process sees it live
        try:
            _create_lock(lock, record, token)
        except FileExistsError:
            _LIVE_TOKENS.discard(token)
        except BaseException:
            _LIVE_TOKENS.discard(token)
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise
        else:
            if record.exists():  # finished by another process since the check above
                _release_lock(lock, token)
                return "done", None
            return "claimed", token
        try:
            info, st = _read_lock(lock)
        except FileNotFoundError:
            continue  # released or reclaimed meanwhile: try again
        now = _fs_now(record.parent)
        if _owner_alive(info, st, now, stale_after):
            return "busy", info
        if not _remove_stale_lock(lock, info, st, now, stale_after):
            time.sleep(0.01)  # another process is reclaiming it: see what it leaves
    return "busy", info


def _same_lock(
    a: dict[str, Any] | None, a_st: os.stat_result, b: dict[str, Any] | None, b_st: os.stat_result
) -> bool:
    return (
        a_st.st_ino == b_st.st_ino
        and a_st.st_mtime_ns == b_st.st_mtime_ns
        and (a or {}).get("token") == (b or {}).get("token")
    )


def _remove_stale_lock(
    lock: Path, info: dict[str, Any] | None, st: os.stat_result, now: float, stale_after: float
) -> bool:
    """Remove ``lock`` if it is still the lock judged stale; ``False`` if another reclaims it.

    Reclaimers take turns through ``<lock>.reclaim``, created with ``O_EXCL`` and held for
    microseconds; inside, the lock is re-read and removed only if its inode, mtime (no
    heartbeat since) and token are those judged stale. A ``.reclaim`` file left by a
    reclaimer killed inside that window is removed once older than ``stale_after``.
    """
    mutex = lock.with_name(f"{lock.name}.reclaim")
    try:
        os.close(os.open(mutex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if now - os.stat(mutex).st_mtime >= stale_after:
                os.unlink(mutex)
        return False
    try:
        try:
            current, current_st = _read_lock(lock)
        except FileNotFoundError:
            return True
        if _same_lock(current, current_st, info, st):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mutex)


def _release_lock(lock: Path, token: str) -> None:
    """Remove ``lock`` if it still holds ``token``."""
    _LIVE_TOKENS.discard(token)
    with contextlib.suppress(OSError):
        info, _ = _read_lock(lock)
        if info is not None and info.get("token") == token:
            os.unlink(lock)


class RunLocks:
    """The runs this process holds in a grid; a daemon thread keeps their locks fresh.

    Every ``interval`` seconds the thread sets each held lock's mtime to now (the heartbeat
    other hosts judge staleness by) and checks that the lock still holds this claim's token;
    a claim found replaced twice in a row is marked lost.
    """

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.interval = min(30.0, max(0.05, stale_after / 10))
        self._held: dict[Path, RunLock] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, record: Path) -> tuple[str, RunLock | None]:
        """``("claimed", claim)``, ``("busy", None)`` or ``("done", None)``."""
        status, value = _try_lock(record, self.stale_after)
        if status != "claimed":
            return status, None
        claim = RunLock(record, value)
        with self._mutex:
            self._held[record] = claim
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, name="dean_nb-heartbeat", daemon=True
                )
                self._thread.start()
        return status, claim

    def release(self, claim: RunLock | None) -> None:
        if claim is None:
            return
        with self._mutex:
            self._held.pop(claim.record, None)
        _release_lock(claim.lock, claim.token)

    def close(self) -> None:
        """Stop the heartbeat and release every claim still held."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            held = list(self._held.values())
        for claim in held:
            self.release(claim)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._mutex:
                held = list(self._held.values())
            for claim in held:
                self._refresh(claim)

    def _refresh(self, claim: RunLock) -> None:
        try:
            info, _ = _read_lock(claim.lock)
        except FileNotFoundError:
            # removed under us (by hand, or moved aside by a reclaimer): take it again
            with contextlib.suppress(OSError):
                _create_lock(claim.lock, claim.record, claim.token)
            return
        except OSError:
            return
        if info is not None and info.get("token") == claim.token:
            claim.misses = 0
            with contextlib.suppress(OSError):
                os.utime(claim.lock)
        elif info is not None:
            claim.misses += 1
            claim.lost = claim.misses >= 2


def remove_stale_leftovers(folder: Path, stale_after: float) -> list[Path]:
    """Remove what killed processes left in a results folder; return what was removed.

    * temporary files of :func:`dean_nb.experiment.records.atomic_write_json` whose writer is gone (this machine, pid
      dead) or that are older than ``stale_after`` (a live writer holds one for
      milliseconds);
    * reclaim mutexes (:func:`_remove_stale_lock`) and clock probes of killed processes;
    * checkpoints of runs whose record exists and which nobody holds.

    Locks of dead owners are not removed here: the next claim of their run reclaims them.
    """
    removed: list[Path] = []
    now: float | None = None
    for entry in os.scandir(folder):
        name = entry.name
        if not name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        stale = False
        if name.endswith(".tmp"):
            pid = local_writer_pid(name)
            if pid is not None and pid != os.getpid():
                stale = not _pid_exists(pid)
            if not stale:
                now = _fs_now(folder) if now is None else now
                stale = now - st.st_mtime >= stale_after
        elif name.endswith(".lock.reclaim") or name.startswith(".dean_nb-clock~"):
            now = _fs_now(folder) if now is None else now
            stale = now - st.st_mtime >= stale_after
        elif name.endswith(".partial.json"):
            stem = name[1 : -len(".partial.json")]
            record = folder / f"{stem}.json"
            stale = record.exists() and not lock_path(record).exists()
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
    return removed
