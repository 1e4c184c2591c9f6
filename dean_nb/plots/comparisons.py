"""Figures of chapter 7: one method against its rivals, and how much a BatchBALD batch can know."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import FONT, MAX_WIDTH, SMALL, check_frame, method_style, panel_grid

__all__ = ["batch_information", "head_to_head_gaps"]


def head_to_head_gaps(
    table,
    margin: float,
    *,
    method: str = "dean",
    title: str | None = None,
    n_stderr: float = 2.0,
    panel_width: float = 3.3,
    row_height: float = 0.32,
) -> Figure:
    """Gaps ``method - rival`` with ``n_stderr`` standard errors, one panel per (ε, budget).

    Args:
        table: :func:`dean_nb.analysis.head_to_head.head_to_head` (gaps and standard errors in points).
        margin: the tie margin (accuracy fraction), shaded around zero.
        method: the judged method's name, for the axis label.
        title: the figure's title.
        n_stderr: the half-width of the error bars in standard errors (the verdicts' 2).
        panel_width, row_height: inches per panel and per rival.

    Returns:
        A figure of one axes per (ε, acquired) pair, rivals top to bottom in the table's order,
        each gap written as ``k/n`` (seeds on which ``method`` scored higher, of the paired).
    """
    check_frame(table, ["ε", "acquired", "rival", "gap", "stderr", "better", "seeds"])
    points = list(dict.fromkeys(zip(table["ε"], table["acquired"], strict=True)))
    rivals = list(dict.fromkeys(table["rival"]))
    height = 0.9 + row_height * len(rivals)
    fig, axes, spare = panel_grid(len(points), 2, panel_width, height, sharey=False)
    for ax in spare:
        ax.set_axis_off()
    y = np.arange(len(rivals))
    for n, (ax, (eps, acquired)) in enumerate(zip(axes, points, strict=True)):
        rows = table[(table["ε"] == eps) & (table["acquired"] == acquired)].set_index("rival")
        ax.axvspan(-100 * margin, 100 * margin, color="0.92", zorder=0)
        ax.axvline(0, color="k", lw=0.8)
        for yi, rival in zip(y, rivals, strict=True):
            if rival not in rows.index or rows.loc[rival, "seeds"] == 0:
                ax.annotate(
                    "no records",
                    (0, yi),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=SMALL,
                )
                continue
            r = rows.loc[rival]
            err = 0.0 if math.isnan(r["stderr"]) else n_stderr * r["stderr"]
            colour = method_style(rival)["color"]
            ax.errorbar(r["gap"], yi, xerr=err, fmt="o", color=colour, ms=4, capsize=2)
            ax.annotate(
                f"{r['better']}/{r['seeds']}",
                (r["gap"] + err, yi),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=SMALL,
            )
        low, high = ax.get_xlim()
        ax.set_xlim(low, high + 0.15 * (high - low))  # room for the k/n labels
        ax.set_title(f"ε = {eps:g}, {acquired} acquired", fontsize=FONT)
        ax.set_yticks(y, rivals if n % 2 == 0 else [""] * len(rivals), fontsize=SMALL)
        ax.set_ylim(len(rivals) - 0.5, -0.5)
        ax.set_xlabel(f"{method} − rival (points)", fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=FONT)
    return fig


def batch_information(
    values_by_passes: Mapping[int, Sequence[float]],
    *,
    reference_by_passes: Mapping[int, tuple[Sequence[int], Sequence[float], Sequence[float]]]
    | None = None,
    title: str | None = None,
) -> Figure:
    """A greedy BatchBALD batch's information against its size, for several numbers of passes.

    Args:
        values_by_passes: ``{T: values}``, the BatchBALD value (nats) of the batch after each
            pick (:func:`dean_nb.strategies.batchbald.batchbald_indices`' second output) with ``T``
            MC-dropout passes.
        reference_by_passes: optional ``{T: (sizes, values, stderrs)}``: a sharper value of
            the batch's first ``n`` picks for each ``n`` in ``sizes``
            (:func:`dean_nb.strategies.batchbald.batch_mutual_information`), drawn dashed in
            ``T``'s colour with a band of two standard errors. Its keys must be among
            ``values_by_passes``'.
        title: the figure's title.

    Returns:
        One axes: a line per ``T``, and its ceiling ``log T`` dotted in the same colour
        (a batch cannot tell the ``T`` sampled networks apart by more than that).
    """
    if not values_by_passes:
        raise ValueError("values_by_passes must hold at least one number of passes")
    reference_by_passes = dict(reference_by_passes or {})
    unknown = sorted(set(reference_by_passes) - set(values_by_passes))
    if unknown:
        raise ValueError(
            f"reference_by_passes has numbers of passes {unknown} that values_by_passes lacks"
        )
    fig = Figure(figsize=(min(MAX_WIDTH, 5.6), 3.2), layout="constrained")
    ax = fig.subplots()
    for n, (passes, values) in enumerate(sorted(values_by_passes.items())):
        values = np.asarray(values, dtype=float)
        colour = f"C{n}"
        picks = np.arange(1, len(values) + 1)
        ax.plot(picks, values, color=colour, marker="o", ms=2.5, label=f"T = {passes}")
        if passes in reference_by_passes:
            sizes, ref, err = (np.asarray(a, dtype=float) for a in reference_by_passes[passes])
            ax.plot(sizes, ref, color=colour, ls="--", lw=1.5, label=f"T = {passes}, reference")
            ax.fill_between(sizes, ref - 2 * err, ref + 2 * err, color=colour, alpha=0.2, lw=0)
        ax.axhline(math.log(passes), color=colour, ls=":", lw=1.2)
        ax.annotate(
            f"log {passes}",
            (picks[-1], math.log(passes)),
            xytext=(0, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=SMALL,
            color=colour,
        )
    ax.set_xlabel("batch size (greedy picks)", fontsize=FONT)
    ax.set_ylabel("batch information (nats)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=SMALL, loc="lower right")
    if title:
        ax.set_title(title, fontsize=FONT)
    return fig
