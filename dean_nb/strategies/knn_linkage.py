"""Single linkage on a k-nearest-neighbour graph: DeAn's clusters for pools too large for the
exact O(N^2) minimum spanning tree (chapter "Deterministic annealing", "DeAn on the whole pool").

The exact single linkage of :mod:`dean_nb.strategies.clustering` looks at all N (N - 1) / 2
pairs. This module states and computes an approximation that looks at O(N k) pairs:

1. **Candidate edges.** Each distribution is embedded as ``sqrt(p)``; in that embedding the
   Euclidean distance is ``e(p, q) = ||sqrt(p) - sqrt(q)||_2 = sqrt(2) h(p, q)``, with ``h``
   the Hellinger distance. Every point is joined to its ``n_neighbors`` exact nearest
   neighbours under ``e`` (itself excluded), and the graph made undirected (an edge exists if
   either end lists the other).
2. **Weights.** Every edge carries the exact ``d = sqrt(JS)`` (base 2) of its two ends
   (:func:`dean_nb.strategies.clustering.edge_distances`), never ``e``.
3. **Forest.** Edges are totally ordered by ``(d, smaller end, larger end)``; the graph's
   minimum spanning forest under that order (unique) is taken.
4. **Merging.** A forest of F > 1 trees is joined into one tree with F - 1 more edges: each
   tree's *representative* is its member nearest (under ``e``; lowest index on ties) to the
   mean of its members' embeddings; the candidate links are (a) the exact minimum spanning
   tree of the F representatives under ``d`` (for F > 10,000: steps 1-4 applied to the
   representatives, with the same k), and (b) for every point, the edge to the nearest
   representative (under ``e``) of another tree; each weighted with the exact ``d``; the
   minimum spanning tree of the trees under these links, in the same total order, gives the
   F - 1 edges.
5. **Cut.** As exact single linkage does: the ``n_clusters - 1`` largest tree edges in the
   order of step 3 are removed; the remaining trees are the clusters, numbered in the order
   of their smallest member index. The result has exactly ``n_clusters`` clusters.

Why ``e`` finds ``d``'s neighbours. Let ``h^2 = 1 - sum_i sqrt(p_i q_i)`` (squared Hellinger
distance, in [0, 1]; ``e^2 = 2 h^2``). Proven bounds: with the triangular discrimination
``Delta = sum (p - q)^2 / (p + q)``, ``2 h^2 <= Delta <= 4 h^2`` (``(sqrt p + sqrt q)^2 / (p + q)``
lies in [1, 2]) and ``Delta / 2 <= 2 JS <= ln(2) Delta`` with JS in nats (Topsøe 2000, "Some
inequalities for information divergence and related measures of discrimination", IEEE Trans.
Inf. Theory 46(4), 1602-1609), so ``h^2 / (2 ln 2) <= JS_bits <= 2 h^2``. Sharper, and the one
relied on: ``h^2 <= JS_bits <= h^2 / ln 2``. Both divergences are sums over classes of terms
homogeneous of degree 1 in ``(p_i, q_i)``, so their ratio lies between the extremes of the
one-variable ratio ``r(t) = JS_nats(1, t) / h^2(1, t)``, ``t = q_i / p_i``, which increases
from ``ln 2`` (``t = 0``: disjoint supports, equality) to 1 (``t -> 1``: equal rows), as a
50-digit evaluation confirms (tests/test_clustering_approx.py checks the bound on pools). In
distances: ``e / sqrt(2) <= d <= e / sqrt(2 ln 2)``, a distortion of ``1 / sqrt(ln 2) = 1.20``.
So a point's ``n_neighbors`` nearest under ``e`` (the k-th at ``e_k``) include every point
within ``d < e_k / sqrt(2)`` of it and none beyond ``d > e_k / sqrt(2 ln 2)``; when the graph
holds every edge of the exact minimum spanning tree (always when ``n_neighbors = N - 1``) the
clusters equal exact single linkage's (up to ties in ``d``).

The neighbour search (``search``): ``"tree"`` is scipy's ``cKDTree`` (float64, threads as
``torch.get_num_threads()``); ``"brute"`` computes ``e^2`` block by block with one matrix
product per block and keeps the k smallest (``torch.topk``), on ``mean_probs``' device and
dtype (at least float32); ``"auto"`` takes the tree on the CPU for K <= :data:`TREE_MAX_CLASSES`,
else brute force. Ties among equally near neighbours are broken by the search (the same input
gives the same graph); all later steps break ties by the order of step 3.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.sparse.csgraph import minimum_spanning_tree as scipy_minimum_spanning_tree
from scipy.spatial import cKDTree

from dean_nb.strategies.clustering import (
    check_linkage,
    check_n_clusters,
    check_pool,
    cluster_points,
    edge_distances,
    minimum_spanning_tree,
)
from dean_nb.validation import check_int_range

__all__ = [
    "CLUSTERINGS",
    "DEFAULT_N_NEIGHBORS",
    "MAX_EXACT_POOL",
    "SEARCHES",
    "TREE_MAX_CLASSES",
    "check_clustering",
    "check_n_neighbors",
    "check_search",
    "cluster_pool",
    "hellinger_neighbors",
    "knn_single_linkage",
    "knn_spanning_tree",
]

#: How DeAn clusters the pool: ``"exact"`` single linkage (the minimum spanning tree of all
#: pairs), ``"knn"`` (single linkage on the k-nearest-neighbour graph, this module) or
#: ``"auto"``: exact up to :data:`MAX_EXACT_POOL` points, knn above.
CLUSTERINGS: tuple[str, ...] = ("auto", "exact", "knn")
#: Largest pool that ``clustering="auto"`` clusters exactly.
MAX_EXACT_POOL = 100_000
#: Neighbours per point when none is given.
DEFAULT_N_NEIGHBORS = 10
#: How the neighbours are found (see the module docstring).
SEARCHES: tuple[str, ...] = ("auto", "tree", "brute")
#: ``search="auto"`` uses the k-d tree up to this many classes (on the CPU).
TREE_MAX_CLASSES = 16
#: Most distance values one block of the brute-force search holds.
_BRUTE_BLOCK_ELEMENTS = 1 << 24
#: Forests of at most this many trees join their representatives with the exact tree (Prim,
#: O(F^2 K)); larger ones with this module's own kNN tree of the representatives.
_EXACT_LINK_TREES = 10_000


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_clustering(clustering: str, linkage: str = "single", name: str = "clustering") -> str:
    """``clustering`` must be one of :data:`CLUSTERINGS`, and ``"knn"`` needs single linkage."""
    if clustering not in CLUSTERINGS:
        raise ValueError(f"{name} must be one of {', '.join(CLUSTERINGS)}; got {clustering!r}")
    if clustering == "knn" and linkage != "single":
        raise ValueError(
            f"{name}='knn' approximates single linkage only; got linkage={linkage!r} "
            "(use linkage='single', or clustering='exact')"
        )
    return clustering


def check_search(search: str, name: str = "search") -> str:
    """``search`` must be one of :data:`SEARCHES`."""
    if search not in SEARCHES:
        raise ValueError(f"{name} must be one of {', '.join(SEARCHES)}; got {search!r}")
    return search


def check_n_neighbors(n_neighbors: int, n_points: int | None = None) -> int:
    """``n_neighbors`` must be an integer in ``[1, N - 1]`` (``[1, 1]`` for one point, no
    upper bound when ``n_points`` is ``None``)."""
    high = None if n_points is None else max(1, n_points - 1)
    return check_int_range("n_neighbors", n_neighbors, 1, high)


# --------------------------------------------------------------------------------------------
# Neighbours in the Hellinger embedding
# --------------------------------------------------------------------------------------------


def hellinger_neighbors(
    mean_probs: torch.Tensor, n_neighbors: int, search: str = "auto"
) -> torch.Tensor:
    """Each point's ``n_neighbors`` nearest other points under ``e = ||sqrt(p) - sqrt(q)||``.

    Args:
        mean_probs: (N, K) rows on the probability simplex, N >= 2.
        n_neighbors: k, in [1, N - 1].
        search: one of :data:`SEARCHES` (see the module docstring).

    Returns:
        (N, k) int64 CPU tensor: row ``i`` lists the k points nearest to ``i`` (never ``i``),
        nearest first.
    """
    check_pool(mean_probs)
    if mean_probs.shape[0] < 2:
        raise ValueError("mean_probs must hold at least two rows to have neighbours")
    n_neighbors = check_n_neighbors(n_neighbors, mean_probs.shape[0])
    check_search(search)
    return torch.from_numpy(_neighbors(mean_probs, n_neighbors, search))


def _embedding(mean_probs_N_K: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``sqrt(p)`` of the rows normalised to sum to 1: (N, K) in ``dtype``."""
    probs_N_K = mean_probs_N_K.detach().to(dtype)
    return (probs_N_K / probs_N_K.sum(dim=1, keepdim=True)).sqrt_()


def _resolve_search(search: str, mean_probs_N_K: torch.Tensor) -> str:
    if search != "auto":
        return search
    small = mean_probs_N_K.shape[1] <= TREE_MAX_CLASSES
    return "tree" if small and mean_probs_N_K.device.type == "cpu" else "brute"


def _neighbors(mean_probs_N_K: torch.Tensor, k: int, search: str) -> np.ndarray:
    """:func:`hellinger_neighbors` of checked arguments: (N, k) int64 numpy array."""
    if _resolve_search(search, mean_probs_N_K) == "tree":
        emb_N_K = _embedding(mean_probs_N_K.cpu(), torch.float64).numpy()
        return _drop_self(_tree_query(emb_N_K, emb_N_K, k + 1), k)
    return _brute_neighbors(mean_probs_N_K, k)


def _tree_query(data_M_K: np.ndarray, queries_N_K: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) into ``data`` of each query's k nearest rows (k-d tree, float64)."""
    tree = cKDTree(data_M_K, leafsize=32, balanced_tree=False, compact_nodes=False)
    _, idx_N_k = tree.query(queries_N_K, k=k, workers=max(1, torch.get_num_threads()))
    return np.asarray(idx_N_k, dtype=np.int64).reshape(queries_N_K.shape[0], k)


def _drop_self(idx_N_k1: np.ndarray, k: int) -> np.ndarray:
    """(N, k + 1) neighbour lists that may include the point itself -> (N, k) without it.

    A point with duplicates may be listed after one of them; the row then loses ``i`` where
    it stands, otherwise its last entry.
    """
    n_points = idx_N_k1.shape[0]
    is_self_N_k1 = idx_N_k1 == np.arange(n_points)[:, None]
    drop_N = np.where(is_self_N_k1.any(axis=1), is_self_N_k1.argmax(axis=1), k)
    keep_N_k1 = np.ones_like(is_self_N_k1)
    keep_N_k1[np.arange(n_points), drop_N] = False
    return idx_N_k1[keep_N_k1].reshape(n_points, k)


def _brute_neighbors(mean_probs_N_K: torch.Tensor, k: int) -> np.ndarray:
    """Exact k nearest neighbours by blocks of ``e^2 = |x|^2 + |y|^2 - 2 x.y`` (one matrix
    product per block) and ``torch.topk``, on ``mean_probs``' device: (N, k) int64 numpy."""
    dtype = torch.promote_types(mean_probs_N_K.dtype, torch.float32)
    if not dtype.is_floating_point:
        dtype = torch.float32
    emb_N_K = _embedding(mean_probs_N_K, dtype)
    sq_N = (emb_N_K * emb_N_K).sum(dim=1)
    n_points = emb_N_K.shape[0]
    rows = max(1, _BRUTE_BLOCK_ELEMENTS // n_points)
    out_N_k = torch.empty((n_points, k), dtype=torch.int64, device=emb_N_K.device)
    for r0 in range(0, n_points, rows):
        block_b_K = emb_N_K[r0 : r0 + rows]
        b = block_b_K.shape[0]
        d2_b_N = torch.addmm(sq_N[None, :], block_b_K, emb_N_K.T, alpha=-2.0)
        d2_b_N.add_(sq_N[r0 : r0 + b, None])
        diag_b = torch.arange(b, device=d2_b_N.device)
        d2_b_N[diag_b, diag_b + r0] = torch.inf
        out_N_k[r0 : r0 + b] = torch.topk(d2_b_N, k, dim=1, largest=False, sorted=True).indices
    return out_N_k.cpu().numpy()


# --------------------------------------------------------------------------------------------
# The spanning tree of the kNN graph
# --------------------------------------------------------------------------------------------


def _order(weight_E: np.ndarray, first_E: np.ndarray, second_E: np.ndarray) -> np.ndarray:
    """Edge indices sorted by ``(weight, first, second)``, ascending: the total order."""
    return np.lexsort((second_E, first_E, weight_E))


def _spanning_forest(
    first_E: np.ndarray, second_E: np.ndarray, weight_E: np.ndarray, n_nodes: int
) -> np.ndarray:
    """Indices of the edges of the minimum spanning forest under the total order.

    The edges (at most one per unordered pair) are given their rank 1..E in the order as
    weight, so that scipy's Kruskal sees distinct positive weights (a zero ``d`` between
    duplicates would otherwise read as no edge) and the forest is unique.
    """
    order_E = _order(weight_E, first_E, second_E)
    rank_E = np.empty(order_E.size, dtype=np.float64)
    rank_E[order_E] = np.arange(1, order_E.size + 1, dtype=np.float64)
    graph = coo_matrix((rank_E, (first_E, second_E)), shape=(n_nodes, n_nodes)).tocsr()
    forest = scipy_minimum_spanning_tree(graph).tocoo()
    return order_E[forest.data.astype(np.int64) - 1]


def _knn_edges(neighbors_N_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undirected edges of a kNN graph, once each: ``(first, second)`` with
    ``first < second``, sorted by ``(first, second)``."""
    n_points, k = neighbors_N_k.shape
    rows = np.repeat(np.arange(n_points, dtype=np.int64), k)
    cols = neighbors_N_k.reshape(-1)
    key = np.unique(np.minimum(rows, cols) * n_points + np.maximum(rows, cols))
    return key // n_points, key % n_points


def _distances(mean_probs_N_K: torch.Tensor, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return edge_distances(mean_probs_N_K, torch.from_numpy(first), torch.from_numpy(second)).numpy()


def _representatives(emb_N_K: np.ndarray, comp_N: np.ndarray, n_comp: int) -> np.ndarray:
    """Each tree's member nearest to its members' mean embedding (lowest index on ties): (F,)."""
    counts_F = np.bincount(comp_N, minlength=n_comp).astype(np.float64)
    mean_F_K = np.stack(
        [np.bincount(comp_N, weights=col, minlength=n_comp) for col in emb_N_K.T], axis=1
    )
    mean_F_K /= counts_F[:, None]
    gap_N = ((emb_N_K - mean_F_K[comp_N]) ** 2).sum(axis=1)
    order_N = np.lexsort((np.arange(comp_N.size), gap_N, comp_N))
    starts_F = np.searchsorted(comp_N[order_N], np.arange(n_comp))
    return order_N[starts_F]


def _link_trees(
    mean_probs_N_K: torch.Tensor, comp_N: np.ndarray, n_comp: int, k: int, search: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F - 1 edges joining a forest's F trees (step 4 of the module docstring).

    Returns:
        ``(first, second, weight)``: (F - 1,) int64, int64 (``first < second``), float64.
    """
    emb_N_K = _embedding(mean_probs_N_K.cpu(), torch.float64).numpy()
    reps_F = _representatives(emb_N_K, comp_N, n_comp)
    # (a) the minimum spanning tree of the representatives: exact, or for many trees this
    # module's kNN tree of them (each tree has two points or more, so this recursion ends).
    reps_F_K = mean_probs_N_K[torch.from_numpy(reps_F)]
    if n_comp <= _EXACT_LINK_TREES:
        child_R, parent_R = (t.numpy() for t in minimum_spanning_tree(reps_F_K)[:2])
    else:
        child_R, parent_R, _ = _knn_spanning_tree(reps_F_K, min(k, n_comp - 1), search)
    a_R, b_R = reps_F[child_R], reps_F[parent_R]
    # (b) every point to its nearest representative of another tree (two nearest suffice).
    if _resolve_search(search, mean_probs_N_K) == "tree":
        near_N_2 = _tree_query(emb_N_K[reps_F], emb_N_K, 2)
    else:
        near_N_2 = _brute_cross(emb_N_K, emb_N_K[reps_F])
    own_N = near_N_2[:, 0] == comp_N
    foreign_N = np.where(own_N, near_N_2[:, 1], near_N_2[:, 0])
    a_E = np.concatenate([a_R, np.arange(comp_N.size)])
    b_E = np.concatenate([b_R, reps_F[foreign_N]])
    first_E, second_E = np.minimum(a_E, b_E), np.maximum(a_E, b_E)
    weight_E = _distances(mean_probs_N_K, first_E, second_E)
    # One link per pair of trees: the first in the total order.
    order_E = _order(weight_E, first_E, second_E)
    ca_E, cb_E = comp_N[first_E[order_E]], comp_N[second_E[order_E]]
    pair_E = np.minimum(ca_E, cb_E) * n_comp + np.maximum(ca_E, cb_E)
    _, first_seen = np.unique(pair_E, return_index=True)
    best = order_E[np.sort(first_seen)]
    ca, cb = comp_N[first_E[best]], comp_N[second_E[best]]
    chosen = best[_spanning_forest(np.minimum(ca, cb), np.maximum(ca, cb), weight_E[best], n_comp)]
    return first_E[chosen], second_E[chosen], weight_E[chosen]


def _brute_cross(emb_N_K: np.ndarray, reps_F_K: np.ndarray) -> np.ndarray:
    """The two nearest rows of ``reps`` to every row of ``emb`` (F >= 2): (N, 2) int64."""
    reps = torch.from_numpy(reps_F_K)
    sq_F = (reps * reps).sum(dim=1)
    rows = max(1, _BRUTE_BLOCK_ELEMENTS // reps.shape[0])
    out = np.empty((emb_N_K.shape[0], 2), dtype=np.int64)
    for r0 in range(0, emb_N_K.shape[0], rows):
        block = torch.from_numpy(emb_N_K[r0 : r0 + rows])
        d2 = torch.addmm(sq_F[None, :], block, reps.T, alpha=-2.0)
        out[r0 : r0 + rows] = torch.topk(d2, 2, dim=1, largest=False, sorted=True).indices.numpy()
    return out


def knn_spanning_tree(
    mean_probs: torch.Tensor, n_neighbors: int = DEFAULT_N_NEIGHBORS, search: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The spanning tree of steps 1-4 of the module docstring (kNN graph, forest, merging).

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        n_neighbors: k, in [1, N - 1] (1 when N = 1).
        search: one of :data:`SEARCHES`.

    Returns:
        ``(first, second, weight)``: (N - 1,) int64, int64 and float64 CPU tensors, edge ``e``
        joining ``first[e] < second[e]`` at exact distance ``weight[e] = d``, sorted in the
        total order ``(weight, first, second)``.
    """
    check_pool(mean_probs)
    n_neighbors = check_n_neighbors(n_neighbors, mean_probs.shape[0])
    check_search(search)
    first_E, second_E, weight_E = _knn_spanning_tree(mean_probs, n_neighbors, search)
    return torch.from_numpy(first_E), torch.from_numpy(second_E), torch.from_numpy(weight_E)


def _knn_spanning_tree(
    mean_probs_N_K: torch.Tensor, k: int, search: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`knn_spanning_tree` of checked arguments, as numpy arrays."""
    n_points = mean_probs_N_K.shape[0]
    if n_points == 1:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    first_E, second_E = _knn_edges(_neighbors(mean_probs_N_K, k, search))
    weight_E = _distances(mean_probs_N_K, first_E, second_E)
    keep = _spanning_forest(first_E, second_E, weight_E, n_points)
    first_T, second_T, weight_T = first_E[keep], second_E[keep], weight_E[keep]
    if keep.size < n_points - 1:  # a forest: join its trees
        graph = coo_matrix((np.ones(keep.size), (first_T, second_T)), shape=(n_points,) * 2)
        n_comp, comp_N = connected_components(graph, directed=False)
        links = _link_trees(mean_probs_N_K, comp_N.astype(np.int64), n_comp, k, search)
        link_first, link_second, link_weight = links
        first_T = np.concatenate([first_T, link_first])
        second_T = np.concatenate([second_T, link_second])
        weight_T = np.concatenate([weight_T, link_weight])
    order_T = _order(weight_T, first_T, second_T)
    return first_T[order_T], second_T[order_T], weight_T[order_T]


# --------------------------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------------------------


def knn_single_linkage(
    mean_probs: torch.Tensor,
    n_clusters: int,
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
    search: str = "auto",
) -> torch.Tensor:
    """Single linkage under ``d = sqrt(JS)`` on the k-nearest-neighbour graph (module
    docstring, steps 1-5): the approximation of
    :func:`dean_nb.strategies.clustering.single_linkage` for large pools.

    Time: the search (k-d tree for small K: near O(N k log N) on clustered pools, worse as
    the pool's intrinsic dimension grows; brute force: O(N^2 K) matrix-product flops), plus
    O(N k K) for the exact edge weights and O(F^2 K) to join F <= 10,000 trees (recursion
    above); memory O(N k + N K).

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        n_clusters: number of clusters, in [1, N].
        n_neighbors: k, in [1, N - 1] (1 when N = 1).
        search: one of :data:`SEARCHES`.

    Returns:
        (N,) int64 labels in ``[0, n_clusters)`` on ``mean_probs``' device, numbered in the
        order of their smallest member index.
    """
    check_pool(mean_probs)
    n_points = mean_probs.shape[0]
    n_clusters = check_n_clusters(n_clusters, n_points)
    n_neighbors = check_n_neighbors(n_neighbors, n_points)
    check_search(search)
    return _knn_single_linkage(mean_probs, n_clusters, n_neighbors, search)


def _knn_single_linkage(
    mean_probs_N_K: torch.Tensor, n_clusters: int, k: int, search: str
) -> torch.Tensor:
    """:func:`knn_single_linkage` of checked arguments: ``labels_N``."""
    n_points = mean_probs_N_K.shape[0]
    first_T, second_T, _ = _knn_spanning_tree(mean_probs_N_K, k, search)
    keep = slice(0, n_points - n_clusters)  # the tree is sorted: drop the largest edges
    graph = coo_matrix(
        (np.ones(n_points - n_clusters, dtype=np.int8), (first_T[keep], second_T[keep])),
        shape=(n_points, n_points),
    )
    n_found, labels_N = connected_components(graph, directed=False)
    if n_found != n_clusters:  # cannot happen for a spanning tree; guard the invariant
        raise RuntimeError(f"expected {n_clusters} clusters, found {n_found}")
    return torch.from_numpy(labels_N.astype(np.int64)).to(mean_probs_N_K.device)


def cluster_pool(
    mean_probs: torch.Tensor,
    n_clusters: int,
    linkage: str = "single",
    clustering: str = "auto",
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
) -> torch.Tensor:
    """DeAn's clustering step, exact or on the kNN graph (Algorithm 1, line 3).

    ``clustering="exact"`` is :func:`dean_nb.strategies.clustering.cluster_points` with
    ``linkage``; ``"knn"`` is :func:`knn_single_linkage` (single linkage only);
    ``"auto"`` is exact for pools of at most :data:`MAX_EXACT_POOL` points or any linkage
    other than ``"single"``, knn above.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        n_clusters: number of clusters, in [1, N].
        linkage: one of :data:`dean_nb.strategies.clustering.LINKAGES`.
        clustering: one of :data:`CLUSTERINGS`.
        n_neighbors: k >= 1 for the kNN graph; pools of at most k points use k = N - 1.

    Returns:
        (N,) int64 labels in ``[0, n_clusters)`` on ``mean_probs``' device, numbered in the
        order of their smallest member index.
    """
    check_linkage(linkage)
    check_clustering(clustering, linkage)
    n_neighbors = check_n_neighbors(n_neighbors)
    check_pool(mean_probs)
    n_points = mean_probs.shape[0]
    n_clusters = check_n_clusters(n_clusters, n_points)
    if clustering == "exact" or (
        clustering == "auto" and (linkage != "single" or n_points <= MAX_EXACT_POOL)
    ):
        return cluster_points(mean_probs, n_clusters, linkage)
    k = min(n_neighbors, max(1, n_points - 1))
    return _knn_single_linkage(mean_probs, n_clusters, k, "auto")
