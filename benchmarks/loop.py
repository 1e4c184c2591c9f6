"""Benchmark: one `medium` active-learning step on Fashion-MNIST, phase by phase.

The phases of one step of the book's Fashion-MNIST protocol at its largest labelled set
(40 + 5 x 200 = 1,040 labels): training the MNIST CNN from scratch (batch 32, Adam; the paper
trains 50 epochs, ``--epochs`` sets how many are timed and the table scales to 50), test
accuracy on the 10,000 test images, MC-dropout scoring of the 10,000-image pool (T = 20),
sigma on the 5,000 validation images (T = 20) and DeAn's selection (sqrt-JS clustering into
1,000 clusters and the annealed draw of 200).

Each phase runs twice: with the package as it is ("ours") and with the straightforward code it
replaced (``_baseline.py``: torch's dropout on the repeated block, contiguous tensors). For
each it prints the seconds, the achieved GFLOP/s (convolution and dense multiply-adds x 2,
training x 3 for the backward pass) and that rate as a fraction of the machine's sgemm rate,
measured in the same run on a (5120 x 3872) @ (3872 x 128) product (the head's shape,
``_timing.sgemm_gflops``), at each thread count. The last lines give the whole step (with 50
epochs) and the ratio.

    nice python benchmarks/loop.py                       # 1 and 2 threads, 5 epochs timed
    python benchmarks/loop.py --threads 1 --epochs 50    # the real step, one thread
    python benchmarks/loop.py --device cuda              # on a GPU (threads do not matter)
"""

from __future__ import annotations

import argparse

import torch
from _baseline import baseline_mc_dropout_probs, baseline_train, contiguous_copy
from _timing import sgemm_gflops, timed

from dean_nb.learner.mc_dropout import mc_dropout_probs, predict_probs
from dean_nb.learner.models import build_model, multiply_adds
from dean_nb.learner.training import TrainConfig, train_model
from dean_nb.problem.datasets import load_dataset
from dean_nb.strategies import annealing, scoring

PAPER_EPOCHS = 50
PHASES = ("training", "test accuracy", "pool scoring", "sigma", "selection")


def flops(model: torch.nn.Module, x: torch.Tensor, n_images: int, n_samples: int) -> dict:
    """Floating-point operations of each phase (2 per multiply-add)."""
    whole = multiply_adds(model, x)
    head = whole - multiply_adds(model.trunk, x)
    trunk = whole - head
    return {
        "epoch": 3 * 2 * whole * n_images["labels"],
        "test accuracy": 2 * whole * n_images["test"],
        "pool scoring": 2 * (trunk + n_samples * head) * n_images["pool"],
        "sigma": 2 * (trunk + n_samples * head) * n_images["validation"],
        "selection": 0,
    }


def step_phases(data: dict, args, device: torch.device, which: str) -> dict[str, float]:
    """Seconds of each phase of one step with ``which`` = "ours" or "baseline"."""
    model = build_model("mnist", 10, 1, 28, seed=0).to(device)
    config = TrainConfig(epochs=args.epochs)
    if which == "baseline":
        contiguous_copy(model)
        train = lambda: baseline_train(model, data["x_labels"], data["y_labels"], config)  # noqa: E731
        mc = lambda x: baseline_mc_dropout_probs(model, x, args.samples)  # noqa: E731
    else:
        train = lambda: train_model(  # noqa: E731
            model, data["x_labels"], data["y_labels"], config, device=device, generator=0
        )
        mc = lambda x: mc_dropout_probs(model, x, args.samples, generator=0)  # noqa: E731
    seconds = {}
    seconds["training"], _ = timed(train, device)
    seconds["training"] *= PAPER_EPOCHS / args.epochs
    seconds["test accuracy"], _ = timed(lambda: predict_probs(model, data["x_test"]), device)
    seconds["pool scoring"], probs = timed(lambda: mc(data["x_pool"]), device)
    seconds["sigma"], _ = timed(lambda: scoring.variation_ratio(mc(data["x_val"])).mean(), device)
    bald = scoring.bald(probs)
    seconds["selection"], _ = timed(
        lambda: annealing.annealed_batch(probs.mean(0), bald, 200, 30.0, 1000, generator=0),
        device,
    )
    return seconds


def load(args, device: torch.device) -> dict:
    data = load_dataset("fashion-mnist", root=args.root)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(data.x_train.shape[0], generator=gen)
    x, y = data.x_train[perm], data.y_train[perm]
    return {
        "x_labels": x[: args.labels].to(device),
        "y_labels": y[: args.labels].to(device),
        "x_val": x[args.labels : args.labels + 5000].to(device),
        "x_pool": x[args.labels + 5000 : args.labels + 15000].to(device),
        "x_test": data.x_test.to(device),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed (scaled to 50)")
    parser.add_argument("--labels", type=int, default=1040, help="labelled images in training")
    parser.add_argument("--samples", type=int, default=20, help="T, MC-dropout passes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--root", default=None, help="Fashion-MNIST folder (default: Debian's)")
    parser.add_argument("--skip-baseline", action="store_true", help="time ours only")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data = load(args, device)
    probe = build_model("mnist", 10, 1, 28, seed=0)
    counts = {
        "labels": args.labels,
        "test": data["x_test"].shape[0],
        "pool": data["x_pool"].shape[0],
        "validation": data["x_val"].shape[0],
    }
    work = flops(probe, data["x_test"][:1].cpu(), counts, args.samples)
    work["training"] = work.pop("epoch") * PAPER_EPOCHS
    print(
        f"one medium step on Fashion-MNIST: {args.labels} labels, pool {counts['pool']}, "
        f"validation {counts['validation']}, test {counts['test']}, T = {args.samples}, "
        f"{args.epochs} of {PAPER_EPOCHS} epochs timed, device {device}, torch {torch.__version__}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    thread_counts = [1] if device.type == "cuda" else [int(t) for t in args.threads.split(",")]
    for threads in thread_counts:
        torch.set_num_threads(threads)
        before = sgemm_gflops(device)
        ours = step_phases(data, args, device, "ours")
        base = None if args.skip_baseline else step_phases(data, args, device, "baseline")
        peak = max(before, sgemm_gflops(device))  # the best of before and after the phases
        print(f"\n{threads} thread(s): sgemm {peak:.1f} GFLOP/s")
        print(
            f"  {'phase':14s} {'ours s':>8s} {'GFLOP/s':>8s} {'of sgemm':>9s} "
            f"{'baseline s':>11s} {'speed-up':>9s}"
        )
        ours = step_phases(data, args, device, "ours")
        base = None if args.skip_baseline else step_phases(data, args, device, "baseline")
        for phase in PHASES:
            rate = work[phase] / ours[phase] / 1e9
            share = f"{rate / peak:9.2f}" if work[phase] else f"{'-':>9s}"
            line = f"  {phase:14s} {ours[phase]:8.2f} {rate:8.1f} {share}"
            if base is not None:
                line += f" {base[phase]:11.2f} {base[phase] / ours[phase]:8.2f}x"
            print(line)
        total = sum(ours.values())
        line = f"  {'whole step':14s} {total:8.2f} {sum(work.values()) / total / 1e9:8.1f}"
        line += f" {sum(work.values()) / total / 1e9 / peak:9.2f}"
        if base is not None:
            line += f" {sum(base.values()):11.2f} {sum(base.values()) / total:8.2f}x"
        print(line)
        bound = {p: work[p] / peak / 1e9 for p in ("pool scoring", "sigma")}
        print(
            "  MC dropout at the sgemm bound: pool {:.2f} s (ours {:.2f}x it), sigma {:.2f} s "
            "({:.2f}x)".format(
                bound["pool scoring"],
                ours["pool scoring"] / bound["pool scoring"],
                bound["sigma"],
                ours["sigma"] / bound["sigma"],
            )
        )


if __name__ == "__main__":
    main()
