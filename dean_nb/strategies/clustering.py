"""The geometry of DeAn's pool: sqrt-JS distances, clusters and their centroids (paper
Algorithm 1, steps 3-5; chapter "Deterministic annealing").

Given the mean predictive distributions ``mean_probs`` (N, K) of the pool:

1. distances ``d(i, j) = sqrt(JS(p_i, p_j))`` with log base 2, so ``d`` lies in [0, 1]
   (:func:`js_distance`; :class:`DistanceRows` serves single rows ``d(c, .)`` on demand;
   :func:`edge_distances` those of listed pairs, for the kNN graph of
   :mod:`dean_nb.strategies.knn_linkage`);
2. agglomerative clustering of the pool into ``n_clusters`` clusters with ``d``; the authors'
   code uses single linkage, which is computed here from a minimum spanning tree built with
   Prim's algorithm (:mod:`dean_nb.strategies.prim`), so no N x N matrix is ever held
   (:func:`minimum_spanning_tree`, :func:`single_linkage`, :func:`cluster_points`);
3. each cluster's centroid is its member with the (upper) median score
   (:func:`median_centroids`).

The annealed sampler that draws the batch from these lives in
:mod:`dean_nb.strategies.annealing`, which re-exports the public names of this module. Public
functions validate their inputs once; the private ``_`` helpers they call trust them. Shapes
are in the names: ``N`` pool points, ``M`` other points, ``K`` classes, ``C`` clusters or
centroids, ``E`` tree edges.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dean_nb.strategies.prim import prim_tree
from dean_nb.validation import check_int_range, check_ndim, check_probabilities

__all__ = [
    "JS_CHUNK_ELEMENTS",
    "LINKAGES",
    "MAX_DENSE_POOL",
    "DistanceRows",
    "check_linkage",
    "check_n_clusters",
    "check_pool",
    "cluster_points",
    "edge_distances",
    "js_distance",
    "median_centroids",
    "minimum_spanning_tree",
    "single_linkage",
]

LINKAGES: tuple[str, ...] = ("single", "average", "complete")
#: Largest pool that ``cluster_points`` accepts for the linkages that need a dense N x N matrix.
MAX_DENSE_POOL = 20_000
#: Default number of (row, column, class) elements one chunk of :func:`js_distance` holds.
JS_CHUNK_ELEMENTS = 1 << 20

_LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# Checks (one definition each, applied by the public functions here and in annealing)
# --------------------------------------------------------------------------------------------


def check_linkage(linkage: str, name: str = "linkage") -> str:
    """``linkage`` must be one of :data:`LINKAGES`."""
    if linkage not in LINKAGES:
        raise ValueError(f"{name} must be one of {', '.join(LINKAGES)}; got {linkage!r}")
    return linkage


def check_pool(mean_probs: torch.Tensor, name: str = "mean_probs") -> torch.Tensor:
    """``mean_probs`` must be (N, K) with N >= 1 and every row on the simplex."""
    check_ndim(name, mean_probs, 2, "(N, K)")
    if mean_probs.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one row (the pool is empty)")
    return check_probabilities(name, mean_probs)


def check_n_clusters(n_clusters: int, n_points: int) -> int:
    return check_int_range("n_clusters", n_clusters, 1, n_points)


# --------------------------------------------------------------------------------------------
# Distances (step 3)
# --------------------------------------------------------------------------------------------


def _float_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The working dtype: the inputs' promoted floating dtype, at least float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if not dtype.is_floating_point or torch.finfo(dtype).bits < 32:
        dtype = torch.float32
    return dtype


def _normalise_rows(probs_N_K: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows rescaled to sum to exactly 1 (as scipy's ``jensenshannon`` does); a new tensor."""
    probs_N_K = probs_N_K.to(dtype)
    return probs_N_K / probs_N_K.sum(dim=-1, keepdim=True)


def _neg_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``sum_k p_k ln p_k`` over the last axis, with ``0 ln 0 = 0``: (..., K) -> (...)."""
    return torch.special.xlogy(probs, probs).sum(dim=-1)


def _js_bits_from_parts(
    neg_h_p: torch.Tensor, neg_h_q: torch.Tensor, mid: torch.Tensor
) -> torch.Tensor:
    """JS divergence in bits from ``sum p ln p``, ``sum q ln q`` and the midpoint ``m``.

    ``JS = H(m) - (H(p) + H(q)) / 2`` (nats), then divided by ``ln 2``. Rounding can push the
    value a hair outside [0, 1]; it is clamped back so that the square root never sees a
    negative number.
    """
    js = 0.5 * (neg_h_p + neg_h_q) - _neg_entropy(mid)
    return (js / _LN2).clamp_(0.0, 1.0)


def js_distance(
    p: torch.Tensor, q: torch.Tensor, *, chunk_elements: int = JS_CHUNK_ELEMENTS
) -> torch.Tensor:
    """Square root of the Jensen-Shannon divergence (log base 2) between all rows of p and q.

    The distance of paper section 4.1 (Algorithm 1, line 3): ``d(p, q) = sqrt(JS(p, q))`` with
    ``JS(p, q) = (KL(p || m) + KL(q || m)) / 2``, ``m = (p + q) / 2`` and base-2 logarithms, so
    every value lies in [0, 1]. It is a metric and equals
    ``scipy.spatial.distance.jensenshannon(p_i, q_j, base=2)`` (rows are rescaled to sum to 1
    first, as scipy does).

    Args:
        p: (N, K) rows on the probability simplex (a single (K,) row is accepted).
        q: (M, K) rows on the probability simplex (a single (K,) row is accepted).
        chunk_elements: upper bound on the number of ``(row, column, class)`` elements one
            chunk materialises; memory is O(chunk_elements + N M), whatever N and M.

    Returns:
        (N, M) distances in [0, 1], on ``p``'s device, in the promoted floating dtype of the
        inputs (at least float32); the leading axis is dropped for a (K,) ``p``, the trailing
        one for a (K,) ``q``.
    """
    squeeze_p, squeeze_q = p.ndim == 1, q.ndim == 1
    p_N_K = p.unsqueeze(0) if squeeze_p else p
    q_M_K = q.unsqueeze(0) if squeeze_q else q
    check_ndim("p", p_N_K, 2, "(N, K)")
    check_ndim("q", q_M_K, 2, "(M, K)")
    if p_N_K.shape[1] != q_M_K.shape[1]:
        raise ValueError(
            "p and q must have the same number of classes K, got "
            f"{p_N_K.shape[1]} and {q_M_K.shape[1]}"
        )
    check_int_range("chunk_elements", chunk_elements, 1)
    check_probabilities("p", p_N_K)
    check_probabilities("q", q_M_K)
    distances_N_M = _js_distance(p_N_K, q_M_K, chunk_elements)
    if squeeze_q:
        distances_N_M = distances_N_M[:, 0]
    if squeeze_p:
        distances_N_M = distances_N_M[0]
    return distances_N_M


def _js_distance(p_N_K: torch.Tensor, q_M_K: torch.Tensor, chunk_elements: int) -> torch.Tensor:
    """:func:`js_distance` of two checked (N, K) and (M, K) matrices: (N, M)."""
    dtype = _float_dtype(p_N_K, q_M_K)
    p_N_K = _normalise_rows(p_N_K, dtype)
    q_M_K = _normalise_rows(q_M_K, dtype).to(p_N_K.device)
    n_rows, n_classes = p_N_K.shape
    n_cols = q_M_K.shape[0]
    neg_h_p_N = _neg_entropy(p_N_K)
    neg_h_q_M = _neg_entropy(q_M_K)
    out_N_M = torch.empty((n_rows, n_cols), dtype=dtype, device=p_N_K.device)
    # Chunk over both axes so that one chunk holds at most ``chunk_elements`` elements.
    cols = max(1, min(n_cols, chunk_elements // n_classes))
    rows = max(1, min(n_rows, chunk_elements // (n_classes * cols)))
    for c0 in range(0, n_cols, cols):
        q_m_K = q_M_K[c0 : c0 + cols]
        for r0 in range(0, n_rows, rows):
            mid_n_m_K = 0.5 * (p_N_K[r0 : r0 + rows, None, :] + q_m_K[None, :, :])
            js_n_m = _js_bits_from_parts(
                neg_h_p_N[r0 : r0 + rows, None], neg_h_q_M[None, c0 : c0 + cols], mid_n_m_K
            )
            out_N_M[r0 : r0 + rows, c0 : c0 + cols] = js_n_m.sqrt_()
    return out_N_M


def _paired_js_distance(p_E_K: torch.Tensor, q_E_K: torch.Tensor) -> torch.Tensor:
    """``d(p_e, q_e)`` for each row pair: (E, K), (E, K) -> (E,), rows already normalised."""
    return _js_bits_from_parts(
        _neg_entropy(p_E_K), _neg_entropy(q_E_K), 0.5 * (p_E_K + q_E_K)
    ).sqrt_()


def edge_distances(
    mean_probs: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    *,
    chunk_elements: int = JS_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """``d(p_first[e], p_second[e])`` for each edge ``e`` of a graph on the pool, in float64.

    The exact ``sqrt(JS)`` (base 2) of :func:`js_distance`, for the listed pairs only: rows
    are normalised once in float64 on the CPU and the pairs processed a chunk at a time, so
    memory is O(N K + E + chunk_elements) whatever the number of edges.

    Args:
        mean_probs: (N, K) rows on the probability simplex.
        first: (E,) int64 indices into the pool.
        second: (E,) int64 indices into the pool.
        chunk_elements: most ``(edge, class)`` elements one chunk holds, >= 1.

    Returns:
        (E,) float64 CPU tensor of distances in [0, 1].
    """
    check_pool(mean_probs)
    n_points = mean_probs.shape[0]
    for name, idx in (("first", first), ("second", second)):
        check_ndim(name, idx, 1, "(E,)")
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.is_complex():
            raise TypeError(f"{name} must be an integer tensor, got dtype {idx.dtype}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_points):
            raise ValueError(f"{name} must hold indices in [0, {n_points - 1}]")
    if first.shape != second.shape:
        raise ValueError(
            f"first and second must have the same shape (E,), got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
    check_int_range("chunk_elements", chunk_elements, 1)
    probs_N_K = _normalise_rows(mean_probs.detach().cpu(), torch.float64)
    first_E, second_E = first.detach().cpu().long(), second.detach().cpu().long()
    out_E = torch.empty(first_E.shape[0], dtype=torch.float64)
    step = max(1, chunk_elements // probs_N_K.shape[1])
    for e0 in range(0, out_E.shape[0], step):
        out_E[e0 : e0 + step] = _paired_js_distance(
            probs_N_K[first_E[e0 : e0 + step]], probs_N_K[second_E[e0 : e0 + step]]
        )
    return out_E


class DistanceRows:
    """``d(c, .)`` rows over the whole pool (float64), computed only for the points asked for.

    The pool ``mean_probs`` (N, K), checked by the caller, is normalised once. When the rows
    of all ``expected`` points fit in ``max_elements`` values they are computed up front, a
    block at a time (few, large operations); otherwise each row is computed on first use and
    at most ``max_elements`` values are cached (the least recently used row is dropped, and
    recomputed if asked for again), so memory stays bounded whatever the budget.
    ``d(c, c)`` is set to exactly 0. ``rows(c)`` returns the (N,) row of point ``c``.
    """

    def __init__(self, mean_probs: torch.Tensor, expected: list[int], max_elements: int) -> None:
        self.probs_N_K = _normalise_rows(mean_probs.detach(), _float_dtype(mean_probs))
        self.neg_h_N = _neg_entropy(self.probs_N_K)
        n_points, n_classes = self.probs_N_K.shape
        self.max_rows = max(1, max_elements // n_points)
        self.rows: dict[int, torch.Tensor] = {}
        unique = list(dict.fromkeys(expected))
        if len(unique) <= self.max_rows:
            block = max(1, JS_CHUNK_ELEMENTS // (n_points * n_classes))
            for b0 in range(0, len(unique), block):
                self._compute(unique[b0 : b0 + block])

    def _compute(self, points: list[int]) -> None:
        idx_R = torch.tensor(points, dtype=torch.int64, device=self.probs_N_K.device)
        mid_R_N_K = 0.5 * (self.probs_N_K[idx_R, None, :] + self.probs_N_K[None, :, :])
        rows_R_N = _js_bits_from_parts(
            self.neg_h_N[idx_R, None], self.neg_h_N[None, :], mid_R_N_K
        ).sqrt_()
        rows_R_N = rows_R_N.to(torch.float64)
        rows_R_N[torch.arange(len(points), device=idx_R.device), idx_R] = 0.0
        for c, row_N in zip(points, rows_R_N, strict=True):
            if len(self.rows) >= self.max_rows:
                self.rows.pop(next(iter(self.rows)))
            self.rows[c] = row_N

    def __call__(self, c: int) -> torch.Tensor:
        if c not in self.rows:
            self._compute([c])
        row_N = self.rows.pop(c)
        self.rows[c] = row_N  # (re)inserted last: the most recently used
        return row_N


# --------------------------------------------------------------------------------------------
# Minimum spanning tree and clustering (step 4)
# --------------------------------------------------------------------------------------------


def minimum_spanning_tree(
    mean_probs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimum spanning tree of the pool under ``d = sqrt(JS)`` (Prim, O(N K) memory).

    Prim's algorithm runs on ``mean_probs``' device and dtype (at least float32): each step
    computes the distances of the newly added point to all points still outside the tree,
    never an N x N matrix. The edge weights are then recomputed in float64, so float32 runs
    still report accurate weights.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.

    Returns:
        ``(child, parent, weight)``: (N - 1,) int64, int64 and float64 CPU tensors; edge ``e``
        joins ``child[e]`` and ``parent[e]`` at distance ``weight[e]``, in the order Prim
        added them (starting from point 0).
    """
    return _minimum_spanning_tree(check_pool(mean_probs))


def _minimum_spanning_tree(
    mean_probs_N_K: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`minimum_spanning_tree` of a checked pool: ``(child_E, parent_E, weight_E)``."""
    if mean_probs_N_K.shape[0] == 1:
        empty_E = torch.empty(0, dtype=torch.int64)
        return empty_E, empty_E.clone(), torch.empty(0, dtype=torch.float64)
    probs_N_K = _normalise_rows(mean_probs_N_K.detach(), _float_dtype(mean_probs_N_K))
    child_E, parent_E = prim_tree(probs_N_K)
    exact_N_K = _normalise_rows(mean_probs_N_K.detach().cpu(), torch.float64)
    weight_E = _paired_js_distance(exact_N_K[child_E], exact_N_K[parent_E])
    return child_E, parent_E, weight_E


def single_linkage(mean_probs: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Single-linkage agglomerative clustering under ``d = sqrt(JS)`` (Algorithm 1, line 3).

    Single linkage into ``n_clusters`` clusters equals cutting the ``n_clusters - 1``
    heaviest edges of a minimum spanning tree (Gower and Ross, 1969); the tree comes from
    :func:`minimum_spanning_tree`, so memory stays O(N K). Ties among equally heavy edges go
    to the edge Prim added first. The tree is built in ``mean_probs``' dtype: in float32,
    distances closer than float32 rounding (about 1e-7 in JS) may be ordered differently than
    in float64, which can move a point between clusters only at such a near-tie; pass float64
    rows for agreement with a float64 reference.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        n_clusters: number of clusters, in [1, N].

    Returns:
        (N,) int64 labels in ``[0, n_clusters)`` on ``mean_probs``' device; clusters are
        numbered in the order of their smallest member index.
    """
    check_pool(mean_probs)
    n_clusters = check_n_clusters(n_clusters, mean_probs.shape[0])
    return _single_linkage(mean_probs, n_clusters)


def _single_linkage(mean_probs_N_K: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """:func:`single_linkage` of a checked pool and cluster count: ``labels_N``."""
    n_points = mean_probs_N_K.shape[0]
    child_E, parent_E, weight_E = _minimum_spanning_tree(mean_probs_N_K)
    w_E = weight_E.numpy()
    heaviest_first_E = np.lexsort((np.arange(w_E.size), -w_E))
    keep = heaviest_first_E[n_clusters - 1 :]
    graph = coo_matrix(
        (np.ones(keep.size, dtype=np.int8), (child_E.numpy()[keep], parent_E.numpy()[keep])),
        shape=(n_points, n_points),
    )
    n_found, labels_N = connected_components(graph, directed=False)
    if n_found != n_clusters:  # cannot happen for a spanning tree; guard the invariant
        raise RuntimeError(f"expected {n_clusters} clusters, found {n_found}")
    return torch.from_numpy(labels_N.astype(np.int64)).to(mean_probs_N_K.device)


def cluster_points(
    mean_probs: torch.Tensor, n_clusters: int, linkage: str = "single"
) -> torch.Tensor:
    """Agglomerative clustering of the pool under ``d = sqrt(JS)`` (Algorithm 1, line 3).

    ``"single"`` (the authors' choice) goes through :func:`single_linkage` and scales to any
    pool. ``"average"`` and ``"complete"`` need the dense N x N distance matrix and go through
    scikit-learn's ``AgglomerativeClustering(metric="precomputed")``; they refuse pools larger
    than :data:`MAX_DENSE_POOL`.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        n_clusters: number of clusters, in [1, N].
        linkage: one of :data:`LINKAGES`.

    Returns:
        (N,) int64 labels in ``[0, n_clusters)`` on ``mean_probs``' device, numbered in the
        order of their smallest member index.
    """
    check_linkage(linkage)
    check_pool(mean_probs)
    n_clusters = check_n_clusters(n_clusters, mean_probs.shape[0])
    return _cluster_points(mean_probs, n_clusters, linkage)


def _cluster_points(mean_probs_N_K: torch.Tensor, n_clusters: int, linkage: str) -> torch.Tensor:
    """:func:`cluster_points` of checked arguments: ``labels_N``."""
    n_points = mean_probs_N_K.shape[0]
    if linkage == "single":
        return _single_linkage(mean_probs_N_K, n_clusters)
    if n_points > MAX_DENSE_POOL:
        raise ValueError(
            f"linkage={linkage!r} needs a dense N x N distance matrix; the pool has "
            f"N={n_points} points but at most {MAX_DENSE_POOL} are allowed (use "
            "linkage='single', or subsample the pool)"
        )
    if n_points == 1:
        return torch.zeros(1, dtype=torch.int64, device=mean_probs_N_K.device)
    from sklearn.cluster import AgglomerativeClustering

    probs_N_K = mean_probs_N_K.detach().to("cpu", torch.float64)
    distances_N_N = _js_distance(probs_N_K, probs_N_K, JS_CHUNK_ELEMENTS).numpy()
    np.fill_diagonal(distances_N_N, 0.0)
    raw_N = AgglomerativeClustering(
        n_clusters=n_clusters, metric="precomputed", linkage=linkage
    ).fit_predict(distances_N_N)
    # Renumber in order of the smallest member index (as single_linkage does).
    _, first_C = np.unique(raw_N, return_index=True)
    rank_C = np.empty(first_C.size, dtype=np.int64)
    rank_C[np.argsort(first_C, kind="stable")] = np.arange(first_C.size)
    return torch.from_numpy(rank_C[raw_N]).to(mean_probs_N_K.device)


# --------------------------------------------------------------------------------------------
# Centroids (step 5)
# --------------------------------------------------------------------------------------------


def median_centroids(labels: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Each cluster's centroid: its member with the median score (Algorithm 1, section 4.1).

    As in the authors' code, the upper median: the members of a cluster sorted by score
    ascending (ties by index) and the one at position ``n // 2`` taken.

    Args:
        labels: (N,) int64 cluster labels covering ``0 .. C - 1``, every label used.
        scores: (N,) finite scores (e.g. BALD, eq. 2).

    Returns:
        (C,) int64 indices into the pool, ``centroids[c]`` a member of cluster ``c``, on
        ``labels``' device.
    """
    check_ndim("labels", labels, 1, "(N,)")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    n_points = labels.shape[0]
    if n_points == 0:
        raise ValueError("labels must not be empty")
    check_ndim("scores", scores, 1, "(N,)")
    if scores.shape[0] != n_points:
        raise ValueError(
            f"scores must have shape ({n_points},) like labels, got {tuple(scores.shape)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores contains NaN or inf; scores must be finite")
    return _median_centroids(labels, scores)


def _median_centroids(labels_N: torch.Tensor, scores_N: torch.Tensor) -> torch.Tensor:
    """:func:`median_centroids` of checked (N,) tensors; refuses unused or negative ids."""
    lab_N = labels_N.detach().cpu().numpy().astype(np.int64)
    n_clusters = int(lab_N.max()) + 1
    counts_C = np.bincount(lab_N, minlength=n_clusters) if lab_N.min() >= 0 else None
    if counts_C is None or (counts_C == 0).any():
        raise ValueError(
            "labels must use every cluster id 0 .. C-1 (got ids in "
            f"[{int(lab_N.min())}, {int(lab_N.max())}] with gaps or negatives)"
        )
    sc_N = scores_N.detach().cpu().to(torch.float64).numpy()
    order_N = np.lexsort((np.arange(lab_N.size), sc_N, lab_N))  # by label, score, index
    starts_C = np.concatenate(([0], np.cumsum(counts_C)[:-1]))
    centroids_C = order_N[starts_C + counts_C // 2]
    return torch.from_numpy(centroids_C.astype(np.int64)).to(labels_N.device)
