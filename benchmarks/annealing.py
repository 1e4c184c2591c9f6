"""Benchmark: one DeAn acquisition step (Algorithm 1, lines 3-8) against a straightforward one.

The straightforward implementation (written here, as a reader would first write it): a dense
float64 N x N matrix of sqrt-JS distances (``scipy.spatial.distance.pdist`` + ``squareform``),
scikit-learn's ``AgglomerativeClustering(linkage="single", metric="precomputed")`` on it, a
per-cluster loop for the median centroids, and for every pick a softmax over the whole pool
with a rejection loop for points already picked.

Ours: :func:`dean_nb.strategies.annealing.annealed_selection` (Prim's minimum spanning tree on distance
rows computed on the fly, O(N K) memory; on the CPU only the distances that a Hellinger bound
cannot rule out, ``--prune-share`` counts them; exact log-space Gibbs sampling).

Each implementation runs in a fresh subprocess on the same inputs (generated from the same
seed), which reports its wall time and its peak resident memory above the baseline after
imports and input generation (``/proc/self/clear_refs`` resets the peak, ``VmHWM`` reads it).
Then the full MNIST pool (N = 60,000) runs with ours alone.

DeAn on the whole pool (issue 23): the same step with ``clustering="knn"``, single linkage on
the k-nearest-neighbour graph (:mod:`dean_nb.strategies.knn_linkage`), for each ``--knn-k``
at N = 10,000 and 60,000 against the exact runs above: the partition's adjusted Rand index,
the share of centroids and of the same-seed batch in common, the total variation between
the two laws of the first pick (eq. 4) at ``--beta`` and at ``beta = inf``, time and peak
memory; then the knn step alone at ``--knn-sizes`` (100,000 to 1,000,000; clusters N / 5).
Times are also given as multiples of ``t_gemm = N^2 K / sgemm``, the time of the N^2 K flops
of one (N x K) @ (K x N) product at the float32 sgemm rate measured in the same run
(``_timing.sgemm_gflops``): what any method that looks at all N^2 / 2 pairs pays at least.

    nice python benchmarks/annealing.py                 # N = 10,000 vs baseline, then 60,000
    python benchmarks/annealing.py --device cuda        # ours on the GPU
    python benchmarks/annealing.py --big-n 0            # skip the N = 60,000 run
    python benchmarks/annealing.py --skip-knn           # the exact runs only
    python benchmarks/annealing.py --n 0 --big-n 0 --knn-sizes 100000   # knn at 100k only
    python benchmarks/annealing.py --skip-knn --prune-share  # + share of Prim proxies skipped
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _memory import peak_baseline, status_kib
from _timing import sgemm_gflops


def make_inputs(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet-ish mean predictive distributions (N, K) float32 and BALD-like scores (N,)."""
    rng = np.random.default_rng(seed)
    # A mixture of confident and uncertain predictions, like a half-trained classifier.
    alpha = rng.choice([0.05, 0.3, 2.0], size=(n, 1), p=[0.6, 0.3, 0.1])
    probs = rng.gamma(alpha * np.ones((n, k)), 1.0) + 1e-12
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    scores = rng.gamma(1.0, 0.1, size=n).astype(np.float32)
    return probs, scores


def run_ours(probs: np.ndarray, scores: np.ndarray, args: argparse.Namespace) -> dict:
    import torch

    from dean_nb.strategies.annealing import annealed_selection

    device = torch.device(args.device)
    p = torch.from_numpy(probs).to(device)
    s = torch.from_numpy(scores).to(device)
    # Warm up (not measured): first calls load code pages and, on CUDA, the context.
    annealed_selection(p[:64] / p[:64].sum(1, keepdim=True), s[:64], 4, args.beta, 8, 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = peak_baseline()
    t0 = time.perf_counter()
    sel = annealed_selection(
        p,
        s,
        args.budget,
        args.beta,
        args.clusters,
        generator=args.seed,
        clustering=args.clustering,
        n_neighbors=args.n_neighbors,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = {
        "seconds": seconds,
        "peak_mib": (status_kib("VmHWM") - base) / 1024,
        "labels": sel.labels.cpu().numpy(),
        "indices": sel.indices.cpu().numpy(),
        "centroids": sel.centroids.cpu().numpy(),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        out["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_baseline(probs: np.ndarray, scores: np.ndarray, args: argparse.Namespace) -> dict:
    from scipy.spatial.distance import pdist, squareform
    from sklearn.cluster import AgglomerativeClustering

    p = probs.astype(np.float64)
    sc = scores.astype(np.float64)
    rng = np.random.default_rng(args.seed)
    # Warm up (not measured), as for ours.
    AgglomerativeClustering(n_clusters=8, metric="precomputed", linkage="single").fit_predict(
        squareform(pdist(p[:64], "jensenshannon"))
    )
    base = peak_baseline()
    t0 = time.perf_counter()
    # Step 3: dense N x N distance matrix (scipy's jensenshannon uses natural logs).
    dist = squareform(pdist(p, "jensenshannon")) / math.sqrt(math.log(2.0))
    # Step 4: single linkage on the precomputed matrix.
    labels = AgglomerativeClustering(
        n_clusters=args.clusters, metric="precomputed", linkage="single"
    ).fit_predict(dist)
    t1 = time.perf_counter()
    # Step 5: upper-median centroid of every cluster.
    centroids = np.empty(args.clusters, dtype=np.int64)
    for c in range(args.clusters):
        members = np.flatnonzero(labels == c)
        order = members[np.argsort(sc[members], kind="stable")]
        centroids[c] = order[len(order) // 2]
    t2 = time.perf_counter()
    # Step 7: per pick a centroid, then a softmax over the whole pool, rejecting taken points.
    weights = sc[centroids] / sc[centroids].sum()
    picked: list[int] = []
    taken = set()
    for _ in range(args.budget):
        c = rng.choice(centroids, p=weights)
        logits = -args.beta * dist[c]
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        while True:
            s = int(rng.choice(len(p), p=prob))
            if s not in taken:
                break
        taken.add(s)
        picked.append(s)
    t3 = time.perf_counter()
    return {
        "seconds": t3 - t0,
        "phases": {"distance+cluster": t1 - t0, "centroids": t2 - t1, "sampling": t3 - t2},
        "peak_mib": (status_kib("VmHWM") - base) / 1024,
        "labels": labels,
        "indices": np.array(picked),
        "centroids": centroids,
    }


def prune_share(n: int, args: argparse.Namespace) -> float:
    """Share of the N (N - 1) / 2 Prim proxies that the Hellinger bound skips on the pool of
    size ``n`` (CPU, float32 as in DeAn), counted on a run of its own (not timed)."""
    import torch

    from dean_nb.strategies import prim

    probs = torch.from_numpy(make_inputs(n, args.k, args.seed)[0])
    counts = {"live": 0, "computed": 0}
    relax_all, relax_candidates = prim._relax_all, prim._relax_candidates

    def count_all(*a):
        counts["live"] += a[5]
        counts["computed"] += a[5]
        relax_all(*a)

    def count_candidates(*a):
        counts["live"] += a[6]
        counts["computed"] += a[5].size
        relax_candidates(*a)

    prim._relax_all, prim._relax_candidates = count_all, count_candidates
    try:
        prim.prim_tree(probs / probs.sum(dim=1, keepdim=True))
    finally:
        prim._relax_all, prim._relax_candidates = relax_all, relax_candidates
    return 1.0 - counts["computed"] / counts["live"]


def worker(args: argparse.Namespace) -> None:
    probs, scores = make_inputs(args.n, args.k, args.seed)
    result = (run_ours if args.worker == "ours" else run_baseline)(probs, scores, args)
    for key in ARRAYS:
        np.save(f"{args.out}.{key}.npy", result.pop(key))
    Path(args.out + ".json").write_text(json.dumps(result))


ARRAYS = ("labels", "indices", "centroids")


def spawn(
    which: str,
    n: int,
    clusters: int,
    args: argparse.Namespace,
    tmp: str,
    clustering: str = "exact",
    n_neighbors: int = 10,
) -> dict:
    out = os.path.join(tmp, f"{which}-{n}-{clustering}-{n_neighbors}")
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        which,
        "--n",
        str(n),
        "--clusters",
        str(clusters),
        "--k",
        str(args.k),
        "--budget",
        str(args.budget),
        "--beta",
        repr(args.beta),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--out",
        out,
        "--clustering",
        clustering,
        "--n-neighbors",
        str(n_neighbors),
    ]
    subprocess.run(cmd, check=True)
    result = json.loads(Path(out + ".json").read_text())
    for key in ARRAYS:
        result[key] = np.load(f"{out}.{key}.npy")
    return result


# --------------------------------------------------------------------------------------------
# DeAn on the whole pool: kNN-graph single linkage against the exact one
# --------------------------------------------------------------------------------------------


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def first_pick_tv(
    probs: np.ndarray, scores: np.ndarray, cent_a: np.ndarray, cent_b: np.ndarray, beta: float
) -> float:
    """Total variation between the laws of the first pick (eq. 4) given two centroid sets,
    ``p(c)`` proportional to the centroids' scores. 0 without computing when the sets agree;
    at ``beta = inf`` the law is the centroid weights themselves; otherwise the laws are
    summed from :func:`pick_distribution` a block of centroids at a time."""
    import torch

    from dean_nb.strategies.annealing import pick_distribution

    a, b = np.unique(cent_a), np.unique(cent_b)
    if np.array_equal(a, b):
        return 0.0
    if math.isinf(beta):
        law_a = np.zeros(len(probs))
        law_b = np.zeros(len(probs))
        law_a[a] = scores[a] / scores[a].sum()
        law_b[b] = scores[b] / scores[b].sum()
        return 0.5 * float(np.abs(law_a - law_b).sum())
    p = torch.from_numpy(probs)
    s = torch.from_numpy(scores.astype(np.float64))
    block = max(1, (1 << 24) // len(probs))

    def mass(cents: np.ndarray) -> np.ndarray:
        """``sum_c w_c p(zeta = . | c)`` over ``cents``."""
        out = np.zeros(len(probs))
        for c0 in range(0, len(cents), block):
            c = torch.from_numpy(cents[c0 : c0 + block])
            w = s[c]
            out += float(w.sum()) * pick_distribution(p, c, w, beta).numpy()
        return out

    common = mass(np.intersect1d(a, b))
    law_a = (common + mass(np.setdiff1d(a, b))) / scores[a].sum()
    law_b = (common + mass(np.setdiff1d(b, a))) / scores[b].sum()
    return 0.5 * float(np.abs(law_a - law_b).sum())


def gemm_seconds(n: int, args: argparse.Namespace, sgemm: float) -> float:
    """``t_gemm``: N^2 K flops at the sgemm rate."""
    return n * n * args.k / (sgemm * 1e9)


def compare_knn(exact: dict, n: int, clusters: int, args, tmp: str, sgemm: float) -> None:
    """One line per k: knn against the exact run ``exact`` at pool size ``n``."""
    from sklearn.metrics import adjusted_rand_score

    probs, scores = make_inputs(n, args.k, args.seed)
    t_gemm = gemm_seconds(n, args, sgemm)
    print(
        f"N={n:,} clusters={clusters:,} exact: {exact['seconds']:.2f} s = "
        f"{exact['seconds'] / t_gemm:.1f} t_gemm, peak RSS +{exact['peak_mib']:.1f} MiB "
        f"(torch threads {exact['threads']}; {load()})"
    )
    for k in args.knn_k:
        knn = spawn("ours", n, clusters, args, tmp, "knn", k)
        ari = adjusted_rand_score(exact["labels"], knn["labels"])
        shared = np.intersect1d(exact["centroids"], knn["centroids"]).size / clusters
        same_batch = np.intersect1d(exact["indices"], knn["indices"]).size / args.budget
        tv = first_pick_tv(probs, scores, exact["centroids"], knn["centroids"], args.beta)
        tv_cold = first_pick_tv(probs, scores, exact["centroids"], knn["centroids"], math.inf)
        print(
            f"N={n:,} clusters={clusters:,} knn k={k}: {knn['seconds']:.2f} s "
            f"(exact/knn x{exact['seconds'] / knn['seconds']:.1f}; "
            f"{knn['seconds'] / t_gemm:.2f} t_gemm), peak RSS +{knn['peak_mib']:.1f} MiB "
            f"(knn/exact x{knn['peak_mib'] / max(exact['peak_mib'], 1e-3):.2f}); "
            f"ARI {ari:.4f}, centroids shared {shared:.1%}, same-seed batch shared "
            f"{same_batch:.1%}, first-pick law TV {tv:.2g} (beta={args.beta:.4g}) / "
            f"{tv_cold:.2g} (beta=inf) ({load()})"
        )


def knn_alone(args, tmp: str, sgemm: float, exact_big: dict | None) -> None:
    """One line per size of ``--knn-sizes``: the knn step alone, clusters N / 5."""
    for n in args.knn_sizes:
        knn = spawn("ours", n, n // 5, args, tmp, "knn", args.knn_big_k)
        t_gemm = gemm_seconds(n, args, sgemm)
        vs = ""
        if exact_big is not None:  # exact time extrapolated as N^2 from the --big-n run
            guess = exact_big["seconds"] * (n / args.big_n) ** 2
            vs = f"; exact extrapolated as N^2 {guess:,.0f} s, x{guess / knn['seconds']:.0f}"
        print(
            f"N={n:,} clusters={n // 5:,} knn k={args.knn_big_k}: {knn['seconds']:.2f} s "
            f"({knn['seconds'] / t_gemm:.3f} t_gemm{vs}), peak RSS +{knn['peak_mib']:.1f} MiB "
            f"(torch threads {knn['threads']}; {load()})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="pool size for the comparison")
    parser.add_argument("--clusters", type=int, default=2_500, help="clusters at --n")
    parser.add_argument("--big-n", type=int, default=60_000, help="pool size, ours only (0: skip)")
    parser.add_argument("--big-clusters", type=int, default=12_000, help="clusters at --big-n")
    parser.add_argument("--k", type=int, default=10, help="classes")
    parser.add_argument("--budget", type=int, default=200, help="batch size b")
    parser.add_argument(
        "--beta", type=float, default=0.25 * math.expm1(2.0), help="beta (default: exp, sigma=.5)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="device for ours (cpu, cuda)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-knn", action="store_true", help="no kNN-graph runs")
    parser.add_argument(
        "--knn-k", type=_ints, default=[3, 10, 30, 100], help="k compared at --n and --big-n"
    )
    parser.add_argument(
        "--knn-sizes",
        type=_ints,
        default=[100_000, 300_000, 1_000_000],
        help="pool sizes of the knn step alone (empty: none)",
    )
    parser.add_argument("--knn-big-k", type=int, default=10, help="k at --knn-sizes")
    parser.add_argument(
        "--prune-share",
        action="store_true",
        help="also count the share of Prim proxies the Hellinger bound skips (runs Prim again)",
    )
    parser.add_argument("--worker", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--clustering", default="exact", help=argparse.SUPPRESS)
    parser.add_argument("--n-neighbors", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(
        f"DeAn acquisition step, K={args.k}, b={args.budget}, beta={args.beta:.4g}, "
        f"device={args.device}, cpus={len(os.sched_getaffinity(0))}"
    )
    sgemm = sgemm_gflops(torch_device(args.device))
    print(f"sgemm {sgemm:.1f} GFLOP/s (float32, {args.device}); {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        ours = big = None
        if args.n:
            ours = spawn("ours", args.n, args.clusters, args, tmp)
            gpu = f", GPU peak {ours['gpu_peak_mib']:.1f} MiB" if "gpu_peak_mib" in ours else ""
            print(
                f"N={args.n:,} clusters={args.clusters:,}: ours {ours['seconds']:.2f} s, "
                f"peak RSS +{ours['peak_mib']:.1f} MiB{gpu} (torch threads {ours['threads']})"
            )
        if args.n and not args.skip_baseline:
            from sklearn.metrics import adjusted_rand_score

            base = spawn("baseline", args.n, args.clusters, args, tmp)
            phases = ", ".join(f"{k} {v:.2f} s" for k, v in base["phases"].items())
            print(
                f"N={args.n:,} clusters={args.clusters:,}: straightforward "
                f"{base['seconds']:.2f} s ({phases}), peak RSS +{base['peak_mib']:.1f} MiB"
            )
            ari = adjusted_rand_score(base["labels"], ours["labels"])
            print(
                f"N={args.n:,}: speed-up x{base['seconds'] / ours['seconds']:.1f}, "
                f"peak memory ratio x{base['peak_mib'] / max(ours['peak_mib'], 1e-3):.1f} "
                f"(straightforward / ours); partition agreement ARI={ari:.4f}"
            )
        if args.big_n:
            big = spawn("ours", args.big_n, args.big_clusters, args, tmp)
            gpu = f", GPU peak {big['gpu_peak_mib']:.1f} MiB" if "gpu_peak_mib" in big else ""
            print(
                f"N={args.big_n:,} clusters={args.big_clusters:,}: ours {big['seconds']:.2f} s, "
                f"peak RSS +{big['peak_mib']:.1f} MiB{gpu} (torch threads {big['threads']})"
            )
        if args.prune_share:
            for n in (args.n, args.big_n):
                if n:
                    print(
                        f"N={n:,}: Prim's Hellinger bound skips {prune_share(n, args):.2%} of "
                        "the proxies (exact tree, CPU)"
                    )
        if not args.skip_knn:
            for exact, n, clusters in (
                (ours, args.n, args.clusters),
                (big, args.big_n, args.big_clusters),
            ):
                if exact is not None:
                    compare_knn(exact, n, clusters, args, tmp, sgemm)
            knn_alone(args, tmp, sgemm, big)


def _ints(text: str) -> list[int]:
    """``"10,30,100"`` -> ``[10, 30, 100]``; ``""`` -> ``[]``."""
    return [int(x) for x in text.split(",") if x.strip()]


def torch_device(name: str):
    import torch

    return torch.device(name)


if __name__ == "__main__":
    main()
