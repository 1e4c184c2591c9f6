"""Tests of dean_nb.strategies.knn_linkage: single linkage on the k-nearest-neighbour graph.

Properties, each against the exact single linkage of dean_nb.strategies.clustering: the full
graph (k = N - 1) gives the exact partition; moderate k on well-separated blobs does too,
including when the kNN graph falls apart into a forest that must be joined; every cluster
count in [1, N] gives exactly that many labels; the result is deterministic; the stated
Hellinger bounds hold; and bad inputs are refused by name before any compute.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from dean_nb import strategies
from dean_nb.strategies import knn_linkage
from dean_nb.strategies.annealing import DeAnStrategy, annealed_selection
from dean_nb.strategies.clustering import (
    edge_distances,
    js_distance,
    minimum_spanning_tree,
    single_linkage,
)
from dean_nb.strategies.knn_linkage import (
    cluster_pool,
    hellinger_neighbors,
    knn_single_linkage,
    knn_spanning_tree,
)


def dirichlet_probs(n: int, k: int, seed: int, alpha: float = 0.5) -> torch.Tensor:
    """(n, k) float64 rows on the simplex (continuous: no ties between distances)."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.dirichlet(np.full(k, alpha), size=n))


def blobs(sizes: list[int], k: int, seed: int, concentration: float = 300.0) -> torch.Tensor:
    """Dirichlet blobs around corners of the simplex: blob j is centred near corner j, with
    its own spread, so that blobs lie at different distances from each other."""
    rng = np.random.default_rng(seed)
    rows = []
    for j, size in enumerate(sizes):
        centre = np.full(k, 0.02 + 0.01 * j)
        centre[j % k] = 1.0
        rows.append(rng.dirichlet(concentration * centre / centre.sum(), size=size))
    return torch.from_numpy(np.concatenate(rows))


def first_members_ascend(labels: torch.Tensor, n_clusters: int) -> bool:
    first = [labels.tolist().index(c) for c in range(n_clusters)]
    return first == sorted(first)


# ------------------------------------------------------------------------------------------
# Agreement with exact single linkage
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(2, 3), (25, 3), (60, 6), (90, 4)])
@pytest.mark.parametrize("search", ["tree", "brute"])
def test_the_full_graph_gives_exact_single_linkage(n, k, search):
    p = dirichlet_probs(n, k, seed=n + k)
    for n_clusters in sorted({c for c in (1, 2, 3, n // 4 + 1, n // 2, n - 1, n) if c <= n}):
        exact = single_linkage(p, n_clusters)
        approx = knn_single_linkage(p, n_clusters, n_neighbors=n - 1, search=search)
        assert torch.equal(approx, exact), n_clusters


def test_the_spanning_tree_of_the_full_graph_is_the_exact_one():
    p = dirichlet_probs(70, 5, seed=3)
    first, second, weight = knn_spanning_tree(p, n_neighbors=69)
    assert first.shape == second.shape == weight.shape == (69,)
    assert bool((first < second).all()) and bool((weight[1:] >= weight[:-1]).all())
    child, parent, exact_weight = minimum_spanning_tree(p)
    ours = set(zip(first.tolist(), second.tolist(), strict=True))
    exact = {(min(a, b), max(a, b)) for a, b in zip(child.tolist(), parent.tolist(), strict=True)}
    assert ours == exact
    assert weight.sum().item() == pytest.approx(exact_weight.sum().item(), rel=1e-12)


def test_edge_weights_are_the_exact_sqrt_js():
    p = dirichlet_probs(40, 4, seed=5)
    first, second, weight = knn_spanning_tree(p, n_neighbors=3)
    reference = [jensenshannon(p[a], p[b], base=2) for a, b in zip(first, second, strict=True)]
    np.testing.assert_allclose(weight.numpy(), reference, atol=1e-12, rtol=0)
    chunked = edge_distances(p, first, second, chunk_elements=7)
    np.testing.assert_allclose(chunked.numpy(), weight.numpy(), atol=1e-15, rtol=0)


@pytest.mark.parametrize("n_neighbors", [3, 5, 10])
def test_separated_blobs_give_the_exact_partition_with_moderate_k(n_neighbors):
    # Blobs of 40-70 points: with k <= 10 the kNN graph has several components, which the
    # merging step joins; the partition still equals exact single linkage's.
    p = blobs([40, 55, 70, 45, 60], k=5, seed=1)
    n = p.shape[0]
    for n_clusters in (1, 2, 3, 4, 5, 6, 8, 12, 30, 100, n):
        exact = single_linkage(p, n_clusters)
        approx = knn_single_linkage(p, n_clusters, n_neighbors=n_neighbors)
        assert torch.equal(approx, exact), n_clusters


def test_merging_a_forest_keeps_every_blob_whole():
    # k = 1 on 4 blobs of 30 points: the kNN graph splits every blob into many trees, which
    # the merging step must join; cut into 4, the clusters are still the 4 blobs.
    p = blobs([30, 30, 30, 30], k=4, seed=2, concentration=400.0)
    labels = knn_single_linkage(p, 4, n_neighbors=1)
    assert labels.tolist() == [0] * 30 + [1] * 30 + [2] * 30 + [3] * 30


def test_many_trees_are_joined_by_the_recursive_knn_tree(monkeypatch):
    # Above _EXACT_LINK_TREES trees, the representatives are joined by their own kNN tree.
    monkeypatch.setattr(knn_linkage, "_EXACT_LINK_TREES", 3)
    p = blobs([30, 30, 30, 30], k=4, seed=2, concentration=400.0)
    first, second, weight = knn_spanning_tree(p, n_neighbors=1)
    assert first.shape == (119,) and bool((first < second).all())
    assert bool((weight[1:] >= weight[:-1]).all())
    assert knn_single_linkage(p, 4, n_neighbors=1).tolist() == [
        c for c in range(4) for _ in range(30)
    ]
    for n_clusters in (1, 2, 7, 60, 120):
        labels = knn_single_linkage(p, n_clusters, n_neighbors=1)
        assert set(labels.tolist()) == set(range(n_clusters))


def test_duplicates_zero_distance_edges_are_kept():
    base = dirichlet_probs(10, 4, seed=8)
    p = base.repeat_interleave(3, dim=0)  # every row three times: edges of d = 0
    labels = knn_single_linkage(p, 10, n_neighbors=1)
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert torch.equal(labels, single_linkage(p, 10))


# ------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_neighbors", [1, 2, 29])
def test_every_cluster_count_gives_exactly_that_many_labels(n_neighbors):
    p = dirichlet_probs(30, 4, seed=9)
    for n_clusters in range(1, 31):
        labels = knn_single_linkage(p, n_clusters, n_neighbors=n_neighbors)
        assert labels.dtype == torch.int64 and labels.shape == (30,)
        assert set(labels.tolist()) == set(range(n_clusters))
        assert first_members_ascend(labels, n_clusters)


def test_one_point():
    p = torch.tensor([[0.3, 0.7]])
    assert knn_single_linkage(p, 1, n_neighbors=1).tolist() == [0]
    assert cluster_pool(p, 1, clustering="knn").tolist() == [0]


def test_deterministic_and_the_searches_agree():
    p = dirichlet_probs(300, 6, seed=10)
    runs = [knn_single_linkage(p, 40, n_neighbors=4) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(knn_single_linkage(p, 40, n_neighbors=4, search="brute"), runs[0])
    tree, brute = hellinger_neighbors(p, 7, "tree"), hellinger_neighbors(p, 7, "brute")
    assert torch.equal(tree, brute)


def test_neighbours_are_the_nearest_in_the_hellinger_embedding():
    p = dirichlet_probs(120, 5, seed=11)
    emb = p.sqrt().numpy()
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    expected = np.argsort(dist, axis=1, kind="stable")[:, :6]
    neighbors = hellinger_neighbors(p, 6)
    assert neighbors.dtype == torch.int64 and neighbors.shape == (120, 6)
    np.testing.assert_array_equal(neighbors.numpy(), expected)


def test_the_stated_bounds_between_sqrt_js_and_hellinger_hold():
    # e / sqrt(2) <= d <= e / sqrt(2 ln 2), e = ||sqrt p - sqrt q||, d = sqrt(JS) in bits,
    # on rows from nearly one-hot to nearly uniform, with near-equal pairs among them.
    p = torch.cat([dirichlet_probs(200, 6, seed=12, alpha=a) for a in (0.05, 0.5, 5.0)])
    near = p * torch.exp(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    p = torch.cat([p, near / near.sum(dim=1, keepdim=True)])
    d = js_distance(p, p).numpy()
    root = p.sqrt().numpy()
    e = np.sqrt(np.maximum(2.0 - 2.0 * root @ root.T, 0.0))
    far = e > 1e-3  # rounding dominates below
    assert np.all(e[far] / math.sqrt(2) <= d[far] * (1 + 1e-6))
    assert np.all(d[far] <= e[far] / math.sqrt(2 * math.log(2)) * (1 + 1e-6))
    ratio = d[far] / e[far]
    assert ratio.min() < 0.72 and ratio.max() > 0.84  # both ends are nearly reached


# ------------------------------------------------------------------------------------------
# cluster_pool and DeAn's options
# ------------------------------------------------------------------------------------------


def test_cluster_pool_auto_is_exact_up_to_the_threshold(monkeypatch):
    p = dirichlet_probs(80, 5, seed=13)
    assert torch.equal(cluster_pool(p, 9), single_linkage(p, 9))
    assert torch.equal(
        cluster_pool(p, 9, linkage="average"), cluster_pool(p, 9, "average", "exact")
    )
    monkeypatch.setattr(knn_linkage, "MAX_EXACT_POOL", 50)
    assert torch.equal(cluster_pool(p, 9, n_neighbors=2), knn_single_linkage(p, 9, 2))
    # n_neighbors larger than the pool allows is capped at N - 1 here
    assert torch.equal(
        cluster_pool(p[:6], 2, clustering="knn", n_neighbors=50), single_linkage(p[:6], 2)
    )


def test_annealed_selection_with_the_full_graph_is_the_exact_selection():
    p = dirichlet_probs(60, 4, seed=14)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = annealed_selection(p, scores, 5, 3.0, 12, generator=1, clustering="exact")
    approx = annealed_selection(
        p, scores, 5, 3.0, 12, generator=1, clustering="knn", n_neighbors=59
    )
    assert torch.equal(exact.labels, approx.labels)
    assert torch.equal(exact.indices, approx.indices)


def test_dean_strategy_options():
    default = strategies.get("dean")
    assert default.clustering == "auto" and default.n_neighbors == knn_linkage.DEFAULT_N_NEIGHBORS
    assert strategies.get("dean", clustering="knn", n_neighbors=30).n_neighbors == 30
    with pytest.raises(
        ValueError, match=r"^clustering must be one of auto, exact, knn; got 'fast'"
    ):
        DeAnStrategy(clustering="fast")
    with pytest.raises(ValueError, match=r"^clustering='knn' approximates single linkage only"):
        strategies.get("dean", clustering="knn", linkage="average")
    with pytest.raises(ValueError, match=r"^n_neighbors must lie in \[1, inf\], got 0"):
        DeAnStrategy(n_neighbors=0)
    with pytest.raises(TypeError, match=r"^n_neighbors must be an integer, got the boolean"):
        DeAnStrategy(n_neighbors=True)


# ------------------------------------------------------------------------------------------
# Bad inputs, refused by name
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda p: knn_single_linkage(p, 3, n_neighbors=0),
            ValueError,
            r"^n_neighbors must lie in \[1, 19\], got 0",
        ),
        (
            lambda p: knn_single_linkage(p, 3, n_neighbors=20),
            ValueError,
            r"^n_neighbors must lie in \[1, 19\], got 20",
        ),
        (
            lambda p: knn_single_linkage(p, 3, n_neighbors=2.5),
            TypeError,
            r"^n_neighbors must be an integer",
        ),
        (
            lambda p: knn_single_linkage(p, 0, n_neighbors=3),
            ValueError,
            r"^n_clusters must lie in \[1, 20\]",
        ),
        (
            lambda p: knn_single_linkage(p, 21, n_neighbors=3),
            ValueError,
            r"^n_clusters must lie in \[1, 20\]",
        ),
        (
            lambda p: knn_single_linkage(p, 3, search="ball"),
            ValueError,
            r"^search must be one of auto, tree, brute",
        ),
        (
            lambda p: knn_single_linkage(p[0], 1),
            ValueError,
            r"^mean_probs must have shape \(N, K\)",
        ),
        (
            lambda p: knn_single_linkage(p[None], 1),
            ValueError,
            r"^mean_probs must have shape \(N, K\)",
        ),
        (
            lambda p: knn_single_linkage(p[:0], 1),
            ValueError,
            r"^mean_probs must hold at least one row",
        ),
        (lambda p: knn_single_linkage(p * 2, 3), ValueError, r"^mean_probs rows must sum to 1"),
        (
            lambda p: knn_single_linkage(p - 0.5, 3),
            ValueError,
            r"^mean_probs contains negative entries",
        ),
        (
            lambda p: hellinger_neighbors(p[:1], 1),
            ValueError,
            r"^mean_probs must hold at least two rows",
        ),
        (
            lambda p: cluster_pool(p, 3, clustering="approx"),
            ValueError,
            r"^clustering must be one of auto, exact, knn",
        ),
        (
            lambda p: cluster_pool(p, 3, "average", "knn"),
            ValueError,
            r"^clustering='knn' approximates single linkage only",
        ),
        (
            lambda p: cluster_pool(p, 3, n_neighbors=0),
            ValueError,
            r"^n_neighbors must lie in \[1, inf\]",
        ),
        (
            lambda p: edge_distances(p, torch.tensor([0, 20]), torch.tensor([1, 2])),
            ValueError,
            r"^first must hold indices in \[0, 19\]",
        ),
        (
            lambda p: edge_distances(p, torch.tensor([0, 1]), torch.tensor([1])),
            ValueError,
            r"^first and second must have the same shape",
        ),
        (
            lambda p: edge_distances(p, torch.tensor([0.0]), torch.tensor([1])),
            TypeError,
            r"^first must be an integer tensor",
        ),
    ],
)
def test_bad_inputs_are_refused_by_name(call, error, message):
    p = dirichlet_probs(20, 3, seed=15)
    with pytest.raises(error, match=message):
        call(p)
