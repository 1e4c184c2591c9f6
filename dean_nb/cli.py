"""Command line: run a grid of active-learning experiments, then report on it.

::

    python -m dean_nb run --dataset digits --preset quick \\
        --strategies dean,dean+denoise,bald,entropy,random --epsilons 0,0.3 --seeds 0-4 \\
        --out results/
    python -m dean_nb report results/

``run`` writes one JSON file per run into ``--out`` as each finishes and skips runs already
there, so re-running the same command after an interruption finishes the grid. ``report``
prints the paper's Table-2 view (mean +/- std test accuracy over seeds at each number of
labels), the model-uncertainty table (:mod:`dean_nb.analysis.results`) and, where DeAn ran,
the paper's three claims as paired gaps (:mod:`dean_nb.analysis.claims`); it saves learning
curves, the uncertainty figure and CSV files. The console script ``dean-nb`` is the same program.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from dean_nb import strategies
from dean_nb.analysis.claims import claims_table, format_claims, paper_claims
from dean_nb.analysis.results import (
    SkippedRecordWarning,
    format_summary,
    load_results,
    summary_table,
    uncertainty_table,
)
from dean_nb.experiment.config import (
    DENOISE_SUFFIX,
    FORWARD_SUFFIX,
    ExperimentConfig,
    file_label,
    parse_override,
    split_method,
)
from dean_nb.experiment.grid import dask_executor, make_grid, result_path, run_grid
from dean_nb.experiment.loop import check_import_paths
from dean_nb.experiment.presets import PRESETS, preset_of
from dean_nb.problem.datasets import DATASETS
from dean_nb.validation import is_import_path, writable_folder_problem

from .plots import learning_curves, uncertainty_curves

__all__ = [
    "build_parser",
    "grid_of_command",
    "main",
    "parse_epsilons",
    "parse_seeds",
    "parse_strategies",
]

_DENOISE_CHOICES = {"no": (False,), "yes": (True,), "both": (False, True)}


# --------------------------------------------------------------------------- value parsers


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,2,5"``; mixed ``"0-2,7"``. Non-negative, no repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError(
                f"bad seeds {text!r}: empty item; use a range like 0-4 or a list like 0,2,5"
            )
        try:
            if "-" in part:
                low_text, high_text = part.split("-", 1)
                low, high = int(low_text), int(high_text)
                if low > high:
                    raise argparse.ArgumentTypeError(
                        f"bad seed range {part!r}: the start must not exceed the end (e.g. 0-4)"
                    )
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad seeds {text!r}: {part!r} is not a non-negative integer or a range "
                "START-END; use e.g. 0-4 or 0,2,5"
            ) from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"bad seeds {text!r}: seeds must be >= 0")
    return list(dict.fromkeys(seeds))


def parse_epsilons(text: str) -> list[float]:
    """``"0,0.1,0.3"`` -> floats, each a K-SC flip probability in [0, 1)."""
    values: list[float] = []
    for part in text.split(","):
        part = part.strip()
        try:
            eps = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad epsilon {part!r}: epsilons are numbers in [0, 1), comma-separated"
            ) from None
        if not 0.0 <= eps < 1.0:
            raise argparse.ArgumentTypeError(
                f"bad epsilon {part!r}: epsilon (the oracle's flip probability) must lie in [0, 1)"
            )
        values.append(eps + 0.0)  # -0 is 0: the same runs, the same files
    return list(dict.fromkeys(values))


def parse_strategies(text: str) -> list[str]:
    """``"dean,dean+denoise,bald"`` -> names, each registered (optionally with ``+denoise`` or
    ``+forward``)."""
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    known = strategies.available()
    if not names:
        raise argparse.ArgumentTypeError(f"no strategy given; choose from {', '.join(known)}")
    for name in names:
        if split_method(name)[0] not in known:
            raise argparse.ArgumentTypeError(
                f"unknown strategy {name!r}; choose from {', '.join(known)} "
                f"(append {DENOISE_SUFFIX} to one to train it with the denoising layer, "
                f"{FORWARD_SUFFIX} with forward correction through an estimated channel)"
            )
    return list(dict.fromkeys(names))


def _dataset_name(text: str) -> str:
    if text in DATASETS or is_import_path(text):
        return text
    choices = ", ".join(DATASETS)
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {choices}, or package.module:function)"
    )


def _parse_override(text: str):
    """:func:`dean_nb.experiment.config.parse_override` with argparse's error type."""
    try:
        return parse_override(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``run`` / ``report`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m dean_nb",
        description=(
            "Noisy batch active learning with deterministic annealing (DeAn): run experiment "
            "grids and report on them."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report}")

    _add_run_parser(sub)
    _add_report_parser(sub)
    return parser


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    """The ``run`` command and its flags."""
    run = sub.add_parser(
        "run",
        help="run a grid of active-learning experiments (resumable)",
        description=(
            "Run every combination of strategy x epsilon x denoise x seed. Each run is written "
            "to OUT as one JSON file when it finishes; runs already in OUT are skipped, so the "
            "same command resumes an interrupted grid."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_grid_flags(run)
    _add_where_flags(run)


def _add_grid_flags(run: argparse.ArgumentParser) -> None:
    """``run``'s flags that choose the grid: dataset, preset, strategies, noise, seeds."""
    run.add_argument(
        "--dataset",
        default="digits",
        type=_dataset_name,
        help=f"{', '.join(DATASETS)}, or your own: package.module:function returning a Dataset or "
        "(x_train, y_train, x_test, y_test) (its folder on PYTHONPATH; preset quick by default)",
    )
    run.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="your network: package.module:function, called as function(num_classes, "
        "input_shape, seed) -> nn.Module. Default: the data set's architecture",
    )
    run.add_argument(
        "--preset",
        default=None,
        choices=tuple(PRESETS),
        help=(
            "protocol sizes: quick (digits, CPU, seconds per run), medium (fashion-mnist, "
            "2 CPU cores), paper (mnist, emnist, cifar10, svhn, cifar100; a GPU). "
            "Default: the one of --dataset (quick for an import path)"
        ),
    )
    run.add_argument(
        "--strategies",
        type=parse_strategies,
        default="dean,bald,entropy,random",
        help=(
            f"comma-separated strategy names ({', '.join(strategies.available())}); "
            "NAME+denoise runs NAME with the denoising layer only, NAME+forward with forward "
            "correction through a channel estimated at every step (Patrini et al. 2017)"
        ),
    )
    run.add_argument(
        "--epsilons",
        type=parse_epsilons,
        default="0",
        help="comma-separated oracle noise levels (the flip probability of --noise), each in "
        "[0, 1)",
    )
    run.add_argument(
        "--noise",
        default=None,
        metavar="CHANNEL",
        help="the oracle's channel: symmetric (eq. 1: a wrong label is uniform over the other "
        "classes), pairflip (class j is answered j+1 mod K with probability epsilon), or "
        "FILE.json holding a K x K column-stochastic matrix, T[i][j] = p(answer i | true class "
        "j); a matrix's epsilon is its flip rate 1 - trace(T)/K, so leave --epsilons at 0. "
        "Default: the preset's (symmetric)",
    )
    run.add_argument(
        "--oracle-memory",
        type=float,
        default=None,
        metavar="M",
        help="share of images whose answer repeats when asked again, in [0, 1]: 1 (the "
        "default) the paper's resolute noise, 0 a fresh draw from the channel at every "
        "query; only re-labelling strategies (relabel-majority, activelab) ask again",
    )
    run.add_argument(
        "--denoise",
        choices=tuple(_DENOISE_CHOICES),
        default="no",
        help="train with the noisy-channel layer: no, yes, or both (each run twice)",
    )
    run.add_argument(
        "--seeds",
        type=parse_seeds,
        default="0",
        help="repeats: a range 0-4, a list 0,2,5, or both 0-2,7; a seed fixes split and draws",
    )


def _add_where_flags(run: argparse.ArgumentParser) -> None:
    """``run``'s flags that say where and how it runs: folders, device, workers, overrides."""
    run.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    run.add_argument(
        "--root", default=None, help="data folder of the torchvision datasets (not for digits)"
    )
    run.add_argument(
        "--download", action="store_true", help="let torchvision download missing datasets"
    )
    run.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)"
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="parallel runs: 1 runs inline; N > 1 uses N processes (or N Dask workers with "
        "--dask-scheduler local)",
    )
    run.add_argument(
        "--dask-scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for a "
        "LocalCluster of --workers processes",
    )
    run.add_argument(
        "--override",
        type=_parse_override,
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="change any ExperimentConfig field of the preset, e.g. epochs=20 n_steps=3 "
        "pool_subset=none",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_report_parser(sub: argparse._SubParsersAction) -> None:
    """The ``report`` command and its flags."""
    report = sub.add_parser(
        "report",
        help="summarise a results folder: table, learning curves, uncertainty",
        description=(
            "Print mean +/- std test accuracy over seeds at each number of labels (the "
            "paper's Table 2 layout), the model-uncertainty table (Table 1) and, where DeAn "
            "ran, the paper's three claims as per-seed paired gaps; save learning curves, the "
            "uncertainty figure and CSV files of every table."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    report.add_argument("results", type=Path, help="folder written by `run`")
    report.add_argument(
        "--out", type=Path, default=None, help="where to save figures and CSVs (default: RESULTS)"
    )
    report.add_argument(
        "--fraction", action="store_true", help="print accuracies as fractions instead of percent"
    )
    report.add_argument(
        "--early",
        type=int,
        default=None,
        help="acquired labels at which the cold-start claim is judged (default: the first "
        "acquisition of each dataset's runs)",
    )
    report.add_argument(
        "--late",
        type=int,
        default=None,
        help="acquired labels at which the late and denoising claims are judged (default: "
        "the last step of each dataset's runs)",
    )
    report.add_argument(
        "--against-preset",
        action="store_true",
        help="label each dataset's runs against its preset: a run of the preset keeps its "
        "plain method name, any other carries the fields in which it differs from the preset "
        "(default: only where one method and noise level has several configurations)",
    )
    report.add_argument(
        "--margin",
        type=float,
        default=0.01,
        help="accuracy margin of the claims: a shortfall below it is a tie, a gain must reach it",
    )


# --------------------------------------------------------------------------- commands


def _configs(args: argparse.Namespace, parser: argparse.ArgumentParser):
    preset = args.preset or preset_of(args.dataset)  # every data set has one; quick for a path
    overrides = dict(args.override)
    # the preset's base config is built (and checked) with the grid's first strategy, so that
    # strategy_options are judged by a strategy of the grid, not by the default one
    first = args.strategies[0]
    overrides.setdefault("strategy", split_method(first)[0])
    for field in ("root", "device", "noise", "model", "oracle_memory"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    overrides.update({flag: True for flag in ("download", "quiet") if getattr(args, flag)})
    try:
        base = ExperimentConfig.preset(args.dataset, preset, **overrides)
        return make_grid(
            base, args.strategies, args.epsilons, _DENOISE_CHOICES[args.denoise], args.seeds
        )
    except (ValueError, TypeError) as err:
        parser.error(str(err))


def grid_of_command(command: str | Sequence[str]) -> list[ExperimentConfig]:
    """The configurations a ``run`` command line stands for, built as ``run`` builds them.

    Args:
        command: ``"python -m dean_nb run --dataset mnist ..."`` (a string, split like a
            shell), or its words; anything before the word ``run`` (the program) is ignored.

    Returns:
        The grid, one :class:`ExperimentConfig` per run, in the order ``run`` computes them.

    Raises:
        ValueError: not a ``run`` command, or an argument ``run`` refuses (argparse's message
            is printed to stderr as well).
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if "run" not in argv:
        raise ValueError(f"not a `run` command: {shlex.join(argv)!r}")
    argv = argv[argv.index("run") :]
    parser = build_parser()
    try:
        return _configs(parser.parse_args(argv), parser)
    except SystemExit:
        raise ValueError(f"`run` refuses the command {shlex.join(argv)!r}") from None


def _fail(parser: argparse.ArgumentParser, message: str) -> int:
    """Print a one-line error (no usage: the arguments parsed) and return 2."""
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    configs = _configs(args, parser)
    try:
        check_import_paths(c for c in configs if not result_path(c, args.out).exists())
    except ValueError as err:
        return _fail(parser, str(err))
    problem = writable_folder_problem(args.out, "--out")
    if problem is not None:
        return _fail(parser, problem)
    done = sum(result_path(c, args.out).exists() for c in configs)
    print(
        f"{len(configs)} runs ({done} already in {args.out}, {len(configs) - done} to go)",
        flush=True,
    )
    executor, cleanup = None, []
    if args.dask_scheduler is not None:
        try:
            executor, cleanup = dask_executor(args.dask_scheduler, args.workers)
        except ImportError as err:
            parser.error(str(err))
    try:
        paths = run_grid(
            configs,
            args.out,
            executor=executor,
            progress=not args.quiet,
            max_workers=args.workers,
            command=args.command_line,
        )
    except KeyboardInterrupt:
        # A second Ctrl-C must not cut this short; callers of main() get their handler back.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            finished = sum(result_path(c, args.out).exists() for c in configs)
            print(
                f"interrupted: {finished - done} more runs finished, {finished} of "
                f"{len(configs)} are in {args.out}; run the same command again to resume "
                f"the other {len(configs) - finished}",
                file=sys.stderr,
                flush=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        return 130
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        for close in cleanup:
            close()
    finished = len(paths.computed) + len(paths.found)
    print(f"{finished} results in {args.out} ({len(paths.computed)} computed now)")
    if paths.left_to_others:
        print(
            f"{len(paths.left_to_others)} runs are being computed by other processes; run the "
            "same command again later to check that they finished"
        )
    return 0


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import pandas as pd

    if not 0.0 <= args.margin < 1.0:
        parser.error(f"--margin must lie in [0, 1), got {args.margin}")
    for flag in ("early", "late"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag} must be a number of acquired labels >= 1, got {value}")
    if not args.results.is_dir():
        what = "is a file, not a folder" if args.results.exists() else "does not exist"
        return _fail(parser, f"results folder {args.results} {what}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRecordWarning)
        df = load_results(args.results)
        if args.against_preset and not df.empty:
            df = _against_presets(args.results, sorted(df["dataset"].unique()))
    for warning in caught:  # one line each, not warnings' file:line + source line
        print(f"warning: {warning.message}", file=sys.stderr)
    if df.empty:
        print(f"error: no run files (*.json) in {args.results}", file=sys.stderr)
        return 1
    out = args.out if args.out is not None else args.results
    problem = writable_folder_problem(out, "--out" if args.out is not None else "RESULTS")
    if problem is not None:
        return _fail(parser, problem)
    # a plain label is its strategy with at most a noise-model suffix (+denoise, +forward)
    labelled = sorted(
        {m for s, m in zip(df["strategy"], df["method"], strict=True) if split_method(m)[0] != s}
    )
    if labelled:
        print(
            "note: runs of several configurations of one method and noise level are reported "
            "apart, labelled with the fields in which they differ: " + "; ".join(labelled)
        )

    summary = summary_table(df)
    summary.to_csv(out / "summary.csv", index=False)
    sigma = uncertainty_table(df)
    sigma.to_csv(out / "uncertainty.csv")
    percent = not args.fraction
    unit = "%" if percent else "fraction"
    claim_files: list[Path] = []
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        for dataset, rows in summary.groupby("dataset"):
            n_seeds = int(rows["n"].max())
            print(
                f"\n== {dataset}: test accuracy ({unit}), mean ± std over up to {n_seeds} "
                "seeds, by number of labels"
            )
            print(format_summary(rows, percent=percent).loc[dataset].to_string())
            print(f"\n== {dataset}: model uncertainty sigma (mean over seeds) by step")
            print(sigma.loc[dataset].round(3).to_string())
            claims = _claims(df[df["dataset"] == dataset], args, parser)
            if claims is not None:
                print(
                    f"\n== {dataset}: the paper's claims as paired gaps (accuracy, mean ± "
                    "standard error of the per-seed differences; paper: its MNIST means)"
                )
                print(format_claims(claims).to_string(index=False))
                claim_files.append(out / f"claims_{file_label(dataset)}.csv")
                claims.to_csv(claim_files[-1], index=False)
    saved = []
    for dataset in sorted(df["dataset"].unique()):
        rows = df[df["dataset"] == dataset]
        for name, make in (
            ("learning_curves", learning_curves),
            ("uncertainty", uncertainty_curves),
        ):
            fig = make(rows)
            path = out / f"{name}_{file_label(dataset)}.png"
            fig.savefig(path, dpi=120)
            saved.append(path)
    saved += [out / "summary.csv", out / "uncertainty.csv", *claim_files]
    print("\nsaved: " + ", ".join(os.fspath(p) for p in saved))
    return 0


def _against_presets(folder: Path, datasets: Sequence[str]):
    """The frame of ``folder`` with each dataset's runs labelled against its preset."""
    import pandas as pd

    frames = []
    with warnings.catch_warnings():  # the first reading of the folder warned already
        warnings.simplefilter("ignore", SkippedRecordWarning)
        for dataset in datasets:
            reference = ExperimentConfig.preset(dataset, preset_of(dataset))
            df = load_results(folder, reference=reference)
            frames.append(df[df["dataset"] == dataset])
    return pd.concat(frames, ignore_index=True)


def _claims(df, args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The claims table of one dataset's runs, or ``None`` when no DeAn run is there."""
    if "dean" not in set(df["method"]):
        return None
    acquired = sorted(n for n in df["n_acquired"].unique() if n > 0)
    if not acquired:
        return None
    noisy = sorted(e for e in df["epsilon"].unique() if e > 0)
    early = acquired[0] if args.early is None else args.early
    late = acquired[-1] if args.late is None else args.late
    claims = paper_claims(early, late, noisy[-1] if noisy else 0.3, args.margin)
    return claims_table(df, claims)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dean_nb`` and the ``dean-nb`` script; returns the exit code.

    Bad arguments print a usage line and a message naming the flag and what it accepts, and
    return 2 (argparse's convention); a bad ``--out`` or results folder, found after parsing,
    prints one line and returns 2. Ctrl-C prints one line and returns 130 (``run`` says how
    many runs finished; the same command resumes the grid).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.command_line = shlex.join(
            ["python", "-m", "dean_nb", *(sys.argv[1:] if argv is None else argv)]
        )
        if args.command == "run":
            return _cmd_run(args, parser)
        return _cmd_report(args, parser)
    except SystemExit as exit_:  # argparse errors and --help
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:  # Ctrl-C outside a grid (``run`` reports its own progress)
        print("interrupted", file=sys.stderr)
        return 130
