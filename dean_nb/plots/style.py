"""The figures' common style: sizes for the book's column, fonts, colours per strategy, panel grids.

Every figure fits the book's 688-px column: at most :data:`MAX_WIDTH` inches wide at 100 dpi,
so it is shown at its own size, and no text smaller than :data:`MIN_FONT` points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from dean_nb.validation import check_columns

__all__ = [
    "FONT",
    "MAX_WIDTH",
    "MIN_FONT",
    "SMALL",
    "as_matrix",
    "check_frame",
    "heatmap",
    "legend_in",
    "method_order",
    "method_style",
    "one_dataset",
    "panel_grid",
    "short_number",
]

#: Widest figure in inches: 688 px at 100 dpi, the book's content column at 1280 px.
MAX_WIDTH = 6.88
#: Smallest font size in points (at display size, since figures are not scaled down).
MIN_FONT = 9.0
FONT = 10.0  # default text: titles, labels, ticks
SMALL = 9.0  # legends, annotations

# One colour per strategy (tab10 order), whatever subset of strategies a frame holds.
_STRATEGY_ORDER = (
    *("dean", "random", "bald", "entropy", "coreset", "batchbald"),
    *("power-bald", "softmax-bald", "badge", "power-entropy"),
)
_PALETTE = (
    "#d62728",  # dean: red
    "#7f7f7f",  # random: grey
    "#1f77b4",  # bald: blue
    "#2ca02c",  # entropy: green
    "#9467bd",  # coreset: purple
    "#ff7f0e",  # batchbald: orange
    "#8c564b",  # power-bald: brown
    "#e377c2",  # softmax-bald: pink
    "#17becf",  # badge: cyan
    "#bcbd22",  # power-entropy: olive
)
# Strategies registered later, or labels a chapter makes up: a stable colour from the name.
_SPARE = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")


def method_style(method: str) -> dict[str, Any]:
    """Line style of a method name (``"bald"``, ``"dean+denoise"``): colour by strategy,
    dashed when denoising. The same method gets the same style in every figure."""
    strategy, _, suffix = method.partition("+")
    if strategy in _STRATEGY_ORDER:
        colour = _PALETTE[_STRATEGY_ORDER.index(strategy)]
    else:
        colour = _SPARE[sum(map(ord, strategy)) % len(_SPARE)]
    return {"color": colour, "linestyle": "--" if suffix else "-", "marker": "o", "markersize": 3}


def method_order(methods: Sequence[str]) -> list[str]:
    def key(m: str) -> tuple[int, str]:
        strategy = m.partition("+")[0]
        rank = _STRATEGY_ORDER.index(strategy) if strategy in _STRATEGY_ORDER else 99
        return rank, m

    return sorted(set(methods), key=key)


def check_frame(df, columns: Sequence[str]) -> None:
    check_columns(df, columns, "dean_nb.analysis.results.load_results")
    if len(df) == 0:
        raise ValueError("df is empty: no results to plot")


def one_dataset(df, dataset: str | None):
    if "dataset" not in df.columns:
        return df, None
    names = sorted(df["dataset"].unique())
    if dataset is None:
        if len(names) > 1:
            raise ValueError(f"df holds several datasets {names}; pick one with dataset=")
        return df, names[0]
    if dataset not in names:
        raise ValueError(f"dataset {dataset!r} not in df; it holds {names}")
    return df[df["dataset"] == dataset], dataset


def panel_grid(n_panels: int, ncols: int, panel_width: float, height: float, sharey: bool = True):
    ncols = max(1, min(ncols, n_panels))
    nrows = -(-n_panels // ncols)
    width = min(MAX_WIDTH, panel_width * ncols + 0.6)
    fig = Figure(figsize=(width, height * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False).flatten()
    return fig, list(axes[:n_panels]), list(axes[n_panels:])


def legend_in(fig: Figure, spare, handles, labels) -> None:
    """The legend in a spare grid cell when there is one, else below the panels."""
    if not handles:
        return
    if spare:
        for ax in spare[1:]:
            ax.set_axis_off()
        spare[0].set_axis_off()
        spare[0].legend(handles, labels, loc="center", fontsize=SMALL, frameon=False)
    else:
        ncol = 2 if len(labels) > 3 else len(labels)
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=SMALL)


def as_matrix(name: str, matrix) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(matrix, dtype=float)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array


def short_number(v: float) -> str:
    """A probability in three characters: ``.70``, ``.03``, ``1``, ``0``."""
    if v >= 0.995:
        return "1"
    if v < 0.005:
        return "0"
    return f"{v:.2f}".lstrip("0")


def heatmap(ax, matrix: np.ndarray, names, annotate: bool, cmap: str, ylabel: bool):
    k = matrix.shape[0]
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap=cmap)
    ax.set_xlabel("true class y")
    if ylabel:
        ax.set_ylabel("returned label y'")
    step = max(1, k // 12)
    ticks = np.arange(0, k, step)
    ax.set_xticks(ticks, [names[i] for i in ticks])
    ax.set_yticks(ticks, [names[i] for i in ticks])
    ax.tick_params(labelsize=SMALL)
    if annotate:
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                light = v > 0.6 if cmap == "viridis" else v < 0.5
                ax.text(
                    j,
                    i,
                    short_number(v),
                    ha="center",
                    va="center",
                    fontsize=SMALL,
                    color="black" if light else "white",
                )
    return image
