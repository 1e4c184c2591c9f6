"""One method against its rivals, seed by seed, with a three-way verdict (chapter 7).

Chapter "DeAn and the stochastic baselines" asks questions of the form "is DeAn ahead of X?"
at a few points of the learning curves. Each answer is a paired gap
(:func:`dean_nb.analysis.claims.paired_gap`: the mean over seeds of ``method - rival`` in test
accuracy, and its standard error) turned into one word by :func:`outcome`:

* ``ahead`` when the gap is at least ``+margin``, ``behind`` when it is at most ``-margin``,
  ``tie`` in between (a difference smaller than the margin is not worth a claim);
* ``(tentative)`` is added when fewer than ``min_seeds`` seeds are paired, or when the interval
  ``gap +/- n_stderr * stderr`` reaches past one of the boundaries ``+/-margin``, i.e. the word
  could change with a few more seeds.

A chapter that quotes a verdict keeps its text true with :func:`table_row` (the line it
quotes) and :func:`assert_quoted` (a number as the text rounds it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from dean_nb.analysis.claims import PairedGap, paired_gap, settled_against
from dean_nb.validation import check_columns, check_float_range, check_int_range

__all__ = [
    "HEAD_TO_HEAD_COLUMNS",
    "OUTCOMES",
    "assert_quoted",
    "format_table",
    "head_to_head",
    "outcome",
    "table_row",
]

#: The words of :func:`outcome` (before any ``" (tentative)"``).
OUTCOMES = ("ahead", "tie", "behind", "not measured")

#: Columns of :func:`head_to_head`.
HEAD_TO_HEAD_COLUMNS = (
    "ε",
    "acquired",
    "rival",
    "gap",
    "stderr",
    "better",
    "seeds",
    "verdict",
)


def outcome(gap: PairedGap, margin: float, *, min_seeds: int = 3, n_stderr: float = 2.0) -> str:
    """``ahead``, ``tie`` or ``behind`` for a paired gap, ``(tentative)`` when unsettled.

    Args:
        gap: a :class:`~dean_nb.analysis.claims.PairedGap` (accuracy fractions).
        margin: in [0, 1): a gap with ``|mean| < margin`` is a tie.
        min_seeds: fewer paired seeds than this make the verdict tentative.
        n_stderr: how many standard errors the gap must keep from ``+/-margin``.

    Returns:
        One of :data:`OUTCOMES`, ``" (tentative)"`` appended where it applies;
        ``"not measured"`` when no seed is paired.
    """
    margin, min_seeds, n_stderr = _checked_thresholds(margin, min_seeds, n_stderr)
    if gap.n_seeds == 0 or math.isnan(gap.mean):
        return "not measured"
    if gap.mean >= margin:
        word = "ahead"
    elif gap.mean <= -margin:
        word = "behind"
    else:
        word = "tie"
    settled = all(
        settled_against(gap, edge, min_seeds=min_seeds, n_stderr=n_stderr)
        for edge in (-margin, margin)
    )
    return word if settled else f"{word} (tentative)"


def _checked_thresholds(margin: float, min_seeds: int, n_stderr: float):
    return (
        check_float_range("margin", margin, 0.0, 1.0, high_inclusive=False),
        check_int_range("min_seeds", min_seeds, 1),
        check_float_range("n_stderr", n_stderr, 0.0, math.inf, high_inclusive=False),
    )


def head_to_head(
    df,
    method: str,
    rivals: Sequence[str],
    *,
    epsilons: Iterable[float],
    acquired: Iterable[int],
    margin: float,
    min_seeds: int = 3,
    n_stderr: float = 2.0,
    best_of: bool = False,
):
    """``method`` against each of ``rivals`` at every noise level and budget, seed by seed.

    Args:
        df: the frame of :func:`dean_nb.analysis.results.load_results` (one dataset).
        method: the method judged, a label of ``df["method"]``.
        rivals: labels of the methods it is compared with, one row each; a rival without
            records there gives a ``not measured`` row.
        epsilons: noise levels; acquired: labels acquired beyond the initial set.
        margin, min_seeds, n_stderr: as :func:`outcome`.
        best_of: one row per (epsilon, acquired) instead, against whichever of ``rivals`` has
            the highest mean accuracy there (``rival`` names it): "is ``method`` at least as
            good as the best of them, chosen with hindsight?"

    Returns:
        A DataFrame with :data:`HEAD_TO_HEAD_COLUMNS`, one row per (epsilon, acquired, rival)
        in that order: ``gap`` and ``stderr`` in accuracy points (``method - rival``),
        ``better`` the seeds on which ``method`` scored higher, ``seeds`` the paired seeds.
    """
    import pandas as pd

    check_columns(df, ("epsilon", "n_acquired", "seed", "method", "test_accuracy"))
    if not rivals:
        raise ValueError("rivals must name at least one method")
    _checked_thresholds(margin, min_seeds, n_stderr)  # before any work
    rows = []
    for eps in epsilons:
        for n_acquired in acquired:
            for group in [tuple(rivals)] if best_of else [(rival,) for rival in rivals]:
                gap = paired_gap(
                    df, method=method, baselines=group, epsilon=eps, n_acquired=n_acquired
                )
                rows.append(
                    {
                        "ε": float(eps),
                        "acquired": int(n_acquired),
                        "rival": gap.baseline,
                        "gap": 100 * gap.mean,
                        "stderr": 100 * gap.stderr,
                        "better": gap.n_better,
                        "seeds": gap.n_seeds,
                        "verdict": outcome(gap, margin, min_seeds=min_seeds, n_stderr=n_stderr),
                    }
                )
    return pd.DataFrame(rows, columns=list(HEAD_TO_HEAD_COLUMNS))


def format_table(table):
    """Text view of :func:`head_to_head`: ``ε, acquired, rival, points, better, verdict``.

    ``points`` is ``"+1.0 ± 0.3"`` (the gap and its standard error in accuracy points, ``±
    nan`` for one seed) and ``better`` is ``k/n``: the judged method scored higher on k of the
    n paired seeds.
    """
    import pandas as pd

    check_columns(table, HEAD_TO_HEAD_COLUMNS)
    points = [f"{g:+.1f} ± {s:.1f}" for g, s in zip(table["gap"], table["stderr"], strict=True)]
    better = [f"{b}/{n}" for b, n in zip(table["better"], table["seeds"], strict=True)]
    return pd.DataFrame(
        {
            "ε": table["ε"],
            "acquired": table["acquired"],
            "rival": table["rival"],
            "points": points,
            "better": better,
            "verdict": table["verdict"],
        }
    )


def table_row(table, acquired: int, rival: str, *, epsilon: float | None = None):
    """The line of a :func:`head_to_head` table at ``acquired`` against ``rival``.

    ``epsilon`` picks the noise level; it may be left out when the table has only one. Raises
    ``KeyError`` naming the line when the table has none, ``ValueError`` when ``epsilon`` is
    needed to pick one.
    """
    check_columns(table, HEAD_TO_HEAD_COLUMNS)
    at = table[(table["acquired"] == acquired) & (table["rival"] == rival)]
    if epsilon is not None:
        at = at[at["ε"] == epsilon]
    if len(at) == 0:
        raise KeyError(f"no line at acquired={acquired}, rival={rival!r}, epsilon={epsilon}")
    if len(at) > 1:
        raise ValueError(
            f"{len(at)} lines at acquired={acquired}, rival={rival!r}: pass epsilon "
            f"(one of {sorted(set(at['ε']))}) or a table of one method"
        )
    return at.iloc[0]


def assert_quoted(value: float, quoted: float, *, unit: float = 0.1) -> None:
    """Assert that a text which quotes ``quoted`` (rounded to ``unit``) says ``value``:
    ``|value - quoted| <= unit / 2``. The error names both numbers.

    A chapter calls it under every number its prose quotes from the records, so the prose
    cannot drift from them when the records are re-made.
    """
    check_float_range("unit", unit, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    if not math.isfinite(value) or abs(value - quoted) > unit / 2 + 1e-9:
        raise AssertionError(
            f"the text says {quoted:g} (to {unit:g}); the records give {value:.4g}"
        )
