"""Benchmark: trunk-cached MC dropout against T full forward passes (the paper's step 2).

Scoring a pool takes T = 100 stochastic passes of the network (MNIST: a pool of 10,000). The
straightforward way, as in Gal et al.'s BALD code, runs the whole network T times with dropout
on (here T calls of :func:`dean_nb.learner.mc_dropout.torch_dropout_probs`, one pass each).
Everything before the first dropout layer is deterministic, though, so
:func:`dean_nb.learner.mc_dropout.mc_dropout_probs` runs that trunk once per input and only
the head (dropout, dense layers) T times, on a ``(T * B, D)`` block. For the MNIST CNN the
trunk (two convolutions) holds about 94% of the multiply-adds of one pass.

Both methods run on the same random MNIST-shaped pool ``(P, 1, 28, 28)`` with the same model,
each in a fresh subprocess that reports its wall time and its peak memory above the baseline
after imports, model and inputs: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the
peak resident set (``/proc/self/clear_refs`` resets it, ``VmHWM`` reads it; torch allocations
are invisible to ``tracemalloc``). Each worker also saves its mean prediction (mean over T),
and the parent checks that both agree within Monte-Carlo error.

    nice python benchmarks/mc_dropout.py                          # P = 10,000, T = 100
    nice python benchmarks/mc_dropout.py --pool-size 2000 --device cpu
    python benchmarks/mc_dropout.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _memory import peak_baseline, status_kib

METHODS = ("naive", "cached")


def naive_mc_probs(model, x, n_samples: int, batch_size: int, seed: int):
    """The straightforward MC dropout: T whole passes over the pool, one after the other.

    Each pass is one call of :func:`dean_nb.learner.mc_dropout.torch_dropout_probs` with
    T = 1 (torch's own dropout, ``batch_size`` inputs per forward pass), so at most one batch's
    activations are alive at a time, as in Gal et al.'s loop; pass ``t`` draws from
    ``seed + t``.
    """
    import torch

    from dean_nb.learner.mc_dropout import torch_dropout_probs

    out = torch.empty(n_samples, x.shape[0], model.num_classes, device=x.device)
    for t in range(n_samples):
        out[t] = torch_dropout_probs(model, x, 1, batch_size, generator=seed + t)[0]
    return out


def worker(args: argparse.Namespace) -> None:
    import torch

    from dean_nb.learner import mc_dropout
    from dean_nb.learner.mc_dropout import mc_dropout_probs
    from dean_nb.learner.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.max_head_elements:
        mc_dropout.MAX_HEAD_ELEMENTS_CPU = args.max_head_elements
        mc_dropout.MAX_HEAD_ELEMENTS_ACCELERATOR = args.max_head_elements
    device = torch.device(args.device)
    model = build_model("mnist", 10, 1, 28, seed=0, conv_dropout=args.conv_dropout).to(device)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.pool_size, 1, 28, 28, generator=gen).to(device)

    def run(xs, t):
        if args.worker == "cached":
            return mc_dropout_probs(model, xs, t, batch_size=args.batch_size, generator=1)
        return naive_mc_probs(model, xs, t, args.batch_size, seed=1)

    run(x[:64], 2)  # warm-up: kernels, allocator, CUDA context (not timed)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base_kib = peak_baseline()
    start = time.perf_counter()
    probs = run(x, args.samples)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mib = (status_kib("VmHWM") - base_kib) / 1024
    torch.save(
        {"mean": probs.mean(0).cpu(), "std": probs.std(0).cpu()},
        Path(args.out) / f"{args.worker}.pt",
    )
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "shape": list(probs.shape)}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool-size", type=int, default=10_000, help="P, pool inputs")
    parser.add_argument("--samples", type=int, default=100, help="T, MC-dropout passes")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA if available)")
    parser.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-head-elements", type=int, default=0, help="override mc_dropout.max_head_elements"
    )
    parser.add_argument(
        "--conv-dropout",
        choices=("channel", "element"),
        default="channel",
        help="how the network drops its conv maps (channel: the authors' Dropout2d)",
    )
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device is None:
        from dean_nb.runtime import default_device

        args.device = str(default_device())
    if args.worker:
        worker(args)
        return

    import torch

    from dean_nb.learner import mc_dropout

    head_block = args.max_head_elements or mc_dropout.max_head_elements(torch.device(args.device))
    print(
        f"MC dropout, MNIST CNN ({args.conv_dropout} conv dropout): pool {args.pool_size} "
        f"x 1x28x28, T = {args.samples}, "
        f"batch {args.batch_size}, head block <= {head_block} values, device {args.device}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            cmd = [sys.executable, __file__, "--worker", method, "--out", tmp]
            cmd += ["--pool-size", str(args.pool_size), "--samples", str(args.samples)]
            cmd += ["--device", args.device, "--batch-size", str(args.batch_size)]
            cmd += ["--threads", str(args.threads), "--seed", str(args.seed)]
            cmd += ["--max-head-elements", str(args.max_head_elements)]
            cmd += ["--conv-dropout", args.conv_dropout]
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                sys.exit(f"{method} worker failed:\n{done.stderr}")
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[method]
            print(f"  {method:7s} {r['seconds']:9.2f} s   peak {r['peak_mib']:9.1f} MiB")
        naive, cached = (torch.load(Path(tmp) / f"{m}.pt") for m in METHODS)
    speedup = results["naive"]["seconds"] / results["cached"]["seconds"]
    mem_ratio = results["cached"]["peak_mib"] / max(results["naive"]["peak_mib"], 1e-9)
    print(f"  speed-up (naive time / cached time): {speedup:.1f}x")
    print(f"  peak memory (cached / naive):        {mem_ratio:.2f}x")
    # The two draw different dropout masks; their mean predictions agree within MC error.
    se = ((naive["std"] ** 2 + cached["std"] ** 2) / args.samples).sqrt()
    z = ((naive["mean"] - cached["mean"]).abs() / se.clamp_min(1e-12)).max().item()
    diff = (naive["mean"] - cached["mean"]).abs().max().item()
    print(f"  mean probs agree: max |diff| {diff:.2e}, max z-score {z:.1f} over {se.numel()} cells")


if __name__ == "__main__":
    main()
