"""Writes the draft of chapter 7 (07_stochastic_baselines.ipynb) from the cells below.

A draft until its grid is complete: run `python book/drafts/make_07.py`, then execute the
notebook (OMP_NUM_THREADS=1 jupyter execute --inplace ...). The discussion cells marked DRAFT
are written once the records are in.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent
cells = []


def md(text: str) -> None:
    cells.append(nbf.v4.new_markdown_cell(text.strip("\n")))


def code(text: str, *tags: str) -> None:
    cell = nbf.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    cells.append(cell)


md(r"""
# DeAn and the stochastic baselines

DeAn {cite:p}`gupta2019dean` fills a batch by sampling: it draws a cluster centroid in
proportion to its BALD score, then an image near it with a weight $e^{-\beta d}$ that the
model's own uncertainty sets. Since 2019 two simpler ideas have become the baselines that a
batch method has to beat:

- **Stochastic batch acquisition** {cite:p}`kirsch2023stochastic` draws the whole batch from
  the pool without replacement, with probability proportional to a power of the score
  (*power-BALD*: $p_i \propto \mathrm{BALD}_i^{\,\beta}$) or to its exponential (*softmax-BALD*:
  $p_i \propto e^{\beta\, \mathrm{BALD}_i}$). There are no clusters and no schedule, and it
  costs what BALD costs.
- **BADGE** {cite:p}`ash2020badge` seeds k-means++ on the gradient of the loss with respect to
  the last layer: large gradients mark uncertain images, spread-out gradients mark different
  ones.

Next to them stand two baselines the paper already had: top-$b$ BALD and BatchBALD
{cite:p}`kirsch2019batchbald`, which the authors ran only with batches of 100, because its
joint entropy has $K^b$ terms and a sampled estimate of it grows less accurate as $b$ and $K$
grow (their appendix D found it behind BALD and random sampling on EMNIST). DeAn adds two things to score-proportional sampling: a
temperature that *follows* the model's uncertainty (annealing), and sampling *around*
$\sqrt{\mathrm{JS}}$ clusters rather than over the raw scores. This chapter asks whether each
pays, on the Fashion-MNIST protocol of the previous chapter, with one computed verdict per
question:

1. **Does annealing pay?** DeAn against itself with a fixed $\beta$.
2. **Does DeAn beat the simple stochastic baselines?** DeAn against power-BALD, softmax-BALD,
   BADGE, BatchBALD and BALD, early (200 acquired labels) and late (1,000).
3. **Is the cold start a matter of scale?** DeAn with the temperature's scale at 1/16, 1/4
   (the paper) and 1.
4. **What about a labeller who confuses neighbouring classes?** Pair-flip noise, with and
   without the denoising layer: does the layer learn where the flips go?
""")

code(
    r"""
# Parameters of this chapter: change them here, then run every cell again.
DATASET = "fashion-mnist"  # the data set of the records
PRESET = "medium"  # the preset the records were made with
RESULTS = "results/fashion-mnist"  # folder of run records, relative to book/
EARLY, LATE = 200, 1000  # acquired labels at which the questions are judged
NOISY_EPSILON = 0.3  # the noise level of the noisy comparisons
MARGIN = 0.01  # one accuracy point: a smaller gap counts as a tie
FIXED_BETAS = (10, 100, 1000)  # DeAn with annealing off
BETA_SCALES = (0.0625, 0.25, 1.0)  # the scale l of beta = l (e^(1/sigma) - 1)
DEMO_DATASET, DEMO_PICKS = "digits", 40  # the BatchBALD demonstration
""",
    "parameters",
)

code(
    r"""
# Setup: in Colab, install the book's package from its repository; everywhere,
# pick the device.
import subprocess
import sys

REPO_URL = "https://github.com/dean-nb/dean-nb"
if "google.colab" in sys.modules:
    pip = [sys.executable, "-m", "pip", "install", "-q", f"git+{REPO_URL}"]
    subprocess.run(pip, check=True)

%matplotlib inline
import math
import textwrap
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display
from matplotlib import colormaps

import dean_nb
from dean_nb import compare, experiment, head_to_head, plots, strategies, tables
from dean_nb.runtime import default_device

device = default_device()
print(f"dean_nb {dean_nb.__version__} | torch {torch.__version__} | {device}")
""",
    "nbval-ignore-output",
    "hide-input",
)

md(r"""
## Six ways to spend a batch

| strategy | how it fills a batch of $b$ | work beyond training |
| --- | --- | --- |
| `bald` | the $b$ highest BALD scores | $T$ passes on the pool |
| `power-bald` | $b$ draws without replacement, $p_i \propto \mathrm{BALD}_i^{\,\beta}$ | the same |
| `softmax-bald` | the same with $p_i \propto e^{\beta\,\mathrm{BALD}_i}$ | the same |
| `badge` | k-means++ seeding on last-layer gradient embeddings | one pass, $b$ distance sweeps |
| `batchbald` | greedy: each pick maximises the batch's joint information | $T$ passes, $b$ greedy steps |
| `dean` | a centroid $\propto$ BALD, then an image $\propto e^{-\beta d}$ around it | $T$ passes, clustering |

Each is one entry of the package's registry, `strategies.get(name)`, with its options as
fields; the stochastic ones draw from the step's random generator, so a seed fixes the batch.
""")

code(r"""
for name in ("power-bald", "softmax-bald", "badge", "batchbald", "dean"):
    text = repr(strategies.get(name))
    print(textwrap.fill(text, 78, subsequent_indent="    "))
""")

md(r"""
Power- and softmax-BALD differ in how they treat small scores. A power keeps the *ratios* of the
scores: with $\beta = 1$ an image with half the BALD score is drawn half as often, however small
the scores are. An exponential keeps the *differences*: BALD scores lie between 0 and
$\log K \approx 2.3$ nats, so $e^{\beta\,\mathrm{BALD}}$ with $\beta = 1$ is close to uniform, and
softmax-BALD behaves much like random sampling unless $\beta$ is large. We use $\beta = 1$ for
both, the default of baal's implementation; the package draws a batch by Gumbel-top-$k$ in log
space, which is exactly sampling without replacement in proportion to the weights.
""")

md(r"""
## BatchBALD at a batch of 200

BatchBALD picks images greedily to maximise the mutual information between the batch's labels
and the model's weights, estimated from $T$ MC-dropout passes with one dropout mask per pass
(consistent masks, chapter 2). But $T$ passes are $T$ sampled networks, and the labels of a
batch can tell them apart by at most $\log T$ nats: once the batch's information reaches
$\log T$, every further image adds nothing the estimate can see, and the greedy choice is
decided by the estimator's noise. The next cells show this on the small digits model of
chapter 2, with $T = 20$ (the `medium` preset's value) and $T = 100$ (the paper's).
""")

code(r"""
from dean_nb import batchbald, data, scoring

demo = experiment.ExperimentConfig.preset(DEMO_DATASET, "quick")
ds = data.load_dataset(DEMO_DATASET)
K = ds.num_classes
split = data.make_split(ds.y_train, K, demo.initial_per_class, 100, demo.seed)
x0, y0 = ds.x_train[split.initial], ds.y_train[split.initial]
with experiment.torch_threads(demo.num_threads):
    model, _ = experiment.train_step_model(
        demo, x0, y0, K, step=0, device=device
    )
x_pool = ds.x_train[split.pool]
""")

code(
    r"""
information = {}  # T -> the batch's BatchBALD value after each pick (nats)
for T in (20, 100):
    probs_T_N_K = scoring.mc_dropout_probs(
        model, x_pool, T, generator=0, masks="consistent"
    )
    top = torch.topk(scoring.bald(probs_T_N_K), 200).indices  # candidates
    gen = torch.Generator().manual_seed(0)
    _, information[T] = batchbald.batchbald_indices(
        probs_T_N_K[:, top], DEMO_PICKS, generator=gen
    )
""",
    "nbval-ignore-output",
)

code(
    r"""
title = f"BatchBALD on the {DEMO_DATASET} step-0 model"
display(plots.batch_information(information, title=title))
""",
    "nbval-ignore-output",
)

code(
    r"""
for T, values in information.items():
    at = values.tolist()
    print(f"T = {T:3d}: after 10 picks {at[9]:.2f} nats, after {DEMO_PICKS} "
          f"{at[-1]:.2f} (log T = {math.log(T):.2f})")
""",
    "nbval-ignore-output",
)

code(
    r"""
# What the prose says: with T = 20 the batch reaches its ceiling within the
# demonstration's picks, and more passes raise the ceiling.
assert information[20][-1] > 0.8 * math.log(20)
assert information[100][-1] > math.log(20)
""",
    "remove-input",
)

md(r"""
With $T = 20$ the batch's information is at its ceiling after a few dozen picks; a `medium`
batch has 200. The exact joint information can never exceed $\log T$, yet the curve for
$T = 20$ goes past it. Beyond the first three picks BatchBALD cannot enumerate the $K^n$ label
configurations and estimates the joint entropy from 1,000 sampled ones; the estimate is
unbiased for each candidate, but each pick takes the *largest* of 2,000 noisy estimates, and
the largest of many noisy numbers overshoots (the winner's curse). Near the ceiling the true
differences between candidates are smaller than that noise, so the picks follow the
estimator's errors. So in our grid BatchBALD spends most of each batch out
of its regime: we run it anyway, because that is what a reader running it at this batch size
gets, but a fair test of BatchBALD would use small batches or many more passes, as its authors
do. It is also the slowest strategy by far (its 200 greedy steps each score 2,000 candidates).
""")

md(r"""
## The records

The runs share the folder of chapter 6: the same preset, the same seeds and initial sets, so
DeAn, BALD and random sampling at $\varepsilon = 0$ and $0.3$ are the very runs of that chapter.
The grid of this chapter adds five commands, run from the repository root:

```bash
R="python -m dean_nb run --dataset fashion-mnist --preset medium \
   --seeds 0-4 --out book/results/fashion-mnist --workers 2"
$R --strategies power-bald,softmax-bald,badge,batchbald --epsilons 0,0.3
for b in 10 100 1000; do
  $R --strategies dean --epsilons 0,0.3 \
     --override "strategy_options={\"beta\": $b}"
done
for s in 0.0625 1; do
  $R --strategies dean --epsilons 0 --override beta_scale=$s
done
S=random,bald,dean,power-bald
D=random+denoise,bald+denoise,dean+denoise,power-bald+denoise
$R --noise pairflip --epsilons 0.3 --strategies $S,$D
```

That is 120 runs: about 0.05 CPU hours each at two workers on our machine, except BatchBALD's,
which take about four times as long, so about 7 CPU hours in all. Every run is labelled against
the preset: a run of the preset keeps its plain name, any other carries the fields in which it
differs (`compare.label_against`), so nothing is averaged across configurations.
""")

code(
    r"""
config = experiment.ExperimentConfig.preset(DATASET, PRESET)
folder = Path(RESULTS)
if not folder.is_dir() and "google.colab" in sys.modules:
    clone = ["git", "clone", "-q", "--depth", "1", REPO_URL, "/content/dean-nb"]
    subprocess.run(clone, check=True)
    folder = Path("/content/dean-nb/book") / RESULTS
assert folder.is_dir(), f"this chapter needs the run records in book/{RESULTS}"
""",
    "hide-input",
)

code(r"""
def label(**fields):
    # the method label of a configuration of this chapter
    return compare.label_against(config.replace(**fields), config)


FIXED = {
    label(strategy_options={"beta": b}): f"dean, β = {b}" for b in FIXED_BETAS
}
SCALED = {  # the preset's own scale is plain "dean"
    label(beta_scale=s): f"dean, scale {s:g}"
    for s in BETA_SCALES
    if s != config.beta_scale
}
NAMES = {**FIXED, **SCALED}
""")

code(r"""
df = experiment.load_results(folder, reference=config)
df = df[df["dataset"] == DATASET]
df["method"] = df["method"].replace(NAMES)
symmetric = df[~df["method"].str.contains("noise=")]
pair_ref = config.replace(noise="pairflip")
print(f"{df['run'].nunique()} run records in {folder}/")
""")

code(r"""
seeds = tables.seeds_per_method(symmetric)
print("seeds per method and noise level:")
display(seeds.loc[[0.0, NOISY_EPSILON]].T)
""")

code(
    r"""
# Each discussion below is checked by the cell after it, once the grid is
# complete (five seeds of every method it names); a partial grid is not checked.
def complete(frame, methods, epsilons):
    seeds = tables.seeds_per_method(frame)
    return all(
        m in seeds.columns and e in seeds.index and seeds.loc[e, m] >= 5
        for m in methods
        for e in epsilons
    )


pts = 100 * MARGIN  # the margin in accuracy points
""",
    "hide-input",
)

code(
    r"""
# Readers of the head-to-head tables, for those checks.
def _row(table, eps, acquired, rival):
    return table.set_index(["ε", "acquired", "rival"]).loc[(eps, acquired, rival)]


def verdict(table, eps, acquired, rival):  # (verdict, seeds on which dean is better)
    row = _row(table, eps, acquired, rival)
    return row["verdict"], int(row["better"])


def gap_of(table, eps, acquired, rival):  # the mean gap, accuracy points
    return float(_row(table, eps, acquired, rival)["gap"])


def best_rival(table, eps, acquired):  # the rival of a best_of=True table
    at = table[(table["ε"] == eps) & (table["acquired"] == acquired)]
    return at["rival"].item()
""",
    "hide-input",
)

md(r"""
## 1. Does annealing pay?

With annealing off, DeAn samples around the same centroids with one $\beta$ from the first batch
to the last. The annealed DeAn follows the model's uncertainty instead; its temperature on these
records, the median over seeds at each acquisition step:
""")

code(r"""
annealed = symmetric[symmetric["method"] == "dean"]
beta_steps = annealed.pivot_table(
    index="epsilon", columns="step", values="beta", aggfunc="median"
).dropna(axis=1)
print("median beta of annealed DeAn, by acquisition step:")
display(beta_steps.loc[[0.0, NOISY_EPSILON]].round(0))
""")

md(r"""
Without noise $\beta$ climbs from about 40 past 1,000 as the model grows sure of itself; under
30% noise the model stays unsure and $\beta$ stays between 20 and 40. The fixed values
$\beta = 10, 100, 1000$ bracket both paths. If one fixed $\beta$ does as well everywhere, the
schedule is not what makes DeAn work.
""")

code(r"""
fixed = list(FIXED.values())
# the four points of the grid: both noise levels, early and late
POINTS = {"epsilons": (0.0, NOISY_EPSILON), "acquired": (EARLY, LATE)}
annealing = head_to_head.head_to_head(
    symmetric, "dean", fixed, margin=MARGIN, **POINTS
)
display(head_to_head.format_table(annealing))
""")

md(r"""
A fixed $\beta$ that happens to suit one budget and noise level need not suit another, so the
fairer test is against the *best* fixed $\beta$ at each point, picked with hindsight: annealing
pays only if DeAn keeps up with it everywhere.
""")

code(r"""
best_fixed = head_to_head.head_to_head(
    symmetric, "dean", fixed, margin=MARGIN, best_of=True, **POINTS
)
display(head_to_head.format_table(best_fixed))
""")

code(
    r"""
title = "annealed DeAn − fixed β"
display(plots.head_to_head_gaps(annealing, MARGIN, title=title))
""",
    "nbval-ignore-output",
)

code(
    r"""
shown = ["dean", *fixed, "random"]
noise_levels = symmetric["epsilon"].isin([0.0, NOISY_EPSILON])
curves = symmetric[noise_levels & symmetric["method"].isin(shown)]
shades = colormaps["viridis"]([0.1, 0.45, 0.8])  # small beta dark
beta_styles = {m: {"color": c, "linestyle": ":"} for m, c in zip(fixed, shades, strict=True)}
title = "DeAn, annealed or not"
display(plots.learning_curves(
    curves, methods=shown, title=title, styles=beta_styles, ncols=3
))
""",
    "nbval-ignore-output",
)

md(r"""
**No: a fixed $\beta$ does as well as the schedule, if it is not too small.** With
$\beta = 100$ fixed, DeAn is level with the annealed DeAn at all four points (without noise and
under 30% noise, early and late); with $\beta = 1000$ it is level at three and a point behind
at the cold start without noise. Yet the annealed $\beta$ of these runs ranges from about 20 to
almost 2,000 (the table above): within that range the level of $\beta$ barely matters.

Below it, it does, and in opposite directions at the two noise levels. With $\beta = 10$ the
weights $e^{-\beta d}$ are nearly flat over a cluster, so the batch is close to random sampling
within the clusters drawn. Without noise that fixes the cold start: 2.8 points ahead of the
annealed DeAn at 200 labels, on every seed (which makes it the best fixed $\beta$ there, and
the one place where annealing loses to hindsight). Under 30% noise the same $\beta$ is the
worst choice, 2.2 points behind the annealed DeAn at 1,000 labels, on every seed. That is the
pattern of question 2 again: on this protocol spreading a batch pays without noise and
following the score pays under noise, whichever method does it.

So DeAn's schedule is not where its accuracy comes from; what the schedule does do is keep
$\beta$ out of the harmful range under noise without being told the noise level. It cannot
mend the cold start without noise, because its first $\beta$ (about 40) is already too
large: question 3 asks whether rescaling it can.
""")

code(
    r"""
# Question 1 as the discussion above tells it (checked on the full grid only).
eps = NOISY_EPSILON
if complete(symmetric, ["dean", *fixed], (0.0, eps)):
    b10, b100, b1000 = fixed
    grid_points = [(e, n) for e in (0.0, eps) for n in (EARLY, LATE)]
    for e, n in grid_points:  # beta = 100 level with the schedule everywhere
        assert verdict(annealing, e, n, b100)[0].startswith("tie"), (e, n)
        if (e, n) != (0.0, EARLY):  # beta = 1000 too, but at the cold start
            assert verdict(annealing, e, n, b1000)[0].startswith("tie"), (e, n)
    assert 0 < gap_of(annealing, 0.0, EARLY, b1000) < 2 * pts
    assert beta_steps.loc[eps].min() < 25 and beta_steps.loc[0.0].max() > 1500
    assert verdict(annealing, 0.0, EARLY, b10) == ("behind", 0)
    assert verdict(annealing, eps, LATE, b10)[0].startswith("ahead")
    assert verdict(annealing, eps, LATE, b10)[1] == 5
    for e, n in grid_points:  # against the best fixed beta, chosen afterwards
        word, _ = verdict(best_fixed, e, n, best_rival(best_fixed, e, n))
        assert word.startswith("behind" if (e, n) == (0.0, EARLY) else "tie")
    assert best_rival(best_fixed, 0.0, EARLY) == b10
""",
    "hide-input",
)

md(r"""
## 2. DeAn against the stochastic baselines

The same paired comparison, DeAn against each later baseline, without noise and at
$\varepsilon = 0.3$.
""")

code(r"""
RIVALS = ["power-bald", "softmax-bald", "badge", "batchbald", "bald", "random"]
rivals = head_to_head.head_to_head(
    symmetric, "dean", RIVALS, margin=MARGIN, **POINTS
)
display(head_to_head.format_table(rivals))
""")

code(r"""
stochastic = ["power-bald", "softmax-bald", "badge"]
best_stochastic = head_to_head.head_to_head(
    symmetric, "dean", stochastic, margin=MARGIN, best_of=True, **POINTS
)
print("DeAn against the best of power-BALD, softmax-BALD and BADGE:")
display(head_to_head.format_table(best_stochastic))
""")

code(
    r"""
display(plots.head_to_head_gaps(rivals, MARGIN, title="DeAn − rival"))
""",
    "nbval-ignore-output",
)

code(
    r"""
shown = ["dean", *RIVALS]
curves = symmetric[noise_levels & symmetric["method"].isin(shown)]
title = "DeAn and the baselines"
display(plots.learning_curves(curves, methods=shown, title=title, ncols=3))
""",
    "nbval-ignore-output",
)

md(r"""
The same records as mean test accuracy, methods ordered by their accuracy under noise at the
late budget:
""")

code(r"""
at = symmetric[noise_levels & symmetric["n_acquired"].isin([EARLY, LATE])]
at = at[at["method"].isin(["dean", *RIVALS])]
accuracy = 100 * at.pivot_table(
    index="method", columns=["epsilon", "n_acquired"], values="test_accuracy"
)
display(accuracy.sort_values((NOISY_EPSILON, LATE), ascending=False).round(1))
""")

md(r"""
And what each run cost, from the records' own timings (training included, so the differences
are the strategies' own work; two runs shared our machine's two cores):
""")

code(r"""
runs_q2 = symmetric[symmetric["method"].isin(["dean", *RIVALS])]
per_run = runs_q2.groupby(["method", "run"])["wall_time"].sum()
minutes = per_run.groupby("method").median() / 60
print("median minutes per run:")
print(minutes.sort_values().round(1).to_string())
""")

md(r"""
**Without noise, no: the simple baselines beat DeAn.** At 200 acquired labels DeAn trails
BADGE by 3.3 points and power-BALD by 3.1, on all five seeds, and random sampling by 2.1 (the
cold start of chapter 6). By 1,000 labels it has caught up with random and BALD, but BADGE is
still 2.1 points ahead on every seed, and power-BALD 1.3. Softmax-BALD with $\beta = 1$ stays
within about a point of random sampling at both budgets, as its nearly flat weights predict.

**Under 30% noise, DeAn keeps up with the best of them.** The order changes: power- and
softmax-BALD fall behind DeAn, by 1.9 and 3.1 points at 1,000 labels (on four and five seeds
of five), and BADGE and DeAn are level (a tie at both budgets, with wide error bars). At 1,000
labels the accuracy table shows a pattern across the methods: without noise the batches that
are spread out (BADGE, power-BALD) do best; under noise the ones that follow the score most
closely (DeAn and BALD here, Entropy in chapter 6) do, and the closer a method is to random
sampling, the further down it falls: softmax-BALD, whose weights are almost uniform, ends next
to random. BADGE is the only method near the top at both noise levels.

DRAFT: BatchBALD's rows, from its records.
""")

code(
    r"""
# Question 2 as the discussion above tells it (checked on the full grid only).
eps = NOISY_EPSILON
if complete(symmetric, ["dean", *RIVALS], (0.0, eps)):
    for rival in ("badge", "power-bald", "random"):  # early, no noise: behind
        assert verdict(rivals, 0.0, EARLY, rival) == ("behind", 0), rival
    assert verdict(rivals, 0.0, LATE, "badge") == ("behind", 0)
    assert gap_of(rivals, 0.0, LATE, "power-bald") < -pts
    for rival in ("random", "bald"):  # caught up late
        assert verdict(rivals, 0.0, LATE, rival)[0].startswith("tie")
    for n in (EARLY, LATE):  # softmax-BALD within about a point of random
        assert abs(accuracy.loc["softmax-bald", (0.0, n)]
                   - accuracy.loc["random", (0.0, n)]) < 1.5
    # under noise: ahead of power- (4/5) and softmax-BALD (5/5) late
    for rival, n_ahead in (("power-bald", 4), ("softmax-bald", 5)):
        word, better = verdict(rivals, eps, LATE, rival)
        assert word.startswith("ahead") and better == n_ahead, rival
    for n in (EARLY, LATE):  # level with BADGE, the best stochastic one
        assert verdict(rivals, eps, n, "badge")[0].startswith("tie")
        assert verdict(best_stochastic, eps, n, "badge")[0].startswith("tie")
        assert verdict(best_stochastic, 0.0, n, "badge")[0] == "behind"
    clean, noisy = accuracy[(0.0, LATE)], accuracy[(eps, LATE)]
    assert clean.idxmax() == "badge" and "badge" in noisy.nlargest(3).index
    assert noisy["dean"] > noisy[["power-bald", "softmax-bald"]].max()
    assert noisy["softmax-bald"] - noisy["random"] < pts
""",
    "hide-input",
)

md(r"""
## 3. The cold start and the temperature's scale

Chapter 6 found that DeAn's first batch trails random sampling without noise, because our first
models are surer of themselves than the paper's and $\beta_0 = (e^{1/\sigma_0} - 1)/4$ is
exponential in $1/\sigma_0$. Scaling the temperature is the simplest remedy: $l = 1/16$ divides
every $\beta$ by four, $l = 1$ multiplies it by four.
""")

code(r"""
preset_scale = f"dean, scale {config.beta_scale:g}"
cold = symmetric.replace({"method": {"dean": preset_scale}})
scales = [f"dean, scale {s:g}" for s in BETA_SCALES]
first_beta = (
    cold[cold["method"].isin(scales) & (cold["step"] == 0)]
    .groupby("method")["beta"].median().reindex(scales)
)
print("median beta of the first selection:")
print(first_beta.round(1).to_string())
""")

code(r"""
points = {"epsilons": (0.0,), "acquired": (EARLY, LATE), "margin": MARGIN}
gaps_to_random = pd.concat(
    head_to_head.head_to_head(cold, s, ["random"], **points).assign(scale=s)
    for s in scales
)
shown = ["gap", "stderr", "better", "verdict"]
display(gaps_to_random.set_index(["scale", "acquired"])[shown].round(2))
""")

code(
    r"""
clean = cold[(cold["epsilon"] == 0.0) & cold["method"].isin([*scales, "random"])]
scale_styles = {m: {"color": c} for m, c in zip(scales, shades, strict=True)}
title = "DeAn's temperature scale, no noise"
display(plots.learning_curves(
    clean, methods=[*scales, "random"], title=title, styles=scale_styles,
    ncols=2, panel_width=4.8, height=3.0,
))
""",
    "nbval-ignore-output",
)

md(r"""
The smallest scale against the preset's DeAn and the two strongest baselines without noise:
""")

code(r"""
small = scales[0]
small_vs = head_to_head.head_to_head(
    cold, small, [preset_scale, "badge", "power-bald"], **points
)
display(head_to_head.format_table(small_vs))
""")

md(r"""
**Yes: the cold start is a matter of scale, and the rest is not.** With $l = 1/16$ the first
$\beta$ is about 10 instead of 41, and DeAn's first batch is no longer behind random sampling:
+0.8 points (a tie), against −2.1 at the paper's scale. That is 2.8 points more than the
preset's DeAn at 200 labels, on every seed, and level with BADGE and power-BALD there. With
$l = 1$ ($\beta_0 \approx 165$) the first batch is 3.3 points behind random. The order follows
$\beta_0$ exactly, as the fixed-$\beta$ runs of question 1 predicted.

The remedy stops at the cold start. By 1,000 labels all three scales are level with random
sampling and with each other, and the rescaled DeAn is still 1.9 points behind BADGE, on every
seed. And these runs are without noise only: question 1 found that a small fixed $\beta$ is the
worst choice under 30% noise, so a smaller scale may well cost there what it gains here (the
exercises below ask for that run).
""")

code(
    r"""
# Question 3 as the discussion above tells it (checked on the full grid only).
by_scale = gaps_to_random.set_index(["scale", "acquired"])
if complete(cold, [*scales, "random", "badge", "power-bald"], (0.0,)):
    assert list(first_beta) == sorted(first_beta)  # beta_0 grows with the scale
    assert 9 < first_beta[small] < 12 and 150 < first_beta[scales[-1]] < 180
    early = by_scale.xs(EARLY, level="acquired")["gap"]
    assert list(early) == sorted(early, reverse=True)  # smaller scale, better
    assert early[small] > 0 and by_scale.loc[(small, EARLY), "verdict"].startswith("tie")
    assert early[preset_scale] < -pts and early[scales[-1]] < -3 * pts
    assert verdict(small_vs, 0.0, EARLY, preset_scale) == ("ahead", 5)
    for rival in ("badge", "power-bald"):
        assert verdict(small_vs, 0.0, EARLY, rival)[0].startswith("tie")
    late = by_scale.xs(LATE, level="acquired")["verdict"]
    assert all(word.startswith("tie") for word in late)
    assert verdict(small_vs, 0.0, LATE, "badge") == ("behind", 0)
""",
    "hide-input",
)

md(r"""
## 4. A labeller who confuses neighbouring classes

The symmetric channel of the paper spreads a wrong label evenly over the other classes. Real
labellers confuse *similar* classes; on Fashion-MNIST a shirt is called a T-shirt, a pullover a
coat. The pair-flip channel is the simplest such labeller: class $j$ is answered as $j + 1$
(mod 10) with probability $\varepsilon$ and correctly otherwise. It has the same flip rate as the
symmetric channel at the same $\varepsilon$, but all of a class's errors go to one place, which
is exactly the structure the denoising layer's $K \times K$ matrix $W$ can represent. (Its
structure, not its semantics: $j + 1$ is not a similar class on Fashion-MNIST, where a T-shirt
becomes a trouser. The exercises build a channel that confuses similar classes.)

Chapter 4 showed that the layer's $W$ is no estimate of the channel: projected back onto the
simplex after every Adam step, it drifts to a much noisier matrix than the oracle's, with or
without noise, and helps as a regulariser rather than as a model of the labeller. So the
question here is not whether $W$ equals $T$ but whether the layer still helps, and whether
$W$'s off-diagonal mass at least goes where $T$'s flips go. `channel_fit` measures that: the
mean total-variation distance between the columns of $W$ and $T$ (and, for scale, between the
identity and $T$, which is $\varepsilon$), and the share of $W$'s off-diagonal mass that lies on
$T$'s flips, against $1/(K-1) = 0.11$ for a $W$ that spreads it evenly.
""")

code(r"""
pair = experiment.load_results(folder, reference=pair_ref)
pair = pair[(pair["dataset"] == DATASET) & ~pair["method"].str.contains(r"\[")]
PAIR_STRATEGIES = ["random", "bald", "dean", "power-bald"]
gains = tables.denoising_gains(pair, PAIR_STRATEGIES, NOISY_EPSILON, LATE)
print(f"pair-flip, ε = {NOISY_EPSILON:g}, {LATE} acquired:")
print("each strategy with and without the layer")
display(gains.round(2))
""")

md(r"""
For comparison, the same gains under the symmetric channel at the same $\varepsilon$ (the runs of
chapter 6, for the two strategies that have them):
""")

code(r"""
gains_symmetric = tables.denoising_gains(
    symmetric, ["random", "dean"], NOISY_EPSILON, LATE
)
display(gains_symmetric.round(2))
""")

md(r"""
And DeAn against the other strategies under pair-flip noise, without the layer and with it:
""")

code(r"""
pair_points = {"epsilons": (NOISY_EPSILON,), "acquired": (EARLY, LATE)}
others = [s for s in PAIR_STRATEGIES if s != "dean"]
dean_pair = pd.concat([
    head_to_head.head_to_head(pair, "dean", others, margin=MARGIN, **pair_points),
    head_to_head.head_to_head(
        pair, "dean+denoise", [f"{s}+denoise" for s in others],
        margin=MARGIN, **pair_points,
    ),
])
display(head_to_head.format_table(dean_pair))
""")

code(
    r"""
title = f"pair-flip noise, ε = {NOISY_EPSILON:g}"
display(plots.learning_curves(pair, by="strategy", title=title))
""",
    "nbval-ignore-output",
)

code(r"""
from dean_nb import channel_fit

stems = pair["run"].unique()
runs = [experiment.load_run(folder / f"{stem}.json") for stem in stems]
fits = channel_fit.fit_table(runs)  # one row per run with a learned W
measures = fits.columns[4:]  # tv_distance, ..., columns_matched
fit_means = fits.groupby("method")[measures].mean()
display(fit_means.round(3))
""")

code(
    r"""
dean_runs = [r for r in runs if r.config.method == "dean+denoise"]
mean_w = torch.tensor([r.steps[-1].channel for r in dean_runs]).mean(0)
true_t = torch.tensor(dean_runs[0].true_channel)
titles = ("oracle channel T (pair-flip)", "W learned by dean+denoise")
display(plots.channel_heatmaps(true_t, mean_w, titles=titles))
""",
    "nbval-ignore-output",
)

md(r"""
What pair-flip noise costs against symmetric noise of the same rate, at 1,000 labels (mean
accuracy, percent; symmetric runs with the layer exist for random and DeAn only):
""")

code(r"""
late_pair = pair[pair["n_acquired"] == LATE]
late_sym = symmetric[
    (symmetric["n_acquired"] == LATE) & (symmetric["epsilon"] == NOISY_EPSILON)
]
methods = [*PAIR_STRATEGIES, *(f"{s}+denoise" for s in PAIR_STRATEGIES)]
channels = 100 * pd.DataFrame({
    "symmetric": late_sym.groupby("method")["test_accuracy"].mean(),
    "pair-flip": late_pair.groupby("method")["test_accuracy"].mean(),
}).reindex(methods)
channels["pair-flip − symmetric"] = channels["pair-flip"] - channels["symmetric"]
display(channels.round(1))
""")

md(r"""
**The layer helps much more under pair-flip noise, and DeAn's edge goes with it.** Without the
layer a pair-flip labeller is worse than a symmetric one of the same rate: 3 to 6 points lower
at 1,000 labels for every strategy. (A plausible reason: all of a class's wrong labels point
the same way, so they are harder to outvote than errors spread over nine classes.) With the layer
that cost is gone (random and DeAn land where they land under symmetric noise), so the layer
gains 7 to 13 points, on every seed of every strategy: about twice its gain under symmetric
noise (3.3 for DeAn, 6.5 for random).

Among the strategies the picture of question 2 repeats. Without the layer DeAn is ahead of
random sampling (+3.7 points, every seed) and of power-BALD (+2.9) and level with BALD. With
the layer the differences shrink or turn: DeAn + layer is level with random + layer and 2.7
points behind power-BALD + layer on every seed; the layer gains least for DeAn. Under this
noise the combination to use is a score-proportional sampler with the layer, not DeAn.

**Does $W$ find the flips? Their direction, yes; their size, no.** In more than 9 columns of 10
the largest off-diagonal entry of the learned $W$ is the oracle's flip $j \to j + 1$, and a
quarter to a third of $W$'s off-diagonal mass lies on the flips, against 11% for a $W$ that
spreads it evenly. But as in chapter 4 the projected $W$ is much noisier than $T$: its diagonal
is near 0.3 instead of 0.7, and its total-variation distance to $T$ (0.43 to 0.51) is larger
than the identity's (0.30). The heatmap shows both: the flip diagonal stands out, on top of a
haze of mass spread over every other class.
""")

code(
    r"""
# Question 4 as the discussion above tells it (checked on the full grid only).
eps = NOISY_EPSILON
seeds_pair = tables.seeds_per_method(pair)
if (seeds_pair.loc[NOISY_EPSILON].reindex(methods) >= 5).all():
    assert (gains["gain"] > 5).all()  # 7 to 13 points ...
    assert (gains["seeds improved"] == "5 of 5").all()  # ... on every seed
    assert gains.loc["dean", "gain"] == gains["gain"].min()
    for s in ("random", "dean"):  # about twice the symmetric gain
        assert gains.loc[s, "gain"] > 1.5 * gains_symmetric.loc[s, "gain"]
        assert abs(channels.loc[f"{s}+denoise", "pair-flip − symmetric"]) < 1
    assert (channels.loc[PAIR_STRATEGIES, "pair-flip − symmetric"] < -3).all()
    assert verdict(dean_pair, eps, LATE, "random") == ("ahead", 5)
    assert verdict(dean_pair, eps, LATE, "power-bald")[0].startswith("ahead")
    assert verdict(dean_pair, eps, LATE, "bald")[0].startswith("tie")
    assert verdict(dean_pair, eps, LATE, "random+denoise")[0].startswith("tie")
    assert verdict(dean_pair, eps, LATE, "power-bald+denoise") == ("behind", 0)
    assert (fit_means["columns_matched"] > 0.9).all()
    assert (fit_means["flip_share"] > 2 * fit_means["flip_share_uniform"]).all()
    assert (fit_means["tv_distance"] > fit_means["tv_identity"]).all()
    assert mean_w.diagonal().mean() < 0.4
""",
    "hide-input",
)

md(r"""
## Summary

Each question's verdicts in one table: the judged method against its rival at each point of
the grid (a blank where the grid has no runs).
""")

code(r"""
def words(table):  # {(epsilon, acquired): verdict} of a head-to-head table
    return {(e, n): w for e, n, w in zip(
        table["ε"], table["acquired"], table["verdict"], strict=True
    )}


layer_pair = pd.concat(
    head_to_head.head_to_head(
        pair, f"{s}+denoise", [s], margin=MARGIN, **pair_points
    )
    for s in ("dean", "random")
)
verdicts = pd.DataFrame({
    "1. annealed DeAn vs the best fixed β": words(best_fixed),
    "2. DeAn vs the best stochastic baseline": words(best_stochastic),
    "2. DeAn vs BatchBALD": words(rivals[rivals["rival"] == "batchbald"]),
    "3. DeAn, scale 1/16, vs random": words(
        gaps_to_random[gaps_to_random["scale"] == small]
    ),
    "4. dean+denoise vs dean, pair-flip": words(layer_pair.iloc[:2]),
    "4. random+denoise vs random, pair-flip": words(layer_pair.iloc[2:]),
}).T
verdicts.columns = [f"ε {e:g}, {n}" for e, n in verdicts.columns]
display(verdicts.fillna(""))
""")

md(r"""
- **Annealing does not pay on this protocol.** A fixed $\beta = 100$ is level with the
  annealed DeAn at every point; only a $\beta$ as small as 10 changes the outcome, for the
  better without noise (the cold start) and for the worse under noise. What the schedule buys
  is not having to choose.
- **Without noise, the simple baselines beat DeAn**: BADGE by 3.3 points early and 2.1 late on
  every seed, power-BALD by 3.1 early. **Under 30% noise DeAn is level with the best of them**
  (BADGE) and ahead of power- and softmax-BALD. DRAFT: BatchBALD's line.
- **The cold start is a matter of scale.** A temperature scale of 1/16 ($\beta_0 \approx 10$)
  lifts DeAn's first batch by 2.8 points on every seed, to random sampling's level; it does not
  close the late gap to BADGE, and it was not tried under noise.
- **Under pair-flip noise the layer is what matters**: 7 to 13 points for every strategy, twice
  its gain under symmetric noise, and it learns the direction of the flips but not their size.
  With the layer DeAn is no better than random sampling and behind power-BALD.

Across all four questions the same pattern holds: on Fashion-MNIST with 40 initial labels,
spreading a batch pays without noise and following the score pays under noise; DeAn sits on
the score-following side, and the one baseline that does well on both sides is BADGE.

## Exercises

1. Change `MARGIN` to `0.02`. Which of the head-to-head verdicts change, and does any question's
   answer?
2. Softmax-BALD with $\beta = 1$ is close to random sampling (the section on the five strategies
   says why). Run it with `--override 'strategy_options={"beta": 10}'` for two seeds and add it
   to the comparison of question 2.
3. The BatchBALD demonstration uses the digits model. Set `DEMO_PICKS = 80` and predict the
   curve for $T = 20$ before you run it.
4. Question 3 ran the temperature scales without noise only. Run `dean` with
   `--override beta_scale=0.0625` at `--epsilons 0.3` for five seeds and add it to the
   comparison: does the scale that mends the cold start cost what a fixed $\beta = 10$ costs
   under noise?
5. Write a JSON file with a channel of your own, for instance one that confuses only shirts with
   T-shirts (classes 6 and 0 of Fashion-MNIST), run `dean+denoise` with `--noise FILE.json`, and
   check with `channel_fit.fit_table` whether the layer finds it.
""")

nb = nbf.v4.new_notebook()
nb.cells = cells
nb.metadata = {
    "kernelspec": {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    },
    "language_info": {"name": "python", "pygments_lexer": "ipython3"},
}
nbf.write(nb, HERE / "07_stochastic_baselines.ipynb")
print(f"wrote {HERE / '07_stochastic_baselines.ipynb'} ({len(cells)} cells)")
