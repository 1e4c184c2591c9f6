"""Figures of chapter "The paper's premises": asking again as the oracle forgets its answers."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .style import FONT, SMALL, check_frame, legend_in, method_order, method_style, panel_grid

__all__ = ["memory_sweep"]

_PANELS = (
    ("test_accuracy", "test accuracy (%)"),
    ("wrong_share", "wrong training labels (%)"),
)


def memory_sweep(table, n_acquired: int, *, title: str | None = None) -> Figure:
    """Accuracy and wrong training labels against the oracle's memory, at one budget.

    Args:
        table: :func:`dean_nb.analysis.relabelling.label_quality_table` (one noise level):
            ``method, oracle_memory, seed, n_acquired, test_accuracy, wrong_share``.
        n_acquired: the answers paid for beyond the initial set at which to compare (equal for
            every method).
        title: the figure's title.

    Returns:
        Two panels side by side, the resolute oracle (memory 1) on the left. A method recorded
        at several memories is a line, mean +/- one standard deviation over seeds at each; a
        method recorded at one memory only (it never asks again, so the memory cannot change
        it) is a band across the whole axis.
    """
    check_frame(
        table, ["method", "oracle_memory", "seed", "n_acquired", "test_accuracy", "wrong_share"]
    )
    at = table[table["n_acquired"] == n_acquired]
    if at.empty:
        raise ValueError(f"no rows at n_acquired={n_acquired}; the table has {_budgets(table)}")
    memories = sorted(at["oracle_memory"].unique())
    span = (min(memories) - 0.05, max(memories) + 0.05)
    fig, axes, spare = panel_grid(len(_PANELS), 2, 3.3, 2.7, sharey=False)
    fig.get_layout_engine().set(wspace=0.08)  # room for the right panel's own y label
    for ax, (value, ylabel) in zip(axes, _PANELS, strict=True):
        for method in method_order(list(at["method"].unique())):
            rows = at[at["method"] == method]
            stats = rows.groupby("oracle_memory")[value].agg(["mean", "std", "count"])
            mean = 100 * stats["mean"].to_numpy(dtype=float)
            std = 100 * np.nan_to_num(stats["std"].to_numpy(dtype=float))
            style = method_style(method)
            n = int(stats["count"].min())
            if len(stats) == 1:
                ax.axhspan(mean[0] - std[0], mean[0] + std[0], color=style["color"], alpha=0.12)
                ax.plot(span, [mean[0]] * 2, label=f"{method} (n={n})", **style)
                continue
            xs = stats.index.to_numpy(dtype=float)
            ax.errorbar(xs, mean, yerr=std, capsize=3, label=f"{method} (n={n})", **style)
        ax.set_xlim(span[1], span[0])  # resolute (the paper's oracle) on the left
        ax.set_xticks(memories)
        ax.set_xlabel("oracle memory (1: resolute)", fontsize=SMALL)
        ax.set_ylabel(ylabel, fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3)
    legend_in(fig, spare, *axes[0].get_legend_handles_labels())
    fig.suptitle(title or f"{n_acquired} answers beyond the initial set", fontsize=FONT)
    return fig


def _budgets(table) -> str:
    return ", ".join(str(v) for v in sorted(table["n_acquired"].unique()))
