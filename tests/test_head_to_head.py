"""Head-to-head verdicts (``dean_nb.analysis.head_to_head``).

Properties: the word follows the sign and size of the gap against the margin; it is tentative
exactly when few seeds are paired or the gap's 2-standard-error interval reaches a boundary;
the table has one row per (noise level, budget, rival), in that order, with gaps in points that
equal the seed-by-seed differences; bad thresholds are refused by name before any work.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dean_nb.analysis.claims import PairedGap
from dean_nb.analysis.head_to_head import (
    HEAD_TO_HEAD_COLUMNS,
    assert_quoted,
    format_table,
    head_to_head,
    outcome,
    table_row,
)


def gap(mean: float, stderr: float = 0.001, n: int = 5) -> PairedGap:
    return PairedGap("dean", "x", 0.0, 200, mean, stderr, n, 0)


@pytest.mark.parametrize(
    ("mean", "stderr", "n", "word"),
    [
        (0.05, 0.001, 5, "ahead"),
        (-0.05, 0.001, 5, "behind"),
        (0.002, 0.001, 5, "tie"),
        (0.010, 0.0, 5, "ahead"),  # exactly the margin counts
        (-0.010, 0.0, 5, "behind"),
        (0.015, 0.003, 5, "ahead (tentative)"),  # 0.015 - 2 * 0.003 < 0.01
        (0.015, 0.002, 5, "ahead"),  # 0.011 > 0.01
        (0.000, 0.006, 5, "tie (tentative)"),  # reaches both boundaries
        (-0.03, 0.005, 5, "behind"),  # the interval ends at -0.02
        (0.05, 0.001, 2, "ahead (tentative)"),  # too few seeds
        (0.05, math.nan, 1, "ahead (tentative)"),
        (math.nan, math.nan, 0, "not measured"),
    ],
)
def test_outcome_words(mean, stderr, n, word):
    assert outcome(gap(mean, stderr, n), 0.01) == word


def test_a_zero_margin_has_no_ties_but_exact_zeros():
    assert outcome(gap(1e-9), 0.0) == "ahead (tentative)"  # 2 s.e. reach below 0
    assert outcome(gap(0.0, 0.0), 0.0) == "ahead"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"margin": -0.1}, "margin"),
        ({"margin": 1.0}, "margin"),
        ({"margin": 0.01, "min_seeds": 0}, "min_seeds"),
        ({"margin": 0.01, "n_stderr": -1.0}, "n_stderr"),
        ({"margin": 0.01, "n_stderr": math.inf}, "n_stderr"),
    ],
)
def test_bad_thresholds_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        outcome(gap(0.0), **kw)
    frame = pd.DataFrame(columns=["epsilon", "n_acquired", "seed", "method", "test_accuracy"])
    with pytest.raises(ValueError, match=match):
        head_to_head(frame, "dean", ["bald"], epsilons=[0.0], acquired=[200], **kw)


def _frame() -> pd.DataFrame:
    rows = []
    for seed in range(4):
        for eps in (0.0, 0.3):
            for n_acq, base in ((200, 0.70), (1000, 0.80)):
                rows += [
                    (eps, n_acq, seed, "dean", base + 0.02 + 0.001 * seed),
                    (eps, n_acq, seed, "bald", base),
                    (eps, n_acq, seed, "random", base + 0.005 * (seed % 2)),
                ]
    return pd.DataFrame(rows, columns=["epsilon", "n_acquired", "seed", "method", "test_accuracy"])


def test_the_table_has_a_row_per_point_and_rival_with_the_paired_gaps():
    df = _frame()
    table = head_to_head(
        df,
        "dean",
        ["bald", "random", "badge"],
        epsilons=[0.0, 0.3],
        acquired=[200, 1000],
        margin=0.01,
    )
    assert list(table.columns) == list(HEAD_TO_HEAD_COLUMNS)
    assert len(table) == 2 * 2 * 3
    assert list(table["rival"][:3]) == ["bald", "random", "badge"]
    assert list(table["ε"][::6]) == [0.0, 0.3] and list(table["acquired"][:6:3]) == [200, 1000]
    bald = table[table["rival"] == "bald"]
    assert bald["gap"].to_numpy() == pytest.approx([2.15] * 4)  # 2 points + 0.1 * mean seed
    assert (bald["better"] == 4).all() and (bald["seeds"] == 4).all()
    assert (bald["verdict"] == "ahead").all()
    assert (table[table["rival"] == "badge"]["verdict"] == "not measured").all()
    with pytest.raises(ValueError, match="rivals"):
        head_to_head(df, "dean", [], epsilons=[0.0], acquired=[200], margin=0.01)
    text = format_table(table)
    assert list(text.columns) == ["ε", "acquired", "rival", "points", "better", "verdict"]
    gap_text, _, se_text = text["points"].iloc[0].partition(" ± ")
    assert float(gap_text) == pytest.approx(2.15, abs=0.051) and se_text == "0.1"
    assert text["better"].iloc[0] == "4/4"
    assert text["points"].iloc[2] == "+nan ± nan" and text["better"].iloc[2] == "0/0"


def test_best_of_judges_against_the_best_rival_at_each_point():
    df = _frame()
    # random beats bald on odd seeds only, so it is the best rival by mean accuracy
    table = head_to_head(
        df,
        "dean",
        ["bald", "random"],
        epsilons=[0.0, 0.3],
        acquired=[200, 1000],
        margin=0.01,
        best_of=True,
    )
    assert len(table) == 4 and set(table["rival"]) == {"random"}
    by_rival = head_to_head(
        df, "dean", ["random"], epsilons=[0.0, 0.3], acquired=[200, 1000], margin=0.01
    )
    pd.testing.assert_frame_equal(table, by_rival)
    # a rival without records is skipped in the choice, not reported as the best
    only = head_to_head(
        df,
        "dean",
        ["badge", "bald"],
        epsilons=[0.0],
        acquired=[200],
        margin=0.01,
        best_of=True,
    )
    assert only["rival"].tolist() == ["bald"] and only["seeds"].tolist() == [4]


def _two_noise_levels() -> pd.DataFrame:
    rows = [
        {"ε": e, "acquired": n, "rival": r, "gap": 10 * e + n / 100, "stderr": 0.1}
        | {"better": 5, "seeds": 5, "verdict": "ahead"}
        for e in (0.0, 0.3)
        for n in (200, 1000)
        for r in ("random", "bald")
    ]
    return pd.DataFrame(rows, columns=list(HEAD_TO_HEAD_COLUMNS))


def test_table_row_finds_the_one_line_and_asks_for_epsilon_when_two_match():
    table = _two_noise_levels()
    line = table_row(table, 1000, "bald", epsilon=0.3)
    assert (line["ε"], line["acquired"], line["rival"]) == (0.3, 1000, "bald")
    assert line["gap"] == pytest.approx(13.0)
    one_level = table[table["ε"] == 0.0]
    assert table_row(one_level, 200, "random")["gap"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="pass epsilon"):
        table_row(table, 200, "random")
    with pytest.raises(KeyError, match="badge"):
        table_row(table, 200, "badge", epsilon=0.0)


@pytest.mark.parametrize(
    ("value", "quoted", "unit", "holds"),
    [
        (2.34, 2.3, 0.1, True),
        (2.35, 2.3, 0.1, True),  # the rounding boundary counts
        (2.36, 2.3, 0.1, False),
        (-6.44, -6.4, 0.1, True),
        (-6.46, -6.4, 0.1, False),
        (112.6, 113, 1, True),
        (0.264, 0.26, 0.01, True),
        (0.266, 0.26, 0.01, False),
        (math.nan, 2.3, 0.1, False),
    ],
)
def test_assert_quoted_holds_exactly_when_the_number_rounds_to_the_quote(
    value, quoted, unit, holds
):
    if holds:
        assert_quoted(value, quoted, unit=unit)
    else:
        with pytest.raises(AssertionError, match=f"says {quoted:g}"):
            assert_quoted(value, quoted, unit=unit)


@pytest.mark.parametrize("unit", [0.0, -0.1, math.inf, math.nan])
def test_assert_quoted_refuses_a_unit_that_is_no_rounding(unit):
    with pytest.raises(ValueError, match="unit"):
        assert_quoted(1.0, 1.0, unit=unit)
