"""Tests of dean_nb.strategies.prim: the pruned Prim tree is bit for bit the unpruned one.

The reference below is the Prim loop as it was before the Hellinger bound (every proxy
computed, torch only); the pruned tree must equal it with ``torch.equal`` on random,
clustered, tied, one-hot and zero-laden pools, in float32 and float64, on one thread and on
two. Then the bound itself, the per-column identity of the candidate step, the share of
columns the bound skips, and the argument checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dean_nb.strategies import prim
from dean_nb.strategies.clustering import minimum_spanning_tree
from dean_nb.strategies.prim import prim_tree

# ------------------------------------------------------------------------------------------
# The reference: the unpruned loop, verbatim but for the names
# ------------------------------------------------------------------------------------------


def reference_prim_tree(
    probs_N_K: torch.Tensor, serial_below_elements: int = 1 << 17
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prim computing every proxy (the loop before the bound): ``(child_E, parent_E)``."""
    n_points, n_classes = probs_N_K.shape
    device, dtype = probs_N_K.device, probs_N_K.dtype
    state = torch.empty((n_classes + 2, n_points), dtype=dtype, device=device)
    state[:n_classes] = probs_N_K.T.clamp_min(torch.finfo(dtype).tiny)
    state[n_classes] = torch.special.xlogy(probs_N_K, probs_N_K).sum(dim=-1)
    state[n_classes + 1] = math.inf
    links = torch.zeros((2, n_points), dtype=torch.int64, device=device)
    links[0] = torch.arange(n_points, device=device)
    scratch = torch.empty(2 * n_classes * n_points, dtype=dtype, device=device)
    proxy_all = torch.empty(n_points, dtype=dtype, device=device)
    edges = torch.empty((2, n_points - 1), dtype=torch.int64, device=device)
    pos = torch.zeros(1, dtype=torch.int64, device=device)
    threads = torch.get_num_threads()
    serial_below = (
        serial_below_elements // n_classes + 1 if device.type == "cpu" and threads > 1 else 0
    )
    try:
        for live in range(n_points, 1, -1):
            if live == min(n_points, serial_below):
                torch.set_num_threads(1)
            new_col = state.index_select(1, pos)
            new_link = links.index_select(1, pos)
            if live < n_points:
                edges[:, n_points - live - 1 : n_points - live] = new_link
            state.index_copy_(1, pos, state[:, live - 1 : live])
            links.index_copy_(1, pos, links[:, live - 1 : live])
            r = live - 1
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
            links[1, :r].masked_fill_(closer_r, new_link[0, 0])
            pos = torch.argmin(key_r).view(1)
    finally:
        torch.set_num_threads(threads)
    edges[:, n_points - 2 : n_points - 1] = links.index_select(1, pos)
    edges = edges.cpu()
    return edges[0], edges[1]


# ------------------------------------------------------------------------------------------
# Pools
# ------------------------------------------------------------------------------------------


def normalised(p: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Rows rescaled in ``dtype`` as minimum_spanning_tree does before Prim."""
    t = torch.from_numpy(p).to(dtype)
    return t / t.sum(dim=-1, keepdim=True)


def make_pool(kind: str, n: int, k: int, seed: int) -> np.ndarray:
    """(n, k) float64 rows on the simplex of one of the kinds below."""
    rng = np.random.default_rng(seed)
    if kind == "dirichlet":
        return rng.dirichlet(np.full(k, 0.5), size=n)
    if kind == "model-like":  # confident and uncertain rows, as a half-trained classifier's
        alpha = rng.choice([0.05, 0.3, 2.0], size=(n, 1), p=[0.6, 0.3, 0.1])
        p = rng.gamma(alpha * np.ones((n, k)), 1.0) + 1e-12
        return p / p.sum(axis=1, keepdims=True)
    if kind == "duplicates":  # exact ties between proxies everywhere
        base = rng.dirichlet(np.full(k, 0.3), size=max(1, n // 4))
        return base[rng.integers(0, base.shape[0], size=n)]
    if kind == "one-hot":  # one-hot and near-one-hot rows, a few uniform ones
        p = np.eye(k)[rng.integers(0, k, size=n)]
        near = rng.random(n) < 0.5
        p[near] = (1 - 1e-7) * p[near] + 1e-7 / k
        p[rng.random(n) < 0.05] = 1.0 / k
        return p
    if kind == "zeros":  # many exact zeros
        p = rng.dirichlet(np.full(k, 0.5), size=n)
        p[rng.random((n, k)) < 0.4] = 0.0
        p[:, 0] += 1e-3
        return p / p.sum(axis=1, keepdims=True)
    raise ValueError(kind)


KINDS = ["dirichlet", "model-like", "duplicates", "one-hot", "zeros"]


def assert_same_tree(probs: torch.Tensor, **reference_kwargs) -> None:
    child, parent = prim_tree(probs)
    ref_child, ref_parent = reference_prim_tree(probs, **reference_kwargs)
    assert child.dtype == parent.dtype == torch.int64
    assert torch.equal(child, ref_child)
    assert torch.equal(parent, ref_parent)


@pytest.fixture
def prune_everywhere(monkeypatch):
    """Take the candidate path at every step, however few live points or many candidates."""
    monkeypatch.setattr(prim, "_PRUNE_FROM_LIVE", 1)
    monkeypatch.setattr(prim, "_PRUNE_MAX_SHARE", 1.0)


# ------------------------------------------------------------------------------------------
# Bit-identity with the unpruned loop
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "k"), [(2, 2), (3, 3), (17, 10), (500, 3), (500, 10)])
def test_small_pools_match_with_pruning_at_every_step(prune_everywhere, kind, dtype, n, k):
    assert_same_tree(normalised(make_pool(kind, n, k, seed=n + k), dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [2, 10])
def test_3000_points_match_with_the_default_thresholds(kind, dtype, k):
    assert_same_tree(normalised(make_pool(kind, 3000, k, seed=k), dtype))


def test_two_threads_match_including_the_switch_to_one(monkeypatch):
    # 3,400 points and K = 10: the first ~120 steps' sums are split between two threads (more
    # than 32,768 elements), then the loop turns serial below 2^15 live elements.
    monkeypatch.setattr(prim, "_SERIAL_BELOW_ELEMENTS", 1 << 15)
    probs = normalised(make_pool("model-like", 3400, 10, seed=1), torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert_same_tree(probs, serial_below_elements=1 << 15)
        assert torch.get_num_threads() == 2  # restored after the serial steps
    finally:
        torch.set_num_threads(threads)


def test_float32_input_to_minimum_spanning_tree_matches(prune_everywhere):
    p = make_pool("model-like", 400, 10, seed=3).astype(np.float32)
    child, parent, _ = minimum_spanning_tree(torch.from_numpy(p))
    probs = torch.from_numpy(p)
    ref_child, ref_parent = reference_prim_tree(probs / probs.sum(dim=-1, keepdim=True))
    assert torch.equal(child, ref_child) and torch.equal(parent, ref_parent)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_device_loop_matches_too(dtype):
    # The loop that other devices run (every proxy, no host synchronisation), here on the CPU.
    probs = normalised(make_pool("model-like", 600, 10, seed=2), dtype)
    child, parent = prim._prim_tree_device(probs)
    ref_child, ref_parent = reference_prim_tree(probs)
    assert torch.equal(child, ref_child) and torch.equal(parent, ref_parent)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_the_reference_on_cuda(dtype):
    probs = normalised(make_pool("model-like", 2000, 10, seed=4), dtype).cuda()
    assert_same_tree(probs)


# ------------------------------------------------------------------------------------------
# The pieces: the bound, the candidate step, how much it prunes
# ------------------------------------------------------------------------------------------


def proxy_and_bound(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``proxy(p_i, q_i)`` and ``bound(p_i, q_i)`` for row pairs, computed as Prim does."""
    dtype = p.dtype
    tiny = torch.finfo(dtype).tiny
    pc, qc = p.clamp_min(tiny), q.clamp_min(tiny)
    s = pc + qc
    proxy = (torch.special.xlogy(p, p).sum(-1) - (torch.log(s) * s).sum(-1)) + torch.special.xlogy(
        q, q
    ).sum(-1)
    roots_p, roots_q = (pc * (2 * math.log(2))).sqrt(), (qc * (2 * math.log(2))).sqrt()
    return proxy, -(roots_p * roots_q).sum(-1)


def adversarial_pairs(k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs where the bound is tight or rounding is at its worst."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.2), size=4000)
    q = np.concatenate(
        [
            rng.dirichlet(np.full(k, 0.2), size=1000),  # unrelated
            p[1000:2000],  # identical
            np.abs(p[2000:3000] * (1 + 1e-6 * rng.standard_normal((1000, k)))),  # near-identical
            np.eye(k)[rng.integers(0, k, size=1000)],  # one-hot
        ]
    )
    one_hot = np.eye(k)[np.arange(200) % k]
    disjoint = np.roll(one_hot, 1, axis=1)
    near_one_hot = (1 - 1e-7) * one_hot + 1e-7 / k
    uniform = np.full((200, k), 1.0 / k)
    zeros = p[:200].copy()
    zeros[rng.random((200, k)) < 0.5] = 0.0
    zeros[:, 0] += 1e-3
    p = np.concatenate([p, one_hot, one_hot, near_one_hot, uniform, zeros])
    q = np.concatenate([q, disjoint, near_one_hot, one_hot, one_hot, zeros[::-1]])
    return p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3, 10, 100])
def test_the_hellinger_bound_lies_below_the_proxy(k):
    p, q = adversarial_pairs(k, seed=k)
    proxy, bound = proxy_and_bound(torch.from_numpy(p), torch.from_numpy(q))
    # Exact in float64 up to rounding (about 1e-15 here).
    assert float((bound - proxy).max()) <= 1e-12
    # JS in bits against the squared Hellinger distance: h^2 <= JS_bits <= h^2 / ln 2.
    js_bits = (proxy + 2 * math.log(2)) / (2 * math.log(2))
    h2 = 1 + bound / (2 * math.log(2))
    assert bool((h2 <= js_bits + 1e-12).all()) and bool((js_bits <= h2 / math.log(2) + 1e-12).all())
    # In float32 the computed bound may exceed the computed proxy by rounding only, far less
    # than the margin that the pruning leaves.
    proxy32, bound32 = proxy_and_bound(torch.from_numpy(p).float(), torch.from_numpy(q).float())
    assert float((bound32 - proxy32).max()) < prim._prune_margin(k, torch.float32) / 8


def test_torch_log_is_elementwise_identical_on_any_subset():
    rng = np.random.default_rng(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.from_numpy(rng.random(50_001) * 2).to(dtype)
        x[:500] = torch.finfo(dtype).tiny * torch.arange(1, 501, dtype=dtype)
        x = x[torch.from_numpy(rng.permutation(x.numel()))]
        full = torch.log(x)
        for size in [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1001, 4099]:
            for _ in range(3):
                idx = torch.from_numpy(np.sort(rng.choice(x.numel(), size, replace=False)))
                assert torch.equal(torch.log(x[idx]), full[idx])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [3, 5, 10, 17])
def test_the_candidate_step_updates_exactly_as_the_full_step(dtype, k):
    # Any subset of columns, at any place in blocks of awkward widths, gets the keys and links
    # that the full step gives them; the other columns are untouched.
    rng = np.random.default_rng(k)
    for r in [1, 2, 7, 8, 9, 31, 32, 33, 63, 100, 257, 1000, 4099]:
        probs = normalised(make_pool("model-like", r + 1, k, seed=r), dtype)
        state, links = prim._prim_state(probs, with_roots=True)
        state[k + 1] = torch.from_numpy(rng.uniform(-1.4, 0.1, r + 1)).to(dtype)
        new_col = state[:, r].clone()
        full_state, full_links = state.clone(), links.clone()
        scratch = torch.zeros(2 * k * (r + 1), dtype=dtype)
        prim._relax_all(
            k, full_state, full_links, new_col[:, None], r, r, scratch, torch.empty(r, dtype=dtype)
        )
        cand = np.sort(rng.choice(r, size=int(rng.integers(1, r + 1)), replace=False))
        prim._relax_candidates(
            k, state.numpy(), links.numpy(), new_col.numpy(), r, cand, r, scratch.numpy()
        )
        rest = np.setdiff1d(np.arange(r + 1), cand)
        assert torch.equal(state[k + 1, cand], full_state[k + 1, cand])
        assert torch.equal(links[1, cand], full_links[1, cand])
        assert torch.equal(links[1, rest], torch.zeros(rest.size, dtype=torch.int64))


def test_the_bound_skips_most_columns(monkeypatch):
    calls = {"all": 0, "candidates": 0, "skipped": 0, "live": 0}
    relax_all, relax_candidates = prim._relax_all, prim._relax_candidates

    def count_all(*args):
        calls["all"] += 1
        calls["live"] += args[5]
        relax_all(*args)

    def count_candidates(*args):
        calls["candidates"] += 1
        calls["live"] += args[6]
        calls["skipped"] += args[6] - args[5].size
        relax_candidates(*args)

    monkeypatch.setattr(prim, "_relax_all", count_all)
    monkeypatch.setattr(prim, "_relax_candidates", count_candidates)
    probs = normalised(make_pool("model-like", 3000, 10, seed=5), torch.float32)
    prim_tree(probs)
    assert calls["all"] + calls["candidates"] == 2999
    # Every step from 512 live points on but the first few takes the candidate path.
    assert calls["candidates"] >= 2999 - 511 - 10
    assert calls["skipped"] / calls["live"] > 0.9


def test_prim_tree_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        prim_tree(torch.full((4,), 0.25))
    with pytest.raises(ValueError, match="number of points"):
        prim_tree(torch.ones(1, 3) / 3)
    with pytest.raises(TypeError, match="float32 or float64"):
        prim_tree(torch.ones(3, 2, dtype=torch.float16) / 2)
    with pytest.raises(ValueError, match="sum to 1"):
        prim_tree(torch.ones(3, 2))
