"""Figures that illustrate one idea of a chapter: images, scores, annealed picks, training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from dean_nb.learner.denoise import trust_weight
from dean_nb.problem.oracle import symmetric_information_bits

from .style import FONT, MAX_WIDTH, SMALL, as_matrix, heatmap, panel_grid

__all__ = [
    "bald_stability",
    "beta_maps",
    "cluster_map",
    "distance_histograms",
    "diversity_panels",
    "entropy_decomposition",
    "image_grid",
    "information_curve",
    "majority_vote_curves",
    "mc_passes",
    "noise_sweep",
    "noisy_label_examples",
    "pick_maps",
    "pick_transition",
    "score_grid",
    "sigma_against_labels",
    "top_pick_shares",
    "training_trajectories",
    "trust_weight_curves",
]


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
            ax.set_title(titles[i], fontsize=SMALL, color=colour, pad=2)
    if title:
        fig.suptitle(title, fontsize=FONT)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, hspace=0.45, wspace=0.1)
    return fig


def noisy_label_examples(channel, images, truth, answers, *, title: str, cols: int = 6) -> Figure:
    """A channel's heatmap beside images with their true and returned labels (chapter 1).

    Flipped answers (``answers != truth``) are written in red as ``true -> returned``.
    """
    matrix = as_matrix("channel", channel)
    truth = [int(v) for v in truth]
    answers = [int(v) for v in answers]
    n = len(images)
    rows = -(-n // cols)
    fig = Figure(figsize=(MAX_WIDTH, 3.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.5])
    ax = left.subplots()
    heatmap(ax, matrix, [str(i) for i in range(matrix.shape[0])], False, "Blues", True)
    ax.set_title(title, fontsize=FONT)
    axes = right.subplots(rows, cols, squeeze=False)
    flipped = 0
    for i, sub in enumerate(axes.flat):
        sub.set_axis_off()
        if i < n:
            sub.imshow(_as_image(images[i]), cmap="gray_r")
            wrong = truth[i] != answers[i]
            flipped += wrong
            sub.set_title(
                f"{truth[i]}→{answers[i]}", fontsize=SMALL, color="red" if wrong else "black"
            )
    right.suptitle(f"true → returned ({flipped} of {n} flipped)", fontsize=FONT)
    return fig


def information_curve(num_classes: int, levels: Sequence[float] = (0.1, 0.2, 0.3, 0.4)) -> Figure:
    """Bits per label of the K-ary symmetric channel against its flip probability (chapter 1).

    The closed form :func:`dean_nb.problem.oracle.symmetric_information_bits` on a grid of
    ``epsilon`` in ``[0, 0.99]``, dots at ``levels`` (the paper's), and a dotted line at
    ``epsilon = (K - 1) / K`` where a label carries nothing.
    """
    k = int(num_classes)
    grid = np.linspace(0, 0.99, 199)
    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(grid, [symmetric_information_bits(k, e) for e in grid])
    for eps in levels:
        ax.plot(eps, symmetric_information_bits(k, eps), "o", color="C1")
    ax.axvline((k - 1) / k, color="grey", ls=":", label=r"$\varepsilon = (K-1)/K$")
    ax.set(xlabel=r"flip probability $\varepsilon$", ylabel="bits per label")
    ax.set_title(f"Information in a noisy label, K = {k} (dots: the paper's levels)", fontsize=FONT)
    ax.legend(fontsize=SMALL)
    return fig


def majority_vote_curves(table, *, title: str = "Majority voting against two noisy oracles"):
    """Error rate of the majority label against the number of labellers (chapter 1).

    Args:
        table: a DataFrame indexed by the number of labellers ``V``, one column per curve
            (its name is the legend entry), error rates in ``[0, 1]``. The last column is
            drawn as a dotted black prediction, the others with markers.
    """
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    v_values = [int(v) for v in table.index]
    markers = ["o-", "s-", "^-", "D-", "v-"]
    for i, column in enumerate(table.columns):
        last = i == len(table.columns) - 1
        style = "k:" if last else markers[i % len(markers)]
        ax.plot(v_values, table[column].to_numpy(), style, label=str(column))
    ax.set(xlabel="labellers per image V (majority vote)", ylabel="wrong labels", ylim=(0, 1))
    ax.set_xticks(v_values)
    ax.set_title(title, fontsize=FONT)
    ax.legend(fontsize=SMALL)
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
        fig.suptitle(title, fontsize=FONT)
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
        ax.set_title(f"{n} labels, T = {t}: Spearman {rho:.2f}", fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
    for ax in axes[-1]:
        ax.set_xlabel("BALD, first estimate")
    for ax in axes[:, 0]:
        ax.set_ylabel("second estimate")
    if title:
        fig.suptitle(title, fontsize=FONT)
    return fig


def mc_passes(images, probs_T_M_K, titles: Sequence[str], *, title: str | None = None) -> Figure:
    """A few images above their T MC-dropout passes (chapter 2), one column per image.

    Args:
        images: ``(M, C, H, W)``; ``probs_T_M_K``: their passes, ``(T, M, K)``. Each pass is
            a grey line over the K classes, the mean prediction a black one.
    """
    probs = np.asarray(probs_T_M_K)
    m, k = probs.shape[1], probs.shape[2]
    fig = Figure(figsize=(MAX_WIDTH, 4.6), layout="constrained")
    axes = fig.subplots(2, m, squeeze=False, gridspec_kw={"height_ratios": [1, 1.3]})
    for col in range(m):
        axes[0, col].imshow(_as_image(images[col]), cmap="gray_r")
        axes[0, col].set_axis_off()
        axes[0, col].set_title(titles[col], fontsize=SMALL)
        axes[1, col].plot(range(k), probs[:, col].T, color="grey", alpha=0.15, lw=1)
        axes[1, col].plot(range(k), probs[:, col].mean(0), color="black", lw=2)
        axes[1, col].set(xticks=range(k), ylim=(0, 1), xlabel="class k")
    axes[1, 0].set_ylabel(r"$p(y = k \mid x, \hat\theta_t)$")
    if title:
        fig.suptitle(title, fontsize=FONT)
    return fig


def entropy_decomposition(
    names: Sequence[str],
    expected,
    bald,
    pool_entropy,
    pool_bald,
    *,
    max_entropy: float,
    pool_title: str,
) -> Figure:
    """Entropy = expected entropy + BALD, stacked for a few named inputs (left), and BALD
    against predictive entropy over a pool ``(N,)`` with the line BALD = entropy (right)."""
    fig = Figure(figsize=(MAX_WIDTH, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    expected, bald = np.asarray(expected), np.asarray(bald)
    left.bar(names, expected, label="expected entropy (aleatoric)", color="C7")
    left.bar(names, bald, bottom=expected, label="BALD (epistemic)", color="C3")
    left.axhline(np.log(2), color="black", ls=":", lw=1)
    left.set(ylabel="nats", title="entropy = aleatoric + epistemic", ylim=(0, 1.0))
    left.legend(fontsize=SMALL, loc="upper right")
    right.scatter(np.asarray(pool_entropy), np.asarray(pool_bald), s=6, alpha=0.5)
    line = [0, max_entropy]
    right.plot(line, line, color="black", ls=":", lw=1, label="BALD = entropy")
    right.set(xlabel="predictive entropy (nats)", ylabel="BALD (nats)", title=pool_title)
    right.legend(fontsize=SMALL)
    return fig


def sigma_against_labels(runs) -> Figure:
    """Model uncertainty sigma and test accuracy against the labelled-set size (chapter 2).

    ``runs`` is a frame with columns ``labels``, ``sigma`` and ``test accuracy``, one row per
    (labels, seed): a dot per seed, a line through the means.
    """
    means = runs.groupby("labels")[["sigma", "test accuracy"]].mean()
    sizes = list(means.index)
    fig = Figure(figsize=(MAX_WIDTH, 3.0), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, column, label in (
        (axes[0], "sigma", r"model uncertainty $\sigma$"),
        (axes[1], "test accuracy", "test accuracy"),
    ):
        ax.plot(runs["labels"], runs[column], "o", color="C0", alpha=0.4, label="one seed")
        ax.plot(sizes, means[column], "-", color="C0", label="mean over seeds")
        ax.set(xscale="log", xlabel="labelled images", ylabel=label)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
    axes[0].legend(fontsize=SMALL)
    axes[0].set_title(r"$\sigma$ shrinks as labels grow")
    axes[1].set_title("while the model gets better")
    return fig


def top_pick_shares(shares: dict, pool_share_K, sizes: Sequence[int], *, top_b: int) -> Figure:
    """Class shares of the top-``top_b`` picks, one bar per seed, against the pool's (a step).

    Args:
        shares: ``{(labels, seed): shares (K,)}``; one panel per labelled-set size in ``sizes``.
        pool_share_K: the pool's class shares ``(K,)``.
    """
    pool = np.asarray(pool_share_K, dtype=float)
    k = pool.size
    fig = Figure(figsize=(MAX_WIDTH, 3.2), layout="constrained")
    axes = fig.subplots(1, len(sizes), sharey=True, squeeze=False)[0]
    for ax, n in zip(axes, sizes, strict=True):
        seeds = [s for m, s in shares if m == n]
        width = 0.8 / len(seeds)
        for i, seed in enumerate(seeds):
            offset = (i - (len(seeds) - 1) / 2) * width
            ax.bar(np.arange(k) + offset, np.asarray(shares[n, seed]), width, label=f"seed {seed}")
        steps = np.append(pool, pool[-1])
        ax.step(np.arange(k + 1) - 0.5, steps, where="post", color="black", lw=1, label="pool")
        ax.set(xticks=range(k), xlabel="true class", title=f"top {top_b} BALD picks, {n} labels")
    axes[0].set_ylabel("share of the picks")
    axes[-1].legend(fontsize=SMALL)
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
        ax.set_title(title, fontsize=SMALL)
        ax.set(xticks=[], yticks=[])
    return fig


def diversity_panels(table, tick_labels: Sequence[str], *, baseline: str) -> Figure:
    """Batch statistics against beta (chapter 3), one panel per column of ``table``, 2 x 2.

    ``table`` has one row per beta (in order) and a last row for the baseline (top-b BALD),
    drawn as a dashed line.
    """
    columns = list(table.columns)
    fig, axes, spare = panel_grid(len(columns), 2, 3.3, 2.3, sharey=False)
    for ax in spare:
        ax.set_axis_off()
    x = np.arange(len(table) - 1)
    for ax, column in zip(axes, columns, strict=True):
        ax.plot(x, table[column].iloc[:-1], "o-", label="DeAn")
        ax.axhline(table[column].iloc[-1], ls="--", c="C3", label=baseline)
        ax.set_xticks(x, list(tick_labels))
        ax.set_title(column, fontsize=FONT)
        ax.set_xlabel("β")
        ax.tick_params(labelsize=SMALL)
    axes[0].legend(fontsize=SMALL)
    return fig


def distance_histograms(all_pairs, nearest) -> Figure:
    """Densities of the pool's pairwise distances and of each image's nearest-neighbour
    distance (chapter 3), both ``(M,)`` arrays of square-root JS distances in ``[0, 1]``."""
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, 1, 81)
    for values, label in ((all_pairs, "all pairs"), (nearest, "nearest other image")):
        ax.hist(np.asarray(values), bins=bins, density=True, alpha=0.6, label=label)
    ax.set(xlabel="$d$ (square-root JS, base 2)", ylabel="density", yticks=[])
    ax.set_title("Distances between the pool's predictive distributions", fontsize=FONT)
    ax.legend(fontsize=SMALL)
    return fig


def cluster_map(xy, predicted, clusters, centroids) -> Figure:
    """The pool on a 2-D map (chapter 3): coloured by predicted class, and by cluster with the
    two largest clusters in grey and the centroids as crosses.

    Args:
        xy: ``(N, 2)`` map coordinates; predicted: ``(N,)`` classes; clusters: ``(N,)`` ids
            ``0..C-1``; centroids: ``(C,)`` pool indices.
    """
    xy = np.asarray(xy)
    clusters = np.asarray(clusters)
    n_clusters = int(clusters.max()) + 1
    fig = Figure(figsize=(MAX_WIDTH, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    axes[0].scatter(*xy.T, c=np.asarray(predicted), cmap="tab10", vmin=-0.5, vmax=9.5, s=6)
    axes[0].set_title("predicted class", fontsize=FONT)
    big = np.isin(clusters, np.argsort(-np.bincount(clusters), kind="stable")[:2])
    axes[1].scatter(*xy[big].T, c="0.8", s=6, label="two largest clusters")
    axes[1].scatter(*xy[~big].T, c=clusters[~big] % 20, cmap="tab20", s=14, label="other clusters")
    axes[1].scatter(*xy[np.asarray(centroids)].T, marker="+", c="k", s=40, lw=1, label="centroids")
    axes[1].set_title(f"single linkage, {n_clusters} clusters", fontsize=FONT)
    axes[1].legend(fontsize=SMALL, loc="lower left")
    for ax in axes:
        ax.set(xticks=[], yticks=[])
    return fig


def pick_transition(betas, perplexity, centroid_mass, *, pool_size: int, frozen: float) -> Figure:
    """Perplexity of the pick and its probability of being a centroid against beta (chapter 3).

    ``betas``, ``perplexity``, ``centroid_mass``: ``(G,)``; ``pool_size`` and ``frozen`` (the
    perplexity of ``p(c)``) are the two limits, drawn as reference lines.
    """
    fig = Figure(figsize=(MAX_WIDTH, 3.0), layout="constrained")
    axes = fig.subplots(1, 2)
    axes[0].loglog(betas, perplexity, "o-", ms=3)
    axes[0].axhline(pool_size, ls=":", c="k")
    axes[0].axhline(frozen, ls="--", c="k")
    axes[0].text(
        betas[0], pool_size * 0.8, r"$|P'|$: uniform ($\beta = 0$)", va="top", fontsize=SMALL
    )
    axes[0].text(betas[0], frozen * 1.2, r"$p(c)$ ($\beta = \infty$)", fontsize=SMALL)
    axes[0].set(xlabel=r"$\beta$", ylabel="perplexity of the pick")
    axes[1].semilogx(betas, centroid_mass, "o-", ms=3)
    axes[1].set(xlabel=r"$\beta$", ylabel="P(pick is a centroid)", ylim=(0, 1.05))
    return fig


def beta_maps(sigmas, betas_by_kind: dict, band, sigma: float, beta: float) -> Figure:
    """The maps ``beta = f(sigma)`` (chapter 3), the band of beta where the pick changes
    (``(low, high)``) and the model's own ``(sigma, beta)`` as a dot.

    ``betas_by_kind``: ``{kind: (S,) betas}`` over ``sigmas (S,)``.
    """
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for kind, betas in betas_by_kind.items():
        ax.semilogy(sigmas, betas, label=kind)
    ax.axhspan(*band, color="0.9", label="pick goes from uniform to centroid")
    ax.plot([sigma], [beta], "ko", label=rf"this model: $\sigma$ = {sigma:.2f}")
    ax.set(xlabel=r"model uncertainty $\sigma$", ylabel=r"$\beta = f(\sigma)$")
    ax.set_ylim(1e-3, 1e12)
    ax.legend(fontsize=SMALL)
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
    axes[0].set_title("accuracy of the detached network M", fontsize=FONT)
    axes[1].set(ylabel="mean diagonal\nof W", ylim=(0, 1.05))
    axes[1].set_title("what the channel learns", fontsize=FONT)
    axes[2].set(ylabel="flipped labels\npredicted (%)")
    axes[2].set_title("memorised wrong labels", fontsize=FONT)
    axes[2].set_xlabel("epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=SMALL, loc="lower left", ncol=2)
    axes[1].legend(fontsize=SMALL, loc="upper right", ncol=2)
    return fig


def noise_sweep(curves: dict, summary, *, epochs, last_epoch: int, styles: dict) -> Figure:
    """Accuracy along training per noise level, and at ``last_epoch`` against epsilon.

    Args:
        curves: ``{epsilon: {variant: (E,) percent}}`` over ``epochs``.
        summary: frame indexed by epsilon with one column per variant (fractions).
        styles: ``{variant: matplotlib format string}``.
    """
    n = len(curves) + 1
    fig, axes, spare = panel_grid(n, 3, 2.2, 2.2)
    for ax in spare:
        ax.set_axis_off()
    for ax, (eps, by_variant) in zip(axes, curves.items(), strict=False):
        for variant, ys in by_variant.items():
            ax.plot(epochs, ys, styles[variant], label=variant)
        ax.set_title(f"ε = {eps:g}", fontsize=FONT)
        ax.set_xlabel("epoch")
    last = axes[len(curves)]
    for variant, style in styles.items():
        last.plot(summary.index, 100 * summary[variant], style[:-1] + "o-", label=variant)
    last.set_title(f"after {last_epoch} epochs", fontsize=FONT)
    last.set_xlabel("ε")
    for i, ax in enumerate(axes):
        ax.set_ylim(40, 100)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=SMALL, labelleft=True)
        if i % 3 == 0:
            ax.set_ylabel("clean test accuracy (%)")
    axes[0].legend(fontsize=SMALL, loc="lower right")
    return fig


def trust_weight_curves(diagonals: dict, num_classes: int) -> Figure:
    """The weight ``r(p)`` a fixed symmetric channel gives a label of probability ``p``
    (chapter 4, :func:`dean_nb.learner.denoise.trust_weight`), one curve per ``{name: diagonal}``."""
    p_grid = np.logspace(-3, 0, 200)
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for name, d in diagonals.items():
        ax.semilogx(p_grid, trust_weight(p_grid, d, num_classes), label=f"{name}: d = {d:.2f}")
    ax.set(xlabel=r"network's probability of the given label $p_i$", ylabel=r"weight $r(p_i)$")
    ax.legend(fontsize=SMALL)
    ax.grid(alpha=0.3)
    return fig
