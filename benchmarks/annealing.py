"""Benchmark: one DeAn acquisition step (Algorithm 1, lines 3-8) against a straightforward one.

The straightforward implementation (written here, as a reader would first write it): a dense
float64 N x N matrix of sqrt-JS distances (``scipy.spatial.distance.pdist`` + ``squareform``),
scikit-learn's ``AgglomerativeClustering(linkage="single", metric="precomputed")`` on it, a
per-cluster loop for the median centroids, and for every pick a softmax over the whole pool
with a rejection loop for points already picked.

Ours: :func:`dean_nb.strategies.annealing.annealed_selection` (Prim's minimum spanning tree on distance
rows computed on the fly, O(N K) memory; exact log-space Gibbs sampling).

Each implementation runs in a fresh subprocess on the same inputs (generated from the same
seed), which reports its wall time and its peak resident memory above the baseline after
imports and input generation (``/proc/self/clear_refs`` resets the peak, ``VmHWM`` reads it).
Then the full MNIST pool (N = 60,000) runs with ours alone.

    nice python benchmarks/annealing.py                 # N = 10,000 vs baseline, then 60,000
    python benchmarks/annealing.py --device cuda        # ours on the GPU
    python benchmarks/annealing.py --big-n 0            # skip the N = 60,000 run
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
    sel = annealed_selection(p, s, args.budget, args.beta, args.clusters, generator=args.seed)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = {
        "seconds": seconds,
        "peak_mib": (status_kib("VmHWM") - base) / 1024,
        "labels": sel.labels.cpu().numpy(),
        "indices": sel.indices.cpu().numpy(),
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
    }


def worker(args: argparse.Namespace) -> None:
    probs, scores = make_inputs(args.n, args.k, args.seed)
    result = (run_ours if args.worker == "ours" else run_baseline)(probs, scores, args)
    np.save(args.out + ".labels.npy", result.pop("labels"))
    np.save(args.out + ".indices.npy", result.pop("indices"))
    Path(args.out + ".json").write_text(json.dumps(result))


def spawn(which: str, n: int, clusters: int, args: argparse.Namespace, tmp: str) -> dict:
    out = os.path.join(tmp, f"{which}-{n}")
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
    ]
    subprocess.run(cmd, check=True)
    result = json.loads(Path(out + ".json").read_text())
    result["labels"] = np.load(out + ".labels.npy")
    result["indices"] = np.load(out + ".indices.npy")
    return result


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
    parser.add_argument("--worker", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(
        f"DeAn acquisition step, K={args.k}, b={args.budget}, beta={args.beta:.4g}, "
        f"device={args.device}, cpus={len(os.sched_getaffinity(0))}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours = spawn("ours", args.n, args.clusters, args, tmp)
        gpu = f", GPU peak {ours['gpu_peak_mib']:.1f} MiB" if "gpu_peak_mib" in ours else ""
        print(
            f"N={args.n:,} clusters={args.clusters:,}: ours {ours['seconds']:.2f} s, "
            f"peak RSS +{ours['peak_mib']:.1f} MiB{gpu} (torch threads {ours['threads']})"
        )
        if not args.skip_baseline:
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


if __name__ == "__main__":
    main()
