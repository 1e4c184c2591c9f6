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
# Height in inches (a panel with its title and ticks) that each row of panels keeps beside a
# legend below them (legend_in).
_MIN_ROW = 1.5

# One colour per strategy (tab10 order), whatever subset of strategies a frame holds.
_STRATEGY_ORDER = (
    *("dean", "random", "bald", "entropy", "coreset", "batchbald"),
    *("power-bald", "softmax-bald", "badge", "power-entropy"),
    *("relabel-majority", "activelab", "typiclust"),
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
    "#393b79",  # relabel-majority: dark blue
    "#637939",  # activelab: dark olive
    "#7b4173",  # typiclust: plum
)
# Strategies registered later, or labels a chapter makes up: a stable colour from the name.
_SPARE = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")


def method_style(method: str) -> dict[str, Any]:
    """Line style of a method name (``"bald"``, ``"dean+denoise"``): colour by strategy,
    dashed with the denoising layer, dotted with forward correction. The same method gets the
    same style in every figure."""
    strategy, _, suffix = method.partition("+")
    if strategy in _STRATEGY_ORDER:
        colour = _PALETTE[_STRATEGY_ORDER.index(strategy)]
    else:
        colour = _SPARE[sum(map(ord, strategy)) % len(_SPARE)]
    linestyle = {"": "-", "forward": ":"}.get(suffix, "--")
    return {"color": colour, "linestyle": linestyle, "marker": "o", "markersize": 3}


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
    """The legend in a spare grid cell when it fits there, else below the panels.

    The legend is measured: one larger than a grid cell (the figure's size over the grid's
    rows and columns), e.g. the thirty labelled configurations of a folder of ablations, goes
    below the panels in as many columns as the figure's width holds, and the figure grows by
    its height, so that constrained layout never squeezes the panels to nothing (matplotlib's
    "constrained_layout not applied" warning). A legend below the panels from the start makes
    the figure grow only where the panels would keep less than 1.5 inches a row. A legend
    that fits keeps the layout and the figure size it always had.

    Args:
        fig: a figure of :func:`panel_grid` (constrained layout).
        spare: its unused grid cells (axes), turned off here.
        handles, labels: the legend's entries.
    """
    if not handles:
        return
    for ax in spare:
        ax.set_axis_off()
    width, height = (float(v) for v in fig.get_size_inches())
    if spare:
        nrows, ncols = spare[0].get_subplotspec().get_gridspec().get_geometry()
        legend = spare[0].legend(handles, labels, loc="center", fontsize=SMALL, frameon=False)
        legend_w, legend_h = _size_inches(fig, legend)
        if legend_w <= width / ncols and legend_h <= height / nrows:
            return
        legend.remove()
    ncol = 2 if len(labels) > 3 else len(labels)
    while True:
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=SMALL)
        legend_w, legend_h = _size_inches(fig, legend)
        if legend_w <= width or ncol == 1:
            break
        legend.remove()
        ncol -= 1
    if spare or height - legend_h < _MIN_ROW * _rows(fig):
        fig.set_size_inches(width, height + legend_h)


def _size_inches(fig: Figure, artist) -> tuple[float, float]:
    """An artist's drawn ``(width, height)`` in inches (its text measured by the renderer)."""
    box = artist.get_window_extent()
    return box.width / fig.dpi, box.height / fig.dpi


def _rows(fig: Figure) -> int:
    """The number of rows of panels of a :func:`panel_grid` figure."""
    specs = [ax.get_subplotspec() for ax in fig.axes if ax.get_subplotspec() is not None]
    return specs[0].get_gridspec().get_geometry()[0] if specs else 1


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
