"""Deterministic annealing: the DeAn batch sampler (paper Algorithm 1, eq. 3 and 4).

Chapter "Deterministic annealing" of the book. One acquisition step, given the mean
predictive distributions ``mean_probs`` (N, K) of the pool and an importance score per point
(BALD, eq. 2):

1. distances ``d(i, j) = sqrt(JS(p_i, p_j))`` with log base 2, so ``d`` lies in [0, 1]
   (:func:`js_distance`);
2. agglomerative clustering of the pool into ``n_clusters`` clusters with ``d``; the authors'
   code uses single linkage, which is computed here from a minimum spanning tree built with
   Prim's algorithm, so no N x N matrix is ever held (:func:`single_linkage`,
   :func:`cluster_points`);
3. each cluster's centroid is its member with the (upper) median score
   (:func:`median_centroids`);
4. the inverse temperature ``beta = f(sigma)`` from the model uncertainty ``sigma``
   (:func:`beta_from_uncertainty`);
5. for each of the ``budget`` picks: a centroid ``c`` drawn with ``p(c) ∝ score_c`` (with
   replacement), then ``zeta`` drawn from the whole remaining pool with
   ``p(zeta = s) ∝ exp(-beta d(c, s))`` (eq. 3) and removed; marginally over ``c`` this is
   eq. 4 (:func:`annealed_batch`, :func:`annealed_selection`, :func:`pick_distribution`).

Everything is a pure function over tensors: inputs are never modified, every draw goes through
a ``torch.Generator``, sampling happens in log space (``beta`` reaches 1e9 and more in
practice, and ``beta = inf`` is handled exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dean_nb.runtime import GeneratorLike, make_generator
from dean_nb.validation import (
    check_float_range,
    check_int_range,
    check_ndim,
    check_probabilities,
)

__all__ = [
    "BETA_KINDS",
    "LINKAGES",
    "MAX_DENSE_POOL",
    "AnnealedSelection",
    "annealed_batch",
    "annealed_selection",
    "beta_from_uncertainty",
    "cluster_points",
    "js_distance",
    "median_centroids",
    "minimum_spanning_tree",
    "pick_distribution",
    "sample_annealed",
    "single_linkage",
]

BETA_KINDS: tuple[str, ...] = ("exp", "pow4", "log")
LINKAGES: tuple[str, ...] = ("single", "average", "complete")
#: Largest pool that ``cluster_points`` accepts for the linkages that need a dense N x N matrix.
MAX_DENSE_POOL = 20_000
#: Default number of (row, column, class) elements one chunk of :func:`js_distance` holds.
JS_CHUNK_ELEMENTS = 1 << 20
#: Most distance values the sampler keeps cached (rows d(c, .) of drawn centroids).
_ROW_CACHE_ELEMENTS = 1 << 24
#: Prim steps on fewer (point, class) elements than this run on one CPU thread.
_SERIAL_BELOW_ELEMENTS = 1 << 17

_LN2 = math.log(2.0)
# exp(x) overflows a float64 just above this.
_MAX_EXP_ARG = math.log(np.finfo(np.float64).max)


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


def _normalise_rows(probs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows rescaled to sum to exactly 1 (as scipy's ``jensenshannon`` does); a new tensor."""
    probs = probs.to(dtype)
    return probs / probs.sum(dim=-1, keepdim=True)


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
    p2 = p.unsqueeze(0) if squeeze_p else p
    q2 = q.unsqueeze(0) if squeeze_q else q
    check_ndim("p", p2, 2, "(N, K)")
    check_ndim("q", q2, 2, "(M, K)")
    if p2.shape[1] != q2.shape[1]:
        raise ValueError(
            f"p and q must have the same number of classes K, got {p2.shape[1]} and {q2.shape[1]}"
        )
    check_int_range("chunk_elements", chunk_elements, 1)
    check_probabilities("p", p2)
    check_probabilities("q", q2)
    dtype = _float_dtype(p2, q2)
    p2 = _normalise_rows(p2, dtype)
    q2 = _normalise_rows(q2, dtype).to(p2.device)
    n, k = p2.shape
    m = q2.shape[0]
    neg_h_p = _neg_entropy(p2)
    neg_h_q = _neg_entropy(q2)
    out = torch.empty((n, m), dtype=dtype, device=p2.device)
    # Chunk over both axes so that one chunk holds at most ``chunk_elements`` elements.
    cols = max(1, min(m, chunk_elements // k))
    rows = max(1, min(n, chunk_elements // (k * cols)))
    for c0 in range(0, m, cols):
        qc = q2[c0 : c0 + cols]
        for r0 in range(0, n, rows):
            mid = 0.5 * (p2[r0 : r0 + rows, None, :] + qc[None, :, :])
            js = _js_bits_from_parts(
                neg_h_p[r0 : r0 + rows, None], neg_h_q[None, c0 : c0 + cols], mid
            )
            out[r0 : r0 + rows, c0 : c0 + cols] = js.sqrt_()
    if squeeze_q:
        out = out[:, 0]
    if squeeze_p:
        out = out[0]
    return out


def _paired_js_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``d(p_e, q_e)`` for each row pair: (E, K), (E, K) -> (E,), rows already normalised."""
    return _js_bits_from_parts(_neg_entropy(p), _neg_entropy(q), 0.5 * (p + q)).sqrt_()


# --------------------------------------------------------------------------------------------
# Inverse temperature (step 6)
# --------------------------------------------------------------------------------------------


def beta_from_uncertainty(sigma: float, kind: str = "exp", scale: float = 0.25) -> float:
    """The inverse temperature ``beta = f(sigma)`` of deterministic annealing (section 4.1).

    ``f`` maps the model uncertainty ``sigma`` in [0, 1] (mean variation ratio) to
    ``[0, inf]`` and grows without bound as ``sigma -> 0``:

    - ``"exp"``: ``scale * (e^(1/sigma) - 1)`` (MNIST, CIFAR10, SVHN in the authors' runs);
    - ``"pow4"``: ``scale * (4^(1/sigma) - 1)`` (EMNIST, CIFAR100);
    - ``"log"``: ``-scale * ln(sigma)`` (0 at ``sigma = 1``).

    ``sigma = 0`` gives ``inf`` (the sampler then returns the centroids themselves); a tiny
    ``sigma`` may overflow to ``inf`` as well, silently.

    Args:
        sigma: model uncertainty in [0, 1].
        kind: one of :data:`BETA_KINDS`.
        scale: positive finite multiplier (the authors use 1/4).

    Returns:
        ``beta`` as a Python float in ``[0, inf]``.
    """
    if kind not in BETA_KINDS:
        raise ValueError(f"kind must be one of {', '.join(BETA_KINDS)}; got {kind!r}")
    sigma = check_float_range("sigma", sigma, 0.0, 1.0)
    scale = check_float_range("scale", scale, 0.0, math.inf, low_inclusive=False)
    if math.isinf(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    if sigma == 0.0:
        return math.inf
    if kind == "log":
        return scale * -math.log(sigma) + 0.0  # + 0.0 turns -0.0 into 0.0 at sigma = 1
    exponent = (1.0 if kind == "exp" else math.log(4.0)) / sigma
    if exponent >= _MAX_EXP_ARG:
        return math.inf
    return scale * math.expm1(exponent)


# --------------------------------------------------------------------------------------------
# Clustering (step 4) and centroids (step 5)
# --------------------------------------------------------------------------------------------


def _check_pool(mean_probs: torch.Tensor) -> torch.Tensor:
    check_ndim("mean_probs", mean_probs, 2, "(N, K)")
    if mean_probs.shape[0] == 0:
        raise ValueError("mean_probs must hold at least one row (the pool is empty)")
    return check_probabilities("mean_probs", mean_probs)


def _prim_tree(probs_n_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prim's algorithm on the complete graph weighted by the JS divergence of the rows.

    Runs on ``probs_n_k``'s device and dtype in O(N K) memory: each step computes the
    divergence of the newly added point to every point still outside the tree (a few
    vectorised operations over a (K, r) block), so the whole run is N^2 K / 2 element
    operations. Points
    outside the tree live in the first ``r`` columns of one buffer; a point that joins the
    tree is swapped with the last live column, so every update touches live points only and
    the loop never synchronises with the device. On the CPU, the late steps (fewer than
    ``_SERIAL_BELOW_ELEMENTS`` live elements) run with ``torch.set_num_threads(1)``, restored
    on exit, since a thread synchronisation per small operation costs more than it saves
    (the setting is process-wide: do not run torch CPU work in other threads meanwhile).

    The JS divergence is a monotone function of ``d`` (``d = sqrt(JS / ln 2)``), so its
    minimum spanning tree is the one of ``d``. Ties go to the first live column, then the
    earliest tree node: deterministic for a given input.

    Args:
        probs_n_k: (N, K) normalised rows, N >= 2.

    Returns:
        ``(child, parent)``: two (N - 1,) int64 tensors on the CPU; edge ``e`` joins
        ``child[e]`` (added at step ``e + 1``) to ``parent[e]`` (already in the tree).
    """
    n, k = probs_n_k.shape
    device, dtype = probs_n_k.device, probs_n_k.dtype
    tiny = torch.finfo(dtype).tiny
    # Float state, one column per live point: K probabilities, sum p ln p, current key.
    state = torch.empty((k + 2, n), dtype=dtype, device=device)
    # Zeros become the smallest normal number, so that p + q > 0 and (p + q) ln(p + q) needs no
    # clamp inside the loop (the divergence moves by ~1e-36 at most).
    state[:k] = probs_n_k.T.clamp_min(tiny)
    state[k] = _neg_entropy(probs_n_k)
    state[k + 1] = math.inf
    # Integer state: original index, nearest tree node so far.
    links = torch.zeros((2, n), dtype=torch.int64, device=device)
    links[0] = torch.arange(n, device=device)
    scratch = torch.empty(2 * k * n, dtype=dtype, device=device)
    proxy_all = torch.empty(n, dtype=dtype, device=device)
    edges = torch.empty((2, n - 1), dtype=torch.int64, device=device)

    pos = torch.zeros(1, dtype=torch.int64, device=device)  # live column joining the tree
    # Late steps touch few elements; running them on one CPU thread avoids paying a thread
    # synchronisation per operation (ruinous on a busy machine). Restored afterwards.
    threads = torch.get_num_threads()
    serial_below = _SERIAL_BELOW_ELEMENTS // k + 1 if device.type == "cpu" and threads > 1 else 0
    try:
        for live in range(n, 1, -1):
            if live == min(n, serial_below):
                torch.set_num_threads(1)
            new_col = state.index_select(1, pos)  # (K + 2, 1)
            new_link = links.index_select(1, pos)  # (2, 1): (index, nearest tree node)
            if live < n:
                edges[:, n - live - 1 : n - live] = new_link
            # Swap-remove: the last live column takes the vacated place.
            state.index_copy_(1, pos, state[:, live - 1 : live])
            links.index_copy_(1, pos, links[:, live - 1 : live])
            r = live - 1
            # Divergence proxy of every live point to the new tree node:
            #   2 JS - 2 ln 2 = sum p ln p + sum q ln q - sum (p + q) ln (p + q).
            s = scratch[: k * r].view(k, r)
            slogs = scratch[k * r : 2 * k * r].view(k, r)
            torch.add(state[:k, :r], new_col[:k], out=s)
            torch.log(s, out=slogs)
            slogs.mul_(s)
            proxy = proxy_all[:r]
            torch.sum(slogs, dim=0, out=proxy)
            torch.sub(state[k, :r], proxy, out=proxy)
            proxy.add_(new_col[k])
            key = state[k + 1, :r]
            closer = proxy < key
            torch.minimum(key, proxy, out=key)
            links[1, :r].masked_fill_(closer, new_link[0, 0])
            pos = torch.argmin(key).view(1)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    # The last live point joins through its nearest tree node.
    edges[:, n - 2 : n - 1] = links.index_select(1, pos)
    edges = edges.cpu()
    return edges[0], edges[1]


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
    _check_pool(mean_probs)
    n = mean_probs.shape[0]
    if n == 1:
        empty = torch.empty(0, dtype=torch.int64)
        return empty, empty.clone(), torch.empty(0, dtype=torch.float64)
    probs = _normalise_rows(mean_probs.detach(), _float_dtype(mean_probs))
    child, parent = _prim_tree(probs)
    exact = _normalise_rows(mean_probs.detach().cpu(), torch.float64)
    weight = _paired_js_distance(exact[child], exact[parent])
    return child, parent, weight


def _check_n_clusters(n_clusters: int, n: int) -> int:
    return check_int_range("n_clusters", n_clusters, 1, n)


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
    _check_pool(mean_probs)
    n = mean_probs.shape[0]
    n_clusters = _check_n_clusters(n_clusters, n)
    child, parent, weight = minimum_spanning_tree(mean_probs)
    w = weight.numpy()
    heaviest_first = np.lexsort((np.arange(w.size), -w))
    keep = heaviest_first[n_clusters - 1 :]
    graph = coo_matrix(
        (np.ones(keep.size, dtype=np.int8), (child.numpy()[keep], parent.numpy()[keep])),
        shape=(n, n),
    )
    n_found, labels = connected_components(graph, directed=False)
    if n_found != n_clusters:  # cannot happen for a spanning tree; guard the invariant
        raise RuntimeError(f"expected {n_clusters} clusters, found {n_found}")
    return torch.from_numpy(labels.astype(np.int64)).to(mean_probs.device)


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
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {', '.join(LINKAGES)}; got {linkage!r}")
    _check_pool(mean_probs)
    n = mean_probs.shape[0]
    n_clusters = _check_n_clusters(n_clusters, n)
    if linkage == "single":
        return single_linkage(mean_probs, n_clusters)
    if n > MAX_DENSE_POOL:
        raise ValueError(
            f"linkage={linkage!r} needs a dense N x N distance matrix; the pool has N={n} "
            f"points but at most {MAX_DENSE_POOL} are allowed (use linkage='single', or "
            "subsample the pool)"
        )
    if n == 1:
        return torch.zeros(1, dtype=torch.int64, device=mean_probs.device)
    from sklearn.cluster import AgglomerativeClustering

    probs = mean_probs.detach().to("cpu", torch.float64)
    dist = js_distance(probs, probs).numpy()
    np.fill_diagonal(dist, 0.0)
    raw = AgglomerativeClustering(
        n_clusters=n_clusters, metric="precomputed", linkage=linkage
    ).fit_predict(dist)
    # Renumber in order of the smallest member index (as single_linkage does).
    _, first = np.unique(raw, return_index=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return torch.from_numpy(rank[raw]).to(mean_probs.device)


def _check_scores(scores: torch.Tensor, n: int, name: str = "scores") -> torch.Tensor:
    check_ndim(name, scores, 1, "(N,)")
    if scores.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError(f"{name} contains NaN or inf; scores must be finite and >= 0")
    if (scores < 0).any():
        raise ValueError(f"{name} contains negative entries; scores must be finite and >= 0")
    return scores


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
    n = labels.shape[0]
    if n == 0:
        raise ValueError("labels must not be empty")
    check_ndim("scores", scores, 1, "(N,)")
    if scores.shape[0] != n:
        raise ValueError(f"scores must have shape ({n},) like labels, got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contains NaN or inf; scores must be finite")
    lab = labels.detach().cpu().numpy().astype(np.int64)
    n_clusters = int(lab.max()) + 1
    counts = np.bincount(lab, minlength=n_clusters) if lab.min() >= 0 else None
    if counts is None or (counts == 0).any():
        raise ValueError(
            "labels must use every cluster id 0 .. C-1 (got ids in "
            f"[{int(lab.min())}, {int(lab.max())}] with gaps or negatives)"
        )
    sc = scores.detach().cpu().to(torch.float64).numpy()
    order = np.lexsort((np.arange(n), sc, lab))  # by label, then score, then index
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    centroids = order[starts + counts // 2]
    return torch.from_numpy(centroids.astype(np.int64)).to(labels.device)


# --------------------------------------------------------------------------------------------
# The Gibbs sampler (step 7, eq. 3 and 4)
# --------------------------------------------------------------------------------------------


def _check_beta(beta: float) -> float:
    return check_float_range("beta", beta, 0.0, math.inf)


def _centroid_probabilities(weights: torch.Tensor) -> torch.Tensor:
    """``p(c) ∝ weight_c`` in float64; all-zero weights give the uniform distribution."""
    w = weights.detach().to(torch.float64)
    top = w.max()
    if top <= 0:
        return torch.full_like(w, 1.0 / w.numel())
    w = w / top  # avoids overflow of the sum for huge scores
    return w / w.sum()


class _DistanceRows:
    """``d(c, .)`` rows over the whole pool (float64), computed only for the centroids drawn.

    The pool is normalised once. When the rows of all ``drawn`` centroids fit in
    ``max_elements`` values they are computed up front, a block of centroids at a time (few,
    large operations); otherwise each row is computed on first use and at most
    ``max_elements`` values are cached (the least recently used row is dropped, and
    recomputed if asked for again), so memory stays bounded whatever the budget.
    ``d(c, c)`` is set to exactly 0.
    """

    def __init__(self, mean_probs: torch.Tensor, drawn: list[int], max_elements: int) -> None:
        self.probs = _normalise_rows(mean_probs.detach(), _float_dtype(mean_probs))
        self.neg_h = _neg_entropy(self.probs)
        n, k = self.probs.shape
        self.max_rows = max(1, max_elements // n)
        self.rows: dict[int, torch.Tensor] = {}
        unique = list(dict.fromkeys(drawn))
        if len(unique) <= self.max_rows:
            block = max(1, JS_CHUNK_ELEMENTS // (n * k))
            for b0 in range(0, len(unique), block):
                self._compute(unique[b0 : b0 + block])

    def _compute(self, cs: list[int]) -> None:
        idx = torch.tensor(cs, dtype=torch.int64, device=self.probs.device)
        mid = 0.5 * (self.probs[idx, None, :] + self.probs[None, :, :])
        rows = _js_bits_from_parts(self.neg_h[idx, None], self.neg_h[None, :], mid).sqrt_()
        rows = rows.to(torch.float64)
        rows[torch.arange(len(cs), device=idx.device), idx] = 0.0
        for c, row in zip(cs, rows, strict=True):
            if len(self.rows) >= self.max_rows:
                self.rows.pop(next(iter(self.rows)))
            self.rows[c] = row

    def __call__(self, c: int) -> torch.Tensor:
        if c not in self.rows:
            self._compute([c])
        row = self.rows.pop(c)
        self.rows[c] = row  # (re)inserted last: the most recently used
        return row


def _pick(
    row: torch.Tensor,
    c: int,
    beta: float,
    taken: torch.Tensor,
    generator: torch.Generator,
) -> int:
    """One draw of eq. 3 given the centroid ``c``: ``p(s) ∝ exp(-beta d(c, s))`` over the
    points not yet ``taken``.

    Exact and in log space: the log-weights ``-beta d(c, s)`` (``-inf`` where taken) are
    normalised with a softmax (max subtracted first, so ``beta = 1e12`` is fine) and one index
    drawn with ``torch.multinomial``. ``beta = inf`` is not a limit of that computation
    (``inf * 0``): it takes the nearest available point, ``c`` itself when available, then the
    smallest index.
    """
    if math.isinf(beta):
        if not bool(taken[c]):
            return c
        return int(torch.argmin(row.masked_fill(taken, math.inf)))
    if beta == 0.0:
        weights = (~taken).to(torch.float64)
    else:
        weights = torch.softmax((row * -beta).masked_fill_(taken, -math.inf), dim=0)
    weights = weights.to(generator.device)
    return int(torch.multinomial(weights, 1, generator=generator))


def sample_annealed(
    mean_probs: torch.Tensor,
    centroids: torch.Tensor,
    centroid_weights: torch.Tensor,
    budget: int,
    beta: float,
    generator: GeneratorLike = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gibbs batch sampler of eq. 3, given the centroids (Algorithm 1, lines 5-8).

    For each of the ``budget`` picks: draw a centroid ``c`` with ``p(c) ∝ centroid_weights``
    (with replacement; all-zero weights mean uniform), then draw ``zeta`` from the whole
    remaining pool with ``p(zeta = s) ∝ exp(-beta d(c, s))`` and remove it. ``beta = 0`` is
    uniform sampling without replacement; ``beta = inf`` returns the nearest remaining point to
    ``c`` (``c`` itself while available). Only the rows ``d(c, .)`` of centroids actually drawn
    are computed, once each.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        centroids: (C,) int64 indices into the pool.
        centroid_weights: (C,) finite non-negative weights (the centroids' scores).
        budget: batch size b, in [1, N].
        beta: inverse temperature in [0, inf].
        generator: seed or ``torch.Generator``; same seed, same batch.

    Returns:
        ``(indices, drawn)``: (budget,) int64 distinct pool indices in pick order, and the
        (budget,) int64 pool index of the centroid drawn for each pick, on ``mean_probs``'
        device.
    """
    _check_pool(mean_probs)
    n = mean_probs.shape[0]
    check_ndim("centroids", centroids, 1, "(C,)")
    if centroids.numel() == 0:
        raise ValueError("centroids must hold at least one index")
    if centroids.dtype.is_floating_point or centroids.dtype == torch.bool:
        raise TypeError(f"centroids must be an integer tensor, got dtype {centroids.dtype}")
    if bool((centroids < 0).any()) or bool((centroids >= n).any()):
        raise ValueError(f"centroids must be indices in [0, {n - 1}]")
    _check_scores(centroid_weights, centroids.numel(), "centroid_weights")
    budget = check_int_range("budget", budget, 1, n)
    beta = _check_beta(beta)
    device = mean_probs.device
    gen = make_generator(generator, device)

    p_centroid = _centroid_probabilities(centroid_weights).to(gen.device)
    which = torch.multinomial(p_centroid, budget, replacement=True, generator=gen)
    drawn = centroids.detach().cpu()[which.cpu()].to(torch.int64)

    drawn_list = drawn.tolist()
    rows = _DistanceRows(mean_probs, [] if beta == 0.0 else drawn_list, _ROW_CACHE_ELEMENTS)
    taken = torch.zeros(n, dtype=torch.bool, device=device)
    picks: list[int] = []
    zeros = torch.zeros(n, dtype=torch.float64, device=device)
    for c in drawn_list:
        row = zeros if beta == 0.0 else rows(c)
        s = _pick(row, c, beta, taken, gen)
        taken[s] = True
        picks.append(s)
    indices = torch.tensor(picks, dtype=torch.int64, device=device)
    return indices, drawn.to(device)


def pick_distribution(
    mean_probs: torch.Tensor,
    centroids: torch.Tensor,
    centroid_weights: torch.Tensor,
    beta: float,
    taken: torch.Tensor | None = None,
) -> torch.Tensor:
    """The exact distribution of the next pick, eq. 4.

    ``p(zeta = s) = sum_c p(c) exp(-beta d(c, s)) / sum_{s' in P'} exp(-beta d(c, s'))`` over
    the points ``P'`` not yet taken, with ``p(c) ∝ centroid_weights`` (uniform when they are
    all zero); ``beta = inf`` puts each centroid's mass on its nearest available point
    (itself when available, then the smallest index), as the sampler does. Dense in
    (C, N): meant for figures and checks on small pools.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool.
        centroids: (C,) int64 pool indices.
        centroid_weights: (C,) finite non-negative weights.
        beta: inverse temperature in [0, inf].
        taken: optional (N,) bool mask of points already picked (not all of them).

    Returns:
        (N,) float64 probabilities summing to 1, zero on taken points.
    """
    _check_pool(mean_probs)
    n = mean_probs.shape[0]
    check_ndim("centroids", centroids, 1, "(C,)")
    _check_scores(centroid_weights, centroids.numel(), "centroid_weights")
    beta = _check_beta(beta)
    device = mean_probs.device
    if taken is None:
        taken = torch.zeros(n, dtype=torch.bool, device=device)
    check_ndim("taken", taken, 1, "(N,)")
    if taken.shape[0] != n or taken.dtype != torch.bool or bool(taken.all()):
        raise ValueError(f"taken must be an (N,) = ({n},) bool mask leaving some point free")
    taken = taken.to(device)
    cents = centroids.to(device)
    dist = js_distance(mean_probs.detach()[cents], mean_probs.detach()).to(torch.float64)
    dist[torch.arange(cents.numel(), device=device), cents] = 0.0
    if math.isinf(beta):
        d = dist.masked_fill(taken, math.inf)
        nearest = torch.argmin(d, dim=1)
        nearest = torch.where(taken[cents], nearest, cents)
        per_centroid = torch.zeros_like(dist)
        per_centroid[torch.arange(cents.numel(), device=device), nearest] = 1.0
    else:
        logits = (dist * -beta).masked_fill_(taken, -math.inf)
        per_centroid = torch.softmax(logits, dim=1)
    p_c = _centroid_probabilities(centroid_weights).to(device)
    return p_c @ per_centroid


@dataclass(frozen=True)
class AnnealedSelection:
    """One DeAn acquisition (Algorithm 1, lines 3-8), with what the book's figures show.

    Attributes:
        indices: (budget,) int64 distinct pool indices, in pick order.
        centroids: (C,) int64 pool index of each cluster's median-score centroid.
        labels: (N,) int64 cluster label of every pool point.
        drawn_centroids: (budget,) int64 pool index of the centroid drawn for each pick.
        beta: the inverse temperature used.
    """

    indices: torch.Tensor
    centroids: torch.Tensor
    labels: torch.Tensor
    drawn_centroids: torch.Tensor
    beta: float


def annealed_selection(
    mean_probs: torch.Tensor,
    scores: torch.Tensor,
    budget: int,
    beta: float,
    n_clusters: int,
    generator: GeneratorLike = None,
    linkage: str = "single",
) -> AnnealedSelection:
    """One DeAn batch (Algorithm 1, lines 3-8; eq. 3 and 4) with its clusters and centroids.

    Clusters the pool under ``d = sqrt(JS)`` (:func:`cluster_points`), takes each cluster's
    median-score member as its centroid (:func:`median_centroids`) and runs the Gibbs sampler
    (:func:`sample_annealed`) with ``p(c) ∝ score_c``.

    Args:
        mean_probs: (N, K) mean predictive distributions of the pool (rows on the simplex).
        scores: (N,) finite importance scores >= 0 (BALD, eq. 2).
        budget: batch size b, in [1, N].
        beta: inverse temperature in [0, inf] (see :func:`beta_from_uncertainty`).
        n_clusters: number of clusters, in [1, N].
        generator: seed or ``torch.Generator``; same seed, same batch.
        linkage: one of :data:`LINKAGES` (the authors use ``"single"``).

    Returns:
        An :class:`AnnealedSelection` (tensors on ``mean_probs``' device).
    """
    _check_pool(mean_probs)
    n = mean_probs.shape[0]
    _check_scores(scores, n)
    budget = check_int_range("budget", budget, 1, n)
    n_clusters = _check_n_clusters(n_clusters, n)
    beta = _check_beta(beta)
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {', '.join(LINKAGES)}; got {linkage!r}")
    labels = cluster_points(mean_probs, n_clusters, linkage)
    centroids = median_centroids(labels, scores.to(labels.device))
    weights = scores.detach().to(centroids.device)[centroids]
    indices, drawn = sample_annealed(mean_probs, centroids, weights, budget, beta, generator)
    return AnnealedSelection(
        indices=indices, centroids=centroids, labels=labels, drawn_centroids=drawn, beta=beta
    )


def annealed_batch(
    mean_probs: torch.Tensor,
    scores: torch.Tensor,
    budget: int,
    beta: float,
    n_clusters: int,
    generator: GeneratorLike = None,
    linkage: str = "single",
) -> torch.Tensor:
    """The DeAn batch: ``budget`` distinct pool indices (Algorithm 1, lines 3-8; eq. 3/4).

    Same arguments as :func:`annealed_selection`; returns only its ``indices``, a (budget,)
    int64 tensor on ``mean_probs``' device.
    """
    return annealed_selection(
        mean_probs, scores, budget, beta, n_clusters, generator=generator, linkage=linkage
    ).indices
