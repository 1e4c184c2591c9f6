"""The book's figures are legible in its 688-px column: at most ``plots.MAX_WIDTH`` inches
wide (shown at 100 dpi, so not scaled down), no text under ``plots.MIN_FONT`` points, one
axes per panel and the labels a reader needs (issue 13); the learning and uncertainty curves of
a folder of many configurations lay out without a warning (issue 21)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.text import Text

from dean_nb import plots
from dean_nb.analysis.results import load_results
from dean_nb.problem import oracle
from dean_nb.problem.oracle import symmetric_channel

WIDTH = 8.0  # the bound: about 8 in at 100 dpi
RESULTS = Path(__file__).resolve().parents[1] / "book" / "results"


def texts(fig):
    """Every visible, non-empty text of a drawn figure (titles, labels, ticks, legends)."""
    fig.canvas.draw()
    found = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return [t for t in found if t.get_window_extent().width > 0]


def assert_legible(fig):
    width, _ = fig.get_size_inches()
    assert width <= plots.MAX_WIDTH + 1e-9 <= WIDTH
    small = [(t.get_text(), t.get_fontsize()) for t in texts(fig) if t.get_fontsize() < 9]
    assert not small, f"text under 9 pt: {small[:5]}"


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def frame(epsilons=(0.0, 0.1, 0.3), strategies=("random", "bald", "dean"), denoise=False):
    rows = []
    for eps in epsilons:
        for s in strategies:
            for d in (False, True) if denoise else (False,):
                method = s + ("+denoise" if d else "")
                for seed in range(3):
                    for step, n in enumerate((20, 40, 60)):
                        acc = 0.5 + 0.1 * step - eps / 2 + 0.01 * seed + 0.02 * d
                        rows.append(
                            dict(
                                dataset="digits",
                                epsilon=eps,
                                method=method,
                                strategy=s,
                                denoise=d,
                                seed=seed,
                                step=step,
                                n_labels=n,
                                test_accuracy=acc,
                                sigma=0.4 - 0.1 * step,
                            )
                        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("curves", [plots.learning_curves, plots.uncertainty_curves])
def test_band_curves_stack_noise_levels_into_a_grid(curves):
    fig = curves(frame())
    assert_legible(fig)
    axes = visible_axes(fig)
    assert len(axes) == 3  # one panel per noise level, the fourth cell holds the legend
    assert {ax.get_title() for ax in axes} == {"noise free (ε = 0)", "ε = 0.1", "ε = 0.3"}
    assert all(ax.get_xlabel() == "number of labels" for ax in axes)
    assert axes[0].get_ylabel()
    legend_texts = [
        t.get_text() for leg in fig.findobj(matplotlib.legend.Legend) for t in leg.texts
    ]
    assert {"random (n=3)", "bald (n=3)", "dean (n=3)"} <= set(legend_texts)


def test_learning_curves_one_panel_per_strategy():
    df = frame(epsilons=(0.3,), strategies=("random", "bald", "entropy", "dean"), denoise=True)
    fig = plots.learning_curves(df, by="strategy", ncols=2)
    assert_legible(fig)
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["dean", "random", "bald", "entropy"]
    for ax in axes:  # each panel: the strategy and its +denoise twin
        labels = ax.get_legend_handles_labels()[1]
        assert len(labels) == 2 and labels[1].endswith("+denoise (n=3)")
    assert axes[0].get_legend() is not None  # one legend says which line is which
    with pytest.raises(ValueError, match="by must be"):
        plots.learning_curves(df, by="seed")


def test_channel_heatmaps_annotated_ten_classes():
    t = oracle.symmetric_channel(10, 0.3)
    fig = plots.channel_heatmaps(t, torch.eye(10, dtype=torch.float64), titles=("T", "W"))
    assert_legible(fig)
    heat = [ax for ax in fig.axes if ax.get_title() in ("T", "W")]
    assert len(heat) == 2
    assert heat[0].get_xlabel() == "true class y" and heat[0].get_ylabel()
    values = {t.get_text() for t in heat[0].texts}
    assert values == {".70", ".03"}  # three characters, 9 pt


def test_image_grid_and_noisy_examples():
    images = torch.rand(20, 1, 8, 8)
    fig = plots.image_grid(images, [str(i % 10) for i in range(20)], title="twenty")
    assert_legible(fig)
    assert sum(ax.images != [] for ax in fig.axes) == 20
    truth, answers = torch.arange(24) % 10, (torch.arange(24) % 10).roll(1)
    fig = plots.noisy_label_examples(
        oracle.symmetric_channel(10, 0.2), torch.rand(24, 1, 8, 8), truth, answers, title="ε"
    )
    assert_legible(fig)
    assert sum(ax.images != [] for ax in fig.axes) == 25  # the heatmap and 24 images


def test_chapter2_grids_have_one_row_per_case():
    gen = np.random.default_rng(0)
    sizes = (20, 50, 200, 800)
    entropy = {n: gen.random(100) for n in sizes}
    bald = {n: gen.random(100) / 2 for n in sizes}
    fig = plots.score_grid(entropy, bald, title="scores", max_entropy=np.log(10))
    assert_legible(fig)
    assert len(visible_axes(fig)) == 8
    assert all(ax.get_ylabel() for ax in fig.axes)
    estimates = {
        (n, t): (gen.random(50), gen.random(50), 0.5) for t in (2, 10, 50, 200) for n in (20, 800)
    }
    fig = plots.bald_stability(estimates)
    assert_legible(fig)
    assert len(visible_axes(fig)) == 8
    assert fig.axes[0].get_title() == "20 labels, T = 2: Spearman 0.50"


def test_chapter2_figures_fit_the_column():
    gen = torch.Generator().manual_seed(0)
    probs = torch.distributions.Dirichlet(torch.ones(10)).sample((20, 3))
    fig = plots.mc_passes(torch.rand(3, 1, 8, 8, generator=gen), probs, ["a", "b", "c"], title="T")
    assert_legible(fig)
    assert len(fig.axes) == 6 and sum(len(ax.images) > 0 for ax in fig.axes) == 3
    values = np.array([0.7, 0.0, 0.2])
    fig = plots.entropy_decomposition(
        ["x", "y", "z"],
        values,
        values[::-1],
        np.random.default_rng(0).random(50),
        np.random.default_rng(1).random(50) / 3,
        max_entropy=np.log(10),
        pool_title="pool",
    )
    assert_legible(fig)
    assert all(ax.get_ylabel() for ax in fig.axes)
    runs = pd.DataFrame(
        {
            "labels": [20, 20, 800, 800],
            "seed": [0, 1, 0, 1],
            "sigma": [0.5, 0.4, 0.1, 0.05],
            "test accuracy": [0.7, 0.8, 0.95, 0.97],
        }
    )
    fig = plots.sigma_against_labels(runs)
    assert_legible(fig)
    assert [ax.get_ylabel() for ax in fig.axes] == [r"model uncertainty $\sigma$", "test accuracy"]
    shares = {(n, s): torch.full((10,), 0.1) for n in (20, 800) for s in (0, 1, 2)}
    fig = plots.top_pick_shares(shares, torch.full((10,), 0.1), (20, 800), top_b=50)
    assert_legible(fig)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 30


def test_chapter3_maps_and_diversity():
    gen = np.random.default_rng(0)
    xy, classes = gen.random((100, 2)), gen.integers(0, 10, 100)
    panels = {f"β = {b}": (np.arange(5) + b, np.arange(5)) for b in range(5)}
    panels["top-b"] = (np.arange(5), None)
    fig = plots.pick_maps(xy, classes, np.arange(10), panels)
    assert_legible(fig)
    assert [ax.get_title() for ax in visible_axes(fig)] == list(panels)
    table = pd.DataFrame(
        gen.random((4, 4)), columns=["clusters", "classes", "nearest pick", "BALD"]
    )
    fig = plots.diversity_panels(table, ["0", "1", "∞"], baseline="top-20 BALD")
    assert_legible(fig)
    assert [ax.get_title() for ax in visible_axes(fig)] == list(table.columns)
    fig = plots.distance_histograms(gen.random(500), gen.random(100) / 10)
    assert_legible(fig)
    assert len(fig.axes[0].patches) == 2 * 80  # two histograms of 80 bins
    clusters = np.r_[np.zeros(60, int), np.ones(30, int), np.arange(2, 12)]
    fig = plots.cluster_map(xy, classes, clusters, np.arange(12))
    assert_legible(fig)
    assert visible_axes(fig)[1].get_title() == "single linkage, 12 clusters"
    grey = visible_axes(fig)[1].collections[0]  # the two largest clusters
    assert len(grey.get_offsets()) == 90
    betas = np.logspace(-1, 4, 11)
    fig = plots.pick_transition(
        betas, np.linspace(100, 10, 11), np.linspace(0, 1, 11), pool_size=100, frozen=9.0
    )
    assert_legible(fig)
    assert len(visible_axes(fig)) == 2
    sigmas = np.linspace(0.02, 1, 50)
    maps = {kind: 1 / sigmas**k for k, kind in enumerate(("exp", "pow4", "log"), 1)}
    fig = plots.beta_maps(sigmas, maps, (10.0, 100.0), 0.5, 1.6)
    assert_legible(fig)
    assert [line.get_label() for line in fig.axes[0].lines][:3] == list(maps)


def test_chapter4_trajectories_and_sweep():
    epochs = np.arange(5, 55, 5)
    styles = {"no channel": "k-", "projected W": "C3-"}
    curve = {v: np.linspace(60, 90, 10) for v in styles}
    fig = plots.training_trajectories(
        epochs,
        curve,
        curve,
        {"projected W": (epochs, np.linspace(1, 0.4, 10))},
        styles,
        references=[(0.7, {"c": "C2", "ls": "--", "label": "true channel"})],
    )
    assert_legible(fig)
    assert len(visible_axes(fig)) == 3 and all(ax.get_ylabel() for ax in fig.axes)
    eps = (0.0, 0.1, 0.2, 0.3, 0.4)
    summary = pd.DataFrame({v: np.linspace(0.9, 0.7, 5) for v in styles}, index=eps)
    fig = plots.noise_sweep(
        {e: curve for e in eps}, summary, epochs=epochs, last_epoch=50, styles=styles
    )
    assert_legible(fig)
    axes = visible_axes(fig)
    assert len(axes) == 6 and axes[-1].get_title() == "after 50 epochs"
    fig = plots.trust_weight_curves({"W = I": 1.0, "true": 0.7, "learned": 0.38}, 10)
    assert_legible(fig)
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == [
        "W = I: d = 1.00",
        "true: d = 0.70",
        "learned: d = 0.38",
    ]
    np.testing.assert_allclose(lines[0].get_ydata(), 1.0)  # W = I: every label at full weight
    assert (np.diff(lines[2].get_ydata()) > 0).all() and lines[2].get_ydata()[-1] < 1


def test_plots_return_figures_without_global_state(tmp_path, fake_results):
    fake_results(tmp_path)
    df = load_results(tmp_path)
    before = plt.get_fignums()
    fig = plots.learning_curves(df)
    assert len(fig.axes) == 2  # one panel per epsilon
    assert {line.get_label() for line in fig.axes[0].lines} == {"dean (n=3)", "random (n=3)"}
    np.testing.assert_allclose(
        fig.axes[0].lines[0].get_ydata(), 100 * np.array([0.56, 0.66, 0.76]), rtol=1e-9
    )
    fig2 = plots.uncertainty_curves(df)
    true = symmetric_channel(10, 0.3)
    fig3 = plots.channel_heatmaps(true, torch.eye(10))
    assert len(fig3.axes[0].texts) == 100
    fig3.savefig(tmp_path / "channel.png")
    assert plt.get_fignums() == before and fig2 is not None
    with pytest.raises(ValueError, match="square"):
        plots.channel_heatmaps(torch.ones(2, 3), torch.ones(2, 3))


def test_chapter_one_figures_fit_the_column():
    from dean_nb.plots import illustrations

    fig = illustrations.information_curve(10)
    assert fig.get_figwidth() <= plots.MAX_WIDTH
    assert min(t.get_fontsize() for t in texts(fig)) >= plots.MIN_FONT
    table = pd.DataFrame({"a": {1: 0.3, 3: 0.2}, "b": {1: 0.6, 3: 0.65}}).rename_axis("V")
    fig = illustrations.majority_vote_curves(table)
    assert fig.get_figwidth() <= plots.MAX_WIDTH
    assert min(t.get_fontsize() for t in texts(fig)) >= plots.MIN_FONT
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]


def test_claim_gaps_shows_every_claim_ours_beside_the_papers():
    claims = pd.DataFrame(
        {
            "claim": ["1. cold start: a", "2. later: b", "3. noise: c"],
            "epsilon": [0.0, 0.3, 0.3],
            "gap": [-0.02, 0.01, float("nan")],
            "stderr": [0.01, float("nan"), float("nan")],
            "n_seeds": [5, 1, 0],
            "paper_gap": [-0.001, 0.004, 0.053],
        }
    )
    fig = plots.claim_gaps(claims, 0.01, ours="ours, X")
    width, _ = fig.get_size_inches()
    assert width <= plots.MAX_WIDTH
    shown = [t.get_text() for t in texts(fig)]
    assert all(t.get_fontsize() >= plots.MIN_FONT for t in texts(fig))
    for label in ("1. cold start, ε = 0", "2. later, ε = 0.3", "3. noise, ε = 0.3"):
        assert label in shown
    assert {"n = 5", "n = 1", "no records", "ours, X (± se)", "paper, MNIST (20 runs)"} <= set(
        shown
    )
    (ax,) = fig.axes
    bars = [p.get_width() for p in ax.patches if p.get_height() == pytest.approx(0.4)]
    assert bars[:3] == pytest.approx([-0.1, 0.4, 5.3])  # the paper's, in points
    assert bars[3:5] == pytest.approx([-2.0, 1.0])  # ours
    with pytest.raises(ValueError):
        plots.claim_gaps(claims, 0.01, width=plots.MAX_WIDTH + 1)
    plt.close("all")


def test_head_to_head_gaps_one_panel_per_point_every_rival_labelled():
    from dean_nb.analysis.head_to_head import head_to_head

    df = frame(epsilons=(0.0, 0.3), strategies=("random", "bald", "dean"))
    df["n_acquired"] = df["n_labels"] - 20
    table = head_to_head(
        df,
        "dean",
        ["bald", "random", "badge"],
        epsilons=(0.0, 0.3),
        acquired=(20, 40),
        margin=0.01,
    )
    fig = plots.head_to_head_gaps(table, 0.01, title="dean − rival")
    assert_legible(fig)
    assert len(visible_axes(fig)) == 4
    shown = [t.get_text() for t in texts(fig)]
    assert {"bald", "random", "badge", "no records", "ε = 0.3, 40 acquired"} <= set(shown)
    assert "3/3" in shown or "0/3" in shown  # k/n beside each measured gap
    # each measured gap is drawn where the table puts it
    ax = visible_axes(fig)[0]
    xs = sorted(bars[0].get_xdata()[0] for bars in ax.containers)  # each errorbar's point
    expected = table[(table["ε"] == 0.0) & (table["acquired"] == 20)]["gap"].dropna()
    assert xs == pytest.approx(sorted(expected.tolist()))


def test_batch_information_draws_a_ceiling_per_number_of_passes():
    values = {20: np.minimum(np.arange(1, 41) * 0.3, 3.0), 100: np.arange(1, 41) * 0.1}
    fig = plots.batch_information(values, title="BatchBALD")
    assert_legible(fig)
    (ax,) = fig.axes
    ceilings = sorted(line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1)
    assert ceilings == pytest.approx([np.log(20), np.log(100)])
    assert {"T = 20", "T = 100", "log 20", "log 100"} <= {t.get_text() for t in texts(fig)}
    with pytest.raises(ValueError, match="values_by_passes"):
        plots.batch_information({})


def test_batch_information_draws_the_reference_dashed_in_its_passes_colour():
    values = {20: np.minimum(np.arange(1, 41) * 0.3, 3.2), 100: np.arange(1, 41) * 0.1}
    sizes = [10, 20, 40]
    reference = {20: (sizes, [2.5, 2.9, 2.99], [0.02, 0.01, 0.0])}
    fig = plots.batch_information(values, reference_by_passes=reference)
    assert_legible(fig)
    (ax,) = fig.axes
    (dashed,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert list(dashed.get_xdata()) == sizes and dashed.get_ydata()[1] == pytest.approx(2.9)
    (solid_20,) = [line for line in ax.lines if line.get_label() == "T = 20"]
    assert dashed.get_color() == solid_20.get_color()
    assert "T = 20, reference" in {t.get_text() for t in texts(fig)}
    with pytest.raises(ValueError, match=r"reference_by_passes.*\[50\]"):
        plots.batch_information(values, reference_by_passes={50: (sizes, sizes, sizes)})


def test_learning_curves_take_a_style_per_method():
    df = frame(strategies=("random", "dean"))
    fig = plots.learning_curves(df, styles={"dean": {"color": "#123456", "linestyle": ":"}})
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    dean = next(v for k, v in lines.items() if k.startswith("dean"))
    assert dean.get_color() == "#123456" and dean.get_linestyle() == ":"
    random = next(v for k, v in lines.items() if k.startswith("random"))
    assert random.get_color() == plots.method_style("random")["color"]


def drawn_without_warnings(make, *args, **kwargs):
    """The figure of ``make(*args, **kwargs)``, drawn (its constrained layout applied) under
    ``warnings.simplefilter("error")``: any warning fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = make(*args, **kwargs)
        fig.savefig(io.BytesIO(), dpi=120)
    return fig


# thirty labels of the length ``report`` gives the configurations of a folder of ablations
MANY = tuple(
    f"dean [strategy_options={{'beta':{beta}}}, beta_scale={scale}, noise={noise}]"
    for beta in (10, 100, 1000, 10000, 100000)
    for scale in (0.0625, 0.25, 1.0)
    for noise in ("pairflip", "symmetric")
)


@pytest.mark.parametrize("curves", [plots.learning_curves, plots.uncertainty_curves])
def test_a_legend_too_large_for_its_cell_goes_below_the_panels_without_a_warning(curves):
    fig = drawn_without_warnings(curves, frame(strategies=MANY))
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends[0].texts) == len(MANY)
    width, height = fig.get_size_inches()
    assert width == plots.MAX_WIDTH and height > 5.6 + 4  # grown by the legend's height
    panels = visible_axes(fig)
    assert len(panels) == 3
    assert min(ax.get_position().height for ax in panels) * height > 1.5  # not squeezed
    assert_legible(fig)


@pytest.mark.parametrize("curves", [plots.learning_curves, plots.uncertainty_curves])
def test_a_legend_that_fits_keeps_its_cell_and_the_figure_size(curves):
    six = ("random", "entropy", "bald", "coreset", "batchbald", "dean")
    fig = drawn_without_warnings(curves, frame(strategies=six, denoise=True))  # 12 methods
    assert not fig.legends
    np.testing.assert_allclose(fig.get_size_inches(), (plots.MAX_WIDTH, 5.6))
    assert fig.axes[3].get_legend() is not None  # the spare fourth cell
    # a legend below the panels from the start: the figure grows only to keep the panels
    one_row = drawn_without_warnings(curves, frame(epsilons=(0.0, 0.3)), ncols=3)
    assert len(one_row.legends) == 1
    np.testing.assert_allclose(one_row.get_size_inches(), (plots.MAX_WIDTH, 3.0))
    tall = drawn_without_warnings(curves, frame(epsilons=(0.0, 0.3), strategies=MANY), ncols=3)
    assert tall.get_size_inches()[1] > 3.0 + 4


@pytest.mark.parametrize(
    "folder", ["fashion-mnist", "digits-quick/main", "channel-dropout/digits-quick/main"]
)
def test_the_committed_folders_curves_lay_out_without_a_warning(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading: a folder may hold records of newer code
        df = load_results(RESULTS / folder)
    for curves in (plots.learning_curves, plots.uncertainty_curves):
        fig = drawn_without_warnings(curves, df)
        assert fig.get_figwidth() <= plots.MAX_WIDTH


def test_memory_sweep_draws_askers_as_lines_and_the_rest_as_bands():
    rows = []
    for seed in range(3):
        for method, memories in (("relabel-majority", (1.0, 0.5, 0.0)), ("dean+denoise", (1.0,))):
            for m in memories:
                acc = 0.80 + (0.05 * (1 - m) if method == "relabel-majority" else 0.03) + seed / 100
                rows.append(
                    dict(
                        method=method,
                        oracle_memory=m,
                        seed=seed,
                        n_acquired=100,
                        test_accuracy=acc,
                        wrong_share=0.3 * m,
                    )
                )
    table = pd.DataFrame(rows)
    fig = plots.memory_sweep(table, 100, title="sweep")
    assert_legible(fig)
    accuracy_ax, wrong_ax = visible_axes(fig)
    (bars,) = accuracy_ax.containers  # the asker: one errorbar line over the three memories
    assert sorted(bars[0].get_xdata()) == [0.0, 0.5, 1.0]
    assert sorted(bars[0].get_ydata()) == pytest.approx([81.0, 83.5, 86.0])
    band = [line for line in accuracy_ax.lines if len(set(line.get_ydata())) == 1]
    assert [line.get_ydata()[0] for line in band] == pytest.approx([84.0])  # across the axis
    assert accuracy_ax.get_xlim()[0] > accuracy_ax.get_xlim()[1]  # resolute on the left
    (wrong_bars,) = wrong_ax.containers
    assert sorted(wrong_bars[0].get_ydata()) == pytest.approx([0.0, 15.0, 30.0])
    shown = {t.get_text() for t in texts(fig)}
    assert {"relabel-majority (n=3)", "dean+denoise (n=3)", "wrong training labels (%)"} <= shown
    with pytest.raises(ValueError, match=r"n_acquired=50.*100"):
        plots.memory_sweep(table, 50)
    # the noise models of one strategy: the layer dashed, forward correction dotted
    styles = [plots.method_style(f"dean{s}")["linestyle"] for s in ("", "+denoise", "+forward")]
    assert styles == ["-", "--", ":"]
