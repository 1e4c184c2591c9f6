"""Figures of the results chapters: learning curves, channel heatmaps, uncertainty curves.

Every function takes data (the tidy frame of :func:`dean_nb.analysis.results.load_results`, or
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
- :func:`claim_gaps`: the paper's claims as gaps, the paper's MNIST beside ours (chapter 6).
- :func:`head_to_head_gaps`, :func:`batch_information`: one method's paired gaps against its
  rivals, and a BatchBALD batch's information against its size and ``log T`` (chapter 7).
- :func:`memory_sweep`: accuracy and wrong training labels against the oracle's memory
  (chapter "The paper's premises").
- :func:`image_grid`, :func:`noisy_label_examples`: images with their labels (chapter 1).
- :func:`mc_passes`, :func:`entropy_decomposition`, :func:`sigma_against_labels`,
  :func:`top_pick_shares`, :func:`score_grid`, :func:`bald_stability`: MC-dropout passes, the
  entropy decomposition, sigma against the labels, the classes of the top picks, BALD against
  entropy per labelled-set size, and two MC estimates of BALD against each other (chapter 2).
- :func:`pick_maps`, :func:`diversity_panels`: annealed batches on a 2-D map of the pool, and
  their diversity against beta; :func:`distance_histograms`, :func:`cluster_map`,
  :func:`pick_transition`, :func:`beta_maps`: the distances, clusters, the pick's transition
  from uniform to centroid, and the maps beta = f(sigma) (chapter 3).
- :func:`training_trajectories`, :func:`noise_sweep`, :func:`trust_weight_curves`: the
  denoising layer along training and across noise levels, and the weight it gives a label
  (chapter 4).

Every figure fits the book's 688-px column: at most :data:`MAX_WIDTH` inches wide at 100 dpi,
so it is shown at its own size, and no text smaller than :data:`MIN_FONT` points. Wide rows
of panels are stacked into grids of at most two or three columns.
"""

from .comparisons import batch_information, head_to_head_gaps
from .illustrations import (
    bald_stability,
    beta_maps,
    cluster_map,
    distance_histograms,
    diversity_panels,
    entropy_decomposition,
    image_grid,
    information_curve,
    majority_vote_curves,
    mc_passes,
    noise_sweep,
    noisy_label_examples,
    pick_maps,
    pick_transition,
    score_grid,
    sigma_against_labels,
    top_pick_shares,
    training_trajectories,
    trust_weight_curves,
)
from .premises import memory_sweep
from .results import channel_heatmaps, claim_gaps, learning_curves, uncertainty_curves
from .style import MAX_WIDTH, MIN_FONT, method_style

__all__ = [
    "MAX_WIDTH",
    "MIN_FONT",
    "bald_stability",
    "batch_information",
    "beta_maps",
    "channel_heatmaps",
    "claim_gaps",
    "cluster_map",
    "distance_histograms",
    "diversity_panels",
    "entropy_decomposition",
    "head_to_head_gaps",
    "image_grid",
    "information_curve",
    "learning_curves",
    "majority_vote_curves",
    "mc_passes",
    "memory_sweep",
    "method_style",
    "noise_sweep",
    "noisy_label_examples",
    "pick_maps",
    "pick_transition",
    "score_grid",
    "sigma_against_labels",
    "top_pick_shares",
    "training_trajectories",
    "trust_weight_curves",
    "uncertainty_curves",
]
