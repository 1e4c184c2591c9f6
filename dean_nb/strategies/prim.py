"""Prim's minimum spanning tree of the pool under the JS divergence, in O(N K) memory.

:func:`prim_tree` is the exact tree behind DeAn's exact single linkage
(:func:`dean_nb.strategies.clustering.minimum_spanning_tree`). Each of its N - 1 steps adds
the point outside the tree (*live*) nearest to the tree, then compares the new tree node
``q`` with every live point ``p`` through the divergence proxy

    proxy(p, q) = sum_k p_k ln p_k + sum_k q_k ln q_k - sum_k (p_k + q_k) ln(p_k + q_k)
                = 2 JS_nats(p, q) - 2 ln 2,

and lowers ``p``'s key (its proxy to the nearest tree node) where ``q`` is nearer: N^2 K / 2
logarithms in all.

On the CPU most of them are skipped with a lower bound that needs none. JS in bits is at
least the squared Hellinger distance ``h^2 = 1 - sum_k sqrt(p_k q_k)`` (the bracket of
:mod:`dean_nb.strategies.knn_linkage`), so

    proxy(p, q) >= bound(p, q) = -2 ln 2 * sum_k sqrt(p_k q_k),

one multiply-add per (point, class) with the square roots stored once. Only a point whose
bound does not exceed its key (plus a margin for rounding, :func:`_prune_margin`) can move
closer to the tree; the proxy is computed for these *candidates* alone. On the benchmark's
model-like pools (K = 10) 98 % of the proxies are skipped at N = 10,000, 99.3 % at 60,000.

The tree is bit for bit the one of computing every proxy (tests/test_prim.py checks it against
the unpruned loop). A candidate's proxy goes through the same operations in the same order:
the add, log and multiply are elementwise (torch's log gives an element the same bits
whatever the tensor's length or the element's place), but torch's sum over the classes of a
(K, r) block is not: its vectorised body adds a column's K values in order, the columns left
over at the end in interleaved partial sums, so a column gathered elsewhere may round
differently (for K >= 5; enough to move edges). The candidates' products are therefore
written back to their own columns of the (K, r) block, which is summed whole (one cheap pass).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from dean_nb.validation import check_int_range, check_ndim, check_probabilities

__all__ = ["prim_tree"]

#: Prim steps on fewer (point, class) elements than this run on one CPU thread.
_SERIAL_BELOW_ELEMENTS = 1 << 17
#: On the CPU, steps with fewer live points than this compute every proxy (the bound saves
#: little there and costs a few more calls).
_PRUNE_FROM_LIVE = 512
#: A step whose candidates are more than this share of the live points computes every proxy.
_PRUNE_MAX_SHARE = 0.5

_LN2 = math.log(2.0)


def prim_tree(probs_N_K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prim's algorithm on the complete graph weighted by the JS divergence of the rows.

    Runs on ``probs_N_K``'s device and dtype in O(N K) memory, starting from point 0: each
    step relates the newly added point to every point still outside the tree through a few
    vectorised operations over a (K, r) block (r live points). Points outside the tree live
    in the first ``r`` columns of one buffer; a point that joins the tree is swapped with the
    last live column, so every update touches live points only. On the CPU, the proxy is
    computed for the candidates of the Hellinger bound alone (module docstring) and the late
    steps (fewer than ``_SERIAL_BELOW_ELEMENTS`` live elements) run with
    ``torch.set_num_threads(1)``, restored on exit, since a thread synchronisation per small
    operation costs more than it saves (the setting is process-wide: do not run torch CPU work
    in other threads meanwhile). On other devices every proxy is computed, so that the loop
    never waits for the device (finding the candidates would, at every step).

    The JS divergence is a monotone function of ``d = sqrt(JS / ln 2)``, so its minimum
    spanning tree is the one of ``d``. Ties go to the first live column, then the earliest
    tree node: deterministic for a given input.

    Args:
        probs_N_K: (N, K) float32 or float64 rows on the simplex (normalised), N >= 2.

    Returns:
        ``(child_E, parent_E)``: two (E,) = (N - 1,) int64 tensors on the CPU; edge ``e`` joins
        ``child_E[e]`` (added at step ``e + 1``) to ``parent_E[e]`` (already in the tree).
    """
    check_ndim("probs_N_K", probs_N_K, 2, "(N, K)")
    check_int_range("the number of points N", probs_N_K.shape[0], 2)
    if probs_N_K.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"probs_N_K must be float32 or float64, got dtype {probs_N_K.dtype}")
    probs_N_K = check_probabilities("probs_N_K", probs_N_K.detach())
    if probs_N_K.device.type == "cpu":
        return _prim_tree_cpu(probs_N_K)
    return _prim_tree_device(probs_N_K)


def _prim_state(
    probs_N_K: torch.Tensor, with_roots: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prim_tree`'s state, one column per point, every point still outside the tree.

    Returns:
        ``(state, links)``: ``state`` (K + 2, N) in ``probs_N_K``'s dtype holds each point's K
        probabilities, its ``sum p ln p`` and its current key (``inf``), then with
        ``with_roots`` K more rows ``sqrt(2 ln 2 p)`` (the bound's factors; (2 K + 2, N) in
        all); ``links`` (2, N) int64 holds its original index and its nearest tree node so far.
    """
    n_points, n_classes = probs_N_K.shape
    device, dtype = probs_N_K.device, probs_N_K.dtype
    tiny = torch.finfo(dtype).tiny
    n_rows = 2 * n_classes + 2 if with_roots else n_classes + 2
    state = torch.empty((n_rows, n_points), dtype=dtype, device=device)
    # Zeros become the smallest normal number, so that p + q > 0 and (p + q) ln(p + q) needs no
    # clamp inside the loop (the divergence moves by ~1e-36 at most).
    state[:n_classes] = probs_N_K.T.clamp_min(tiny)
    state[n_classes] = torch.special.xlogy(probs_N_K, probs_N_K).sum(dim=-1)
    state[n_classes + 1] = math.inf
    if with_roots:
        torch.sqrt(state[:n_classes] * (2.0 * _LN2), out=state[n_classes + 2 :])
    links = torch.zeros((2, n_points), dtype=torch.int64, device=device)
    links[0] = torch.arange(n_points, device=device)
    return state, links


@contextmanager
def _serial_late_steps(n_points: int, n_classes: int, device: torch.device) -> Iterator[int]:
    """The live count from which the loop runs on one CPU thread (0: never); restores after."""
    threads = torch.get_num_threads()
    serial_below = (
        _SERIAL_BELOW_ELEMENTS // n_classes + 1 if device.type == "cpu" and threads > 1 else 0
    )
    try:
        yield min(n_points, serial_below)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _relax_all(
    n_classes: int,
    state: torch.Tensor,
    links: torch.Tensor,
    new_col: torch.Tensor,
    new_index: torch.Tensor | int,
    r: int,
    scratch: torch.Tensor,
    proxy_all: torch.Tensor,
) -> None:
    """Lower the keys of all ``r`` live points with the new tree node (in place).

    ``new_col`` (>= K + 1, 1) is the new node's state column, ``new_index`` its original
    index; ``scratch`` holds at least 2 K r elements and ``proxy_all`` at least r.
    """
    # Divergence proxy of every live point to the new tree node:
    #   2 JS - 2 ln 2 = sum p ln p + sum q ln q - sum (p + q) ln (p + q).
    s_K_r = scratch[: n_classes * r].view(n_classes, r)
    slogs_K_r = scratch[n_classes * r : 2 * n_classes * r].view(n_classes, r)
    torch.add(state[:n_classes, :r], new_col[:n_classes], out=s_K_r)
    torch.log(s_K_r, out=slogs_K_r)
    slogs_K_r.mul_(s_K_r)
    proxy_r = proxy_all[:r]
    torch.sum(slogs_K_r, dim=0, out=proxy_r)
    torch.sub(state[n_classes, :r], proxy_r, out=proxy_r)
    proxy_r.add_(new_col[n_classes])
    key_r = state[n_classes + 1, :r]
    closer_r = proxy_r < key_r
    torch.minimum(key_r, proxy_r, out=key_r)
    links[1, :r].masked_fill_(closer_r, new_index)


def _prim_tree_device(probs_N_K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prim_tree` computing every proxy, without a host synchronisation per step."""
    n_points, n_classes = probs_N_K.shape
    device, dtype = probs_N_K.device, probs_N_K.dtype
    state, links = _prim_state(probs_N_K)
    scratch = torch.empty(2 * n_classes * n_points, dtype=dtype, device=device)
    proxy_all = torch.empty(n_points, dtype=dtype, device=device)
    edges = torch.empty((2, n_points - 1), dtype=torch.int64, device=device)
    pos = torch.zeros(1, dtype=torch.int64, device=device)  # live column joining the tree
    with _serial_late_steps(n_points, n_classes, device) as serial_from:
        for live in range(n_points, 1, -1):
            if live == serial_from:
                torch.set_num_threads(1)
            new_col = state.index_select(1, pos)  # (K + 2, 1)
            new_link = links.index_select(1, pos)  # (2, 1): (index, nearest tree node)
            if live < n_points:
                edges[:, n_points - live - 1 : n_points - live] = new_link
            # Swap-remove: the last live column takes the vacated place.
            state.index_copy_(1, pos, state[:, live - 1 : live])
            links.index_copy_(1, pos, links[:, live - 1 : live])
            _relax_all(
                n_classes, state, links, new_col, new_link[0, 0], live - 1, scratch, proxy_all
            )
            pos = torch.argmin(state[n_classes + 1, : live - 1]).view(1)
    # The last live point joins through its nearest tree node.
    edges[:, n_points - 2 : n_points - 1] = links.index_select(1, pos)
    edges = edges.cpu()
    return edges[0], edges[1]


def _prim_tree_cpu(probs_N_K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prim_tree` on the CPU, computing the proxy for the bound's candidates only.

    The bookkeeping goes through numpy views of the state (far cheaper per call than torch on
    small arrays); every proxy goes through the operations of :func:`_relax_all`.
    """
    n_points, n_classes = probs_N_K.shape
    state, links = _prim_state(probs_N_K, with_roots=True)
    state_np, links_np = state.numpy(), links.numpy()
    key_N = state_np[n_classes + 1]
    # Against the rows (key, sqrt(2 ln 2 p)): key(p) - bound(p, q) for every live p.
    weights = np.ones(n_classes + 1, dtype=state_np.dtype)
    weights_t = torch.from_numpy(weights)
    margin = _prune_margin(n_classes, probs_N_K.dtype)
    scratch = torch.zeros(2 * n_classes * n_points, dtype=probs_N_K.dtype)
    scratch_np = scratch.numpy()
    proxy_all = torch.empty(n_points, dtype=probs_N_K.dtype)
    edges = np.empty((2, n_points - 1), dtype=np.int64)
    pos = 0  # live column joining the tree
    with _serial_late_steps(n_points, n_classes, probs_N_K.device) as serial_from:
        for live in range(n_points, 1, -1):
            if live == serial_from:
                torch.set_num_threads(1)
            new_col = state_np[:, pos].copy()
            new_index = int(links_np[0, pos])
            if live < n_points:
                edges[:, n_points - live - 1] = links_np[:, pos]
            r = live - 1
            state_np[:, pos] = state_np[:, r]  # swap-remove, as on the device
            links_np[:, pos] = links_np[:, r]
            cand_M = None
            if r >= _PRUNE_FROM_LIVE:
                weights[1:] = new_col[n_classes + 2 :]
                rows = torch.from_numpy(state_np[n_classes + 1 :, :r])
                slack_r = torch.mv(rows.T, weights_t).numpy()
                cand_M = (slack_r >= -margin).nonzero()[0]
            if cand_M is None or cand_M.size > _PRUNE_MAX_SHARE * r:
                col = torch.from_numpy(new_col[:, None])
                _relax_all(n_classes, state, links, col, new_index, r, scratch, proxy_all)
            else:
                _relax_candidates(
                    n_classes, state_np, links_np, new_col, new_index, cand_M, r, scratch_np
                )
            pos = int(key_N[:r].argmin())  # the first minimum, as torch.argmin
    edges[:, n_points - 2] = links_np[:, pos]
    edges_t = torch.from_numpy(edges)
    return edges_t[0], edges_t[1]


def _relax_candidates(
    n_classes: int,
    state_np: np.ndarray,
    links_np: np.ndarray,
    new_col: np.ndarray,
    new_index: int,
    cand_M: np.ndarray,
    r: int,
    scratch: np.ndarray,
) -> None:
    """:func:`_relax_all` for the live columns ``cand_M`` (M,) only, through numpy views.

    Each proxy takes the same operations in the same order (add, torch's log, multiply,
    torch's sum over the classes, subtract, add; numpy's add, multiply and subtract round as
    torch's, to the nearest), so it is bit for bit the full step's; the other columns keep
    their keys, which their proxies could not have lowered. ``scratch`` holds at least 2 K r
    elements.
    """
    block = state_np[: n_classes + 2].take(cand_M, axis=1)  # (K + 2, M): p, sum p ln p, key
    s_K_M = block[:n_classes] + new_col[:n_classes, None]
    slogs_K_M = torch.log(torch.from_numpy(s_K_M)).numpy()
    slogs_K_M *= s_K_M
    # torch's sum over the classes rounds a column according to its place in the block (its
    # vectorised body adds the classes in order, the leftover columns in another order), so
    # the products go back to their columns of the full (K, r) block, summed whole; the other
    # columns hold stale values whose sums are never read.
    slogs_K_r = scratch[n_classes * r : 2 * n_classes * r].reshape(n_classes, r)
    slogs_K_r[:, cand_M] = slogs_K_M
    sums_r = torch.sum(torch.from_numpy(slogs_K_r), dim=0).numpy()
    proxy_M = block[n_classes] - sums_r[cand_M]
    proxy_M += new_col[n_classes]
    closer_M = proxy_M < block[n_classes + 1]
    moved = cand_M[closer_M]
    state_np[n_classes + 1, moved] = proxy_M[closer_M]
    links_np[1, moved] = new_index


def _prune_margin(n_classes: int, dtype: torch.dtype) -> float:
    """Slack of the bound test: a column is skipped only where ``bound > key + margin``.

    Where the computed ``key - bound`` is below ``-margin``, the proxy that the full step would
    compute is within ``e_p`` of the exact proxy, which is at least the exact bound, within
    ``e_b`` of the computed one: so that proxy exceeds the key as soon as the margin exceeds
    ``e_p + e_b``. Both are a few rounding units per term (the proxy sums about 3 K terms of
    size at most ``ln K + 2``, logarithms within one unit; the bound K + 1 products; the rows
    sum to 1 only within K units): ``e_p + e_b < 9 (K + 3)(ln K + 1) eps``. The margin is
    about 4 times that: 2e-4 in float32 and 4e-13 in float64 at K = 10 (the share of skipped
    proxies moves by less than 0.1 % against no margin at all).
    """
    return 32.0 * (n_classes + 2) * (math.log(n_classes) + 2.0) * torch.finfo(dtype).eps
