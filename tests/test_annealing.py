"""Tests of dean_nb.strategies.annealing: distances, beta, clustering, centroids and the Gibbs sampler."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst
from scipy.spatial.distance import jensenshannon
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from dean_nb.strategies import annealing, clustering
from dean_nb.strategies.annealing import (
    BETA_KINDS,
    PAPER_COLD_START_BETA,
    annealed_batch,
    annealed_selection,
    beta_from_uncertainty,
    beta_scale_for,
    pick_distribution,
    sample_annealed,
)
from dean_nb.strategies.clustering import (
    cluster_points,
    js_distance,
    median_centroids,
    minimum_spanning_tree,
    single_linkage,
)

P_THRESHOLD = 1e-3  # as in conftest: a correct sampler fails one in 1000


def dirichlet_probs(n: int, k: int, seed: int, alpha: float = 0.5) -> torch.Tensor:
    """(n, k) float64 rows on the simplex, some entries exactly zero."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, alpha), size=n)
    p[rng.random((n, k)) < 0.1] = 0.0
    p[:, 0] += 1e-3  # no all-zero row
    return torch.from_numpy(p / p.sum(axis=1, keepdims=True))


def scipy_distances(p: torch.Tensor, q: torch.Tensor) -> np.ndarray:
    return np.array([[jensenshannon(a, b, base=2) for b in q.numpy()] for a in p.numpy()])


def first_pick_counts(draw, n: int, repeats: int) -> np.ndarray:
    counts = np.zeros(n, dtype=np.int64)
    for _ in range(repeats):
        counts[draw()] += 1
    return counts


# ------------------------------------------------------------------------------------------
# js_distance
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "k"), [(7, 5, 3), (20, 33, 10), (1, 4, 2)])
def test_js_distance_equals_scipy(n, m, k):
    p, q = dirichlet_probs(n, k, seed=n), dirichlet_probs(m, k, seed=100 + m)
    ours = js_distance(p, q)
    assert ours.shape == (n, m) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), scipy_distances(p, q), atol=1e-7, rtol=0)


def test_js_distance_chunking_does_not_change_the_result():
    p, q = dirichlet_probs(23, 4, seed=1), dirichlet_probs(17, 4, seed=2)
    full = js_distance(p, q)
    for chunk in (1, 4, 5, 61, 10_000):
        torch.testing.assert_close(js_distance(p, q, chunk_elements=chunk), full)


def test_js_distance_vector_inputs_and_float32():
    p = dirichlet_probs(6, 5, seed=3)
    d = js_distance(p, p)
    assert js_distance(p[2], p).shape == (6,)
    assert js_distance(p, p[2]).shape == (6,)
    assert js_distance(p[1], p[2]).shape == ()
    torch.testing.assert_close(js_distance(p[2], p), d[2])
    d32 = js_distance(p.float(), p.float())
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), d, atol=2e-3, rtol=0)


def test_js_distance_is_a_bounded_metric():
    p = dirichlet_probs(40, 6, seed=4)
    d = js_distance(p, p).numpy()
    assert np.all(d >= 0) and np.all(d <= 1)
    np.testing.assert_allclose(d, d.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-6)
    # triangle inequality over every triple
    assert np.all(d[:, None, :] <= d[:, :, None] + d[None, :, :] + 1e-7)
    # disjoint supports are at the maximum distance 1
    disjoint = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.2, 0.8]], dtype=torch.float64)
    assert js_distance(disjoint, disjoint)[0, 1].item() == pytest.approx(1.0, abs=1e-12)


def test_js_distance_rejects_bad_input():
    p = dirichlet_probs(3, 4, seed=5)
    with pytest.raises(ValueError, match="same number of classes"):
        js_distance(p, p[:, :3] / p[:, :3].sum(1, keepdim=True))
    bad = p.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        js_distance(bad, p)
    with pytest.raises(ValueError, match="sum to 1"):
        js_distance(p * 2, p)


# ------------------------------------------------------------------------------------------
# beta_from_uncertainty
# ------------------------------------------------------------------------------------------


def test_beta_formulas():
    assert beta_from_uncertainty(0.5, "exp") == pytest.approx(0.25 * (math.e**2 - 1))
    assert beta_from_uncertainty(0.5, "pow4") == pytest.approx(0.25 * (16 - 1))
    assert beta_from_uncertainty(0.5, "log") == pytest.approx(0.25 * math.log(2))
    assert beta_from_uncertainty(0.2, "exp", scale=1.0) == pytest.approx(math.e**5 - 1)
    assert beta_from_uncertainty(1.0, "log") == 0.0
    assert beta_from_uncertainty(1.0, "exp") == pytest.approx(0.25 * (math.e - 1))
    for kind in BETA_KINDS:
        values = [beta_from_uncertainty(s, kind) for s in (0.9, 0.5, 0.1, 0.01)]
        assert values == sorted(values) and len(set(values)) == len(values), kind


def test_beta_is_inf_at_zero_and_overflows_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in BETA_KINDS:
            assert beta_from_uncertainty(0.0, kind) == math.inf
        assert beta_from_uncertainty(1e-3, "exp") == math.inf
        assert beta_from_uncertainty(1e-3, "pow4") == math.inf
        assert math.isfinite(beta_from_uncertainty(1e-300, "log"))


def test_beta_rejects_bad_input():
    with pytest.raises(ValueError, match=r"exp, pow4, log"):
        beta_from_uncertainty(0.5, "cubic")
    for sigma in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            beta_from_uncertainty(sigma)
    with pytest.raises(ValueError, match="scale"):
        beta_from_uncertainty(0.5, scale=0.0)


# ------------------------------------------------------------------------------------------
# clustering
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "n_clusters"),
    [(2, 3, 1), (2, 3, 2), (30, 3, 4), (60, 10, 7), (120, 5, 30), (200, 4, 199), (90, 6, 90)],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_single_linkage_equals_sklearn(n, k, n_clusters, dtype):
    p = dirichlet_probs(n, k, seed=n + k)
    reference = AgglomerativeClustering(
        n_clusters=n_clusters, metric="precomputed", linkage="single"
    ).fit_predict(scipy_distances(p, p))
    labels = single_linkage(p.to(dtype), n_clusters)
    assert labels.dtype == torch.int64 and labels.shape == (n,)
    assert adjusted_rand_score(reference, labels.numpy()) == 1.0
    assert set(labels.tolist()) == set(range(n_clusters))
    # numbered in the order of their smallest member
    first = [labels.tolist().index(c) for c in range(n_clusters)]
    assert first == sorted(first)


def test_minimum_spanning_tree_weight_equals_scipy():
    p = dirichlet_probs(150, 5, seed=7)
    child, parent, weight = minimum_spanning_tree(p)
    assert child.shape == parent.shape == weight.shape == (149,)
    dense = scipy_distances(p, p)
    np.testing.assert_allclose(weight.numpy(), dense[child.numpy(), parent.numpy()], atol=1e-12)
    assert weight.sum().item() == pytest.approx(scipy_mst(dense).sum(), rel=1e-9)
    # a spanning tree: every point but the root appears once as a child
    assert sorted(child.tolist()) == list(range(1, 150))


def test_single_linkage_handles_duplicates_and_one_point():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    labels = single_linkage(p, 3)
    assert labels.tolist() == [0, 0, 1, 1, 2]
    assert single_linkage(p[:1], 1).tolist() == [0]


@pytest.mark.parametrize("linkage", ["average", "complete"])
def test_cluster_points_dense_linkages_equal_sklearn(linkage):
    p = dirichlet_probs(80, 5, seed=11)
    reference = AgglomerativeClustering(
        n_clusters=9, metric="precomputed", linkage=linkage
    ).fit_predict(scipy_distances(p, p))
    labels = cluster_points(p, 9, linkage=linkage)
    assert adjusted_rand_score(reference, labels.numpy()) == 1.0
    first = [labels.tolist().index(c) for c in range(9)]
    assert first == sorted(first)


def test_cluster_points_single_matches_single_linkage_and_refuses_big_dense(monkeypatch):
    p = dirichlet_probs(50, 4, seed=12)
    assert torch.equal(cluster_points(p, 6), single_linkage(p, 6))
    with pytest.raises(ValueError, match="single, average, complete"):
        cluster_points(p, 6, linkage="ward")
    monkeypatch.setattr(clustering, "MAX_DENSE_POOL", 40)
    with pytest.raises(ValueError, match="at most 40"):
        cluster_points(p, 6, linkage="average")
    assert cluster_points(p, 6, linkage="single").shape == (50,)


def test_median_centroids_upper_median_with_index_ties():
    labels = torch.tensor([0, 1, 0, 1, 0, 2, 1, 0])
    scores = torch.tensor([0.5, 0.2, 0.1, 0.2, 0.9, 0.3, 0.2, 0.5])
    # cluster 0: sorted (score, index): 2 (.1), 0 (.5), 7 (.5), 4 (.9) -> position 2 -> 7
    # cluster 1: all ties -> by index 1, 3, 6 -> position 1 -> 3; cluster 2: only 5
    assert median_centroids(labels, scores).tolist() == [7, 3, 5]


def test_median_centroids_matches_a_loop():
    rng = np.random.default_rng(13)
    labels = rng.permutation(np.arange(300) % 23)
    scores = rng.integers(0, 5, size=300).astype(np.float64)  # many ties
    expected = []
    for c in range(23):
        members = sorted(np.flatnonzero(labels == c), key=lambda i: (scores[i], i))
        expected.append(members[len(members) // 2])
    ours = median_centroids(torch.from_numpy(labels), torch.from_numpy(scores))
    assert ours.tolist() == expected


def test_median_centroids_rejects_gaps():
    with pytest.raises(ValueError, match="every cluster id"):
        median_centroids(torch.tensor([0, 2, 2]), torch.ones(3))
    with pytest.raises(ValueError, match="shape"):
        median_centroids(torch.tensor([0, 1]), torch.ones(3))


# ------------------------------------------------------------------------------------------
# the sampler
# ------------------------------------------------------------------------------------------


def eq4_first_pick(p: torch.Tensor, centroids: list[int], weights: np.ndarray, beta: float):
    """Eq. 4 for the first pick, computed here with scipy: a mixture over centroids."""
    d = scipy_distances(p[centroids], p)
    logits = -beta * d
    per_centroid = np.exp(logits - logits.max(axis=1, keepdims=True))
    per_centroid /= per_centroid.sum(axis=1, keepdims=True)
    w = weights / weights.sum()
    return w @ per_centroid


def test_beta_zero_first_pick_is_uniform_over_the_pool(chisquare_p):
    p = dirichlet_probs(15, 4, seed=20)
    gen = torch.Generator().manual_seed(0)
    cents, weights = torch.tensor([0, 4, 9]), torch.tensor([0.7, 0.2, 0.1])
    counts = first_pick_counts(
        lambda: int(sample_annealed(p, cents, weights, 1, 0.0, gen)[0][0]), 15, 3000
    )
    assert chisquare_p(counts, np.full(15, 1 / 15)) > P_THRESHOLD


def test_beta_inf_first_pick_is_a_centroid_with_probability_proportional_to_score(chisquare_p):
    p = dirichlet_probs(40, 5, seed=21)
    scores = torch.from_numpy(np.random.default_rng(0).uniform(0.05, 1.0, 40))
    sel = annealed_selection(p, scores, 1, math.inf, 6, generator=0)
    cents = sel.centroids
    weights = scores[cents].numpy()
    gen = torch.Generator().manual_seed(1)
    counts = first_pick_counts(
        lambda: int(sample_annealed(p, cents, scores[cents], 1, math.inf, gen)[0][0]), 40, 3000
    )
    assert counts[np.setdiff1d(np.arange(40), cents.numpy())].sum() == 0
    assert chisquare_p(counts[cents.numpy()], weights / weights.sum()) > P_THRESHOLD


@pytest.mark.parametrize("beta", [1.0, 6.0])
def test_finite_beta_first_pick_follows_eq4(beta, chisquare_p):
    p = dirichlet_probs(25, 4, seed=22)
    scores = torch.from_numpy(np.random.default_rng(1).uniform(0.0, 1.0, 25))
    sel = annealed_selection(p, scores, 1, beta, 5, generator=0)
    cents = sel.centroids.tolist()
    expected = eq4_first_pick(p, cents, scores[cents].numpy(), beta)
    np.testing.assert_allclose(
        pick_distribution(p, sel.centroids, scores[sel.centroids], beta).numpy(),
        expected,
        atol=1e-9,
    )
    gen = torch.Generator().manual_seed(2)
    counts = first_pick_counts(
        lambda: int(sample_annealed(p, sel.centroids, scores[cents], 1, beta, gen)[0][0]),
        25,
        4000,
    )
    assert chisquare_p(counts, expected) > P_THRESHOLD


def test_second_pick_follows_eq4_on_the_remaining_pool(chisquare_p):
    """p(second = s) = sum_f p(first = f) * eq4(s | P' = P minus f), centroids redrawn."""
    p = dirichlet_probs(10, 3, seed=31)
    cents = [2, 7]
    weights = np.array([0.3, 0.7])
    beta = 3.0
    d = scipy_distances(p[cents], p)
    first = eq4_first_pick(p, cents, weights, beta)
    second = np.zeros(10)
    for f in range(10):
        logits = np.where(np.arange(10) == f, -np.inf, -beta * d)
        per = np.exp(logits - logits.max(1, keepdims=True))
        per /= per.sum(1, keepdims=True)
        second += first[f] * (weights @ per)
    gen = torch.Generator().manual_seed(5)
    w = torch.from_numpy(weights)
    counts = first_pick_counts(
        lambda: int(sample_annealed(p, torch.tensor(cents), w, 2, beta, gen)[0][1]), 10, 3000
    )
    assert chisquare_p(counts, second) > P_THRESHOLD


def test_pick_distribution_with_taken_points():
    p = dirichlet_probs(12, 3, seed=23)
    cents, weights = torch.tensor([1, 5]), torch.tensor([1.0, 3.0], dtype=torch.float64)
    taken = torch.zeros(12, dtype=torch.bool)
    taken[[1, 2, 7]] = True
    d = scipy_distances(p[[1, 5]], p)
    logits = np.where(taken.numpy(), -np.inf, -2.5 * d)
    per = np.exp(logits - logits.max(1, keepdims=True))
    per /= per.sum(1, keepdims=True)
    expected = np.array([0.25, 0.75]) @ per
    ours = pick_distribution(p, cents, weights, 2.5, taken)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)
    # beta = inf: centroid 5 keeps its mass; taken centroid 1 passes it to its nearest point
    inf = pick_distribution(p, cents, weights, math.inf, taken).numpy()
    nearest = int(np.argmin(np.where(taken.numpy(), np.inf, d[0])))
    assert inf[5] == pytest.approx(0.75) and inf[nearest] == pytest.approx(0.25)


def test_beta_inf_takes_the_nearest_remaining_point_once_the_centroid_is_taken():
    p = dirichlet_probs(30, 4, seed=24)
    scores = torch.ones(30, dtype=torch.float64)
    sel = annealed_selection(p, scores, 5, math.inf, 1, generator=3)
    c = int(sel.centroids[0])
    order = np.argsort(scipy_distances(p[c : c + 1], p)[0], kind="stable")
    assert sel.indices.tolist() == order[:5].tolist()
    assert sel.drawn_centroids.tolist() == [c] * 5


def test_all_zero_scores_choose_centroids_uniformly(chisquare_p):
    p = dirichlet_probs(30, 4, seed=25)
    zeros = torch.zeros(30)
    sel = annealed_selection(p, zeros, 1, math.inf, 5, generator=0)
    gen = torch.Generator().manual_seed(4)
    counts = first_pick_counts(
        lambda: int(sample_annealed(p, sel.centroids, zeros[:5], 1, math.inf, gen)[0][0]),
        30,
        2000,
    )
    assert chisquare_p(counts[sel.centroids.numpy()], np.full(5, 0.2)) > P_THRESHOLD


@pytest.mark.parametrize("beta", [0.0, 0.3, 5.0, 1e12, math.inf])
def test_batches_are_distinct_valid_indices(beta):
    p = dirichlet_probs(40, 5, seed=26).float()
    scores = torch.rand(40, generator=torch.Generator().manual_seed(0))
    for budget in (1, 17, 40):
        sel = annealed_selection(p, scores, budget, beta, 8, generator=budget)
        idx = sel.indices
        assert idx.dtype == torch.int64 and idx.shape == (budget,)
        assert len(set(idx.tolist())) == budget
        assert idx.min() >= 0 and idx.max() < 40
        assert set(sel.drawn_centroids.tolist()) <= set(sel.centroids.tolist())
        assert sel.labels.shape == (40,) and sel.centroids.shape == (8,)
    dist = pick_distribution(p, sel.centroids, scores[sel.centroids], beta)
    assert torch.isfinite(dist).all() and dist.sum().item() == pytest.approx(1.0)


def test_huge_beta_behaves_like_infinite_beta():
    p = dirichlet_probs(30, 4, seed=27)
    scores = torch.rand(30, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        sel = annealed_selection(p, scores, 6, 1e12, 4, generator=seed)
        ref = annealed_selection(p, scores, 6, math.inf, 4, generator=seed)
        assert torch.equal(sel.drawn_centroids, ref.drawn_centroids)
        assert torch.equal(sel.indices, ref.indices)


def test_same_seed_same_batch():
    p = dirichlet_probs(50, 4, seed=28)
    scores = torch.rand(50, generator=torch.Generator().manual_seed(2))
    a = annealed_batch(p, scores, 10, 2.0, 7, generator=123)
    b = annealed_batch(p, scores, 10, 2.0, 7, generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    others = [annealed_batch(p, scores, 10, 2.0, 7, generator=s) for s in range(1, 4)]
    assert any(not torch.equal(a, o) for o in others)


@pytest.mark.parametrize("beta", [2.0, math.inf])
def test_bounded_row_cache_gives_the_same_batch(monkeypatch, beta):
    p = dirichlet_probs(40, 4, seed=32)
    scores = torch.rand(40, generator=torch.Generator().manual_seed(5))
    full = annealed_batch(p, scores, 25, beta, 12, generator=7)
    monkeypatch.setattr(annealing, "_ROW_CACHE_ELEMENTS", 3 * 40)  # three rows, recomputed
    assert torch.equal(annealed_batch(p, scores, 25, beta, 12, generator=7), full)


def test_inputs_are_not_modified():
    p = dirichlet_probs(30, 4, seed=29).float()
    scores = torch.rand(30, generator=torch.Generator().manual_seed(3))
    p0, s0 = p.clone(), scores.clone()
    annealed_selection(p, scores, 10, 3.0, 5, generator=0)
    annealed_selection(p, scores, 10, math.inf, 5, generator=0, linkage="average")
    assert torch.equal(p, p0) and torch.equal(scores, s0)


def test_bad_inputs_raise_clear_errors():
    p = dirichlet_probs(10, 3, seed=30)
    s = torch.rand(10, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with pytest.raises(ValueError, match=r"budget must lie in \[1, 10\]"):
        annealed_batch(p, s, 11, 1.0, 3)
    with pytest.raises(ValueError, match="budget"):
        annealed_batch(p, s, 0, 1.0, 3)
    for n_clusters in (0, 11):
        with pytest.raises(ValueError, match=r"n_clusters must lie in \[1, 10\]"):
            annealed_batch(p, s, 2, 1.0, n_clusters)
    with pytest.raises(ValueError, match="negative"):
        annealed_batch(p, -s, 2, 1.0, 3)
    bad_s = s.clone()
    bad_s[3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        annealed_batch(p, bad_s, 2, 1.0, 3)
    with pytest.raises(ValueError, match="shape"):
        annealed_batch(p, s[:9], 2, 1.0, 3)
    bad_p = p.clone()
    bad_p[0, 1] = float("nan")
    with pytest.raises(ValueError, match="mean_probs contains NaN"):
        annealed_batch(bad_p, s, 2, 1.0, 3)
    with pytest.raises(ValueError, match="sum to 1"):
        annealed_batch(p * 0.5, s, 2, 1.0, 3)
    for beta in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            annealed_batch(p, s, 2, beta, 3)
    with pytest.raises(ValueError, match="single, average, complete"):
        annealed_batch(p, s, 2, 1.0, 3, linkage="ward")
    with pytest.raises(ValueError, match="mean_probs must have shape"):
        annealed_batch(p[0], s, 2, 1.0, 3)


@pytest.mark.parametrize("kind", ["exp", "pow4", "log"])
@pytest.mark.parametrize("sigma_0", [0.02, 0.1, 0.25, 0.6])
def test_beta_scale_for_puts_the_first_beta_where_asked(kind, sigma_0):
    for beta_0 in (PAPER_COLD_START_BETA, 1.0, 250.0):
        scale = beta_scale_for(sigma_0, beta_0, kind)
        assert beta_from_uncertainty(sigma_0, kind, scale) == pytest.approx(beta_0, rel=1e-12)
        # and the map still cools as the model grows surer
        assert beta_from_uncertainty(sigma_0 / 2, kind, scale) > beta_0


def test_beta_scale_for_is_the_papers_at_the_papers_sigma_and_checks_its_arguments():
    assert beta_scale_for(0.25) == pytest.approx(0.25, rel=1e-12)
    with pytest.raises(ValueError, match="sigma_0"):
        beta_scale_for(0.0)
    with pytest.raises(ValueError, match="beta_0"):
        beta_scale_for(0.2, beta_0=0.0)
    with pytest.raises(ValueError, match=r"sigma_0 = 1\.0"):
        beta_scale_for(1.0, kind="log")
    with pytest.raises(ValueError, match="kind"):
        beta_scale_for(0.2, kind="cubic")
