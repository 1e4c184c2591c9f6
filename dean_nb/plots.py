"""Figures of the results chapters: learning curves, channel heatmaps, uncertainty curves.

Every function takes data (the tidy frame of :func:`dean_nb.compare.load_results`, or
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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["channel_heatmaps", "learning_curves", "method_style", "uncertainty_curves"]

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
    missing = [c for c in columns if c not in getattr(df, "columns", ())]
    if missing:
        raise ValueError(
            f"df lacks column(s) {missing}; pass the frame of dean_nb.compare.load_results"
        )
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
) -> Figure:
    epsilons = sorted(df["epsilon"].unique())
    fig = Figure(figsize=(panel_width * len(epsilons), height), layout="constrained")
    axes = fig.subplots(1, len(epsilons), sharey=True, squeeze=False)[0]
    chosen = _method_order(methods if methods is not None else df["method"].unique())
    scale = 100.0 if percent else 1.0
    for ax, eps in zip(axes, epsilons, strict=True):
        panel = df[df["epsilon"] == eps]
        for method in chosen:
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
        ax.set_title(f"ε = {eps:g}" if eps > 0 else "noise free (ε = 0)")
        ax.set_xlabel("number of labels" if x == "n_labels" else x.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def learning_curves(
    df,
    *,
    dataset: str | None = None,
    x: str = "n_labels",
    methods: Sequence[str] | None = None,
    percent: bool = True,
    title: str | None = None,
    panel_width: float = 4.0,
    height: float = 3.4,
) -> Figure:
    """Test accuracy vs labels: mean +/- std over seeds per method, one panel per epsilon.

    Args:
        df: tidy results (:func:`dean_nb.compare.load_results`): needs ``epsilon``,
            ``method``, ``test_accuracy`` and the ``x`` column.
        dataset: which dataset to plot when ``df`` holds several.
        x: ``"n_labels"`` (default) or ``"n_acquired"`` (the paper's tables) or ``"step"``.
        methods: methods to draw, e.g. ``["dean", "dean+denoise", "random"]`` (default all).
        percent: accuracy in percent.
        title: figure title (default: the dataset name).
        panel_width, height: inches.

    Returns:
        A figure with one axes per noise level, sharing the y axis; the legend gives each
        method's number of seeds.
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
    )


def uncertainty_curves(
    df,
    *,
    dataset: str | None = None,
    x: str = "n_labels",
    methods: Sequence[str] | None = None,
    title: str | None = None,
    panel_width: float = 4.0,
    height: float = 3.4,
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


def channel_heatmaps(
    true,
    learned,
    *,
    class_names: Sequence[str] | None = None,
    annotate: bool | None = None,
    titles: tuple[str, str] = ("oracle channel T", "learned channel W"),
    cell_size: float = 0.45,
) -> Figure:
    """The true and the learned noisy channel side by side, values annotated.

    Both matrices are ``(K, K)`` with entry ``[i, j] = p(y' = i | y = j)`` (columns sum to
    1): the x axis is the true class ``j``, the y axis the label the oracle returns ``i``.

    Args:
        true: the oracle's channel (tensor, array or nested lists).
        learned: the denoising layer's ``W`` (e.g. ``NoisyChannel.matrix`` or a
            :class:`~dean_nb.records.StepRecord`'s ``channel``).
        class_names: tick labels (default ``0 .. K-1``).
        annotate: write each value in its cell (default: when ``K <= 12``).
        titles: the two panel titles.
        cell_size: inches per cell.
    """
    t = _as_matrix("true", true)
    w = _as_matrix("learned", learned)
    if t.shape != w.shape:
        raise ValueError(f"true {t.shape} and learned {w.shape} must have the same shape")
    k = t.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"class_names must have {k} entries, got {len(names)}")
    annotate = k <= 12 if annotate is None else annotate
    side = max(3.0, cell_size * k + 1.2)
    fig = Figure(figsize=(2 * side + 0.8, side), layout="constrained")
    axes = fig.subplots(1, 2)
    image = None
    for ax, matrix, title in zip(axes, (t, w), titles, strict=True):
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(title)
        ax.set_xlabel("true class y")
        ax.set_ylabel("returned label y'")
        step = max(1, k // 12)
        ticks = np.arange(0, k, step)
        ax.set_xticks(ticks, [names[i] for i in ticks])
        ax.set_yticks(ticks, [names[i] for i in ticks])
        if annotate:
            for i in range(k):
                for j in range(k):
                    v = matrix[i, j]
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if v > 0.6 else "white",
                    )
    assert image is not None
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="p(y' | y)")
    return fig
