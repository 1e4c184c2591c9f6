"""Figures of the results chapters: learning curves, channel heatmaps, uncertainty curves.

Every function takes data (the tidy frame of :func:`dean_nb.experiment.load_results`, or
tensors) and returns a new :class:`matplotlib.figure.Figure`. Nothing touches pyplot's global
state and nothing is shown: a notebook displays the returned figure, a script saves it with
``fig.savefig(path)``.

- :func:`learning_curves`: test accuracy against the number of labels, mean +/- one standard
  deviation over seeds, one line per method (strategy, ``+denoise`` dashed), one panel per
  noise level (the paper's Fig. 2, 3, 7-10).
- :func:`channel_heatmaps`: the oracle's channel next to the one the denoising layer learned,
  values written in the cells (section 4.2, Fig. 5b).
- :func:`uncertainty_curves`: the model uncertainty sigma per step, with and without
  denoising (the paper's Table 1 and Fig. 7, 10).
- :func:`image_grid`, :func:`noisy_label_examples`: images with their labels (chapter 1).
- :func:`score_grid`, :func:`bald_stability`: BALD against entropy per labelled-set size, and
  two MC estimates of BALD against each other (chapter 2).
- :func:`pick_maps`, :func:`diversity_panels`: annealed batches on a 2-D map of the pool, and
  their diversity against beta (chapter 3).
- :func:`training_trajectories`, :func:`noise_sweep`: the denoising layer along training and
  across noise levels (chapter 4).

Every figure fits the book's 688-px column: at most :data:`MAX_WIDTH` inches wide at 100 dpi,
so it is shown at its own size, and no text smaller than :data:`MIN_FONT` points. Wide rows
of panels are stacked into grids of at most two or three columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from dean_nb.validation import check_columns

__all__ = [
    "MAX_WIDTH",
    "MIN_FONT",
    "bald_stability",
    "channel_heatmaps",
    "diversity_panels",
    "image_grid",
    "learning_curves",
    "method_style",
    "noise_sweep",
    "noisy_label_examples",
    "pick_maps",
    "score_grid",
    "training_trajectories",
    "uncertainty_curves",
]

#: Widest figure in inches: 688 px at 100 dpi, the book's content column at 1280 px.
MAX_WIDTH = 6.88
#: Smallest font size in points (at display size, since figures are not scaled down).
MIN_FONT = 9.0
_FONT = 10.0  # default text: titles, labels, ticks
_SMALL = 9.0  # legends, annotations

# One colour per strategy (tab10 order), whatever subset of strategies a frame holds.
_STRATEGY_ORDER = ("dean", "random", "bald", "entropy", "coreset", "batchbald")
_PALETTE = (
    "#d62728",  # dean: red
    "#7f7f7f",  # random: grey
    "#1f77b4",  # bald: blue
    "#2ca02c",  # entropy: green
    "#9467bd",  # coreset: purple
    "#ff7f0e",  # batchbald: orange
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)


def method_style(method: str) -> dict[str, Any]:
    """Line style of a method name (``"bald"``, ``"dean+denoise"``): colour by strategy,
    dashed when denoising. The same method gets the same style in every figure."""
    strategy, _, suffix = method.partition("+")
    if strategy in _STRATEGY_ORDER:
        colour = _PALETTE[_STRATEGY_ORDER.index(strategy)]
    else:  # a strategy registered later: a stable colour from its name
        colour = _PALETTE[len(_STRATEGY_ORDER) + sum(map(ord, strategy)) % 4]
    return {"color": colour, "linestyle": "--" if suffix else "-", "marker": "o", "markersize": 3}


def _method_order(methods: Sequence[str]) -> list[str]:
    def key(m: str) -> tuple[int, str]:
        strategy = m.partition("+")[0]
        rank = _STRATEGY_ORDER.index(strategy) if strategy in _STRATEGY_ORDER else 99
        return rank, m

    return sorted(set(methods), key=key)


def _check_frame(df, columns: Sequence[str]) -> None:
    check_columns(df, columns, "dean_nb.experiment.load_results")
    if len(df) == 0:
        raise ValueError("df is empty: no results to plot")


def _one_dataset(df, dataset: str | None):
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


def _grid(n_panels: int, ncols: int, panel_width: float, height: float, sharey: bool = True):
    ncols = max(1, min(ncols, n_panels))
    nrows = -(-n_panels // ncols)
    width = min(MAX_WIDTH, panel_width * ncols + 0.6)
    fig = Figure(figsize=(width, height * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False).flatten()
    return fig, list(axes[:n_panels]), list(axes[n_panels:])


def _legend(fig: Figure, spare, handles, labels) -> None:
    """The legend in a spare grid cell when there is one, else below the panels."""
    if not handles:
        return
    if spare:
        for ax in spare[1:]:
            ax.set_axis_off()
        spare[0].set_axis_off()
        spare[0].legend(handles, labels, loc="center", fontsize=_SMALL, frameon=False)
    else:
        ncol = 2 if len(labels) > 3 else len(labels)
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=_SMALL)


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
) -> Figure:
    if by not in ("epsilon", "strategy"):
        raise ValueError(f"by must be 'epsilon' or 'strategy', got {by!r}")
    chosen = _method_order(methods if methods is not None else df["method"].unique())
    if by == "epsilon":
        keys = sorted(df["epsilon"].unique())
    else:
        keys = list(dict.fromkeys(m.partition("+")[0] for m in chosen))
    fig, axes, spare = _grid(len(keys), ncols, panel_width, height)
    scale = 100.0 if percent else 1.0
    for ax, key in zip(axes, keys, strict=True):
        if by == "epsilon":
            panel, in_panel = df[df["epsilon"] == key], chosen
            ax.set_title(f"ε = {key:g}" if key > 0 else "noise free (ε = 0)", fontsize=_FONT)
        else:
            panel = df
            in_panel = [m for m in chosen if m.partition("+")[0] == key]
            ax.set_title(key, fontsize=_FONT)
        for method in in_panel:
            rows = panel[panel["method"] == method]
            if rows.empty:
                continue
            stats = rows.groupby(x)[value].agg(["mean", "std", "count"]).sort_index()
            xs = stats.index.to_numpy(dtype=float)
            mean = stats["mean"].to_numpy(dtype=float) * scale
            std = np.nan_to_num(stats["std"].to_numpy(dtype=float)) * scale
            style = method_style(method)
            n = int(stats["count"].min())
            ax.plot(xs, mean, label=f"{method} (n={n})", **style)
            ax.fill_between(xs, mean - std, mean + std, color=style["color"], alpha=0.15, lw=0)
        if by == "strategy" and ax is axes[0] and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=_SMALL, loc="lower right")  # solid: without, dashed: with
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
        _legend(fig, spare, handles, labels)
    else:
        for ax in spare:
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=_FONT)
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
) -> Figure:
    """Test accuracy vs labels: mean +/- std over seeds per method, one panel per epsilon.

    Args:
        df: tidy results (:func:`dean_nb.experiment.load_results`): needs ``epsilon``,
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

    Returns:
        A figure with one axes per noise level (or strategy), sharing the y axis; the
        legend gives each method's number of seeds.
    """
    _check_frame(df, ["epsilon", "method", "test_accuracy", x])
    df, name = _one_dataset(df, dataset)
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
    _check_frame(df, ["epsilon", "method", "sigma", x])
    df, name = _one_dataset(df, dataset)
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


def _as_matrix(name: str, matrix) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(matrix, dtype=float)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array


def _short(v: float) -> str:
    """A probability in three characters: ``.70``, ``.03``, ``1``, ``0``."""
    if v >= 0.995:
        return "1"
    if v < 0.005:
        return "0"
    return f"{v:.2f}".lstrip("0")


def _heatmap(ax, matrix: np.ndarray, names, annotate: bool, cmap: str, ylabel: bool):
    k = matrix.shape[0]
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap=cmap)
    ax.set_xlabel("true class y")
    if ylabel:
        ax.set_ylabel("returned label y'")
    step = max(1, k // 12)
    ticks = np.arange(0, k, step)
    ax.set_xticks(ticks, [names[i] for i in ticks])
    ax.set_yticks(ticks, [names[i] for i in ticks])
    ax.tick_params(labelsize=_SMALL)
    if annotate:
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                light = v > 0.6 if cmap == "viridis" else v < 0.5
                ax.text(
                    j,
                    i,
                    _short(v),
                    ha="center",
                    va="center",
                    fontsize=_SMALL,
                    color="black" if light else "white",
                )
    return image


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
            :class:`~dean_nb.experiment.StepRecord`'s ``channel``), or any second channel
            (chapter 1 shows an empirical one).
        class_names: tick labels (default ``0 .. K-1``).
        annotate: write each value in its cell (default: when ``K <= 10``).
        titles: the two panel titles.
        cmap: a matplotlib colour map name.
    """
    t = _as_matrix("true", true)
    w = _as_matrix("learned", learned)
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
        image = _heatmap(ax, matrix, names, annotate, cmap, ylabel=n == 0)
        ax.set_title(title, fontsize=_FONT)
    assert image is not None
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8)
    bar.ax.tick_params(labelsize=_SMALL)
    return fig


def _as_image(image) -> np.ndarray:
    """(C, H, W) tensor or array -> (H, W) or (H, W, C) array for imshow."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3:
        image = np.moveaxis(image, 0, -1)
        if image.shape[-1] == 1:
            image = image[..., 0]
    return image


def image_grid(
    images,
    titles: Sequence[str],
    *,
    cols: int = 10,
    colors: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """A grid of images (N, C, H, W), each with a short title (its label) above it.

    ``cols`` images per row, as many rows as needed; the figure is :data:`MAX_WIDTH` wide
    at ten columns. Chapter 1 shows the initial labelled set with it, chapter 3 two batches.
    """
    n = len(images)
    if len(titles) != n:
        raise ValueError(f"{n} images but {len(titles)} titles")
    rows = max(1, -(-n // cols))
    size = min(MAX_WIDTH / cols, 0.9)
    fig = Figure(figsize=(size * cols, 1.3 * size * rows + (0.35 if title else 0.0)))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            picture = _as_image(images[i])
            ax.imshow(picture, cmap="gray_r" if picture.ndim == 2 else None)
            colour = "black" if colors is None else colors[i]
            ax.set_title(titles[i], fontsize=_SMALL, color=colour, pad=2)
    if title:
        fig.suptitle(title, fontsize=_FONT)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, hspace=0.45, wspace=0.1)
    return fig


def noisy_label_examples(channel, images, truth, answers, *, title: str, cols: int = 6) -> Figure:
    """A channel's heatmap beside images with their true and returned labels (chapter 1).

    Flipped answers (``answers != truth``) are written in red as ``true -> returned``.
    """
    matrix = _as_matrix("channel", channel)
    truth = [int(v) for v in truth]
    answers = [int(v) for v in answers]
    n = len(images)
    rows = -(-n // cols)
    fig = Figure(figsize=(MAX_WIDTH, 3.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.5])
    ax = left.subplots()
    _heatmap(ax, matrix, [str(i) for i in range(matrix.shape[0])], False, "Blues", True)
    ax.set_title(title, fontsize=_FONT)
    axes = right.subplots(rows, cols, squeeze=False)
    flipped = 0
    for i, sub in enumerate(axes.flat):
        sub.set_axis_off()
        if i < n:
            sub.imshow(_as_image(images[i]), cmap="gray_r")
            wrong = truth[i] != answers[i]
            flipped += wrong
            sub.set_title(
                f"{truth[i]}→{answers[i]}", fontsize=_SMALL, color="red" if wrong else "black"
            )
    right.suptitle(f"true → returned ({flipped} of {n} flipped)", fontsize=_FONT)
    return fig


def score_grid(entropy, bald, *, title: str | None = None, max_entropy: float | None = None):
    """BALD against predictive entropy, and BALD's histogram, one row per labelled-set size.

    Args:
        entropy, bald: dicts ``{labels: scores (N,)}`` with the same keys (chapter 2).
        max_entropy: draws the line BALD = entropy up to it (``log K``).
    """
    sizes = list(bald)
    fig = Figure(figsize=(MAX_WIDTH, 2.0 * len(sizes) + 0.4), layout="constrained")
    axes = fig.subplots(len(sizes), 2, sharex="col", sharey="col", squeeze=False)
    top = max(float(np.max(np.asarray(bald[n]))) for n in sizes)
    bins = np.linspace(0, top, 30)
    for row, n in enumerate(sizes):
        e, b = np.asarray(entropy[n]), np.asarray(bald[n])
        left, right = axes[row]
        left.scatter(e, b, s=5, alpha=0.5)
        if max_entropy is not None:
            left.plot([0, max_entropy], [0, max_entropy], color="black", ls=":", lw=1)
        left.set(ylim=(0, 1.05 * top))
        left.set_ylabel(f"{n} labels\nBALD (nats)")
        right.hist(b, bins=bins, color="C3", alpha=0.8)
        right.set_ylabel("pool images")
    axes[-1, 0].set_xlabel("predictive entropy (nats)")
    axes[-1, 1].set_xlabel("BALD (nats)")
    if title:
        fig.suptitle(title, fontsize=_FONT)
    return fig


def bald_stability(estimates, *, title: str | None = None) -> Figure:
    """Two independent MC estimates of BALD plotted against each other, one panel per case.

    Args:
        estimates: ``{(labels, T): (first (N,), second (N,), spearman)}``; the panels are
            laid out with one column per labelled-set size and one row per ``T``.
    """
    sizes = list(dict.fromkeys(n for n, _ in estimates))
    ts = list(dict.fromkeys(t for _, t in estimates))
    fig = Figure(figsize=(min(MAX_WIDTH, 3.2 * len(sizes)), 2.3 * len(ts) + 0.4))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(len(ts), len(sizes), squeeze=False)
    for (n, t), (one, two, rho) in estimates.items():
        ax = axes[ts.index(t), sizes.index(n)]
        one, two = np.asarray(one), np.asarray(two)
        top = max(float(one.max()), float(two.max()), 1e-3)
        ax.scatter(one, two, s=5, alpha=0.5)
        ax.plot([0, top], [0, top], color="black", ls=":", lw=1)
        ax.set_title(f"{n} labels, T = {t}: Spearman {rho:.2f}", fontsize=_SMALL)
        ax.tick_params(labelsize=_SMALL)
    for ax in axes[-1]:
        ax.set_xlabel("BALD, first estimate")
    for ax in axes[:, 0]:
        ax.set_ylabel("second estimate")
    if title:
        fig.suptitle(title, fontsize=_FONT)
    return fig


def pick_maps(xy, classes, centroids, panels, *, ncols: int = 2) -> Figure:
    """Batches on a 2-D map of the pool (chapter 3): one panel per batch.

    Args:
        xy: ``(N, 2)`` map of the pool (t-SNE of the distance matrix).
        classes: ``(N,)`` colour of every point (the predicted class).
        centroids: ``(C,)`` pool indices of the cluster centroids, drawn as ``+``.
        panels: ``{title: (picks (b,), drawn centroids (b,) or None)}``; a line joins every
            pick to the centroid it was drawn for.
    """
    from matplotlib.collections import LineCollection

    xy = np.asarray(xy)
    classes = np.asarray(classes)
    centroids = np.asarray(centroids)
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(MAX_WIDTH, 3.1 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    for ax, (title, (picks, drawn)) in zip(axes, panels.items(), strict=False):
        picks = np.asarray(picks)
        ax.scatter(*xy.T, c=classes, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.25)
        ax.scatter(*xy[centroids].T, marker="+", c="0.3", s=20, lw=0.8)
        if drawn is not None:
            segments = np.stack([xy[np.asarray(drawn)], xy[picks]], axis=1)
            ax.add_collection(LineCollection(segments, colors="k", linewidths=0.6))
        ax.scatter(*xy[picks].T, s=36, facecolors="none", edgecolors="red", lw=1.2)
        ax.set_title(title, fontsize=_SMALL)
        ax.set(xticks=[], yticks=[])
    return fig


def diversity_panels(table, tick_labels: Sequence[str], *, baseline: str) -> Figure:
    """Batch statistics against beta (chapter 3), one panel per column of ``table``, 2 x 2.

    ``table`` has one row per beta (in order) and a last row for the baseline (top-b BALD),
    drawn as a dashed line.
    """
    columns = list(table.columns)
    fig, axes, spare = _grid(len(columns), 2, 3.3, 2.3, sharey=False)
    for ax in spare:
        ax.set_axis_off()
    x = np.arange(len(table) - 1)
    for ax, column in zip(axes, columns, strict=True):
        ax.plot(x, table[column].iloc[:-1], "o-", label="DeAn")
        ax.axhline(table[column].iloc[-1], ls="--", c="C3", label=baseline)
        ax.set_xticks(x, list(tick_labels))
        ax.set_title(column, fontsize=_FONT)
        ax.set_xlabel("β")
        ax.tick_params(labelsize=_SMALL)
    axes[0].legend(fontsize=_SMALL)
    return fig


def training_trajectories(
    epochs,
    accuracy: dict,
    memorised: dict,
    diagonal: dict,
    styles: dict,
    references: Sequence[tuple[Any, dict]] = (),
) -> Figure:
    """Accuracy, the channel's diagonal and memorisation along training (chapter 4), 3 rows.

    Args:
        epochs: ``(E,)`` recorded epochs.
        accuracy, memorised: ``{variant: (E,) percent}``.
        diagonal: ``{variant: (xs, ys)}`` mean diagonal of W (only the learned channels).
        styles: ``{variant: matplotlib format string}``.
        references: ``(y or (xs, ys), line kwargs with a label)`` drawn in the diagonal
            panel (the true channel, the uniform channel, a caricature).
    """
    fig = Figure(figsize=(MAX_WIDTH, 7.6), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for variant, style in styles.items():
        axes[0].plot(epochs, accuracy[variant], style, lw=1.2, label=variant)
        axes[2].plot(epochs, memorised[variant], style, lw=1.2, label=variant)
        if variant in diagonal:
            axes[1].plot(*diagonal[variant], style, lw=1.2, label=variant)
    for ref, kwargs in references:
        if np.ndim(ref) == 0:
            axes[1].axhline(ref, **kwargs)
        else:
            axes[1].plot(*ref, **kwargs)
    axes[0].set(ylabel="clean test\naccuracy (%)", ylim=(50, 100))
    axes[0].set_title("accuracy of the detached network M", fontsize=_FONT)
    axes[1].set(ylabel="mean diagonal\nof W", ylim=(0, 1.05))
    axes[1].set_title("what the channel learns", fontsize=_FONT)
    axes[2].set(ylabel="flipped labels\npredicted (%)")
    axes[2].set_title("memorised wrong labels", fontsize=_FONT)
    axes[2].set_xlabel("epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=_SMALL, loc="lower left", ncol=2)
    axes[1].legend(fontsize=_SMALL, loc="upper right", ncol=2)
    return fig


def noise_sweep(curves: dict, summary, *, epochs, last_epoch: int, styles: dict) -> Figure:
    """Accuracy along training per noise level, and at ``last_epoch`` against epsilon.

    Args:
        curves: ``{epsilon: {variant: (E,) percent}}`` over ``epochs``.
        summary: frame indexed by epsilon with one column per variant (fractions).
        styles: ``{variant: matplotlib format string}``.
    """
    n = len(curves) + 1
    fig, axes, spare = _grid(n, 3, 2.2, 2.2)
    for ax in spare:
        ax.set_axis_off()
    for ax, (eps, by_variant) in zip(axes, curves.items(), strict=False):
        for variant, ys in by_variant.items():
            ax.plot(epochs, ys, styles[variant], label=variant)
        ax.set_title(f"ε = {eps:g}", fontsize=_FONT)
        ax.set_xlabel("epoch")
    last = axes[len(curves)]
    for variant, style in styles.items():
        last.plot(summary.index, 100 * summary[variant], style[:-1] + "o-", label=variant)
    last.set_title(f"after {last_epoch} epochs", fontsize=_FONT)
    last.set_xlabel("ε")
    for i, ax in enumerate(axes):
        ax.set_ylim(40, 100)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=_SMALL, labelleft=True)
        if i % 3 == 0:
            ax.set_ylabel("clean test accuracy (%)")
    axes[0].legend(fontsize=_SMALL, loc="lower right")
    return fig
