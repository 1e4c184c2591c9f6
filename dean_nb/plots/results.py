"""Figures of recorded runs: learning curves, uncertainty curves, channel heatmaps, the paper's
claims as gaps (chapters 4-6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import (
    FONT,
    MAX_WIDTH,
    SMALL,
    as_matrix,
    check_frame,
    heatmap,
    legend_in,
    method_order,
    method_style,
    one_dataset,
    panel_grid,
)

__all__ = ["channel_heatmaps", "claim_gaps", "learning_curves", "uncertainty_curves"]


def _band_panels(
    df,
    value: str,
    x: str,
    ylabel: str,
    title: str | None,
    methods: Sequence[str] | None,
    percent: bool,
    panel_width: float,
    height: float,
    by: str = "epsilon",
    ncols: int = 2,
    styles: dict[str, dict] | None = None,
) -> Figure:
    if by not in ("epsilon", "strategy"):
        raise ValueError(f"by must be 'epsilon' or 'strategy', got {by!r}")
    chosen = method_order(methods if methods is not None else df["method"].unique())
    if by == "epsilon":
        keys = sorted(df["epsilon"].unique())
    else:
        keys = list(dict.fromkeys(m.partition("+")[0] for m in chosen))
    fig, axes, spare = panel_grid(len(keys), ncols, panel_width, height)
    scale = 100.0 if percent else 1.0
    for ax, key in zip(axes, keys, strict=True):
        if by == "epsilon":
            panel, in_panel = df[df["epsilon"] == key], chosen
            ax.set_title(f"ε = {key:g}" if key > 0 else "noise free (ε = 0)", fontsize=FONT)
        else:
            panel = df
            in_panel = [m for m in chosen if m.partition("+")[0] == key]
            ax.set_title(key, fontsize=FONT)
        for method in in_panel:
            rows = panel[panel["method"] == method]
            if rows.empty:
                continue
            stats = rows.groupby(x)[value].agg(["mean", "std", "count"]).sort_index()
            xs = stats.index.to_numpy(dtype=float)
            mean = stats["mean"].to_numpy(dtype=float) * scale
            std = np.nan_to_num(stats["std"].to_numpy(dtype=float)) * scale
            style = {**method_style(method), **(styles or {}).get(method, {})}
            n = int(stats["count"].min())
            ax.plot(xs, mean, label=f"{method} (n={n})", **style)
            ax.fill_between(xs, mean - std, mean + std, color=style["color"], alpha=0.15, lw=0)
        if by == "strategy" and ax is axes[0] and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=SMALL, loc="lower right")  # solid: without, dashed: with
        ax.set_xlabel("number of labels" if x == "n_labels" else x.replace("_", " "))
        ax.grid(alpha=0.3)
    ncols_used = max(1, min(ncols, len(keys)))
    for i, ax in enumerate(axes):
        if i % ncols_used == 0:
            ax.set_ylabel(ylabel)
        ax.tick_params(labelleft=True)
    if by == "epsilon":
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        legend_in(fig, spare, handles, labels)
    else:
        for ax in spare:
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=FONT)
    return fig


def learning_curves(
    df,
    *,
    dataset: str | None = None,
    x: str = "n_labels",
    methods: Sequence[str] | None = None,
    percent: bool = True,
    title: str | None = None,
    panel_width: float = 3.2,
    height: float = 2.6,
    by: str = "epsilon",
    ncols: int = 2,
    styles: dict[str, dict] | None = None,
) -> Figure:
    """Test accuracy vs labels: mean +/- std over seeds per method, one panel per epsilon.

    Args:
        df: tidy results (:func:`dean_nb.analysis.results.load_results`): needs ``epsilon``,
            ``method``, ``test_accuracy`` and the ``x`` column.
        dataset: which dataset to plot when ``df`` holds several.
        x: ``"n_labels"`` (default) or ``"n_acquired"`` (the paper's tables) or ``"step"``.
        methods: methods to draw, e.g. ``["dean", "dean+denoise", "random"]`` (default all).
        percent: accuracy in percent.
        title: figure title (default: the dataset name).
        panel_width, height: inches per panel (the figure is at most ``MAX_WIDTH`` wide).
        by: ``"epsilon"`` (one panel per noise level, one legend) or ``"strategy"`` (one
            panel per strategy with its ``+denoise`` twin, like the paper's Fig. 3; pass a
            frame of one noise level).
        ncols: panels per row; a spare cell of the grid holds the legend.
        styles: matplotlib line options per method, over :func:`method_style`'s (e.g.
            ``{"dean [beta=10]": {"color": "0.4", "linestyle": ":"}}``).

    Returns:
        A figure with one axes per noise level (or strategy), sharing the y axis; the
        legend gives each method's number of seeds.
    """
    check_frame(df, ["epsilon", "method", "test_accuracy", x])
    df, name = one_dataset(df, dataset)
    return _band_panels(
        df,
        "test_accuracy",
        x,
        "test accuracy (%)" if percent else "test accuracy",
        title if title is not None else name,
        methods,
        percent,
        panel_width,
        height,
        by,
        ncols,
        styles,
    )


def uncertainty_curves(
    df,
    *,
    dataset: str | None = None,
    x: str = "n_labels",
    methods: Sequence[str] | None = None,
    title: str | None = None,
    panel_width: float = 3.2,
    height: float = 2.6,
    by: str = "epsilon",
    ncols: int = 2,
) -> Figure:
    """Model uncertainty sigma (mean variation ratio on the validation set) per step.

    Same layout as :func:`learning_curves`: one panel per epsilon, mean +/- std over seeds,
    ``+denoise`` methods dashed, so the effect of the denoising layer on sigma (the paper's
    Table 1) reads off each panel.
    """
    check_frame(df, ["epsilon", "method", "sigma", x])
    df, name = one_dataset(df, dataset)
    return _band_panels(
        df,
        "sigma",
        x,
        "model uncertainty σ",
        title if title is not None else (f"{name}: model uncertainty" if name else None),
        methods,
        False,
        panel_width,
        height,
        by,
        ncols,
    )


def channel_heatmaps(
    true,
    learned,
    *,
    class_names: Sequence[str] | None = None,
    annotate: bool | None = None,
    titles: tuple[str, str] = ("oracle channel T", "learned channel W"),
    cmap: str = "viridis",
) -> Figure:
    """The true and the learned noisy channel side by side, values annotated.

    Both matrices are ``(K, K)`` with entry ``[i, j] = p(y' = i | y = j)`` (columns sum to
    1): the x axis is the true class ``j``, the y axis the label the oracle returns ``i``.
    The values are written in three characters (``.70``, ``1``) at :data:`MIN_FONT` points,
    so ten classes fit two panels in the book's column.

    Args:
        true: the oracle's channel (tensor, array or nested lists).
        learned: the denoising layer's ``W`` (e.g. ``NoisyChannel.matrix`` or a
            :class:`~dean_nb.experiment.records.StepRecord`'s ``channel``), or any second channel
            (chapter 1 shows an empirical one).
        class_names: tick labels (default ``0 .. K-1``).
        annotate: write each value in its cell (default: when ``K <= 10``).
        titles: the two panel titles.
        cmap: a matplotlib colour map name.
    """
    t = as_matrix("true", true)
    w = as_matrix("learned", learned)
    if t.shape != w.shape:
        raise ValueError(f"true {t.shape} and learned {w.shape} must have the same shape")
    k = t.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"class_names must have {k} entries, got {len(names)}")
    annotate = k <= 10 if annotate is None else annotate
    fig = Figure(figsize=(MAX_WIDTH, 3.7), layout="constrained")
    axes = fig.subplots(1, 2)
    image = None
    for n, (ax, matrix, title) in enumerate(zip(axes, (t, w), titles, strict=True)):
        image = heatmap(ax, matrix, names, annotate, cmap, ylabel=n == 0)
        ax.set_title(title, fontsize=FONT)
    assert image is not None
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8)
    bar.ax.tick_params(labelsize=SMALL)
    return fig


def claim_gaps(
    claims, margin: float, ours: str = "ours", width: float = MAX_WIDTH, height: float = 3.8
) -> Figure:
    """The paper's claims as horizontal bars: the paper's MNIST gap beside ours (chapter 6).

    Args:
        claims: :func:`dean_nb.analysis.claims.claims_table` (columns ``claim, epsilon, gap, stderr,
            n_seeds, paper_gap``; accuracy fractions), one bar pair per row, top to bottom.
        margin: the claims' tie margin, shaded around zero.
        ours: the legend's name of our runs (``"ours, Fashion-MNIST"``).
        width, height: the figure size in inches (``width`` at most :data:`MAX_WIDTH`).

    Returns:
        A figure of one axes: gaps in accuracy points, ours with +/- one standard error and
        the number of paired seeds (``no records`` where none).
    """
    check_frame(claims, ["claim", "epsilon", "gap", "stderr", "n_seeds", "paper_gap"])
    if width > MAX_WIDTH:
        raise ValueError(f"width {width} exceeds the column's {MAX_WIDTH} in")
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(claims))
    labels = [
        f"{name.split(':')[0]}, ε = {eps:g}"
        for name, eps in zip(claims["claim"], claims["epsilon"], strict=True)
    ]
    gap = 100 * claims["gap"].to_numpy(dtype=float)
    stderr = 100 * np.nan_to_num(claims["stderr"].to_numpy(dtype=float))
    ax.axvspan(
        -100 * margin, 100 * margin, color="0.92", zorder=0, label=f"within ±{100 * margin:g} point"
    )
    paper = 100 * claims["paper_gap"].to_numpy(dtype=float)
    ax.barh(y - 0.2, paper, height=0.4, color="0.55", label="paper, MNIST (20 runs)")
    ax.barh(y + 0.2, gap, xerr=stderr, height=0.4, color="C3", label=f"{ours} (± se)")
    for yi, g, se, n in zip(y, gap, stderr, claims["n_seeds"], strict=True):
        x = 0.0 if np.isnan(g) else max(g + se, 0.0)  # right of the bar and its se
        text = "no records" if n == 0 else f"n = {n}"
        ax.annotate(
            text,
            (x, yi + 0.2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=SMALL,
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, labels, fontsize=FONT)
    ax.set_xlabel("accuracy gap (points)", fontsize=FONT)
    ax.set_title("The three claims as gaps", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.invert_yaxis()
    fig.legend(loc="outside lower center", ncol=2, fontsize=SMALL)
    return fig
