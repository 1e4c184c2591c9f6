"""Where and how the run records of a folder were made: their provenance as tables.

Every record (:class:`dean_nb.experiment.records.RunResult`) stores the command line that made it, the
git commit, the date, the machine and the wall time of each step
(:func:`dean_nb.experiment.records.provenance`). Chapters 5 and 6 summarise that: which commands made
the records (:func:`format_command` prints one flag per line), which code versions and
machines (:func:`provenance_frame`, :func:`version_summary`) and how long a step took on each
machine (:func:`wall_time_by_machine`).
"""

from __future__ import annotations

from collections.abc import Mapping

from dean_nb.experiment.records import RunResult
from dean_nb.validation import check_columns

__all__ = [
    "format_command",
    "machine_name",
    "provenance_frame",
    "short_commit",
    "version_summary",
    "wall_time_by_machine",
]


def short_commit(commit: str | None) -> str:
    """``"6d3d9f2a00"``, ``"6d3d9f2a00-dirty"`` (uncommitted changes) or ``"unknown"`` (not a
    git checkout): the first 10 hex digits of a recorded commit."""
    if not commit:
        return "unknown"
    return commit[:10] + ("-dirty" if commit.endswith("-dirty") else "")


def machine_name(provenance: Mapping[str, object]) -> str:
    """``"host, device name, cpu capability"`` of a record's provenance; ``?`` or ``cpu type
    not recorded`` for what an older record lacks."""
    return ", ".join(
        [
            str(provenance.get("hostname", "?")),
            str(provenance.get("device_name", provenance.get("device", "?"))),
            str(provenance.get("cpu_capability", "cpu type not recorded")),
        ]
    )


def provenance_frame(runs: Mapping[str, RunResult]):
    """One row per record: ``run`` (the key of ``runs``), ``command``, ``commit``
    (:func:`short_commit`), ``machine`` (:func:`machine_name`), ``date`` (``YYYY-MM-DD HH:MM``)
    and ``minutes`` (the run's total wall time)."""
    import pandas as pd

    rows = [
        {
            "run": stem,
            "command": r.provenance.get("command", ""),
            "commit": short_commit(r.provenance.get("git_commit")),
            "machine": machine_name(r.provenance),
            "date": str(r.provenance.get("date", ""))[:16].replace("T", " "),
            "minutes": sum(s.wall_time or 0.0 for s in r.steps) / 60,
        }
        for stem, r in runs.items()
    ]
    columns = ["run", "command", "commit", "machine", "date", "minutes"]
    return pd.DataFrame(rows, columns=columns)


def version_summary(prov):
    """Records per (commit, machine) of :func:`provenance_frame`: their number, first and last
    date and mean minutes per run."""
    check_columns(prov, ("commit", "machine", "date", "minutes"))
    return prov.groupby(["commit", "machine"]).agg(
        records=("date", "size"),
        first=("date", "min"),
        last=("date", "max"),
        minutes_per_run=("minutes", "mean"),
    )


def wall_time_by_machine(df, prov, *, over_seeds: str = "mean"):
    """Wall time of each step (seconds) over the seeds: rows ``(machine, method)``, columns
    the steps.

    ``df`` is the tidy frame of :func:`dean_nb.analysis.results.load_results`, ``prov`` the
    :func:`provenance_frame` of the same records (joined on ``run``). ``over_seeds`` is
    ``"mean"`` or ``"median"`` (a run paused for a while does not move the median).
    """
    if over_seeds not in ("mean", "median"):
        raise ValueError(f"over_seeds must be 'mean' or 'median', got {over_seeds!r}")
    check_columns(df, ("run", "method", "step", "wall_time"))
    check_columns(prov, ("run", "machine"))
    machine = df["run"].map(prov.set_index("run")["machine"])
    return df.assign(machine=machine).pivot_table(
        index=["machine", "method"], columns="step", values="wall_time", aggfunc=over_seeds
    )


def format_command(command: str, indent: int = 4) -> str:
    """A recorded command line with one ``--flag`` per line, continued by backslashes, so that
    no command is cut in a narrow column."""
    return f" \\\n{' ' * indent}--".join(command.split(" --"))
